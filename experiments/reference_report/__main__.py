"""The designed structure of the shipped reference tables, measured on each table's tune split.

The reference profile trains each member mostly on its own body parts (see
:data:`experiments.pretrain_backbones.__main__.PROFILES`), so the best member differs by body
part and the observation says which one to trust. For each table this command measures what
that design promises, against the bars in :data:`BARS`, on the ``tune`` studies alone (the
split agents and baselines learn on; a profile is judged on these figures only):

* each member's study-level Cohen's kappa;
* the share of studies on which the members disagree (thresholded predictions differ);
* the oracle (right if any member is right) against the uniform average, in accuracy points;
* how many different members are the best (accuracy) in some body part;
* the learnable structure, cross-fitted by patient: the best member per body part, chosen on
  one half of tune's patients and scored on the other half (both ways), against the uniform
  average, in accuracy points with a paired bootstrap 95% CI over tune studies (above 0 on
  every table), and its mean over the tables (at least 2 points).

``--valid-check`` adds the same figures on ``valid`` (the best member per part chosen on the
whole of tune): the final check of a profile already adopted on its tune figures, never a
reason to change it.

    python -m experiments.reference_report [--tables 0 1 ... | --logits PATH ...] [--valid-check]
        [--out DIR]

Writes ``structure.csv`` (one row per table and split) and ``structure.json`` (resolved config
included) to ``--out`` and prints the table. Synthetic data: the structure is built into the
synthetic world on purpose.
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

from agents.weighting.baselines import BestSinglePerPart, UniformAverage
from backbones.ensemble_report import diversity_report
from mura_env.common.atomic import atomic_write_bytes
from mura_env.common.config_cli import parse_config
from mura_env.evaluation.bootstrap import resample_counts
from mura_env.evaluation.statistics import interval
from mura_env.logits import LogitsTable
from mura_env.logits.reference import load_reference_table, reference_indices
from mura_env.logits.study_set import StudySet
from mura_env.weighting.mapping import DEFAULT_THRESHOLD

#: The bars each reference table's tune split must meet (cross-fitted where a choice is made).
BARS: dict[str, tuple[float, float]] = {
    "member_kappa": (0.35, 0.85),  # every member's kappa in this range
    "disagreement": (0.15, 1.0),  # share of studies
    "oracle_minus_uniform": (5.0, 100.0),  # accuracy points
    "distinct_best_members": (3, 99),  # members best in some body part
    "per_part_ci_low": (0.0, 100.0),  # per table: the per-part gain's CI above 0 (points)
    "per_part_minus_uniform_mean": (2.0, 100.0),  # over the tables: its mean, in points
}


def paired_difference(a_correct: np.ndarray, b_correct: np.ndarray, n_bootstrap: int,
                      seed: int) -> tuple[float, float, float]:
    """Accuracy of A minus accuracy of B on the same studies, in points, with a paired
    bootstrap 95% CI (:func:`mura_env.evaluation.statistics.interval` of ``n_bootstrap`` resamples
    of the
    studies): ``(difference, low, high)``. ``a_correct``, ``b_correct``: bool ``(n,)``."""
    diff = a_correct.astype(np.float64) - b_correct.astype(np.float64)
    counts = resample_counts(np.random.default_rng(seed), len(diff), n_bootstrap)
    draws = counts @ diff / len(diff)
    low, high = interval(draws)
    return 100 * float(diff.mean()), 100 * float(low), 100 * float(high)


def patient_halves(patient_ids: np.ndarray, seed: int) -> np.ndarray:
    """bool ``[n]``: the studies of a seeded half of the patients (``len(patients) // 2`` of
    them), so that a patient's studies are all on one side."""
    patients = np.unique(np.asarray(patient_ids).astype(str))
    first = np.random.default_rng(seed).permutation(patients)[: len(patients) // 2]
    return np.isin(np.asarray(patient_ids).astype(str), first)


def cross_fitted_per_part(studies: StudySet, half: np.ndarray, threshold: float) -> np.ndarray:
    """bool ``[n]``: whether the best member per body part, chosen on the other half of the
    patients (``~half`` for the studies of ``half`` and the other way round), is right."""
    correct = np.zeros(studies.n_studies, dtype=bool)
    for fitted_on in (half, ~half):
        per_part = BestSinglePerPart().fit(studies.rows(fitted_on))
        scored = studies.rows(~fitted_on)
        correct[~fitted_on] = (per_part.predict(scored)[0] > threshold) == scored.labels.astype(
            bool)
    return correct


def structure_figures(studies: StudySet, per_part_ok: np.ndarray, n_bootstrap: int,
                      seed: int) -> dict[str, Any]:
    """The figures of the module docstring on ``studies``, given whether the best member per
    body part (chosen elsewhere) is right on each study (``per_part_ok``, bool ``[n]``).

    Returns ``{split, n_studies, member_kappa: {name: float}, disagreement, uniform_accuracy,
    oracle_accuracy, oracle_minus_uniform, best_member_per_part: {part: name},
    distinct_best_members, per_part_accuracy, per_part_minus_uniform, per_part_ci: [low,
    high]}`` (accuracies as fractions, differences in points).
    """
    uniform = UniformAverage().fit(studies)
    threshold = uniform.mapping.threshold
    member_pred = (studies.probabilities > threshold).astype(int)
    uniform_ok = (uniform.predict(studies)[0] > threshold) == studies.labels.astype(bool)
    diversity = diversity_report(
        pd.DataFrame({"label": studies.labels, "body_part": studies.body_parts}),
        studies.probabilities, list(studies.model_names), threshold)
    diff, low, high = paired_difference(per_part_ok, uniform_ok, n_bootstrap, seed)
    return {
        "split": studies.split, "n_studies": studies.n_studies,
        "member_kappa": {m: float(cohen_kappa_score(studies.labels, member_pred[:, k]))
                         for k, m in enumerate(studies.model_names)},
        "disagreement": diversity["disagreement"],
        "uniform_accuracy": float(uniform_ok.mean()),
        "oracle_accuracy": diversity["oracle_accuracy"],
        "oracle_minus_uniform": 100 * (diversity["oracle_accuracy"] - float(uniform_ok.mean())),
        "best_member_per_part": diversity["best_member_per_body_part"],
        "distinct_best_members": diversity["distinct_best_members"],
        "per_part_accuracy": float(per_part_ok.mean()),
        "per_part_minus_uniform": diff, "per_part_ci": [low, high],
    }


def tune_figures(table: LogitsTable, n_bootstrap: int = 2000, seed: int = 0) -> dict[str, Any]:
    """:func:`structure_figures` of ``table``'s tune studies, the per-part choice cross-fitted
    by patient (:func:`patient_halves` with ``seed``, :func:`cross_fitted_per_part`). Reads
    no other split: a table whose valid logits are hidden gives the same figures."""
    selected = table.select(split="tune")
    tune = StudySet.from_table(selected)
    half = patient_halves(selected.studies["patient_id"].to_numpy(), seed)
    per_part_ok = cross_fitted_per_part(tune, half, DEFAULT_THRESHOLD)
    return structure_figures(tune, per_part_ok, n_bootstrap, seed)


def valid_figures(table: LogitsTable, n_bootstrap: int = 2000, seed: int = 0
                  ) -> dict[str, Any]:
    """:func:`structure_figures` of ``table``'s valid studies, the best member per part chosen
    on the whole of tune: the final check of an adopted profile."""
    tune, valid = StudySet.select(table, "tune"), StudySet.select(table, "valid")
    per_part = BestSinglePerPart().fit(tune)
    threshold = per_part.mapping.threshold
    per_part_ok = (per_part.predict(valid)[0] > threshold) == valid.labels.astype(bool)
    return structure_figures(valid, per_part_ok, n_bootstrap, seed)


def failed_bars(figures: dict[str, Any]) -> list[str]:
    """The bars of :data:`BARS` that ``figures`` (of :func:`structure_figures`) miss, each
    as a sentence; empty when all hold."""
    failed = []
    low, high = BARS["member_kappa"]
    for name, kappa in figures["member_kappa"].items():
        if not low <= kappa <= high:
            failed.append(f"member {name} kappa {kappa:.3f} outside [{low}, {high}]")
    for key in ("disagreement", "oracle_minus_uniform", "distinct_best_members"):
        if figures[key] < BARS[key][0]:
            failed.append(f"{key} {figures[key]:.3f} below {BARS[key][0]}")
    if figures["per_part_ci"][0] <= BARS["per_part_ci_low"][0]:
        failed.append(f"per-part-best minus uniform CI low {figures['per_part_ci'][0]:.2f} "
                      f"is not above {BARS['per_part_ci_low'][0]:g}")
    return failed


def failed_set_bars(figures: dict[Any, dict[str, Any]]) -> list[str]:
    """The bars of :data:`BARS` on the set of tables that ``figures`` (table -> figures of
    :func:`structure_figures`) misses: the mean per-part gain over the tables; empty when it
    holds."""
    mean = float(np.mean([f["per_part_minus_uniform"] for f in figures.values()]))
    low = BARS["per_part_minus_uniform_mean"][0]
    return [] if mean >= low else [f"per_part_minus_uniform mean over the tables {mean:.2f} "
                                   f"below {low:g}"]


def figures_row(index: int | str, figures: dict[str, Any],
                provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """One flat CSV row of ``figures`` for table ``index``, with the backbone seed and the
    data seed of the table's ``provenance`` (its manifest's; empty when unknown)."""
    provenance = provenance or {}
    row: dict[str, Any] = {"table": index, "backbone_seed": provenance.get("seed", ""),
                           "data_seed": provenance.get("data_seed", ""),
                           "split": figures["split"], "n_studies": figures["n_studies"]}
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
    """Measure the designed structure of the reference tables on tune (and, once a profile is
    adopted, check it on valid)."""

    tables: tuple[int, ...] | None = field(default=None, metadata={
        "help": "reference table indices (default: every shipped one)"})
    logits: tuple[Path, ...] = field(default=(), metadata={
        "help": "logits tables to measure instead, e.g. a profile trial's "
                "runs/pretrain/<run>/logits.parquet"})
    valid_check: bool = field(default=False, metadata={
        "help": "also print the figures on valid: the final check of an adopted profile"})
    out: Path = field(default=Path("runs/reference_report"), metadata={"help": "output folder"})
    n_bootstrap: int = field(default=2000, metadata={"help": "bootstrap draws of the CI"})
    seed: int = field(default=0, metadata={"help": "seed of the patient halves and bootstrap"})


def main(argv: list[str] | None = None) -> int:
    """``python -m experiments.reference_report``; returns 0 when every table meets every bar
    on tune and the tables together meet the set's bar (:func:`failed_set_bars`), 1 otherwise
    (the failures are printed)."""
    cfg = parse_config(ReportConfig, argv)
    if cfg.logits:
        tables: dict[Any, LogitsTable] = {str(p): LogitsTable.load(p) for p in cfg.logits}
    else:
        indices = list(cfg.tables) if cfg.tables is not None else reference_indices()
        if not indices:
            raise SystemExit("no reference tables to measure: make them with "
                             "python -m experiments.pretrain_backbones --profile reference "
                             "--seed N --export-reference")
        tables = {i: load_reference_table(i) for i in indices}
    indices = list(tables)
    figures = {i: tune_figures(t, cfg.n_bootstrap, cfg.seed) for i, t in tables.items()}
    rows = [figures_row(i, f, tables[i].provenance) for i, f in figures.items()]
    payload: dict[str, Any] = {
        "config": {"tables": indices, "n_bootstrap": cfg.n_bootstrap, "seed": cfg.seed,
                   "valid_check": cfg.valid_check},
        "bars": BARS, "tune": {str(i): f for i, f in figures.items()}}
    print("Design bars on tune (per-part choice cross-fitted by patient):")
    print(pd.DataFrame(rows).drop(columns=["best_member_per_part"]).to_string(index=False))
    failures = {i: failed_bars(f) for i, f in figures.items()}
    set_failures = failed_set_bars(figures)
    payload["per_part_minus_uniform_mean"] = float(np.mean(
        [f["per_part_minus_uniform"] for f in figures.values()]))
    print(f"per-part best minus uniform, mean over the {len(figures)} tables: "
          f"{payload['per_part_minus_uniform_mean']:+.2f} points")
    for i, fails in failures.items():
        for fail in fails:
            print(f"table {i}: {fail}")
    for fail in set_failures:
        print(f"all tables: {fail}")
    if cfg.valid_check:
        checks = {i: valid_figures(t, cfg.n_bootstrap, cfg.seed) for i, t in tables.items()}
        valid_rows = [figures_row(i, f, tables[i].provenance) for i, f in checks.items()]
        rows += valid_rows
        payload["valid"] = {str(i): f for i, f in checks.items()}
        print("\nValid check (final scores of the adopted profile; changes nothing):")
        print(pd.DataFrame(valid_rows).drop(columns=["best_member_per_part"]).to_string(
            index=False))
    cfg.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(cfg.out / "structure.csv", pd.DataFrame(rows).to_csv(index=False).encode())
    atomic_write_bytes(cfg.out / "structure.json",
                       (json.dumps(payload, indent=2) + "\n").encode())
    print(f"wrote {cfg.out}/structure.csv, structure.json")
    return 1 if any(failures.values()) or set_failures else 0


if __name__ == "__main__":
    sys.exit(main())
