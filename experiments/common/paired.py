"""Scores and paired differences of classifiers answering the same valid studies on several
tables (one per backbone seed), with the project's statistics
(:mod:`mura_env.evaluation.statistics`):
the joint bootstrap over backbone seeds, agent seeds and studies, and the seed-level Student-t
interval.

What ``experiments.retrain_study`` and ``experiments.part_attention`` report: a "method" is
anything that answers the valid studies (a member, an ensemble of retrained members); table
``t`` holds the answers made from backbone seed ``t``, so a difference pairs two methods on
the same backbone seed and the same resampled studies.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mura_env.common.atomic import atomic_write_bytes, staged_folder
from mura_env.common.config_cli import save_config
from mura_env.evaluation.statistics import (
    MethodRuns,
    ValidSets,
    difference,
    draw_resamples,
    interval,
    method_metrics,
    pooled,
    seed_interval,
    table_means,
)
from mura_env.logits import LogitsTable


def shared_valid(tables: list[LogitsTable]) -> ValidSets:
    """The valid studies every table shares (one study set); raises :class:`ValueError`
    when the tables hold different valid studies."""
    first = tables[0].studies[tables[0].studies["split"] == "valid"]
    for table in tables[1:]:
        ids = table.studies.loc[table.studies["split"] == "valid", "study_id"]
        if list(ids) != list(first["study_id"]):
            raise ValueError("the tables do not hold the same valid studies: use runs of "
                             "one data draw")
    return ValidSets.shared(first["label"].to_numpy(), first["body_part"].to_numpy(),
                            len(tables))


def method_from_answers(name: str, predictions: np.ndarray, probabilities: np.ndarray,
                        kind: str = "method") -> MethodRuns:
    """A :class:`~mura_env.evaluation.statistics.MethodRuns` from answers ``[T, S, n]`` (0/1
    predictions and abnormality probabilities; ``S`` = 1 for a deterministic method)."""
    return MethodRuns(name, kind, np.asarray(predictions, dtype=np.int64),
                      np.asarray(probabilities, dtype=np.float64))


def paired_report(methods: Sequence[MethodRuns], valid: ValidSets,
                  pairs: Sequence[tuple[str, str]], keys: Sequence[str],
                  n_bootstrap: int = 2000, seed: int = 0, confidence: float = 0.95
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every method's scores and the paired differences of ``pairs``.

    Args:
        methods: the methods (every one on the ``T`` tables of ``valid``; the seeded ones
            with the same number of seeds ``S``).
        valid: the tables' valid studies.
        pairs: ``(method, reference)`` names: each difference is method minus reference.
        keys: the figures, keys of :func:`mura_env.evaluation.statistics.run_metrics` (``accuracy``,
            ``kappa``, ``kappa_SHOULDER``, ...).
        n_bootstrap, seed: the joint bootstrap's draws and seed.
        confidence: coverage of the intervals.

    Returns:
        ``scores``: one row per (method, key): ``method``, ``figure``, ``value`` (mean over the
        runs), ``ci_low``/``ci_high`` (joint bootstrap), ``seed_ci_low``/``seed_ci_high``
        (t interval over the backbone seeds' means) and ``per_table`` (the table means,
        ``;``-joined); ``differences``: one row per (pair, key): ``method``, ``reference``,
        ``figure``, ``difference`` with the same intervals and ``per_table`` (paired
        per-table means).
    """
    n_seeds = max(m.predictions.shape[1] for m in methods)
    resample = draw_resamples(valid, n_seeds, n_bootstrap, seed)
    per_run = method_metrics(methods, valid, resample)
    rows: list[dict[str, Any]] = []
    for m in methods:
        for key in keys:
            point, draws = pooled(per_run[m.name][key], resample)
            means = table_means(per_run[m.name][key])
            rows.append(_row({"method": m.name, "figure": key, "value": point}, draws, means,
                             valid, confidence))
    diffs: list[dict[str, Any]] = []
    for name, ref in pairs:
        for key in keys:
            point, draws = difference(pooled(per_run[name][key], resample),
                                      pooled(per_run[ref][key], resample))
            means = table_means(per_run[name][key]) - table_means(per_run[ref][key])
            diffs.append(_row({"method": name, "reference": ref, "figure": key,
                               "difference": point}, draws, means, valid, confidence))
    return pd.DataFrame(rows), pd.DataFrame(diffs)


def _row(row: dict[str, Any], draws: np.ndarray, means: np.ndarray, valid: ValidSets,
         confidence: float) -> dict[str, Any]:
    row["ci_low"], row["ci_high"] = interval(draws, confidence)
    row["seed_ci_low"], row["seed_ci_high"] = seed_interval(means, valid, confidence)
    row["per_table"] = ";".join(f"{v:.4f}" for v in means)
    return row


def points(value: float, low: float, high: float, signed: bool = False) -> str:
    """A figure and its interval in points (x 100): ``+1.2 [-0.3, +2.6]``."""
    fmt = "{:+.1f}" if signed else "{:.1f}"
    return (f"{fmt.format(100 * value)} [{fmt.format(100 * low)}, "
            f"{fmt.format(100 * high)}]")


def write_results(out: Path, files: Mapping[str, str | bytes], config: Any,
                  extra: Mapping[str, Any]) -> None:
    """Put a results folder in place of ``out``: ``files`` (name -> text or bytes) and
    ``config.json`` (the dataclass ``config`` with the ``extra`` keys), written into a new
    hidden folder first; a folder already at ``out`` is removed only once that is complete."""
    fresh = out.with_name(f".{out.name}.new")
    shutil.rmtree(fresh, ignore_errors=True)
    with staged_folder(fresh) as staging:
        for name, data in files.items():
            atomic_write_bytes(staging / name, data.encode() if isinstance(data, str) else data)
        save_config(config, staging / "config.json", dict(extra))
    if out.exists():
        shutil.rmtree(out)
    fresh.rename(out)
