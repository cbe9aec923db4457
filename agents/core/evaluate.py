"""Evaluate a policy or a baseline on a whole split of the logits table, MURA's way.

A *policy* maps env observations to actions (float32 ``[n, 2K + 7]`` -> ``[n, K]``); it is run
on :class:`~mura_env.weighting.vector_env.MuraWeightingVectorEnv` in ``sweep`` mode with one
sub-environment per study, so one step answers every study of the split exactly once through
the env's own action -> weights -> probability mapping. A *baseline* (see
:mod:`agents.weighting.baselines`) gives probabilities (and, where it has them, weights) directly.
Both end in :func:`mura_env.evaluation.metrics.study_metrics`: accuracy, Cohen's kappa, AUROC,
sensitivity and specificity, overall and per body part, with bootstrap confidence intervals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mura_env.constants import BODY_PARTS
from mura_env.evaluation.metrics import OVERALL, study_metrics
from mura_env.logits.study_set import StudySet
from mura_env.weighting.config import WeightingConfig
from mura_env.weighting.problem import WeightingProblem
from mura_env.weighting.vector_env import MuraWeightingVectorEnv

#: observations float32 ``[n, 2K + 7]`` -> actions float ``[n, K]``.
Policy = Callable[[np.ndarray], np.ndarray]


@dataclass
class Evaluation:
    """Results of one method on one split.

    Attributes:
        name: the method's name.
        split: the split evaluated.
        metrics: :func:`~mura_env.evaluation.metrics.study_metrics` table (``body_part``,
            ``metric``, ``value``, ``ci_low``, ``ci_high``, ``n_studies``, ``n_abnormal``).
        mean_weights: mean ensemble weight per body part, DataFrame indexed by body part
            (:data:`~mura_env.evaluation.metrics.OVERALL` first) with one column per model; None for
            methods without weights (stacking).
        study_ids: object ``[n]``; labels, predictions int64 ``[n]``; probabilities float64
            ``[n]``; weights float64 ``[n, K]`` or None.
        fit_time: seconds the method took to fit (baselines), NaN when not measured.
    """

    name: str
    split: str
    metrics: pd.DataFrame
    mean_weights: pd.DataFrame | None
    study_ids: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray
    predictions: np.ndarray
    weights: np.ndarray | None
    fit_time: float = float("nan")

    def value(self, metric: str, body_part: str = OVERALL) -> float:
        """One number of the metrics table, e.g. ``value("kappa", "WRIST")``."""
        row = self.metrics[(self.metrics.metric == metric)
                           & (self.metrics.body_part == body_part)]
        return float(row["value"].iloc[0]) if len(row) else float("nan")

    def summary(self) -> dict[str, Any]:
        """The ``metrics.json`` layout: ``split``, ``accuracy``, ``kappa``, ``auroc`` (overall
        numbers), ``ci`` (``{metric: [low, high]}``), ``per_body_part`` (``{part: {metric:
        value}}``) and ``mean_weights`` (``{part: {model: weight}}`` or None)."""
        m = self.metrics
        overall = m[m.body_part == OVERALL].set_index("metric")
        per_part = {
            part: {metric: _num(v) for metric, v in grp.set_index("metric")["value"].items()}
            for part, grp in m[m.body_part != OVERALL].groupby("body_part", sort=False)
        }
        return {
            "method": self.name,
            "split": self.split,
            "n_studies": int(len(self.labels)),
            "accuracy": _num(overall.loc["accuracy", "value"]),
            "kappa": _num(overall.loc["kappa", "value"]),
            "auroc": _num(overall.loc["auroc", "value"]),
            "ci": {metric: [_num(overall.loc[metric, "ci_low"]),
                            _num(overall.loc[metric, "ci_high"])] for metric in overall.index},
            "per_body_part": per_part,
            "mean_weights": None if self.mean_weights is None else {
                part: {k: _num(v) for k, v in row.items()}
                for part, row in self.mean_weights.iterrows()},
        }


def _num(v: Any) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


def mean_weights_per_part(weights: np.ndarray, body_parts: np.ndarray,
                          model_names: tuple[str, ...]) -> pd.DataFrame:
    """Mean of ``weights`` (float ``[n, K]``) over all studies and per body part.

    Returns a DataFrame indexed by :data:`~mura_env.evaluation.metrics.OVERALL` then the body parts
    present (``BODY_PARTS``
    order), one float column per model."""
    rows = {OVERALL: weights.mean(axis=0)}
    for part in BODY_PARTS:
        mask = body_parts == part
        if mask.any():
            rows[part] = weights[mask].mean(axis=0)
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(model_names))


def _finish(name: str, studies: StudySet, probabilities: np.ndarray,
            predictions: np.ndarray, weights: np.ndarray | None, n_bootstrap: int,
            seed: int) -> Evaluation:
    metrics = study_metrics(studies.labels, probabilities, studies.body_parts,
                            predictions=predictions, n_bootstrap=n_bootstrap, seed=seed)
    mean_w = None if weights is None else mean_weights_per_part(
        weights, studies.body_parts, studies.model_names)
    return Evaluation(name=name, split=studies.split, metrics=metrics, mean_weights=mean_w,
                      study_ids=studies.study_ids, labels=studies.labels,
                      probabilities=np.asarray(probabilities, dtype=np.float64),
                      predictions=np.asarray(predictions, dtype=np.int64),
                      weights=None if weights is None else np.asarray(weights, np.float64))


@dataclass(frozen=True)
class PolicyRun:
    """A policy's answers to every study of a split, in table order.

    Attributes:
        studies: the studies answered (a :class:`~mura_env.logits.study_set.StudySet`).
        observations: float32 ``[n, 2K + 7]``, what the policy saw.
        weights: float32 ``[n, K]``; probability: float32 ``[n]``; prediction: int8 ``[n]``;
        correct: bool ``[n]``: the env's own mapping of the policy's actions.
    """

    studies: StudySet
    observations: np.ndarray
    weights: np.ndarray
    probability: np.ndarray
    prediction: np.ndarray
    correct: np.ndarray


def run_policy(policy: Policy, config: WeightingConfig, split: str = "valid") -> PolicyRun:
    """Answer every study of ``split`` once with ``policy`` through the vector env (sweep).

    Args:
        policy: observations float32 ``[n, 2K + 7]`` -> actions float ``[n, K]``.
        config: the env configuration the policy was trained with (its table: ``logits``, or
            reference table ``reference_table`` when None; its mapping, ``models`` and
            ``body_parts`` are used; its split, sampling and episode length are replaced by a
            sweep of ``split``).
        split: the split to answer.

    Returns:
        A :class:`PolicyRun`.
    """
    table = config.load_table()
    n_studies = len(table.select(split=split, body_parts=config.body_parts))
    sweep = config.sweep(split).replace(logits=table)
    env = MuraWeightingVectorEnv(max(n_studies, 1), config=sweep)
    obs, _ = env.reset(seed=0)
    actions = np.asarray(policy(obs), dtype=np.float32)
    _, _, _, _, info = env.step(actions)
    final_info = info["final_info"]
    order = np.argsort(final_info["study_index"], kind="stable")
    if not np.array_equal(final_info["study_index"][order], np.arange(env.n_studies)):
        raise RuntimeError("sweep did not answer every study exactly once")  # pragma: no cover
    answers = {key: np.asarray(final_info[key])[order]
               for key in ("weights", "probability", "prediction", "correct")}
    return PolicyRun(studies=env.problem.studies, observations=obs[order], **answers)


def sweep_answers(policy: Any, config: WeightingConfig, split: str
                  ) -> tuple[WeightingProblem, dict[str, np.ndarray]]:
    """Every study of ``split`` answered once, in table order, with ``policy``'s deterministic
    actions, by the problem of ``config``'s env (:meth:`WeightingConfig.problem_class`: the
    team's answers for a deferral env).

    Args:
        policy: anything with SB3's ``predict(obs [n, 2K + 7], deterministic=True)``.
        config: the env configuration it was trained with (table, mapping, cost...).
        split: the split to answer.

    Returns:
        ``(problem, answers)``: the problem of the sweep and its
        :meth:`~mura_env.weighting.problem.WeightingProblem.evaluate` output (arrays ``[n]``).
    """
    problem = config.problem_class()(config.sweep(split))
    n = problem.n_studies
    actions, _ = policy.predict(problem.studies.observations, deterministic=True)
    return problem, problem.evaluate(np.arange(n), problem.check_actions(np.asarray(actions), n))


def evaluate_policy(policy: Policy, config: WeightingConfig, split: str = "valid",
                    name: str = "policy", n_bootstrap: int = 1000, seed: int = 0) -> Evaluation:
    """Evaluate ``policy`` on every study of ``split`` (see :func:`run_policy`).

    Returns an :class:`Evaluation`; its predictions are the env's own (``p > threshold``).
    """
    run = run_policy(policy, config, split)
    return _finish(name, run.studies, run.probability, run.prediction, run.weights,
                   n_bootstrap, seed)


def evaluate_baseline(baseline: Any, studies: StudySet, n_bootstrap: int = 1000,
                      seed: int = 0) -> Evaluation:
    """Evaluate a fitted baseline (see :mod:`agents.weighting.baselines`) on ``studies``.

    ``baseline.predict(studies)`` gives ``(probabilities float64 [n], weights [n, K] or
    None)``; predictions are ``probabilities > baseline.mapping.threshold``.
    """
    prob, weights = baseline.predict(studies)
    pred = (np.asarray(prob) > baseline.mapping.threshold).astype(np.int64)
    return _finish(baseline.name, studies, prob, pred, weights, n_bootstrap, seed)

