"""The project's statistics: percentile intervals, one bootstrap that follows the design of an
experiment (backbone seeds crossed with data draws, agent seeds nested, studies shared), paired
differences, the probability of improvement, and a seed-level Student-t interval.

:func:`interval` is the percentile interval every figure of the project is reported with
(:func:`mura_env.evaluation.metrics.study_metrics`' intervals of one evaluation, the reports'
figures, the reference tables' structure report). The rest is the statistics of
``experiments.benchmark``, ``compare``, ``defer``, ``worklist``, ``retrain_study`` and
``part_attention``.

The design (stated here, once). A *table* is one backbone training (its *backbone seed*)
scored on one synthetic data draw (its *study set*): tables are the cells of backbone seed x
data draw, crossed (the reference tables: 5 seeds x 2 draws). Every table of one draw answers
that draw's studies, so its runs pair study by study with the other tables of the draw;
tables of different draws share no study. Each method has, per table, one run per agent seed
(agents and seeded baselines: ``S`` runs; deterministic methods: 1), each a 0/1 prediction and
a score per answer position: :class:`MethodRuns`, arrays ``[T, S_m, n]``. An answer position
is one study; a worklist shift may show a study more than once, and the units resampled are
the distinct studies. :class:`ValidSets` holds, per table, its labels, body parts, study set,
backbone seed and the study at each position.

A method's score is the mean over the filled cells of the cell means (a cell's mean: over its
tables and their runs). With one table per cell, as in every shipped experiment, that is the
mean over every run; an exact copy of a table (same seed, same draw) changes nothing.

Joint bootstrap (:func:`draw_resamples`, seeded, ``B`` draws, percentile 95% intervals). Each
draw resamples, with replacement and jointly for every method:

* the backbone seeds: ``U`` seed slots from the ``U`` seeds, and the data draws: ``G`` draw
  slots from the ``G`` draws, as crossed factors; a draw averages the ``U x G`` drawn cells
  (empty cells of an incomplete design are left out);
* the agent seeds: for each drawn (seed slot, draw slot) pair, ``S`` seeds from the ``S``
  seeds, taken by every table of the cell drawn there (a cell drawn twice gets two
  resamples; deterministic methods keep their one run);
* the studies: per data draw, its distinct studies, stratified by body part (each part keeps
  its number of distinct studies), independently across draws; a position weighs as its
  study's count, for every run of every method on every table of that draw.

The random numbers depend on the design (``U``, ``G``, each draw's distinct studies), not on
how many tables fill a cell. A difference between two methods (:func:`difference`) is computed
draw by draw on the same resample: a run on table ``t`` pairs with the reference's run on
table ``t`` and both see the same studies, so ``uniform - uniform`` is 0 in every draw.

Seed-level interval (:func:`seed_interval`): per backbone seed, the mean of a figure over its
data draws and agent seeds (of a difference: the method's minus the reference's); then the
two-sided Student-t interval over the ``U`` seed means, ``mean +- t_{U-1} sd / sqrt(U)``; NaN
for ``U < 2``. Its units are the backbone trainings, the one source of variation a user who
retrains pays for and the one with the fewest replicates (5 seeds: 4 degrees of freedom);
data draws, agent seeds and studies enter only through each seed's mean.

What neither interval covers: the synthetic generator's design and the pretraining profile
(every table comes from them), the choice of the tune and valid sizes, and, for deferral and
worklists, the simulated readers' draw (the same readers on every table).

Per-table results (:func:`summarise_tables`): one table's mean over its seeds, with a
bootstrap interval from the same draws restricted to that table (a resample of its agent
seeds, its draw's studies).

Probability of improvement (rliable's ``metrics.probability_of_improvement``): per table, a
scores matrix ``(runs, tasks)`` per method, runs = seeds, tasks = body parts, score = the
run's accuracy on that body part's studies; P(X > Y) is the Mann-Whitney probability that a
run of X beats a run of Y on a task (ties count 1/2), averaged over tasks; runs are only
compared within a table (tables differ in difficulty, which is not what is being compared).
The tables' probabilities are pooled like any other figure, and the interval comes from the
same joint draws. :func:`probability_of_improvement` is a vectorised form of rliable's
formula (checked against it in the tests). rliable's own ``library.get_interval_estimates``
is not used: rliable 1.2 needs ``arch < 8``, which does not import under pandas 3, and it
could not resample the design jointly with the runs anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
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
    """The valid studies of every table and the units of the design they come from.

    Tables are the cells of a crossed design: a backbone training (its *backbone seed*) scored
    on a synthetic data draw (its *study set*). Tables of one draw answer the same studies;
    an exact copy of a table is one more table in the same cell. Each answer position is one
    study; several positions may be the same study (a worklist shift that draws a study
    twice), and the bootstrap resamples distinct studies.

    Args (and attributes):
        labels: int64 ``[T, n]``: each table's 0/1 label per answer position.
        body_parts: object ``[T, n]``: the body parts, same positions.
        study_set: int64 ``[T]``: each table's study set (data draw), numbered ``0..G-1``.
        backbone_seed: ``[T]``: which backbone training each table comes from (any integers
            or strings; equal values are the same backbone seed). Default: every table its
            own.
        study_ids: ``[T, n]``: the study at each position (any integers or strings; a study
            is identified within its study set). Default: every position a distinct study,
            position ``i`` the same study in every table of a set.

    Derived attributes:
        seed_unit: int64 ``[T]``: the backbone seed as ``0..U-1`` (sorted distinct values).
        study_index: int64 ``[T, n]``: the study at each position as ``0..m_g-1`` within
            its set (sorted distinct ids of the set).
        set_parts: per set, object ``[m_g]``: each distinct study's body part.

    Raises:
        ValueError: shapes that do not match, sets not numbered ``0..G-1``, or a study with
            two body parts or two labels in one set.
    """

    labels: np.ndarray
    body_parts: np.ndarray
    study_set: np.ndarray
    backbone_seed: np.ndarray | None = None
    study_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels, dtype=np.int64)
        parts = np.asarray(self.body_parts, dtype=object)
        sets = np.asarray(self.study_set, dtype=np.int64)
        if labels.ndim != 2 or parts.shape != labels.shape or sets.shape != labels.shape[:1]:
            raise ValueError(f"ValidSets needs labels and body parts [T, n] and study_set [T], "
                             f"got {labels.shape}, {parts.shape}, {sets.shape}.")
        if len(sets) and sorted(set(sets.tolist())) != list(range(int(sets.max()) + 1)):
            raise ValueError(f"study_set must number the sets 0..G-1, got {sets.tolist()}.")
        n_tables, n = labels.shape
        seeds = (np.arange(n_tables) if self.backbone_seed is None
                 else np.asarray(self.backbone_seed))
        ids = (np.tile(np.arange(n), (n_tables, 1)) if self.study_ids is None
               else np.asarray(self.study_ids))
        if seeds.shape != (n_tables,) or ids.shape != labels.shape:
            raise ValueError(f"ValidSets needs backbone_seed [T] and study_ids [T, n] "
                             f"(T={n_tables}, n={n}), got {seeds.shape} and {ids.shape}.")
        seed_unit = np.unique(seeds if np.issubdtype(seeds.dtype, np.integer)
                              else seeds.astype(str), return_inverse=True)[1].reshape(-1)
        study_index = np.zeros(labels.shape, dtype=np.int64)
        set_parts = []
        for g in range(int(sets.max()) + 1 if n_tables else 0):
            rows = sets == g
            mine = ids[rows]
            mine = mine if np.issubdtype(mine.dtype, np.integer) else mine.astype(str)
            index = np.unique(mine, return_inverse=True)[1].reshape(int(rows.sum()), n)
            study_index[rows] = index
            first = np.unique(index.ravel(), return_index=True)[1]
            for name, values in (("body part", parts[rows]), ("label", labels[rows])):
                flat = values.ravel()
                if (flat != flat[first][index.ravel()]).any():
                    raise ValueError(f"study set {g}: a study has more than one {name}; "
                                     "study_ids must name one study per id.")
            set_parts.append(parts[rows].ravel()[first])
        for name, value in (("labels", labels), ("body_parts", parts), ("study_set", sets),
                            ("backbone_seed", seeds), ("study_ids", ids),
                            ("seed_unit", seed_unit.astype(np.int64)),
                            ("study_index", study_index), ("set_parts", tuple(set_parts))):
            object.__setattr__(self, name, value)

    @classmethod
    def shared(cls, labels: np.ndarray, body_parts: np.ndarray, n_tables: int) -> ValidSets:
        """``n_tables`` tables, each from its own backbone seed, that all have the valid studies
        ``labels`` (int ``[n]``) and ``body_parts`` (object ``[n]``): one study set."""
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
        """``n``, the answer positions per table."""
        return self.labels.shape[1]

    @property
    def n_sets(self) -> int:
        """``G``, the study sets (data draws)."""
        return int(self.study_set.max()) + 1 if self.n_tables else 0

    @property
    def n_seeds(self) -> int:
        """``U``, the backbone seeds."""
        return int(self.seed_unit.max()) + 1 if self.n_tables else 0

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
        counts: float64 ``[B, G, m]``: how often each distinct study of each study set is
            drawn (``m`` the most distinct studies of a set; the rest of a smaller set's
            row is 0; per set and body part the counts sum to the part's distinct studies).
        seed_slots: int64 ``[B, U]``: the backbone seed drawn into each seed slot.
        draw_slots: int64 ``[B, G]``: the study set (data draw) drawn into each draw slot.
        seeds: int64 ``[B, U, G, S]``: the agent seeds drawn in each (seed slot, draw slot)
            pair; every table of the cell drawn there takes them (a cell drawn twice gets two
            independent resamples of its seeds).
        valid: the tables' studies and units the draws were made for.
    """

    counts: np.ndarray
    seed_slots: np.ndarray
    draw_slots: np.ndarray
    seeds: np.ndarray
    valid: ValidSets

    @property
    def n_draws(self) -> int:
        """``B``."""
        return len(self.counts)

    def table_counts(self, table: int) -> np.ndarray:
        """float64 ``[B, n]``: the weight of each answer position of ``table`` in every draw
        (the count of the study at that position)."""
        return self.counts[:, self.valid.study_set[table]][:, self.valid.study_index[table]]

    def table_seeds(self, table: int, n_seeds: int) -> np.ndarray:
        """int64 ``[B, S]``: the agent seeds ``table`` takes in every draw when it is scored on
        its own (those of the slot pair numbered like its cell); all 0 for a deterministic
        method (``n_seeds`` = 1)."""
        unit, study_set = self.valid.seed_unit[table], self.valid.study_set[table]
        seeds = self.seeds[:, unit, study_set, :]
        return seeds if n_seeds > 1 else np.zeros_like(seeds[:, :1])

    def slot_seeds(self, n_seeds: int) -> np.ndarray:
        """int64 ``[B, U, G, S]``: :attr:`seeds`, or all 0 (``S`` = 1) for a deterministic
        method (``n_seeds`` = 1)."""
        return self.seeds if n_seeds > 1 else np.zeros_like(self.seeds[..., :1])

    def drawn(self, table: int) -> np.ndarray:
        """bool ``[B, U, G]``: where ``table``'s cell is drawn (seed slot and draw slot)."""
        unit, study_set = self.valid.seed_unit[table], self.valid.study_set[table]
        return ((self.seed_slots == unit)[:, :, None]
                & (self.draw_slots == study_set)[:, None, :])


def draw_resamples(valid: ValidSets, n_seeds: int, n_bootstrap: int, seed: int) -> Resample:
    """Draw ``n_bootstrap`` joint resamples of the design with
    ``numpy.random.default_rng(seed)``: per study set its distinct studies (stratified by body
    part), then the backbone seeds and the study sets as crossed factors, then the agent seeds
    of every cell.

    The random numbers are drawn in this order: the studies of set 0, 1, ..., G-1 (each part
    in ``BODY_PARTS`` order), the ``U`` seed slots, the ``G`` draw slots (none when
    ``G`` = 1), the ``U x G x S`` agent seeds. They depend on the design (``U``, ``G``, each
    set's distinct studies and their parts), not on how many tables fill a cell: an exact copy
    of a table changes no draw. With one data draw and one table per backbone seed (the
    retraining and part-attention studies) they are the draws of a bootstrap over tables,
    their seeds and the shared studies.

    Args:
        valid: the tables' studies and units.
        n_seeds: ``S``.
        n_bootstrap: ``B`` (>= 1).
        seed: the seed (same seed, same draws).

    Returns:
        A :class:`Resample`.
    """
    rng = np.random.default_rng(seed)
    width = max((len(p) for p in valid.set_parts), default=0)
    counts = np.zeros((n_bootstrap, valid.n_sets, width))
    for g, parts in enumerate(valid.set_parts):
        counts[:, g, :len(parts)] = stratified_counts(rng, parts, BODY_PARTS, n_bootstrap)
    n_units, n_sets = valid.n_seeds, valid.n_sets
    seed_slots = rng.integers(0, n_units, size=(n_bootstrap, n_units))
    draw_slots = (rng.integers(0, n_sets, size=(n_bootstrap, n_sets)) if n_sets > 1
                  else np.zeros((n_bootstrap, n_sets), dtype=np.int64))
    seeds = rng.integers(0, n_seeds, size=(n_bootstrap, n_units, n_sets, n_seeds))
    return Resample(counts=counts, seed_slots=seed_slots, draw_slots=draw_slots, seeds=seeds,
                    valid=valid)


def run_metrics(valid: ValidSets, runs: MethodRuns, resample: Resample | None = None
                ) -> dict[str, np.ndarray]:
    """Every run's metrics on the whole split and on each resample of the studies.

    Args:
        valid: the tables' studies. runs: the method's runs (``T`` = ``valid.n_tables``).
        resample: the draws (:func:`draw_resamples` of ``valid``); None: the whole split only
            (``B`` = 0).

    Returns:
        ``{key: float64 [T, S_m, B + 1]}``, index 0 of the last axis the whole split (the point
        value), then the ``B`` draws (each position weighted by its study's count in the
        table's study set); keys: the :data:`~mura_env.evaluation.metrics.METRICS` (all
        studies) and ``"<metric>_<PART>"`` for :data:`PART_METRICS` per body part present
        (NaN on a table without that part).
    """
    n = valid.n_studies
    t_count, s_count = runs.predictions.shape[:2]
    if t_count != valid.n_tables:
        raise ValueError(f"{runs.name}: runs on {t_count} tables, valid studies of "
                         f"{valid.n_tables}.")
    size = (resample.n_draws if resample is not None else 0) + 1
    out: dict[str, np.ndarray] = {}
    for t in range(t_count):
        labels, parts = valid.labels[t], valid.body_parts[t]
        weights = np.ones((1, n)) if resample is None else np.vstack(
            [np.ones((1, n)), resample.table_counts(t)])
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


def _cell_means(per_table: np.ndarray, valid: ValidSets) -> np.ndarray:
    """float64 ``[..., U, G]``: per cell (backbone seed, study set), the mean of
    ``per_table`` (float ``[T, ...]``) over the cell's tables; NaN for an empty cell."""
    per_table = np.asarray(per_table, dtype=np.float64)
    shape = (valid.n_seeds, valid.n_sets, *per_table.shape[1:])
    sums, counts = np.zeros(shape), np.zeros(shape[:2])
    np.add.at(sums, (valid.seed_unit, valid.study_set), per_table)
    np.add.at(counts, (valid.seed_unit, valid.study_set), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts.reshape(counts.shape + (1,) * (per_table.ndim - 1))
    return np.moveaxis(np.moveaxis(means, 0, -1), 0, -1)


def _nanmean(values: np.ndarray, axis: tuple[int, ...]) -> np.ndarray:
    """The mean over ``axis`` of the values that are not NaN; NaN where all are NaN (no
    warning)."""
    present = ~np.isnan(values)
    total = np.where(present, values, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / present.sum(axis=axis)


def crossed_point(per_table: np.ndarray, valid: ValidSets) -> float:
    """A figure pooled over the design: the mean over the filled cells (backbone seed x study
    set) of the cell means of ``per_table`` (float ``[T]``, e.g. each table's mean over its
    seeds). With one table per cell this is the mean over the tables; an exact copy of a
    table changes nothing."""
    return float(_nanmean(_cell_means(per_table, valid), (0, 1)))


def crossed_draws(slot_values: Callable[[int], np.ndarray], resample: Resample
                  ) -> np.ndarray:
    """The bootstrap draws of a figure pooled over the design.

    Args:
        slot_values: ``t -> float [B, U, G]``: table ``t``'s figure in every draw and slot
            pair, with the agent seeds drawn for that pair (:meth:`Resample.slot_seeds`) and
            its study set's resampled studies.
        resample: the draws.

    Returns:
        float64 ``[B]``: per draw, the mean over the ``U x G`` (seed slot, draw slot) pairs of
        the mean over the tables of the cell drawn there; empty cells are left out (NaN when
        every drawn cell is empty).
    """
    shape = resample.seeds.shape[:3]
    total, count = np.zeros(shape), np.zeros(shape)
    for t in range(resample.valid.n_tables):
        drawn = resample.drawn(t)
        if drawn.any():
            total += np.where(drawn, slot_values(t), 0.0)
            count += drawn
    with np.errstate(invalid="ignore", divide="ignore"):
        return _nanmean(total / count, (1, 2))


def seed_means(per_table: np.ndarray, valid: ValidSets) -> np.ndarray:
    """float64 ``[U]``: per backbone seed, the mean over its filled cells (study sets) of the
    cell means of ``per_table`` (float ``[T]``): the units of the seed-level interval."""
    return _nanmean(_cell_means(per_table, valid), (1,))


def table_draws(values: np.ndarray, resample: Resample, table: int
                ) -> tuple[float, np.ndarray]:
    """One table's score: the mean over its seeds, on the whole split and in every draw.

    Args:
        values: float ``[T, S_m, B + 1]`` from :func:`run_metrics`.
        resample: the draws; the table takes the agent seeds of
            :meth:`Resample.table_seeds` and its study set's resampled studies.
        table: ``t``.

    Returns:
        ``(point, draws float64 [B])``.
    """
    point = float(values[table, :, 0].mean())
    seeds = resample.table_seeds(table, values.shape[1])
    b = np.arange(resample.n_draws)[:, None]
    return point, values[table, seeds, 1 + b].mean(axis=1)


def pooled(values: np.ndarray, resample: Resample) -> tuple[float, np.ndarray]:
    """A method's score pooled over the design, on the whole split and in every draw.

    Args:
        values: float ``[T, S_m, B + 1]`` from :func:`run_metrics`.
        resample: the draws.

    Returns:
        ``(point, draws float64 [B])``: the point is :func:`crossed_point` of the tables'
        means over their seeds (with one table per cell, the mean over every run); the draws
        are :func:`crossed_draws` of each run's value on the draw's studies, averaged over the
        agent seeds drawn for the slot pair.
    """
    seeds = resample.slot_seeds(values.shape[1])
    b = 1 + np.arange(resample.n_draws)[:, None, None, None]
    draws = crossed_draws(lambda t: values[t][seeds, b].mean(axis=-1), resample)
    return crossed_point(table_means(values), resample.valid), draws


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
    """The two-sided Student-t interval of the mean of ``means`` (one value per unit).

    Args:
        means: float ``[U]`` (e.g. :func:`seed_means`, or per-seed paired differences).
        confidence: the coverage, in (0, 1).

    Returns:
        ``(low, high)`` = ``mean -+ t_{U-1, (1 + confidence) / 2} * sd / sqrt(U)`` (``sd``
        with ``U - 1`` degrees of freedom); ``(nan, nan)`` when ``U < 2`` or a value is not
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


def seed_interval(per_table: np.ndarray, valid: ValidSets, confidence: float = 0.95
                  ) -> tuple[float, float]:
    """The seed-level interval: :func:`t_interval` over the backbone seeds' means
    (:func:`seed_means` of ``per_table``, float ``[T]``); NaN with one backbone seed."""
    return t_interval(seed_means(per_table, valid), confidence)


def table_improvement(part_x: np.ndarray, part_y: np.ndarray, seeds: np.ndarray | None = None
                      ) -> np.ndarray:
    """One table's probability of improvement of X over Y: tasks are its body parts, runs
    its seeds.

    Args:
        part_x, part_y: float ``[S_m, P, B + 1]`` the table's per-part accuracies of X and Y.
        seeds: int ``[B, ..., S]`` the agent seeds drawn (a deterministic method keeps its one
            run); None: every run, on the whole split.

    Returns:
        float64 ``[B, ...]`` on the draws' studies, or a 0-d array on the whole split.
    """
    def runs(part: np.ndarray) -> np.ndarray:  # -> [..., P, runs]
        if seeds is None:
            return part[..., 0].T
        picked = seeds if part.shape[0] > 1 else np.zeros_like(seeds[..., :1])
        b = (1 + np.arange(len(seeds))).reshape((-1,) + (1,) * (seeds.ndim - 1))
        return np.moveaxis(part[picked, :, b], -1, -2)  # [B, ..., S, P] -> [B, ..., P, S]

    x, y = runs(part_x), runs(part_y)
    return probability_of_improvement(x[..., None], y[..., None]).mean(axis=-1)


def improvement(part_x: np.ndarray, part_y: np.ndarray, resample: Resample
                ) -> tuple[float, np.ndarray]:
    """The probability of improvement of X over Y pooled over the design: per table, rliable's
    probability over its body parts (tasks) and seeds (runs) (:func:`table_improvement`; runs
    are compared only within a table, where the difficulty is the same), then pooled like
    every other figure (:func:`crossed_point`, :func:`crossed_draws`).

    Args:
        part_x, part_y: float ``[T, S_m, P, B + 1]`` per-part accuracies of X and Y.
        resample: the draws.

    Returns:
        ``(point, draws float64 [B])``.
    """
    seeds = resample.slot_seeds(max(part_x.shape[1], part_y.shape[1]))
    point = np.array([float(table_improvement(part_x[t], part_y[t]))
                      for t in range(len(part_x))])
    draws = crossed_draws(lambda t: table_improvement(part_x[t], part_y[t], seeds), resample)
    return crossed_point(point, resample.valid), draws


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
    return {m.name: run_metrics(valid, m, resample) for m in methods}


def _with_interval(row: dict[str, Any], key: str, point: float, draws: np.ndarray,
                   confidence: float) -> None:
    row[key] = point
    row[f"{key}_ci_low"], row[f"{key}_ci_high"] = interval(draws, confidence)


def _with_seed_interval(row: dict[str, Any], key: str, per_table: np.ndarray,
                        valid: ValidSets, confidence: float) -> None:
    row[f"{key}_seed_ci_low"], row[f"{key}_seed_ci_high"] = seed_interval(
        per_table, valid, confidence)


def summarise(methods: Sequence[MethodRuns], valid: ValidSets, resample: Resample,
              references: Sequence[str], confidence: float = 0.95,
              metrics: dict[str, dict[str, np.ndarray]] | None = None) -> pd.DataFrame:
    """Every figure of every method, with its interval from the joint bootstrap and, for the
    :data:`~mura_env.evaluation.metrics.METRICS` and the paired differences, the seed-level
    interval.

    Args:
        methods: the methods' runs (all on the tables of ``valid``).
        valid: the tables' studies and units.
        resample: the shared draws (:func:`draw_resamples`).
        references: methods every method is compared with (those present in ``methods``).
        confidence: coverage of the intervals.
        metrics: :func:`method_metrics` of ``methods`` on ``resample`` (computed when None).

    Returns:
        One row per method (``methods`` order): ``method``, ``kind``, ``n_runs``; each
        :data:`~mura_env.evaluation.metrics.METRICS` and ``kappa_<PART>`` with ``_ci_low`` and
        ``_ci_high`` (joint bootstrap); per reference ``ref``: ``accuracy_vs_<ref>`` and
        ``kappa_vs_<ref>`` (paired differences) and ``poi_vs_<ref>`` (probability of
        improvement in accuracy), each with its interval. The METRICS and the
        ``accuracy_vs_`` / ``kappa_vs_`` differences also get ``_seed_ci_low`` and
        ``_seed_ci_high`` (:func:`seed_interval`; NaN for one backbone seed).
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
                _with_seed_interval(row, key, table_means(values[key]), valid, confidence)
        for ref in present:
            for metric in DIFFERENCE_METRICS:
                key = f"{metric}_vs_{ref}"
                _with_interval(row, key, *difference(own[metric], scores[ref][metric]),
                               confidence)
                _with_seed_interval(row, key, table_means(values[metric])
                                    - table_means(per_run[ref][metric]), valid, confidence)
            x, y = (part_accuracy_stack(per_run[name]) for name in (m.name, ref))
            _with_interval(row, f"poi_vs_{ref}", *improvement(x, y, resample), confidence)
        rows.append(row)
    return pd.DataFrame(rows)


def summarise_tables(methods: Sequence[MethodRuns], valid: ValidSets, resample: Resample,
                     references: Sequence[str], confidence: float = 0.95,
                     metrics: dict[str, dict[str, np.ndarray]] | None = None
                     ) -> pd.DataFrame:
    """Every method's figures on each table on its own, with bootstrap intervals that resample
    only that table's seeds and studies (the draws of ``resample``: agent seeds of
    :meth:`Resample.table_seeds` and its study set's counts; :func:`table_draws`).

    Args:
        methods, valid, resample, references, confidence, metrics: as for :func:`summarise`.

    Returns:
        One row per (method, table), method-major (``methods`` order), tables ascending:
        ``method``, ``kind``, ``table``, ``study_set``, ``seed_unit`` (its backbone seed as
        :attr:`ValidSets.seed_unit`, ``0..U-1``), ``n_runs`` (the method's runs on the
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
                                   "seed_unit": int(valid.seed_unit[t]),
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


def coverage_note(n_tables: int, n_units: int, n_sets: int) -> str:
    """A paragraph for the reports: the design (``n_tables`` tables from ``n_units`` backbone
    seeds and ``n_sets`` data draws, :class:`ValidSets`' ``n_tables``, ``n_seeds`` and
    ``n_sets``), what the joint-bootstrap interval and the seed-level interval each cover,
    and what neither does."""
    seeds = f"{n_units} backbone seed{'s' * (n_units != 1)}"
    draws = f"{n_sets} data draw{'s' * (n_sets != 1)}"
    return (
        f"The design: {n_tables} table{'s' * (n_tables != 1)}, cells of {seeds} crossed with "
        f"{draws}; agent seeds nested in each table; every table of a draw answers that "
        "draw's studies. Two intervals. The joint-bootstrap interval (\"95% CI\") resamples, "
        "jointly for every method, the backbone seeds and the data draws as crossed factors "
        "(a table counts through its cell: an exact copy of a table adds nothing), the agent "
        "seeds within each cell, and the distinct studies of each draw, stratified by body "
        "part and shared by every table of the draw (a study a shift shows twice is still "
        "one study). The seed-level interval (\"seed-level 95% CI\") is the Student-t "
        "interval over the backbone seeds' means (each averaged over data draws and agent "
        "seeds; for a difference, the per-seed paired difference): mean +- t_{U-1} sd / "
        f"sqrt(U), here with {max(n_units - 1, 0)} degree{'s' * (n_units != 2)} of freedom. "
        "It covers the retraining of the backbones; the data draws, agent seeds and studies "
        "enter only through each seed's mean, and with few seeds it is wide (with one seed it "
        "is not defined, shown as \u2014). Neither interval covers the synthetic generator's "
        "design and the pretraining profile, the choice of the tune and valid sizes, or (for "
        "deferral and worklists) the simulated readers' draw.")
