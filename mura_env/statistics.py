"""The project's statistics: percentile intervals, and one bootstrap that resamples runs and
studies together, with paired differences and the probability of improvement.

:func:`interval` is the percentile interval every figure of the project is reported with
(:func:`mura_env.metrics.study_metrics`' intervals of one evaluation, the benchmark's and the
deferral experiment's figures, the reference tables' structure report). The rest is the joint
bootstrap of ``experiments.benchmark``, ``experiments.compare`` and ``experiments.defer``:

Data. Every method has, on the ``valid`` split of each of ``T`` tables (the reference tables;
compare's one table), one run per seed (agents and seeded baselines: ``S`` runs; deterministic
baselines: 1 run), each a 0/1 prediction and an abnormality probability (or other score) per
valid study: :class:`MethodRuns`, arrays ``[T, S_m, n]``, stacked from the experiments' run
records by :func:`method_runs`. The valid studies are the same in every table (the tables
differ only in the backbones' training seeds), so study ``i`` means the same study in every
run.

A method's score is the mean over its runs (tables x seeds) of the run's study-level metric.

Bootstrap (:func:`draw_resamples`, seeded, ``B`` draws, percentile 95% intervals). Each draw
resamples, with replacement and jointly for every method:

* the tables: ``T`` table slots drawn from the ``T`` tables;
* the seeds: in each slot, ``S`` seeds drawn from the ``S`` seeds (deterministic methods have
  one run per table and keep it);
* the studies: once per draw, stratified by body part (each part keeps its size), the same
  counts applied to every run of every method on every table.

A difference between two methods (:func:`difference`) is computed draw by draw on the same
resample, so a method's run on table ``t`` is paired with the reference's run on table ``t``
and both see the same studies: ``uniform - uniform`` is 0 in every draw.

Probability of improvement (rliable's ``metrics.probability_of_improvement``): a scores
matrix ``(runs, tasks)`` per method, with runs = seeds and tasks = (table, body part) pairs
(``T x 7`` tasks), score = the run's accuracy on that body part's valid studies; P(X > Y) is
the Mann-Whitney probability that a run of X beats a run of Y on a task (ties count 1/2),
averaged over tasks. Tasks include the table so that runs are only compared within a table
(tables differ in difficulty, which is not what is being compared). Its interval comes from
the same joint draws (tables and seeds resampled as above, per-task accuracies recomputed on
the resampled studies), computed with :func:`probability_of_improvement`, a vectorised form of
rliable's formula (checked against it in the tests). rliable's own
``library.get_interval_estimates`` is not used: rliable 1.2 needs ``arch < 8``, which does not
import under pandas 3, and it could not resample the studies jointly with the runs anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
from rliable import metrics as rliable_metrics

from mura_env.constants import BODY_PARTS
from mura_env.resampled_metrics import METRICS, weighted_metrics

#: Per-body-part metrics computed for every run (kappa is reported, accuracy feeds the
#: probability of improvement).
PART_METRICS = ("accuracy", "kappa")


@dataclass(frozen=True)
class MethodRuns:
    """One method's valid answers on every table and seed.

    Attributes:
        name: the method's name. kind: ``"agent"``, ``"baseline"`` or ``"reference"``.
        predictions: int64 ``[T, S_m, n]`` 0/1 predictions (``S_m`` = 1 for a deterministic
            method, else the number of seeds).
        probabilities: float64 ``[T, S_m, n]`` abnormality probabilities (or other scores:
            what AUROC ranks).
    """

    name: str
    kind: str
    predictions: np.ndarray
    probabilities: np.ndarray


class RunRecord(Protocol):
    """One run of one method on one table, as :func:`method_runs` reads it: the table's index,
    the seed, the method's name and kind (its answers are read by name)."""

    table: int
    seed: int
    method: str
    kind: str


def method_runs(runs: Iterable[RunRecord], orders: Sequence[np.ndarray],
                answers: tuple[str, str] = ("predictions", "probabilities"),
                names: Sequence[str] | None = None) -> list[MethodRuns]:
    """Stack run records into one :class:`MethodRuns` per method.

    Args:
        runs: the records; a method's runs cover every (table, seed) pair of the tables and
            seeds it ran on (KeyError otherwise).
        orders: per table ``t``, int ``[n]``: the positions of its valid studies in the first
            table's valid order.
        answers: the attribute names of a record's 0/1 predictions (int ``[n]``) and of its
            scores (float ``[n]``: what AUROC ranks), both in its table's valid order.
        names: the methods to stack, in output order (default: every method, first-seen
            order).

    Returns:
        One :class:`MethodRuns` per method, the ``kind`` of its first record: predictions
        and scores ``[T_m, S_m, n]`` over its tables and seeds (ascending), valid studies in
        the first table's order.
    """
    by_method: dict[str, list[RunRecord]] = {}
    for run in runs:
        by_method.setdefault(run.method, []).append(run)
    out = []
    for name in by_method if names is None else names:
        mine = by_method[name]
        by_cell = {(r.table, r.seed): r for r in mine}
        tables, seeds = sorted({r.table for r in mine}), sorted({r.seed for r in mine})
        prediction, score = (
            np.stack([[getattr(by_cell[t, s], key)[orders[t]] for s in seeds] for t in tables])
            for key in answers)
        out.append(MethodRuns(name, mine[0].kind, prediction, score))
    return out


@dataclass(frozen=True)
class Resample:
    """The bootstrap draws every method shares.

    Attributes:
        counts: float64 ``[B, n]``: how often each valid study is drawn (per body part, the
            counts sum to the part's size).
        tables: int64 ``[B, T]``: the table of each slot.
        seeds: int64 ``[B, T, S]``: the seeds drawn in each slot.
    """

    counts: np.ndarray
    tables: np.ndarray
    seeds: np.ndarray

    @property
    def n_draws(self) -> int:
        """``B``."""
        return len(self.counts)


def draw_resamples(body_parts: np.ndarray, n_tables: int, n_seeds: int, n_bootstrap: int,
                   seed: int) -> Resample:
    """Draw ``n_bootstrap`` joint resamples of studies (stratified by body part), tables and
    seeds with ``numpy.random.default_rng(seed)``.

    Args:
        body_parts: object ``[n]``, each valid study's body part.
        n_tables, n_seeds: ``T`` and ``S``.
        n_bootstrap: ``B`` (>= 1).
        seed: the seed (same seed, same draws).

    Returns:
        A :class:`Resample`.
    """
    rng = np.random.default_rng(seed)
    parts = np.asarray(body_parts, dtype=object)
    counts = np.zeros((n_bootstrap, len(parts)))
    offsets = (np.arange(n_bootstrap) * len(parts))[:, None]
    for part in BODY_PARTS:
        rows = np.flatnonzero(parts == part)
        if len(rows):
            idx = rows[rng.integers(0, len(rows), size=(n_bootstrap, len(rows)))]
            counts += np.bincount((idx + offsets).ravel(),
                                  minlength=counts.size).reshape(counts.shape)
    tables = rng.integers(0, n_tables, size=(n_bootstrap, n_tables))
    seeds = rng.integers(0, n_seeds, size=(n_bootstrap, n_tables, n_seeds))
    return Resample(counts=counts, tables=tables, seeds=seeds)


def run_metrics(labels: np.ndarray, body_parts: np.ndarray, runs: MethodRuns,
                counts: np.ndarray) -> dict[str, np.ndarray]:
    """Every run's metrics on the whole split and on each resample.

    Args:
        labels: int ``[n]`` 0/1 labels. body_parts: object ``[n]``.
        runs: the method's runs. counts: float ``[B, n]`` study counts of the draws.

    Returns:
        ``{key: float64 [T, S_m, B + 1]}``, index 0 of the last axis the whole split (the point
        value), then the ``B`` draws; keys: the :data:`~mura_env.metrics.METRICS` (all
        studies) and ``"<metric>_<PART>"`` for :data:`PART_METRICS` per body part present.
    """
    weights = np.vstack([np.ones((1, counts.shape[1])), counts])
    parts = np.asarray(body_parts, dtype=object)
    groups = [(part, np.flatnonzero(parts == part)) for part in BODY_PARTS]
    groups = [(part, rows) for part, rows in groups if len(rows)]
    t_count, s_count = runs.predictions.shape[:2]
    out: dict[str, np.ndarray] = {}
    for t in range(t_count):
        for s in range(s_count):
            pred, prob = runs.predictions[t, s], runs.probabilities[t, s]
            values = weighted_metrics(labels, pred, weights, prob)
            for part, rows in groups:
                part_values = weighted_metrics(labels[rows], pred[rows], weights[:, rows])
                values.update({f"{m}_{part}": part_values[m] for m in PART_METRICS})
            for key, v in values.items():
                out.setdefault(key, np.empty((t_count, s_count, len(weights))))[t, s] = v
    return out


def pooled(values: np.ndarray, resample: Resample) -> tuple[float, np.ndarray]:
    """A method's score: the mean over its runs, on the whole split and in every draw.

    Args:
        values: float ``[T, S_m, B + 1]`` from :func:`run_metrics`.
        resample: the draws.

    Returns:
        ``(point, draws float64 [B])``; a draw averages the runs of its table slots and
        seeds (a deterministic method's one run per table stands for every seed).
    """
    point = float(values[..., 0].mean())
    b = np.arange(resample.n_draws)[:, None, None]
    seeds = resample.seeds if values.shape[1] > 1 else np.zeros_like(resample.seeds)
    draws = values[resample.tables[:, :, None], seeds, 1 + b].mean(axis=(1, 2))
    return point, draws


def interval(draws: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The percentile interval covering ``confidence`` of the finite ``draws``.

    Args:
        draws: float ``[B]`` (bootstrap draws of one figure; NaN and inf are left out).
        confidence: the coverage, in (0, 1).

    Returns:
        ``(low, high)``: the ``50 (1 - confidence)``-th and ``100 - 50 (1 - confidence)``-th
        percentiles (linear interpolation; 2.5th and 97.5th at 95%), floats; ``(nan, nan)``
        when no draw is finite.
    """
    finite = draws[np.isfinite(draws)]
    if not len(finite):
        return float("nan"), float("nan")
    alpha = 100 * (1 - confidence) / 2
    low, high = np.percentile(finite, [alpha, 100 - alpha])
    return float(low), float(high)


def difference(score: tuple[float, np.ndarray], reference: tuple[float, np.ndarray]
               ) -> tuple[float, np.ndarray]:
    """A paired difference: ``score`` minus ``reference``, each ``(point, draws float [B])`` of
    :func:`pooled` on the same resample, draw by draw. Returns ``(point, draws float [B])``."""
    return score[0] - reference[0], score[1] - reference[1]


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """rliable's probability of improvement of X over Y, vectorised over leading axes.

    Args:
        x: float ``[..., runs_x, tasks]``; y: float ``[..., runs_y, tasks]`` (same leading
            shape and tasks).

    Returns:
        float64 ``[...]``: per task the share of run pairs with ``x > y`` (ties 1/2), averaged
        over tasks.
    """
    xs, ys = x[..., :, None, :], y[..., None, :, :]
    wins = (xs > ys).astype(np.float64) + 0.5 * (xs == ys)
    return wins.mean(axis=(-3, -2)).mean(axis=-1)


def task_scores(part_accuracy: np.ndarray, column: int = 0) -> np.ndarray:
    """rliable's ``(runs, tasks)`` matrix of one method: runs = seeds, tasks = (table, body
    part) pairs, table-major.

    Args:
        part_accuracy: float ``[T, S_m, P, B + 1]`` per-part accuracies.
        column: 0 for the whole split.

    Returns:
        float64 ``[S_m, T * P]``.
    """
    values = part_accuracy[..., column]  # [T, S, P]
    return values.transpose(1, 0, 2).reshape(values.shape[1], -1)


def improvement_draws(part_x: np.ndarray, part_y: np.ndarray, resample: Resample
                      ) -> np.ndarray:
    """The probability of improvement of X over Y in every draw: tasks are the drawn table
    slots x body parts, runs the seeds drawn in each slot.

    Args:
        part_x, part_y: float ``[T, S_m, P, B + 1]`` per-part accuracies of X and Y.
        resample: the draws.

    Returns:
        float64 ``[B]``.
    """
    b = np.arange(resample.n_draws)[:, None, None]
    tables = resample.tables[:, :, None]

    def drawn(part: np.ndarray) -> np.ndarray:  # [B, T, S, P] -> [B, T, P, S]
        seeds = resample.seeds if part.shape[1] > 1 else np.zeros_like(resample.seeds[..., :1])
        values = part[tables, seeds, :, 1 + b]  # advanced axes first: [B, T, S, P]
        return values.transpose(0, 1, 3, 2)

    x, y = drawn(part_x), drawn(part_y)  # [B, T, P, runs]
    wins = probability_of_improvement(x[..., None], y[..., None])  # one task per (slot, part)
    return wins.mean(axis=(1, 2))


def part_accuracy_stack(metrics: dict[str, np.ndarray]) -> np.ndarray:
    """The per-part accuracies of :func:`run_metrics` as float ``[T, S_m, P, B + 1]`` (body
    parts present, ``BODY_PARTS`` order)."""
    keys = [f"accuracy_{p}" for p in BODY_PARTS if f"accuracy_{p}" in metrics]
    return np.stack([metrics[k] for k in keys], axis=2)


def _with_interval(row: dict[str, Any], key: str, point: float, draws: np.ndarray,
                   confidence: float) -> None:
    row[key] = point
    row[f"{key}_ci_low"], row[f"{key}_ci_high"] = interval(draws, confidence)


def summarise(methods: Sequence[MethodRuns], labels: np.ndarray, body_parts: np.ndarray,
              resample: Resample, references: Sequence[str], confidence: float = 0.95
              ) -> pd.DataFrame:
    """Every figure of every method, with its interval from the joint bootstrap.

    Args:
        methods: the methods' runs (all on the same tables and valid studies).
        labels: int ``[n]``; body_parts: object ``[n]``, of the valid studies.
        resample: the shared draws (:func:`draw_resamples`).
        references: methods every method is compared with (those present in ``methods``).
        confidence: coverage of the percentile intervals.

    Returns:
        One row per method (``methods`` order): ``method``, ``kind``, ``n_runs``; each
        :data:`~mura_env.metrics.METRICS` and ``kappa_<PART>`` with ``_ci_low`` and
        ``_ci_high``; per reference ``ref``: ``accuracy_vs_<ref>`` and ``kappa_vs_<ref>``
        (paired differences) and ``poi_vs_<ref>`` (probability of improvement in accuracy,
        rliable), each with its interval.
    """
    per_run = {m.name: run_metrics(labels, body_parts, m, resample.counts) for m in methods}
    scores = {name: {key: pooled(v, resample) for key, v in values.items()}
              for name, values in per_run.items()}
    present = [ref for ref in references if ref in scores]
    rows = []
    for m in methods:
        own = scores[m.name]
        row: dict[str, Any] = {"method": m.name, "kind": m.kind,
                               "n_runs": int(np.prod(m.predictions.shape[:2]))}
        for key in [*METRICS, *(k for k in own if k.startswith("kappa_"))]:
            _with_interval(row, key, *own[key], confidence)
        for ref in present:
            for metric in ("accuracy", "kappa"):
                _with_interval(row, f"{metric}_vs_{ref}",
                               *difference(own[metric], scores[ref][metric]), confidence)
            x, y = (part_accuracy_stack(per_run[name]) for name in (m.name, ref))
            poi = float(rliable_metrics.probability_of_improvement(task_scores(x),
                                                                   task_scores(y)))
            _with_interval(row, f"poi_vs_{ref}", poi, improvement_draws(x, y, resample),
                           confidence)
        rows.append(row)
    return pd.DataFrame(rows)
