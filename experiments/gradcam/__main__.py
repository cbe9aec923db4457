"""Per-model and ensemble-weighted Grad-CAM panels for chosen studies of a pretraining run.

    python -m experiments.gradcam [--run runs/pretrain/<run>] [--agent runs/agents/<run>]
                                  [--study STUDY_ID ... | --n 8] [--split valid] [--out DIR]

For every image of every chosen study it writes one PNG panel: the radiograph; one Grad-CAM
heatmap per backbone (abnormal class, on the target layer the registry records for the model)
with that backbone's abnormality probability and its ensemble weight, and beside it, for a
backbone with spatial attention, its attention map (for a part-attention backbone, the map of
the head of the study's body part); the ensemble map (the weight-averaged normalised member
maps); and in the title the study's ensemble probability, prediction and true label.
``--out`` also gets ``index.html`` (every panel under its study id, for a browser),
``panels.csv`` (the numbers behind every panel) and ``config.json``.

Ensemble weights are uniform (1/K) without ``--agent``; with it, the agent's weights for each
study (the agent must have been trained on this run's logits table). Images go through exactly
the preprocessing of the study logits (letterbox to the model's input size, then the evaluation
transform) with the checkpoints the logits were computed with (``<run>/<model>/checkpoint.pth``,
checked against the table's recorded sha256); every map is aligned with the original image.

Without ``--study``, ``--n`` studies of ``--split`` are chosen to be informative, in turn:
confidently wrong ones, confidently correct ones, and the ones whose agent weights differ most
from uniform (without an agent: the ones whose members disagree most).

The run folder is read by :mod:`backbones.runs` and :mod:`backbones.run_members`, the studies'
images here, maps computed by :mod:`backbones.gradcam`, files written by
:mod:`experiments.common.gradcam_report`. Synthetic data: panels say nothing clinical.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

import backbones.gradcam as gradcam
from backbones.cache import decode
from backbones.distributed import resolve_device
from backbones.run_members import load_members
from backbones.runs import LOGIT_SPLITS, default_run, load_run_dataset, load_run_table
from experiments.common.gradcam_report import (
    ExplainedStudy,
    IndexEntry,
    ReportContext,
    prepare_output,
    write_report,
    write_study,
)
from experiments.common.gradcam_weighting import (
    GradCamInputError,
    Weighting,
    load_agent_weighting,
    uniform_weighting,
)
from mura_env.common.config_cli import parse_config
from mura_env.logits import LogitsTable


@dataclass
class GradCamConfig:
    """Grad-CAM panels (per backbone and ensemble-weighted) for studies of a pretraining run."""

    run: Path | None = field(default=None, metadata={
        "help": "pretraining run folder (default: the run behind reference table 0, "
                "else the newest under runs/pretrain)"})
    agent: Path | None = field(default=None, metadata={
        "help": "agent run folder (python -m experiments.train_agent); default uniform weights"})
    study: tuple[str, ...] | None = field(default=None, metadata={
        "help": "study id(s), e.g. valid/XR_WRIST/patient11185/study1_positive (default: --n "
                "informative studies of --split)"})
    n: int = field(default=8, metadata={"help": "how many studies to choose without --study"})
    split: str = field(default="valid", metadata={"help": "split to choose studies from",
                                                  "choices": list(LOGIT_SPLITS)})
    out: Path | None = field(default=None, metadata={
        "help": "output folder (default runs/gradcam/<run>[_<agent>])"})
    data_root: Path | None = field(default=None, metadata={
        "help": "folder holding MURA-v1.1/ (default: the run's data set)"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N"})
    threads: int = field(default=1, metadata={
        "help": "torch CPU threads (0: torch's default); the maps are small, and more threads "
                "slow down badly when other jobs share the cores"})
    dpi: int = field(default=80, metadata={"help": "panel resolution"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})


# ---------------------------------------------------------------------------- inputs
def choose_studies(cfg: GradCamConfig, table: LogitsTable,
                   weighting: Weighting) -> list[tuple[int, str]]:
    """The ``(row, reason)`` pairs of the studies to show (``--study``, else ``--n``
    informative ones of ``--split``; see :func:`backbones.gradcam.select_studies`).

    Raises:
        GradCamInputError: an unknown study id, or no study of ``--split``.
    """
    try:
        return gradcam.select_studies(
            weighting.studies, weighting.weights, table.studies["split"].to_numpy(),
            requested=cfg.study or (), split=cfg.split, n=cfg.n, threshold=weighting.threshold)
    except ValueError as e:
        raise GradCamInputError(str(e)) from None


def read_study_images(paths: list[str], study_id: str) -> list[np.ndarray]:
    """The uint8 grayscale images ``(H_i, W_i)`` of ``study_id`` at ``paths``.

    Raises:
        GradCamInputError: the study has no images, or one cannot be decoded.
    """
    images = [decode(p) for p in paths]
    bad = [p for p, im in zip(paths, images, strict=True) if im is None]
    if not paths or bad:
        raise GradCamInputError(f"study {study_id}: " + (f"cannot decode {bad}" if bad else
                                                         "no images in the data set"))
    return images


def explain_study(members: list[gradcam.Member], weighting: Weighting, row: int, reason: str,
                  paths: list[str]) -> ExplainedStudy:
    """Grad-CAM (and attention maps) of every image of study ``row`` of
    ``weighting.studies`` (image files ``paths``; the study's body part goes to part-attention
    members), with its ensemble numbers; warns on stderr when the members' probabilities
    recomputed from the images differ from the logits table's.

    Raises:
        GradCamInputError: see :func:`read_study_images`.
    """
    studies = weighting.studies
    study_id = str(studies.study_ids[row])
    images = read_study_images(paths, study_id)
    heatmaps = gradcam.study_heatmaps(members, images, weighting.weights[row],
                                      body_part=str(studies.body_parts[row]))
    table_p = studies.probabilities[row]
    if np.abs(heatmaps.study_probabilities - table_p).max() > 1e-3:
        print(f"warning: {study_id}: recomputed study probabilities "
              f"{heatmaps.image_probabilities.mean(0).round(4)} differ from the logits table's "
              f"{table_p.round(4)}; were the images or checkpoints changed after the logits "
              "were written?", file=sys.stderr)
    p = float(weighting.ensemble_probabilities[row])
    return ExplainedStudy(
        study_id=study_id, reason=reason, label=int(studies.labels[row]), image_paths=paths,
        images=images, heatmaps=heatmaps, study_probabilities=table_p,
        weights=weighting.weights[row], ensemble_probability=p,
        prediction=int(p > weighting.threshold),
        note="" if weighting.notes is None else str(weighting.notes[row]))


def output_folder(cfg: GradCamConfig, run: Path) -> Path:
    """``--out``, or ``runs/gradcam/<run>[_<agent>]``."""
    return cfg.out or Path("runs/gradcam") / (run.name + (f"_{cfg.agent.name}" if cfg.agent
                                                          else ""))


def run_gradcam(cfg: GradCamConfig) -> dict[str, Any]:
    """Make the panels, ``index.html``, ``panels.csv`` and ``config.json`` in ``cfg.out``.

    Returns:
        ``{"out", "panels" (list of PNG paths), "studies" (ids), "seconds"}``.

    Raises:
        GradCamInputError, backbones.runs.RunInputError (ValueErrors), FileNotFoundError:
        unusable inputs.
    """
    threads = torch.get_num_threads()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    try:
        return _run_gradcam(cfg)
    finally:
        torch.set_num_threads(threads)


def _run_gradcam(cfg: GradCamConfig) -> dict[str, Any]:
    """:func:`run_gradcam` with the torch threads set."""
    start = time.perf_counter()
    run = cfg.run or default_run()
    if cfg.n < 1 and not cfg.study:
        raise GradCamInputError(f"--n must be at least 1, got {cfg.n}")
    table = load_run_table(run)
    weighting = (uniform_weighting(table) if cfg.agent is None
                 else load_agent_weighting(cfg.agent, table))
    chosen = choose_studies(cfg, table, weighting)
    members = load_members(run, table, weighting.model_names, resolve_device(cfg.device))
    data = load_run_dataset(run, table, cfg.data_root)
    context = ReportContext(weighting.model_names, weighting.source,
                            synthetic=(data.root / "SYNTHETIC.json").is_file(), dpi=cfg.dpi)
    out = output_folder(cfg, run)
    prepare_output(out, replace(cfg, run=run, out=out))
    images_by_study = data.images.groupby("study_id", sort=False)["path"].apply(list)
    entries: list[IndexEntry] = []
    rows: list[dict[str, Any]] = []
    for order, (row, reason) in enumerate(tqdm(chosen, desc="studies", unit="study",
                                               disable=not cfg.progress)):
        paths = images_by_study.get(str(weighting.studies.study_ids[row]), [])
        entry, study_rows = write_study(out, order, context,
                                        explain_study(members, weighting, row, reason, paths))
        entries.append(entry)
        rows += study_rows
    write_report(out, run, context, entries, rows)
    return {"out": out, "panels": [out / name for e in entries for name in e.panels],
            "studies": [e.study_id for e in entries], "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 on unusable inputs)."""
    cfg = parse_config(GradCamConfig, argv)
    try:
        result = run_gradcam(cfg)
    except (OSError, ValueError) as e:  # input, run, agent-mismatch and table errors
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{len(result['panels'])} panel(s) of {len(result['studies'])} studies in "
          f"{result['out']} ({result['seconds']:.1f} s); open {result['out'] / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
