"""The designed structure of the shipped reference tables, measured on each table's valid split.

The reference profile trains each member mostly on its own body parts (see
:data:`experiments.pretrain.pretrain_backbones.PROFILES`), so the best member differs by body
part and the observation says which one to trust. For each table this command measures what
that design promises, against the bars in :data:`BARS`:

* each member's study-level Cohen's kappa on valid;
* the share of valid studies on which the members disagree (thresholded predictions differ);
* the oracle (right if any member is right) against the uniform average, in accuracy points;
* how many different members are the best (valid accuracy) in some body part;
* the learnable structure: the best member per body part, fitted on tune, against the uniform
  average on valid, in accuracy points with a paired bootstrap 95% CI over valid studies.

    python -m experiments.reference_report [--tables 0 1 2] [--out runs/reference_report]

Writes ``structure.csv`` and ``structure.json`` (resolved config included) to ``--out`` and
prints the table. Synthetic data: the structure is built into the synthetic world on purpose.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score

from agents.baselines import BestSinglePerPart, UniformAverage
from backbones.ensemble_report import diversity_report
from mura_env.common.atomic import atomic_write_bytes
from mura_env.common.config_cli import parse_config
from mura_env.logits import LogitsTable
from mura_env.statistics import interval
from mura_env.study_set import StudySet

#: The bars each reference table's valid split must meet.
BARS: dict[str, tuple[float, float]] = {
    "member_kappa": (0.35, 0.85),  # every member's kappa in this range
    "disagreement": (0.15, 1.0),  # share of studies
    "oracle_minus_uniform": (5.0, 100.0),  # accuracy points
    "distinct_best_members": (3, 99),  # members best in some body part
    "per_part_minus_uniform": (2.0, 100.0),  # accuracy points; its CI low must be > 0
}


def paired_difference(a_correct: np.ndarray, b_correct: np.ndarray, n_bootstrap: int,
                      seed: int) -> tuple[float, float, float]:
    """Accuracy of A minus accuracy of B on the same studies, in points, with a paired
    bootstrap 95% CI (:func:`mura_env.statistics.interval` of ``n_bootstrap`` resamples of the
    studies): ``(difference, low, high)``. ``a_correct``, ``b_correct``: bool ``(n,)``."""
    diff = a_correct.astype(np.float64) - b_correct.astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = diff[rng.integers(len(diff), size=(n_bootstrap, len(diff)))].mean(axis=1)
    low, high = interval(draws)
    return 100 * float(diff.mean()), 100 * float(low), 100 * float(high)


def structure_figures(table: LogitsTable, n_bootstrap: int = 2000,
                      seed: int = 0) -> dict[str, Any]:
    """The figures of the module docstring for one table (with ``tune`` and ``valid`` rows).

    Returns ``{member_kappa: {name: float}, disagreement, uniform_accuracy, oracle_accuracy,
    oracle_minus_uniform, best_member_per_part: {part: name}, distinct_best_members,
    per_part_accuracy, per_part_minus_uniform, per_part_ci: [low, high], n_tune, n_valid}``
    (accuracies as fractions, differences in points).
    """
    tune, valid = StudySet.select(table, "tune"), StudySet.select(table, "valid")
    uniform = UniformAverage().fit(tune)
    per_part = BestSinglePerPart().fit(tune)
    threshold = uniform.mapping.threshold
    member_pred = (valid.probabilities > threshold).astype(int)
    uniform_ok = (uniform.predict(valid)[0] > threshold) == valid.labels.astype(bool)
    per_part_ok = (per_part.predict(valid)[0] > threshold) == valid.labels.astype(bool)
    diversity = diversity_report(
        pd.DataFrame({"label": valid.labels, "body_part": valid.body_parts}),
        valid.probabilities, list(valid.model_names), threshold)
    diff, low, high = paired_difference(per_part_ok, uniform_ok, n_bootstrap, seed)
    return {
        "n_tune": tune.n_studies, "n_valid": valid.n_studies,
        "member_kappa": {m: float(cohen_kappa_score(valid.labels, member_pred[:, k]))
                         for k, m in enumerate(valid.model_names)},
        "disagreement": diversity["disagreement"],
        "uniform_accuracy": float(uniform_ok.mean()),
        "oracle_accuracy": diversity["oracle_accuracy"],
        "oracle_minus_uniform": 100 * (diversity["oracle_accuracy"] - float(uniform_ok.mean())),
        "best_member_per_part": diversity["best_member_per_body_part"],
        "distinct_best_members": diversity["distinct_best_members"],
        "per_part_accuracy": float(per_part_ok.mean()),
        "per_part_minus_uniform": diff, "per_part_ci": [low, high],
    }


def failed_bars(figures: dict[str, Any]) -> list[str]:
    """The bars of :data:`BARS` that ``figures`` (of :func:`structure_figures`) miss, each
    as a sentence; empty when all hold."""
    failed = []
    low, high = BARS["member_kappa"]
    for name, kappa in figures["member_kappa"].items():
        if not low <= kappa <= high:
            failed.append(f"member {name} kappa {kappa:.3f} outside [{low}, {high}]")
    for key in ("disagreement", "oracle_minus_uniform", "distinct_best_members",
                "per_part_minus_uniform"):
        if figures[key] < BARS[key][0]:
            failed.append(f"{key} {figures[key]:.3f} below {BARS[key][0]}")
    if figures["per_part_ci"][0] <= 0:
        failed.append(f"per-part-best minus uniform CI low {figures['per_part_ci'][0]:.2f} "
                      "is not above 0")
    return failed


def figures_row(index: int | str, figures: dict[str, Any]) -> dict[str, Any]:
    """One flat CSV row of ``figures`` for table ``index``."""
    row: dict[str, Any] = {"table": index, "n_tune": figures["n_tune"],
                           "n_valid": figures["n_valid"]}
    row.update({f"kappa_{m}": round(k, 3) for m, k in figures["member_kappa"].items()})
    row.update({k: round(float(figures[k]), 3) for k in (
        "disagreement", "uniform_accuracy", "oracle_accuracy", "oracle_minus_uniform",
        "per_part_accuracy", "per_part_minus_uniform")})
    row["per_part_ci"] = "[{:.2f}, {:.2f}]".format(*figures["per_part_ci"])
    row["distinct_best_members"] = figures["distinct_best_members"]
    row["best_member_per_part"] = " ".join(
        f"{p}:{m}" for p, m in figures["best_member_per_part"].items())
    row["bars_met"] = not failed_bars(figures)
    return row


@dataclass
class ReportConfig:
    """Measure the designed structure of the reference tables."""

    tables: tuple[int, ...] | None = field(default=None, metadata={
        "help": "reference table indices (default: every shipped one)"})
    out: Path = field(default=Path("runs/reference_report"), metadata={"help": "output folder"})
    n_bootstrap: int = field(default=2000, metadata={"help": "bootstrap draws of the CI"})
    seed: int = field(default=0, metadata={"help": "bootstrap seed"})


def main(argv: list[str] | None = None) -> int:
    """``python -m experiments.reference_report``; returns 0 when every table meets every bar,
    1 otherwise (the failures are printed)."""
    from mura_env.reference import load_reference_table, reference_indices

    cfg = parse_config(ReportConfig, argv)
    indices = list(cfg.tables) if cfg.tables is not None else reference_indices()
    if not indices:
        raise SystemExit("no reference tables to measure: make them with "
                         "python -m experiments.pretrain_backbones --profile reference "
                         "--seed N --export-reference N")
    figures = {i: structure_figures(load_reference_table(i), cfg.n_bootstrap, cfg.seed)
               for i in indices}
    rows = pd.DataFrame([figures_row(i, f) for i, f in figures.items()])
    cfg.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(cfg.out / "structure.csv", rows.to_csv(index=False).encode())
    payload = {"config": {"tables": indices, "n_bootstrap": cfg.n_bootstrap, "seed": cfg.seed},
               "bars": BARS, "tables": {str(i): f for i, f in figures.items()}}
    atomic_write_bytes(cfg.out / "structure.json",
                       (json.dumps(payload, indent=2) + "\n").encode())
    print(rows.drop(columns=["best_member_per_part"]).to_string(index=False))
    failures = {i: failed_bars(f) for i, f in figures.items()}
    for i, fails in failures.items():
        for fail in fails:
            print(f"table {i}: {fail}")
    print(f"wrote {cfg.out}/structure.csv, structure.json")
    return 1 if any(failures.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
