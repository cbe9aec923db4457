"""Rows and evaluations shared by the command lines that score agents against baselines.

:func:`baseline_evaluations` fits every baseline on ``tune`` and scores it on ``valid``
(one baseline: :func:`fit_and_evaluate`); :func:`summary_row` flattens an
:class:`~agents.core.evaluate.Evaluation` into one table row.
"""

from __future__ import annotations

import time
from typing import Any

from agents.core.evaluate import Evaluation, evaluate_baseline
from agents.weighting.baselines import all_baselines
from mura_env.evaluation.metrics import OVERALL
from mura_env.logits.study_set import StudySet
from mura_env.weighting.config import WeightingConfig

#: Which split each step of an agent-versus-baselines run reads; recorded in its config.json.
SPLIT_USE = {"agents_fit": "tune", "agents_monitor": "tune", "baselines_fit": "tune",
             "final_scores": "valid"}


def baseline_evaluations(config: WeightingConfig, n_bootstrap: int, seed: int = 0
                         ) -> list[tuple[Any, Evaluation]]:
    """Every baseline fitted on ``tune`` (its ``fit_time`` measured) and evaluated on
    ``valid``.

    Args:
        config: the env configuration (its table, ``logits`` or ``reference_table``; its
            ``models``, ``body_parts`` and mapping are used).
        n_bootstrap: bootstrap replicates of the confidence intervals.
        seed: seed of the seeded baselines.

    Returns:
        ``(baseline, evaluation)`` pairs in :func:`~agents.weighting.baselines.all_baselines` order.
    """
    table = config.load_table()
    selection = {"models": config.models, "body_parts": config.body_parts}
    tune = StudySet.select(table, "tune", **selection)
    valid = StudySet.select(table, "valid", **selection)
    return [(baseline, fit_and_evaluate(baseline, tune, valid, config, n_bootstrap))
            for baseline in all_baselines(seed)]


def fit_and_evaluate(baseline: Any, tune: StudySet, valid: StudySet, config: WeightingConfig,
                     n_bootstrap: int) -> Evaluation:
    """Fit ``baseline`` on ``tune`` for ``config``'s mapping and evaluate it on ``valid``.

    Returns:
        The :class:`~agents.core.evaluate.Evaluation` on ``valid``, its ``fit_time`` (seconds)
        measured.
    """
    start = time.perf_counter()
    baseline.fit(tune, config.mapping)
    fit_time = time.perf_counter() - start
    ev = evaluate_baseline(baseline, valid, n_bootstrap=n_bootstrap)
    ev.fit_time = fit_time
    return ev


def is_seeded(baseline: Any) -> bool:
    """True for a baseline whose fitted model depends on its ``seed`` (its class says so with
    ``seeded``), so a benchmark runs it once per seed, like the agents."""
    return bool(getattr(baseline, "seeded", False))


def kind_of(baseline: Any) -> str:
    """``"reference"`` for an upper reference, else ``"baseline"``."""
    return "reference" if baseline.reference else "baseline"


def summary_row(ev: Evaluation, **extra: Any) -> dict[str, Any]:
    """One flat row: method, accuracy/kappa/auroc with CIs, per-body-part kappa, extras."""
    m = ev.metrics
    row: dict[str, Any] = {"method": ev.name, **extra}
    for metric in ("accuracy", "kappa", "auroc"):
        r = m[(m.body_part == OVERALL) & (m.metric == metric)].iloc[0]
        row[metric], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = (
            r["value"], r["ci_low"], r["ci_high"])
    for _, r in m[(m.body_part != OVERALL) & (m.metric == "kappa")].iterrows():
        row[f"kappa_{r['body_part']}"] = r["value"]
    return row
