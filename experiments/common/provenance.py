"""Where a generated artifact came from: the commit, the machine and, for a reference logits
table, the settings, sizes and member metrics that its manifest records."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import torch

from backbones.distributed import resolve_device
from experiments.common.reader_columns import with_simulated_readers
from mura_env.logits import LogitsTable
from mura_env.logits.reference import reference_index, reference_table_path, remake_command

REPO = Path(__file__).resolve().parents[2]


def git_commit() -> str:
    """The repository's ``HEAD`` commit, with ``+dirty`` when tracked files differ from it;
    ``"unknown"`` outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty.strip() else "")


def cpu_model() -> str:
    """The CPU's model name (from ``/proc/cpuinfo`` on Linux, else :func:`platform.processor`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_description(device: str) -> str:
    """One line naming the machine: CPU model and core count, and the GPU when ``device`` is
    a CUDA device (e.g. ``"AMD EPYC 7B13, 2 cores; cpu"``)."""
    text = f"{cpu_model()}, {os.cpu_count()} cores"
    if device.startswith("cuda"):
        text += f"; {torch.cuda.get_device_name(torch.device(device))}"
    else:
        text += "; cpu"
    return text


def split_sizes(studies: pd.DataFrame) -> dict[str, Any]:
    """Studies per split and, per split, per body part and label: ``{split: {"studies": n,
    "abnormal": n, "per_body_part": {part: [normal, abnormal]}}}``."""
    out: dict[str, Any] = {}
    for split, group in studies.groupby("split", sort=True):
        counts = group.groupby(["body_part", "label"]).size().unstack(fill_value=0)
        out[str(split)] = {
            "studies": int(len(group)), "abnormal": int(group["label"].sum()),
            "per_body_part": {str(part): [int(row.get(0, 0)), int(row.get(1, 0))]
                              for part, row in counts.iterrows()}}
    return out


def member_summary(metrics: pd.DataFrame) -> dict[str, dict[str, float]]:
    """``{model: {"tune_accuracy", "tune_kappa", "valid_accuracy", "valid_kappa"}}`` from the
    overall (``body_part == "ALL"``) rows of a pretraining run's ``metrics.csv`` table."""
    overall = metrics[(metrics["body_part"] == "ALL")
                      & metrics["metric"].isin(["accuracy", "kappa"])]
    out: dict[str, dict[str, float]] = {}
    for row in overall.itertuples(index=False):
        out.setdefault(str(row.model), {})[f"{row.split}_{row.metric}"] = round(
            float(row.value), 4)
    return out


class PretrainSettings(Protocol):
    """The settings of a pretraining run that its provenance records (a
    ``python -m experiments.pretrain_backbones`` configuration, its profile resolved)."""

    export_reference: bool
    profile: str
    seed: int
    data_seed: int | None
    scale: float | None
    train_studies: int | None
    focus: tuple[str, ...] | None
    focus_share: tuple[float, ...] | None
    device: str
    data_root: Path | None


def run_provenance(cfg: PretrainSettings, argv: list[str], table: LogitsTable,
                   metrics: pd.DataFrame, report: dict[str, Any], data_seed: int | None,
                   commit: str | None = None) -> dict[str, Any]:
    """Where one logits table of a run comes from (its ``provenance.json``, and a reference
    table's manifest): commit, the command as run, the command that remakes the reference
    table (under ``--export-reference``), profile, the backbone seed (``seed``), the data seed
    of the draw whose studies the table holds (``data_seed``) and of the draw the members
    trained on (``train_data_seed``), whether the data is the built-in synthetic set
    (``synthetic``: False for ``--data-root``), machine and the run's wall time, the split
    sizes (per body part and label), each member's tune and valid accuracy and kappa, and the valid
    split's diversity figures (``report`` of :func:`backbones.ensemble_report.diversity_report`,
    with ``wall_seconds``). ``commit``: the
    commit the run started from (default: :func:`git_commit` now)."""
    command = "python -m experiments.pretrain_backbones " + " ".join(map(shlex.quote, argv))
    return {"commit": commit or git_commit(), "command": command.strip(),
            "remake_command": remake_command(reference_index(cfg.seed, 0))
            if cfg.export_reference else command.strip(),
            "profile": cfg.profile, "seed": cfg.seed, "data_seed": data_seed,
            "synthetic": cfg.data_root is None,
            "train_data_seed": cfg.data_seed,
            "scale": cfg.scale, "train_studies_per_member": cfg.train_studies,
            "focus": list(cfg.focus or ()), "focus_share": list(cfg.focus_share or ()),
            "machine": machine_description(str(resolve_device(cfg.device))),
            "wall_seconds": round(float(report["wall_seconds"]), 1),
            "sizes": split_sizes(table.studies), "members": member_summary(metrics),
            "valid_diversity": {k: report[k] for k in (
                "disagreement", "oracle_accuracy", "average_accuracy",
                "best_member_per_body_part") if k in report}}


def export_reference(index: int, table: LogitsTable, provenance: dict[str, Any]) -> Path:
    """Install ``table`` as the package's reference table ``index``, with ``provenance``
    (see :func:`run_provenance`) in its manifest, the studies' difficulty and the simulated
    radiologists' columns (:func:`experiments.common.reader_columns.with_simulated_readers`);
    returns its path."""
    path = reference_table_path(index)
    path.parent.mkdir(parents=True, exist_ok=True)
    installed = LogitsTable.from_arrays(table.studies, list(table.model_names), table.logits,
                                        model_configs=table.model_configs,
                                        data_fingerprint=table.data_fingerprint,
                                        provenance=provenance)
    with_simulated_readers(installed, replace=True).save(path)
    print(f"installed reference table {index}: {path}")
    return path
