"""Pretraining run folders (``python -m experiments.pretrain_backbones``): where they live,
which one to use by default, their study logits table and the data set they were trained on.

A run folder holds ``config.json``, ``logits.parquet`` (+ manifest), ``metrics.csv``,
``diversity.json`` and ``<model>/checkpoint.pth`` per member; the members themselves are
loaded by :func:`backbones.run_members.load_members`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mura_env.constants import MURA_DIRNAME
from mura_env.data import MuraData, load_mura
from mura_env.logits import LogitsTable, manifest_path
from mura_env.logits.reference import reference_table_path

#: Where ``experiments.pretrain_backbones`` puts its runs.
PRETRAIN_RUNS = Path("runs/pretrain")
#: Splits whose study logits a run writes (train is what the members fitted: not written).
LOGIT_SPLITS = ("tune", "valid")
#: A run folder's study logits table.
RUN_LOGITS = "logits.parquet"


class RunInputError(ValueError):
    """A pretraining run folder, one of its checkpoints or its data set cannot be used (the
    message says what was expected and how to fix it)."""


def newest_pretrain_logits(root: str | os.PathLike[str] = PRETRAIN_RUNS) -> Path | None:
    """The most recently written ``<root>/*/logits.parquet`` (by modification time), or None."""
    found = [p for p in Path(root).glob(f"*/{RUN_LOGITS}") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def default_run(root: str | os.PathLike[str] = PRETRAIN_RUNS) -> Path:
    """The run folder whose checkpoints made reference table 0 (when it is still here), else
    the newest ``<root>/*`` with a logits table.

    Raises:
        RunInputError: there is neither.
    """
    manifest = manifest_path(reference_table_path(0))
    if manifest.is_file():
        configs = json.loads(manifest.read_text()).get("model_configs", {})
        for cfg in configs.values():
            ckpt = cfg.get("checkpoint") if isinstance(cfg, dict) else None
            if ckpt and (Path(ckpt).parent.parent / RUN_LOGITS).is_file():
                return Path(ckpt).parent.parent
    newest = newest_pretrain_logits(root)
    if newest is not None:
        return newest.parent
    raise RunInputError(
        f"no pretraining run found under {root}/ (a folder with {RUN_LOGITS}). Make one with "
        "python -m experiments.pretrain_backbones, or pass --run FOLDER.")


def load_run_table(run: Path) -> LogitsTable:
    """The logits table of run folder ``run`` (``run/logits.parquet``).

    Raises:
        RunInputError: ``run`` is not a finished pretraining run folder.
    """
    if not run.is_dir():
        raise RunInputError(f"--run {run}: no such folder; expected a pretraining run folder "
                            "written by python -m experiments.pretrain_backbones")
    if not (run / RUN_LOGITS).is_file():
        raise RunInputError(
            f"--run {run} has no {RUN_LOGITS}: expected a finished pretraining run folder "
            "(python -m experiments.pretrain_backbones --out FOLDER, or --resume to finish it).")
    return LogitsTable.load(run / RUN_LOGITS)


def load_run_dataset(run: Path, table: LogitsTable, data_root: Path | None) -> MuraData:
    """The data set of ``run``: ``data_root``, else the one its ``config.json`` names (the
    synthetic set by default), split as the run split it; checked against ``table``'s data
    fingerprint.

    Raises:
        RunInputError: the data set is missing or is not the one the run used.
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
        raise RunInputError(f"cannot read the run's images at {root}: {e}. Pass --data-root "
                            f"FOLDER (the folder holding {MURA_DIRNAME}/).") from e
    if table.data_fingerprint and data.fingerprint != table.data_fingerprint:
        raise RunInputError(
            f"the data set at {root} is not the one {run} was trained on (data fingerprints "
            f"differ). Pass --data-root with the run's data set.")
    return data
