"""What does a trained ensemble say about new radiographs? Predictions for PNG, JPEG and DICOM
studies with the members of a pretraining run, weighted uniformly or by a trained agent.

    python -m experiments.predict --run runs/pretrain/<run> [--agent runs/agents/<run>]
        [--body-part WRIST] [--study NAME] [--out DIR] [--gradcam DIR] PATH [PATH ...]

PATHs and body parts: :mod:`experiments.predict.inputs`. Each image goes through exactly the
preprocessing of the run's study logits (letterbox to the member's input size, evaluation
transform) with the run's checkpoints (checked against its logits table); a member's study
probability is the mean of its images' probabilities (MURA's rule). The weights are uniform,
or the agent's for the study's observation (the members' study logits and the body part); a
deferral agent also says whether it hands the study to the reader.

Writes ``predictions.csv`` and ``predictions.json`` (with the run, the agent and the resolved
settings) into ``--out`` (default ``runs/predict/<time>``), each atomically, and prints a short
table; ``--gradcam DIR`` also draws ``experiments.gradcam``'s panels and ``index.html``.
Models trained on synthetic data say nothing about real radiographs.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

import backbones.gradcam as gradcam
from backbones.distributed import resolve_device
from backbones.infer import probability_logits
from backbones.part_attention import forward_with_parts, part_indices
from backbones.run_members import load_members
from backbones.runs import RunInputError, default_run, load_run_table
from experiments.common.gradcam_report import (
    ExplainedStudy,
    ReportContext,
    prepare_output,
    write_report,
    write_study,
)
from experiments.common.gradcam_weighting import GradCamInputError
from experiments.predict.inputs import PredictInputError, StudyInput, collect_studies
from mura_env.common.atomic import atomic_write_bytes
from mura_env.common.config_cli import parse_config
from mura_env.constants import BODY_PARTS
from mura_env.weighting.mapping import DEFAULT_THRESHOLD, ensemble_probability


@dataclass
class PredictConfig:
    """Predict new PNG, JPEG or DICOM studies with a pretraining run's ensemble."""

    paths: tuple[Path, ...] = field(default=(), metadata={
        "help": "study folders, image files or DICOM files", "positional": True})
    run: Path | None = field(default=None, metadata={
        "help": "pretraining run folder (default: the run of reference table 0, else the "
                "newest runs/pretrain/*)"})
    agent: Path | None = field(default=None, metadata={
        "help": "agent run folder (python -m experiments.train_agent) for the weights; default "
                "uniform"})
    body_part: str | None = field(default=None, metadata={
        "help": "body part of every study (default: from XR_<PART> in the path, else DICOM)"})
    study: str | None = field(default=None, metadata={
        "help": "make the loose files given one study with this name"})
    out: Path | None = field(default=None, metadata={
        "help": "output folder (default runs/predict/<time>)"})
    gradcam: Path | None = field(default=None, metadata={
        "help": "also draw Grad-CAM panels and index.html into this folder"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N"})


def member_probabilities(members: list[gradcam.Member], images: list[np.ndarray], *,
                         body_part: str | None = None) -> np.ndarray:
    """Each member's abnormality probability of each image: float64 ``(n_images, K)``.

    Args:
        members: the ``K`` members; ``images``: one study's uint8 grayscale ``(H_i, W_i)``.
        body_part: the study's body part (a name in ``BODY_PARTS``), given to part-attention
            members; None is enough when no member takes one.

    Raises:
        ValueError: a part-attention member and no ``body_part``.
    """
    parts = None if body_part is None else part_indices([body_part], len(images))
    out = []
    with torch.no_grad():
        for member in members:
            device = next(member.model.parameters()).device
            batch = torch.stack([gradcam.preprocess(im, member.image_size) for im in images])
            logits = forward_with_parts(member.model, batch.to(device), parts)
            out.append(torch.softmax(logits.float().cpu().double(), dim=1)[:, 1].numpy())
    return np.stack(out, axis=1)


def observation(study_probabilities: np.ndarray, body_part: str) -> np.ndarray:
    """The env's observation of a study: float32 ``(2K + 7,)``, each member's study logits
    ``[log(1 - q), log(q)]`` (as the logits table stores them) then the one-hot body part."""
    part = np.eye(len(BODY_PARTS), dtype=np.float32)[BODY_PARTS.index(body_part)]
    return np.concatenate([probability_logits(study_probabilities).reshape(-1), part])


def load_weighting(cfg: PredictConfig, table: Any) -> tuple[tuple[str, ...], Any]:
    """The members to use and the agent (None: uniform weights).

    Raises:
        GradCamInputError: an agent trained on another model set or logits table than the run's.
    """
    if cfg.agent is None:
        return tuple(table.model_names), None
    from agents.core.saved import AgentMismatchError, load_agent

    try:
        agent = load_agent(cfg.agent, table)
    except (AgentMismatchError, FileNotFoundError, ValueError) as e:
        raise GradCamInputError(f"--agent {cfg.agent}: {e}") from None
    return tuple(agent.model_names), agent


def predict_study(study: StudyInput, members: list[gradcam.Member], agent: Any
                  ) -> dict[str, Any]:
    """One study's prediction: per-image and study probabilities of each member, the weights,
    the ensemble probability and prediction (and, for a deferral agent, the defer decision)."""
    per_image = member_probabilities(members, study.images, body_part=study.body_part)
    q = per_image.mean(axis=0)  # MURA's rule
    obs = observation(q, study.body_part)[None]
    k = len(members)
    weights = np.full(k, 1.0 / k) if agent is None else agent.weights(obs)[0]
    threshold = DEFAULT_THRESHOLD if agent is None else agent.mapping.threshold
    p = float(ensemble_probability(weights[None], q[None])[0])
    row: dict[str, Any] = {"study_id": study.study_id, "body_part": study.body_part,
                           "n_images": len(study.images)}
    for name, value, w in zip((m.name for m in members), q, weights, strict=True):
        row[f"{name}.probability"], row[f"{name}.weight"] = float(value), float(w)
    row.update(ensemble_probability=p, prediction=int(p > threshold))
    if agent is not None and agent.deferral:
        row["deferred"] = bool(agent.deferred(obs)[0])
    return {"row": row, "per_image": per_image, "weights": weights}


def draw_gradcam(cfg: PredictConfig, run: Path, members: list[gradcam.Member], source: str,
                 studies: list[StudyInput], results: list[dict[str, Any]]) -> None:
    """``experiments.gradcam``'s panels and index of the predicted studies into
    ``cfg.gradcam`` (labels are unknown: shown as normal; the titles say so)."""
    out = Path(cfg.gradcam)
    prepare_output(out, cfg)
    context = ReportContext(tuple(m.name for m in members), source, synthetic=False)
    entries, rows = [], []
    for order, (study, result) in enumerate(zip(studies, results, strict=True)):
        heat = gradcam.study_heatmaps(members, study.images, result["weights"],
                                      body_part=study.body_part)
        row = result["row"]
        note = "label unknown (new study)"
        if "deferred" in row:
            note += "; " + ("deferred to the reader" if row["deferred"] else
                            "kept by the ensemble (not deferred)")
        explained = ExplainedStudy(
            study_id=study.study_id, reason="predicted", label=row["prediction"],
            image_paths=study.paths, images=study.images, heatmaps=heat,
            study_probabilities=heat.study_probabilities, weights=result["weights"],
            ensemble_probability=row["ensemble_probability"], prediction=row["prediction"],
            note=note)
        entry, panel_rows = write_study(out, order, context, explained)
        entries.append(entry)
        rows += panel_rows
    write_report(out, run, context, entries, rows)


def run_predict(cfg: PredictConfig) -> pd.DataFrame:
    """Predict every study of ``cfg.paths``; writes the outputs and returns the table."""
    run = cfg.run or default_run()
    table = load_run_table(run)
    studies = collect_studies(list(cfg.paths), cfg.study, cfg.body_part)
    names, agent = load_weighting(cfg, table)
    members = load_members(run, table, names, resolve_device(cfg.device))
    results = [predict_study(s, members, agent) for s in studies]
    frame = pd.DataFrame([r["row"] for r in results])
    out = cfg.out or Path("runs/predict") / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "predictions.csv", frame.to_csv(index=False).encode())
    info = {"run": str(run), "agent": None if cfg.agent is None else str(cfg.agent),
            "weights": "uniform" if agent is None else f"{agent.algo} agent",
            "paths": [str(p) for p in cfg.paths], "body_part": cfg.body_part,
            "study": cfg.study, "predictions": frame.to_dict(orient="records")}
    atomic_write_bytes(out / "predictions.json", (json.dumps(info, indent=2) + "\n").encode())
    if cfg.gradcam is not None:
        draw_gradcam(cfg, run, members, info["weights"], studies, results)
    return frame


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns 0, or 2 with a message for inputs it cannot use."""
    cfg = parse_config(PredictConfig, argv, __doc__)
    try:
        frame = run_predict(cfg)
    except (PredictInputError, RunInputError, GradCamInputError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    shown = ["study_id", "body_part", "n_images", "ensemble_probability", "prediction"]
    shown += [c for c in ("deferred",) if c in frame]
    print(frame[shown].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
