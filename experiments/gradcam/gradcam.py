"""Per-model and ensemble-weighted Grad-CAM panels for chosen studies of a pretraining run.

    python -m experiments.gradcam [--run runs/pretrain/<run>] [--agent runs/agents/<run>]
                                  [--study STUDY_ID ... | --n 8] [--split valid] [--out DIR]

For every image of every chosen study it writes one PNG panel: the radiograph; one Grad-CAM
heatmap per backbone (abnormal class, on the target layer the registry records for the model)
with that backbone's abnormality probability and its ensemble weight; the ensemble map (the
weight-averaged normalised member maps); and in the title the study's ensemble probability,
prediction and true label. ``--out`` also gets ``index.html`` (every panel under its study id,
for a browser), ``panels.csv`` (the numbers behind every panel) and ``config.json``.

Ensemble weights are uniform (1/K) without ``--agent``; with it, the agent's weights for each
study (the agent must have been trained on this run's logits table). Images go through exactly
the preprocessing of the study logits (letterbox to the model's input size, then the evaluation
transform) with the checkpoints the logits were computed with (``<run>/<model>/checkpoint.pth``,
checked against the table's recorded sha256); every map is aligned with the original image.

Without ``--study``, ``--n`` studies of ``--split`` are chosen to be informative, in turn:
confidently wrong ones, confidently correct ones, and the ones whose agent weights differ most
from uniform (without an agent: the ones whose members disagree most).

Inputs are read here, maps computed by :mod:`backbones.gradcam`, files written by
:mod:`experiments.gradcam.gradcam_report`. Synthetic data: panels say nothing clinical.
"""

from __future__ import annotations

import json
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
from backbones.checkpoint import CHECKPOINT, load_checkpoint
from backbones.distributed import resolve_device
from backbones.registry import UnknownModelError, build_model, get_spec
from experiments.common.logits_source import PRETRAIN_RUNS, newest_pretrain_logits
from experiments.gradcam.gradcam_report import (
    ExplainedStudy,
    IndexEntry,
    ReportContext,
    prepare_output,
    write_report,
    write_study,
)
from experiments.gradcam.gradcam_weighting import (
    GradCamInputError,
    Weighting,
    load_agent_weighting,
    uniform_weighting,
)
from experiments.pretrain.pretrain_backbones import LOGIT_SPLITS
from mura_env.common.atomic import file_sha256
from mura_env.common.config_cli import parse_config
from mura_env.constants import MURA_DIRNAME
from mura_env.data import MuraData, load_mura
from mura_env.logits import LogitsTable, manifest_path
from mura_env.reference import reference_table_path


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
def default_run() -> Path:
    """The run folder whose checkpoints made reference table 0 (when it is still here), else
    the newest ``runs/pretrain/*`` with a logits table; :class:`GradCamInputError` if none."""
    manifest = manifest_path(reference_table_path(0))
    if manifest.is_file():
        configs = json.loads(manifest.read_text()).get("model_configs", {})
        for cfg in configs.values():
            ckpt = cfg.get("checkpoint") if isinstance(cfg, dict) else None
            if ckpt and (Path(ckpt).parent.parent / "logits.parquet").is_file():
                return Path(ckpt).parent.parent
    newest = newest_pretrain_logits(PRETRAIN_RUNS)
    if newest is not None:
        return newest.parent
    raise GradCamInputError(
        f"no pretraining run found under {PRETRAIN_RUNS}/ (a folder with logits.parquet). Make "
        "one with python -m experiments.pretrain_backbones, or pass --run FOLDER.")


def load_run_table(run: Path) -> LogitsTable:
    """The logits table of run folder ``run`` (``run/logits.parquet``).

    Raises:
        GradCamInputError: ``run`` is not a pretraining run folder.
    """
    if not run.is_dir():
        raise GradCamInputError(f"--run {run}: no such folder; expected a pretraining run folder "
                                "written by python -m experiments.pretrain_backbones")
    if not (run / "logits.parquet").is_file():
        raise GradCamInputError(
            f"--run {run} has no logits.parquet: expected a finished pretraining run folder "
            "(python -m experiments.pretrain_backbones --out FOLDER, or --resume to finish it).")
    return LogitsTable.load(run / "logits.parquet")


def load_members(run: Path, table: LogitsTable, model_names: tuple[str, ...],
                 device: torch.device) -> list[gradcam.Member]:
    """Load each model's ``checkpoint.pth`` of ``run`` (the last epoch's model, the one the
    table's logits came from).

    Checks that each checkpoint exists, is the one recorded in the table's manifest (sha256),
    belongs to that model and data set, and fits the registry architecture.

    Raises:
        GradCamInputError: a checkpoint is missing or does not match.
    """
    members = []
    for name in model_names:
        try:
            spec = get_spec(name)
        except UnknownModelError as e:
            raise GradCamInputError(f"the run's logits table has a model the registry does not "
                                    f"know: {e}") from None
        path = run / name / CHECKPOINT
        if not path.is_file():
            found = sorted(p.name for p in (run / name).glob("*.pth")) if (run / name).is_dir() \
                else []
            raise GradCamInputError(
                f"run folder {run} has no checkpoint for {name}: expected {path} (the final "
                f"checkpoint pretrain_backbones writes and computes the logits with)"
                + (f"; found only {found}" if found else "")
                + ". Pass the run folder that holds the models' checkpoints.")
        config = table.model_configs.get(name, {})
        recorded = config.get("checkpoint_sha256")
        if recorded and file_sha256(path) != recorded:
            raise GradCamInputError(
                f"{path} is not the checkpoint this run's logits were computed with (its sha256 "
                "differs from the one in logits.manifest.json); the heatmaps would explain "
                "another model. Rerun the pretraining's logits or use the matching run folder.")
        ckpt = load_checkpoint(path)
        args = ckpt.get("args") or {}
        if args.get("model", name) != name:
            raise GradCamInputError(f"{path} holds a {args['model']!r} model, not {name!r}")
        fingerprint = ckpt.get("data_fingerprint")
        if fingerprint and table.data_fingerprint and fingerprint != table.data_fingerprint:
            raise GradCamInputError(f"{path} was trained on another data set than the logits "
                                    "table of its run folder (data fingerprints differ)")
        size = config.get("image_size") or args.get("image_size") or spec.default_size
        model = build_model(name)
        try:
            model.load_state_dict(ckpt["model"])
        except (KeyError, RuntimeError) as e:
            raise GradCamInputError(f"{path} does not fit the registry's {name}: {e}") from e
        model.to(device).eval()
        gradcam.resolve_target_layer(model, spec.target_layer)
        members.append(gradcam.Member(name, model, spec.target_layer, int(size)))
    return members


def load_run_dataset(run: Path, table: LogitsTable, data_root: Path | None) -> MuraData:
    """The data set of ``run`` (``--data-root`` or the one its config.json names), checked
    against the logits table's data fingerprint.

    Raises:
        GradCamInputError: the data set is missing or is not the one the run used.
    """
    run_cfg: dict[str, Any] = {}
    if (run / "config.json").is_file():
        run_cfg = json.loads((run / "config.json").read_text())
    root = data_root or Path(run_cfg.get("data_root") or run_cfg.get("synthetic_dir")
                             or "data/synthetic")
    split_seed = next(seed for seed in (run_cfg.get("data_seed"), run_cfg.get("seed"), 0)
                      if seed is not None)
    try:
        data = load_mura(root, tune_fraction=float(run_cfg.get("tune_fraction", 0.2)),
                         seed=int(split_seed))
    except (OSError, ValueError) as e:
        raise GradCamInputError(f"cannot read the run's images at {root}: {e}. Pass --data-root "
                                f"FOLDER (the folder holding {MURA_DIRNAME}/).") from e
    if table.data_fingerprint and data.fingerprint != table.data_fingerprint:
        raise GradCamInputError(
            f"the data set at {root} is not the one {run} was trained on (data fingerprints "
            f"differ). Pass --data-root with the run's data set.")
    return data


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
    """Grad-CAM of every image of study ``row`` of ``weighting.studies`` (image files
    ``paths``), with its ensemble numbers; warns on stderr when the members' probabilities
    recomputed from the images differ from the logits table's.

    Raises:
        GradCamInputError: see :func:`read_study_images`.
    """
    studies = weighting.studies
    study_id = str(studies.study_ids[row])
    images = read_study_images(paths, study_id)
    heatmaps = gradcam.study_heatmaps(members, images, weighting.weights[row])
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
        GradCamInputError (a ValueError), FileNotFoundError: unusable inputs.
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
    except (OSError, ValueError) as e:  # GradCamInputError, AgentMismatchError, table errors
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{len(result['panels'])} panel(s) of {len(result['studies'])} studies in "
          f"{result['out']} ({result['seconds']:.1f} s); open {result['out'] / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
