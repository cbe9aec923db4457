"""The project's statistics: percentile intervals, one bootstrap that resamples runs and studies
together (with paired differences and the probability of improvement), and a table-level
Student-t interval over the tables' means.

:func:`interval` is the percentile interval every figure of the project is reported with
(:func:`mura_env.evaluation.metrics.study_metrics`' intervals of one evaluation, the benchmark's
and the deferral experiment's figures, the reference tables' structure report). The rest is the
statistics of ``experiments.benchmark``, ``experiments.compare`` and ``experiments.defer``:

Data. Every method has, on the ``valid`` split of each of ``T`` tables (the reference tables;
compare's one table), one run per seed (agents and seeded baselines: ``S`` runs; deterministic
baselines: 1 run), each a 0/1 prediction and an abnormality probability (or other score) per
valid study: :class:`MethodRuns`, arrays ``[T, S_m, n]``, stacked from the experiments' run
records by :func:`method_runs`. A table is one backbone training (its seed) on one synthetic
data draw (its data seed). Tables of the same data draw share their valid studies; tables of
different draws have different valid studies (the same number ``n``). :class:`ValidSets` says,
per table, its valid labels and body parts and its *study set* ``g`` (``0..G-1``, one per
data draw): study ``i`` means the same study in every run on the tables of one set (answers
are aligned with the first table of the set), and nothing across sets.

A method's score is the mean over its runs (tables x seeds) of the run's study-level metric.

Joint bootstrap (:func:`draw_resamples`, seeded, ``B`` draws, percentile 95% intervals). Each
draw resamples, with replacement and jointly for every method:

* the tables: ``T`` table slots drawn from the ``T`` tables (backbone seeds and data draws
  together: a table is the unit);
* the seeds: in each slot, ``S`` seeds drawn from the ``S`` seeds (deterministic methods have
  one run per table and keep it);
* the studies: once per draw and per study set, stratified by body part (each part keeps its
  size), independently across sets; the counts of set ``g`` apply to every run of every
  method on every table of that set (so tables of one data draw stay correlated as they are).

A difference between two methods (:func:`difference`) is computed draw by draw on the same
resample, so a method's run on table ``t`` is paired with the reference's run on table ``t``
and both see the same studies: ``uniform - uniform`` is 0 in every draw.

Table-level interval (:func:`t_interval`): per table, the mean over that table's seeds of a
figure (of a difference: the method's table mean minus the reference's); then the two-sided
Student-t interval over the ``T`` table means, ``mean +- t_{T-1} sd / sqrt(T)``; NaN for
``T < 2``. It treats the tables as the units: it covers the backbone seeds and the data draws;
agent seeds and valid studies enter only through each table's mean. With ``T = 6`` it is wide,
but it does not pretend that 6 values can be resampled into a continuous distribution, as the
joint bootstrap's table slots do.

What neither interval covers: the synthetic generator's design and the pretraining profile
(every table comes from them), the choice of the tune and valid sizes, and, for deferral, the
simulated reader's draw (one reader for every table).

Per-table results (:func:`summarise_tables`): one table's mean over its seeds, with a
bootstrap interval from the same draws restricted to that table (its seeds as drawn in slot
``t``, its study set's counts).

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
from scipy import stats as scipy_stats

from mura_env.constants import BODY_PARTS
from mura_env.evaluation.bootstrap import stratified_counts
from mura_env.evaluation.resampled_metrics import METRICS, weighted_metrics

#: Per-body-part metrics computed for every run (kappa is reported, accuracy feeds the
#: probability of improvement).
PART_METRICS = ("accuracy", "kappa")
#: The paired differences every method gets against each reference.
DIFFERENCE_METRICS = ("accuracy", "kappa")
#: The figures :func:`summarise_tables` reports per table.
TABLE_METRICS = ("accuracy", "kappa")


@dataclass(frozen=True)
class ValidSets:
    """The valid studies of every table, grouped into study sets (one per data draw).

    Attributes:
        labels: int64 ``[T, n]``: table ``t``'s 0/1 valid labels, in the order of the first
            table of its study set (the order :func:`method_runs` aligns answers to).
        body_parts: object ``[T, n]``: the body parts, same order.
        study_set: int64 ``[T]``: each table's study set, ``0..G-1`` (tables of one set have
            the same valid studies).
    """

    labels: np.ndarray
    body_parts: np.ndarray
    study_set: np.ndarray

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels, dtype=np.int64)
        parts = np.asarray(self.body_parts, dtype=object)
        sets = np.asarray(self.study_set, dtype=np.int64)
        if labels.ndim != 2 or parts.shape != labels.shape or sets.shape != labels.shape[:1]:
            raise ValueError(f"ValidSets needs labels and body parts [T, n] and study_set [T], "
                             f"got {labels.shape}, {parts.shape}, {sets.shape}.")
        if len(sets) and sorted(set(sets.tolist())) != list(range(int(sets.max()) + 1)):
            raise ValueError(f"study_set must number the sets 0..G-1, got {sets.tolist()}.")
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "body_parts", parts)
        object.__setattr__(self, "study_set", sets)

    @classmethod
    def shared(cls, labels: np.ndarray, body_parts: np.ndarray, n_tables: int) -> ValidSets:
        """``n_tables`` tables that all have the valid studies ``labels`` (int ``[n]``) and
        ``body_parts`` (object ``[n]``): one study set."""
        labels = np.asarray(labels, dtype=np.int64)
        parts = np.asarray(body_parts, dtype=object)
        return cls(np.tile(labels, (n_tables, 1)), np.tile(parts, (n_tables, 1)),
                   np.zeros(n_tables, dtype=np.int64))

    @property
    def n_tables(self) -> int:
        """``T``."""
        return len(self.study_set)

    @property
    def n_studies(self) -> int:
        """``n``, the valid studies per table."""
        return self.labels.shape[1]

    @property
    def n_sets(self) -> int:
        """``G``, the study sets."""
        return int(self.study_set.max()) + 1 if self.n_tables else 0

    def first_tables(self) -> list[int]:
        """The first table of each study set, set order."""
        return [int(np.flatnonzero(self.study_set == g)[0]) for g in range(self.n_sets)]


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
        orders: per table ``t``, int ``[n]``: the positions of its valid studies in the valid
            order of the first table of its study set (:class:`ValidSets`).
        answers: the attribute names of a record's 0/1 predictions (int ``[n]``) and of its
            scores (float ``[n]``: what AUROC ranks), both in its table's valid order.
        names: the methods to stack, in output order (default: every method, first-seen
            order).

    Returns:
        One :class:`MethodRuns` per method, the ``kind`` of its first record: predictions
        and scores ``[T_m, S_m, n]`` over its tables and seeds (ascending), valid studies in
        the order of the first table of each table's study set.
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
        counts: float64 ``[B, G, n]``: how often each valid study of each study set is drawn
            (per set and body part, the counts sum to the part's size).
        tables: int64 ``[B, T]``: the table of each slot.
        seeds: int64 ``[B, T, S]``: the seeds drawn in each slot.
        study_set: int64 ``[T]``: each table's study set (:attr:`ValidSets.study_set`).
    """

    counts: np.ndarray
    tables: np.ndarray
    seeds: np.ndarray
    study_set: np.ndarray

    @property
    def n_draws(self) -> int:
        """``B``."""
        return len(self.counts)

    def table_counts(self, table: int) -> np.ndarray:
        """float64 ``[B, n]``: the study counts a run on ``table`` is scored with."""
        return self.counts[:, self.study_set[table]]


def draw_resamples(valid: ValidSets, n_seeds: int, n_bootstrap: int, seed: int) -> Resample:
    """Draw ``n_bootstrap`` joint resamples of studies (per study set, stratified by body
    part), tables and seeds with ``numpy.random.default_rng(seed)``.

    The random numbers are drawn in this order: the studies of set 0, 1, ..., G-1 (each part
    in ``BODY_PARTS`` order), the table slots, the seeds; with one study set the draws are
    those of the single-set bootstrap this generalises.

    Args:
        valid: the tables' valid studies (``T`` = ``valid.n_tables``).
        n_seeds: ``S``.
        n_bootstrap: ``B`` (>= 1).
        seed: the seed (same seed, same draws).

    Returns:
        A :class:`Resample`.
    """
    rng = np.random.default_rng(seed)
    counts = np.stack([stratified_counts(rng, valid.body_parts[t], BODY_PARTS, n_bootstrap)
                       for t in valid.first_tables()], axis=1)
    n_tables = valid.n_tables
    tables = rng.integers(0, n_tables, size=(n_bootstrap, n_tables))
    seeds = rng.integers(0, n_seeds, size=(n_bootstrap, n_tables, n_seeds))
    return Resample(counts=counts, tables=tables, seeds=seeds,
                    study_set=valid.study_set.copy())


def run_metrics(valid: ValidSets, runs: MethodRuns, counts: np.ndarray | None = None
                ) -> dict[str, np.ndarray]:
    """Every run's metrics on the whole split and on each resample.

    Args:
        valid: the tables' valid studies. runs: the method's runs (``T`` = ``valid.n_tables``).
        counts: float ``[B, G, n]`` study counts of the draws (:attr:`Resample.counts`); None:
            the whole split only (``B`` = 0).

    Returns:
        ``{key: float64 [T, S_m, B + 1]}``, index 0 of the last axis the whole split (the point
        value), then the ``B`` draws (a run on table ``t`` scored with its study set's
        counts); keys: the :data:`~mura_env.evaluation.metrics.METRICS` (all studies) and
        ``"<metric>_<PART>"`` for :data:`PART_METRICS` per body part present (NaN on a table
        without that part).
    """
    n = valid.n_studies
    counts = np.zeros((0, valid.n_sets, n)) if counts is None else counts
    t_count, s_count = runs.predictions.shape[:2]
    if t_count != valid.n_tables:
        raise ValueError(f"{runs.name}: runs on {t_count} tables, valid studies of "
                         f"{valid.n_tables}.")
    size = len(counts) + 1
    out: dict[str, np.ndarray] = {}
    for t in range(t_count):
        labels, parts = valid.labels[t], valid.body_parts[t]
        weights = np.vstack([np.ones((1, n)), counts[:, valid.study_set[t]]])
        groups = [(part, np.flatnonzero(parts == part)) for part in BODY_PARTS]
        groups = [(part, rows) for part, rows in groups if len(rows)]
        for s in range(s_count):
            pred, prob = runs.predictions[t, s], runs.probabilities[t, s]
            values = weighted_metrics(labels, pred, weights, prob)
            for part, rows in groups:
                part_values = weighted_metrics(labels[rows], pred[rows], weights[:, rows])
                values.update({f"{m}_{part}": part_values[m] for m in PART_METRICS})
            for key, v in values.items():
                out.setdefault(key, np.full((t_count, s_count, size), np.nan))[t, s] = v
    return out


def pooled(values: np.ndarray, resample: Resample) -> tuple[float, np.ndarray]:
    """A method's score: the mean over its runs, on the whole split and in every draw.

    Args:
        values: float ``[T, S_m, B + 1]`` from :func:`run_metrics`.
        resample: the draws.

    Returns:
        ``(point, draws float64 [B])``; a draw averages the runs of its table slots and
        seeds (a deterministic method's one run per table stands for every seed), each run
        scored on its study set's resampled studies.
    """
    point = float(values[..., 0].mean())
    b = np.arange(resample.n_draws)[:, None, None]
    seeds = resample.seeds if values.shape[1] > 1 else np.zeros_like(resample.seeds)
    draws = values[resample.tables[:, :, None], seeds, 1 + b].mean(axis=(1, 2))
    return point, draws


def table_draws(values: np.ndarray, resample: Resample, table: int
                ) -> tuple[float, np.ndarray]:
    """One table's score: the mean over its seeds, on the whole split and in every draw.

    Args:
        values: float ``[T, S_m, B + 1]`` from :func:`run_metrics`.
        resample: the draws; table ``t`` takes the seeds drawn in slot ``t``.
        table: ``t``.

    Returns:
        ``(point, draws float64 [B])``.
    """
    point = float(values[table, :, 0].mean())
    b = np.arange(resample.n_draws)[:, None]
    seeds = (resample.seeds[:, table, :] if values.shape[1] > 1
             else np.zeros_like(resample.seeds[:, table, :1]))
    return point, values[table, seeds, 1 + b].mean(axis=1)


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


def table_means(values: np.ndarray) -> np.ndarray:
    """float64 ``[T]``: per table, the mean over its seeds of the whole-split values
    (``values``: float ``[T, S_m, B + 1]`` from :func:`run_metrics`)."""
    return values[..., 0].mean(axis=1)


def t_interval(means: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The two-sided Student-t interval of the mean of ``means`` (one value per table).

    Args:
        means: float ``[T]`` (e.g. :func:`table_means`, or a per-table paired difference).
        confidence: the coverage, in (0, 1).

    Returns:
        ``(low, high)`` = ``mean -+ t_{T-1, (1 + confidence) / 2} * sd / sqrt(T)`` (``sd``
        with ``T - 1`` degrees of freedom); ``(nan, nan)`` when ``T < 2`` or a value is not
        finite.
    """
    means = np.asarray(means, dtype=np.float64)
    if len(means) < 2 or not np.isfinite(means).all():
        return float("nan"), float("nan")
    centre = means.mean()
    half = (scipy_stats.t.ppf(0.5 + confidence / 2, len(means) - 1)
            * means.std(ddof=1) / np.sqrt(len(means)))
    return float(centre - half), float(centre + half)


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
    slots x body parts, runs the seeds drawn in each slot (each table's accuracies on its
    study set's resampled studies).

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


def method_metrics(methods: Sequence[MethodRuns], valid: ValidSets, resample: Resample
                   ) -> dict[str, dict[str, np.ndarray]]:
    """:func:`run_metrics` of every method on ``resample``'s draws, by method name (what
    :func:`summarise` and :func:`summarise_tables` compute from; pass it to both to compute
    it once)."""
    return {m.name: run_metrics(valid, m, resample.counts) for m in methods}


def _with_interval(row: dict[str, Any], key: str, point: float, draws: np.ndarray,
                   confidence: float) -> None:
    row[key] = point
    row[f"{key}_ci_low"], row[f"{key}_ci_high"] = interval(draws, confidence)


def _with_table_interval(row: dict[str, Any], key: str, means: np.ndarray,
                         confidence: float) -> None:
    row[f"{key}_table_ci_low"], row[f"{key}_table_ci_high"] = t_interval(means, confidence)


def summarise(methods: Sequence[MethodRuns], valid: ValidSets, resample: Resample,
              references: Sequence[str], confidence: float = 0.95,
              metrics: dict[str, dict[str, np.ndarray]] | None = None) -> pd.DataFrame:
    """Every figure of every method, with its interval from the joint bootstrap and, for the
    :data:`~mura_env.evaluation.metrics.METRICS` and the paired differences, the table-level
    interval.

    Args:
        methods: the methods' runs (all on the tables of ``valid``).
        valid: the tables' valid studies.
        resample: the shared draws (:func:`draw_resamples`).
        references: methods every method is compared with (those present in ``methods``).
        confidence: coverage of the intervals.
        metrics: :func:`method_metrics` of ``methods`` on ``resample`` (computed when None).

    Returns:
        One row per method (``methods`` order): ``method``, ``kind``, ``n_runs``; each
        :data:`~mura_env.evaluation.metrics.METRICS` and ``kappa_<PART>`` with ``_ci_low`` and
        ``_ci_high`` (joint bootstrap); per reference ``ref``: ``accuracy_vs_<ref>`` and
        ``kappa_vs_<ref>`` (paired differences) and ``poi_vs_<ref>`` (probability of
        improvement in accuracy, rliable), each with its interval. The METRICS and the
        ``accuracy_vs_`` / ``kappa_vs_`` differences also get ``_table_ci_low`` and
        ``_table_ci_high`` (:func:`t_interval` over the table means; NaN for one table).
    """
    per_run = method_metrics(methods, valid, resample) if metrics is None else metrics
    scores = {m.name: {key: pooled(v, resample) for key, v in per_run[m.name].items()}
              for m in methods}
    present = [ref for ref in references if ref in scores]
    rows = []
    for m in methods:
        own, values = scores[m.name], per_run[m.name]
        row: dict[str, Any] = {"method": m.name, "kind": m.kind,
                               "n_runs": int(np.prod(m.predictions.shape[:2]))}
        for key in [*METRICS, *(k for k in own if k.startswith("kappa_"))]:
            _with_interval(row, key, *own[key], confidence)
            if key in METRICS:
                _with_table_interval(row, key, table_means(values[key]), confidence)
        for ref in present:
            for metric in DIFFERENCE_METRICS:
                key = f"{metric}_vs_{ref}"
                _with_interval(row, key, *difference(own[metric], scores[ref][metric]),
                               confidence)
                _with_table_interval(row, key, table_means(values[metric])
                                     - table_means(per_run[ref][metric]), confidence)
            x, y = (part_accuracy_stack(per_run[name]) for name in (m.name, ref))
            poi = float(rliable_metrics.probability_of_improvement(task_scores(x),
                                                                   task_scores(y)))
            _with_interval(row, f"poi_vs_{ref}", poi, improvement_draws(x, y, resample),
                           confidence)
        rows.append(row)
    return pd.DataFrame(rows)


def summarise_tables(methods: Sequence[MethodRuns], valid: ValidSets, resample: Resample,
                     references: Sequence[str], confidence: float = 0.95,
                     metrics: dict[str, dict[str, np.ndarray]] | None = None
                     ) -> pd.DataFrame:
    """Every method's figures on each table on its own, with bootstrap intervals that resample
    only that table's seeds and studies (the draws of ``resample``: table ``t`` takes the
    seeds drawn in slot ``t`` and its study set's counts; :func:`table_draws`).

    Args:
        methods, valid, resample, references, confidence, metrics: as for :func:`summarise`.

    Returns:
        One row per (method, table), method-major (``methods`` order), tables ascending:
        ``method``, ``kind``, ``table``, ``study_set``, ``n_runs`` (the method's runs on the
        table); each of :data:`TABLE_METRICS` and, per reference ``ref`` present,
        ``accuracy_vs_<ref>`` and ``kappa_vs_<ref>`` (paired within the table), each with
        ``_ci_low`` and ``_ci_high``.
    """
    per_run = method_metrics(methods, valid, resample) if metrics is None else metrics
    present = [ref for ref in references if ref in per_run]
    rows = []
    for m in methods:
        values = per_run[m.name]
        for t in range(valid.n_tables):
            row: dict[str, Any] = {"method": m.name, "kind": m.kind, "table": t,
                                   "study_set": int(valid.study_set[t]),
                                   "n_runs": int(m.predictions.shape[1])}
            own = {key: table_draws(values[key], resample, t)
                   for key in dict.fromkeys([*TABLE_METRICS, *DIFFERENCE_METRICS])}
            for key in TABLE_METRICS:
                _with_interval(row, key, *own[key], confidence)
            for ref in present:
                for metric in DIFFERENCE_METRICS:
                    reference = table_draws(per_run[ref][metric], resample, t)
                    _with_interval(row, f"{metric}_vs_{ref}",
                                   *difference(own[metric], reference), confidence)
            rows.append(row)
    return pd.DataFrame(rows)


def coverage_note(n_tables: int, n_sets: int) -> str:
    """A paragraph for the reports: what the joint-bootstrap interval and the table-level
    interval each cover, and what neither does."""
    draws = ("one data draw" if n_sets == 1 else f"{n_sets} data draws")
    return (
        f"Two intervals. The joint-bootstrap interval (\"95% CI\") resamples the {n_tables} "
        f"table{'s' * (n_tables != 1)} (backbone seeds and data draws together; here "
        f"{draws}), the agent seeds within each table, and the valid studies within each data "
        "draw (stratified by body part; tables of one draw share the resample, draws are "
        "resampled independently). The table-level interval (\"table-level 95% CI\") treats "
        "the per-table means (mean over that table's seeds; for a difference, the per-table "
        "paired difference) as the units: mean +- t_{T-1} sd / sqrt(T) over the T tables. It "
        "covers the backbone seeds and the data draws; agent seeds and studies enter only "
        "through each table's mean. With few tables it is wide, but it does not pretend that "
        "a handful of values can be resampled into a continuous distribution; with one table "
        "it is not defined (shown as \u2014). Neither interval covers the synthetic generator's "
        "design and the pretraining profile, the choice of the tune and valid sizes, or (for "
        "deferral) the simulated reader's draw.")
