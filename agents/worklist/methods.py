"""Classical worklist methods: which study of a reading shift should go to which radiologist?

A shift of ``N`` studies arrives in order (as in ``MuraWorklist-v0``); ``R`` readers each have
a capacity (reads per shift); every study is answered by the ensemble unless it is sent to a
reader with capacity left. Every method is fitted on the ``tune`` studies, then decides shift
by shift on any split, with the env's routing rule (:func:`mura_env.worklist.problem.route`).

What every method is fitted with (:meth:`WorklistMethod.fit`):

* the ensemble: :class:`~agents.weighting.baselines.Stacking`, cross-fitted
  (:func:`agents.deferral.methods.out_of_fold_probabilities`): the rules are fitted on
  out-of-fold tune probabilities, decisions on new studies use the stacking fitted on all of
  tune;
* each reader's skill per body part (:func:`reader_skill`): the reader's accuracy on the tune
  studies of that part, pulled toward the reader's overall tune accuracy by
  :data:`PRIOR_STUDIES` pseudo-studies (so a part with few studies keeps near the overall);
* the estimated gain of sending study ``i`` to reader ``r`` (:func:`estimated_gains`):
  ``g[i, r] = skill[r, part_i] - max(p_i, 1 - p_i) - read_cost``, ``p_i`` the stacking
  probability (``max(p, 1 - p)``: the ensemble's own estimate of being right).

The methods (online ones see only the current and past studies of a shift; references see
the whole shift):

* :class:`EnsembleAlone`: never reads;
* :class:`FirstComeFirstServed`: every study to the first reader with capacity left (readers
  by overall tune skill, best first) until all are full;
* :class:`MyopicThreshold`: one gain threshold per reader, fitted so that the reader's use
  on tune (without a capacity limit) equals its capacity share; a study goes to the
  qualifying reader with the highest gain that has capacity;
* :class:`BudgetPaced`: reader ``r`` qualifies when ``g > 0`` and ``g`` beats the
  ``(1 - c_r / m)`` quantile of its tune gains (``c_r`` reads left, ``m`` studies left), so
  it spends its capacity evenly over the rest of the shift;
* :class:`PartSkillGreedy`: the reader with the highest estimated gain (the most skilled on
  the study's body part) if that gain is positive and the reader has capacity;
* :class:`OptimalOnline` (``dp``): the exact optimal online policy for shifts of studies
  drawn independently from tune's estimated gains: a dynamic programme over (reads left per
  reader, studies left) (:func:`online_values`); a study is read by the reader whose gain
  beats the value that read gives up, the most by which it does. No online method does better
  on such shifts in expectation; the hindsight assignment, which sees the whole shift, can;
* :class:`HindsightAssignment` (reference): the whole shift's estimated gains known in
  advance, the assignment of most total positive gain (:func:`assign_shift`);
* :class:`OracleAssignment` (reference): the same assignment with the true gains (reader
  right - ensemble right - read cost), reading nothing on a tie.

:func:`simulate` runs a method over shifts of study rows (from
:meth:`mura_env.worklist.problem.WorklistProblem.new_shifts` or
:meth:`mura_env.worklist.shifts.ShiftSampler.draw`, so methods and agents see identical
shifts) and scores the answers that count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from agents.deferral.methods import (
    N_FOLDS,
    OutOfFold,
    cross_fitted,
    fit_with_shared_ensemble,
)
from agents.weighting.baselines import Stacking
from agents.weighting.reporting import kind_of
from mura_env.constants import BODY_PARTS
from mura_env.deferral.problem import team_scores
from mura_env.logits import LogitsTable
from mura_env.logits.study_set import StudySet
from mura_env.readers import missing_reader_message
from mura_env.worklist.config import DEFAULT_SHIFT_SIZE
from mura_env.worklist.problem import ENSEMBLE, route

#: Pseudo-studies of the prior pulling a reader's per-part skill toward its overall skill.
PRIOR_STUDIES = 10.0


@dataclass(frozen=True)
class WorklistData:
    """Studies with the reads of ``R`` readers: what a worklist method fits on and decides for.

    Attributes:
        studies: the :class:`~mura_env.logits.study_set.StudySet` (``n`` studies).
        reads: int8 ``[n, R]``, each reader's read of each study (1 = abnormal).
        patient_ids: object ``[n]``, each study's patient (the cross-fitting folds keep a
            patient's studies together); None: every study is its own patient.
        readers: the ``R`` reader ids, in column order of ``reads``.
    """

    studies: StudySet
    reads: np.ndarray
    patient_ids: np.ndarray | None = None
    readers: tuple[str, ...] = ()

    @classmethod
    def from_table(cls, table: LogitsTable, split: str,
                   readers: tuple[str, ...] | list[str] | None = None) -> WorklistData:
        """The studies of ``split`` (table order, as the env selects them) and the reads of
        ``readers`` (None: every reader of the table).

        Raises:
            KeyError: the table lacks one of ``readers``, or has no reader at all.
        """
        selected = table.select(split=split)
        available = selected.reader_ids
        wanted = available if readers is None else tuple(readers)
        missing = [r for r in wanted if r not in available]
        if missing or not wanted:
            raise KeyError(missing_reader_message(available, missing[0] if missing else None))
        reads = np.column_stack([selected.reads(r) for r in wanted]).astype(np.int8)
        return cls(StudySet.from_table(selected), reads,
                   selected.studies["patient_id"].to_numpy(dtype=object), tuple(wanted))

    @property
    def n_readers(self) -> int:
        """``R``, the number of readers."""
        return self.reads.shape[1]

    def reader_correct(self) -> np.ndarray:
        """bool ``[n, R]``: each reader's read is right."""
        return self.reads == self.studies.labels[:, None]

    def groups(self) -> np.ndarray:
        """``[n]``: each study's patient (``patient_ids``, or int64 ``0..n-1`` when unknown),
        what the cross-fitting folds group by."""
        if self.patient_ids is None:
            return np.arange(self.studies.n_studies, dtype=np.int64)
        return self.patient_ids


def reader_skill(data: WorklistData, prior_studies: float = PRIOR_STUDIES) -> np.ndarray:
    """float64 ``[R, 7]``: each reader's estimated accuracy per body part (``BODY_PARTS``
    order): ``(right on the part + prior_studies * overall accuracy) / (studies of the part +
    prior_studies)``; a part without studies gets the overall accuracy.

    Raises:
        ValueError: ``data`` has no study.
    """
    n = data.studies.n_studies
    if n == 0:
        raise ValueError("reader skill needs at least one study.")
    correct = data.reader_correct().astype(np.float64)
    overall = correct.mean(axis=0)
    parts = data.studies.body_part_index
    right = np.stack([np.bincount(parts, weights=correct[:, r], minlength=len(BODY_PARTS))
                      for r in range(data.n_readers)])
    count = np.bincount(parts, minlength=len(BODY_PARTS)).astype(np.float64)
    return (right + prior_studies * overall[:, None]) / (count + prior_studies)


def estimated_gains(probabilities: np.ndarray, body_part_index: np.ndarray, skill: np.ndarray,
                    read_cost: float) -> np.ndarray:
    """float64 ``[n, R]``: ``skill[r, part_i] - max(p_i, 1 - p_i) - read_cost``.

    Args:
        probabilities: float ``[n]``, the ensemble's P(abnormal); body_part_index: int ``[n]``;
        skill: float ``[R, 7]`` (:func:`reader_skill`); read_cost: float >= 0.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    confidence = np.maximum(p, 1.0 - p)
    return skill[:, body_part_index].T - confidence[:, None] - float(read_cost)


def true_gains(data: WorklistData, probabilities: np.ndarray, read_cost: float) -> np.ndarray:
    """float64 ``[n, R]``: reader right - ensemble right (``p > 0.5``) - ``read_cost`` for each
    study and reader: what the oracle decides with."""
    labels = data.studies.labels.astype(bool)
    ensemble_right = (np.asarray(probabilities) > 0.5) == labels
    return (data.reader_correct().astype(np.float64)
            - ensemble_right.astype(np.float64)[:, None] - float(read_cost))


def check_capacities(capacities: Any, n_readers: int) -> np.ndarray:
    """int64 ``[R]``: ``capacities`` (reads per shift, one per reader) checked.

    Raises:
        ValueError: not ``n_readers`` non-negative whole numbers.
    """
    values = np.asarray(capacities)
    if values.shape != (n_readers,) or values.dtype.kind not in "iuf" \
            or not np.all(values >= 0) or not np.all(values == np.rint(values)):
        raise ValueError(f"capacities must be {n_readers} non-negative whole numbers, "
                         f"got {capacities!r}.")
    return values.astype(np.int64)


def top_threshold(values: np.ndarray, k: int) -> float:
    """The threshold ``t`` such that ``values > t`` holds for (as near as ties allow) ``k`` of
    ``values`` (float ``[n]``): ``inf`` for none, ``-inf`` for all, else midway between the
    last value kept and the next; equal values go together, to the count nearest ``k`` (the
    smaller on a tie)."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))[::-1]
    n = len(ordered)
    cuts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1], [True]]))
    best = int(cuts[np.argmin(np.abs(cuts - k))])
    if best == 0:
        return float(np.inf)
    if best == n:
        return float(-np.inf)
    return float(0.5 * (ordered[best - 1] + ordered[best]))


def winners(gains: np.ndarray, thresholds: np.ndarray, reader: int) -> np.ndarray:
    """bool ``[n]``: the studies ``reader`` would get if it qualified, against the other
    readers that qualify (``gains > thresholds``, float ``[n, R]`` and ``[R]``): its gain beats
    every qualifying reader before it and is at least that of every one after it (ties go to
    the first reader, as in :func:`~mura_env.worklist.problem.route`)."""
    qualify = gains > thresholds
    masked = np.where(qualify, gains, -np.inf)
    before = masked[:, :reader].max(axis=1, initial=-np.inf)
    after = masked[:, reader + 1:].max(axis=1, initial=-np.inf)
    own = gains[:, reader]
    return (own > before) & (own >= after)


def usage_thresholds(gains: np.ndarray, shares: np.ndarray, rounds: int = 100) -> np.ndarray:
    """float64 ``[R]``: per-reader thresholds ``t`` such that, with the rule "the reader with
    the highest gain among those with ``g > t``" and no capacity limit, reader ``r`` gets
    ``round(shares[r] * n)`` of the ``n`` studies (as near as ties allow).

    Starts from each reader's ``(1 - share)`` quantile of its gains (exact for one reader,
    or readers who never compete for a study), then moves one reader at a time to its target
    among the studies it would win (:func:`winners`) until no threshold changes (at most
    ``rounds`` sweeps).

    Args:
        gains: float ``[n, R]``, e.g. the estimated gains of the tune studies.
        shares: float ``[R]``, each reader's capacity as a share of a shift.
    """
    n, n_readers = gains.shape
    targets = np.rint(np.asarray(shares, dtype=np.float64) * n).astype(np.int64)
    thresholds = np.array([top_threshold(gains[:, r], int(targets[r]))
                           for r in range(n_readers)])
    for _ in range(rounds):
        previous = thresholds.copy()
        for r in range(n_readers):
            won = winners(gains, thresholds, r)
            thresholds[r] = top_threshold(gains[won, r], int(targets[r]))
        if np.array_equal(previous, thresholds):
            break
    return thresholds


def sorted_quantiles(ordered: np.ndarray, q: np.ndarray) -> np.ndarray:
    """float64 like ``q``: the ``q`` quantiles (linear interpolation, as ``np.quantile``) of
    the values ``ordered`` (float ``[n]``, sorted ascending); ``q`` float in [0, 1]."""
    position = np.clip(q, 0.0, 1.0) * (len(ordered) - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def assign_shift(gains: np.ndarray, capacities: np.ndarray) -> np.ndarray:
    """The assignment of one shift's studies to readers of most total positive gain.

    Args:
        gains: float ``[N, R]``, the gain of sending each study to each reader.
        capacities: int ``[R]``, each reader's reads in the shift.

    Returns:
        int64 ``[N]``: the reader's index or :data:`~mura_env.worklist.problem.ENSEMBLE`;
        ``scipy.optimize.linear_sum_assignment`` over reader slots (each reader's column
        repeated ``capacity`` times) and ``N`` zero-gain ensemble slots; a study is never read
        at a gain <= 0 (ties go to reading nothing).
    """
    n = len(gains)
    slots = np.repeat(np.arange(gains.shape[1]), capacities)
    if n == 0 or len(slots) == 0:
        return np.full(n, ENSEMBLE, dtype=np.int64)
    reader_value = gains[:, slots]
    reader_value = np.where(reader_value > 0, reader_value, -1.0)
    value = np.concatenate([reader_value, np.zeros((n, n))], axis=1)
    rows, columns = linear_sum_assignment(value, maximize=True)
    who = np.full(n, ENSEMBLE, dtype=np.int64)
    read = columns < len(slots)
    who[rows[read]] = slots[columns[read]]
    return who


def route_best(values: np.ndarray, allowed: np.ndarray, capacity_left: np.ndarray
               ) -> np.ndarray:
    """int64 ``[S]``: who answers, by the env's rule (:func:`~mura_env.worklist.problem.route`)
    on scores that rank the ``allowed`` readers by ``values`` (float ``[S, R]``; bool
    ``[S, R]``) and leave the others at 0: the allowed reader of highest value (ties: the
    first) when it has capacity left (int ``[S, R]``), else the ensemble."""
    low = np.where(allowed, values, np.inf).min(axis=1, keepdims=True)
    scores = np.where(allowed, values - np.where(np.isfinite(low), low, 0.0) + 1.0, 0.0)
    return route(scores, capacity_left)


class WorklistMethod:
    """Base class: ``fit(tune, read_cost, capacities) -> self``, then
    ``decide_shift(gains [N, R], capacities [R]) -> answered_by int64 [N]``.

    Attributes (after :meth:`fit`):
        ensemble: the :class:`~agents.weighting.baselines.Stacking` fitted on all of tune.
        out_of_fold: tune's :class:`~agents.deferral.methods.OutOfFold` probabilities.
        skill: float64 ``[R, 7]`` (:func:`reader_skill` on tune).
        tune_gains: float64 ``[n_tune, R]``, the estimated gains of the tune studies with
            their out-of-fold probabilities (what the rules are fitted on).
        read_cost, capacities (int64 ``[R]``), shift_size: as given to :meth:`fit`.
    """

    name = "worklist"
    reference = False
    online = True
    sees_truth = False

    @property
    def kind(self) -> str:
        """``"reference"`` for upper references, else ``"baseline"``."""
        return kind_of(self)

    def fit(self, tune: WorklistData, read_cost: float, capacities: Any,
            shift_size: int = DEFAULT_SHIFT_SIZE, ensemble: Stacking | None = None,
            out_of_fold: OutOfFold | None = None) -> WorklistMethod:
        """Cross-fit the stacking ensemble on ``tune``, estimate the readers' skill and the
        tune gains, then fit the method's own rule.

        Args:
            tune: the studies fitted on; read_cost: subtracted from every read's gain (>= 0).
            capacities: int ``[R]``, each reader's reads per shift of ``shift_size`` studies.
            ensemble: a :class:`~agents.weighting.baselines.Stacking` fitted on all of ``tune`` to
                share between methods (None: fit one here).
            out_of_fold: ``tune``'s :func:`~agents.deferral.methods.out_of_fold_probabilities`
                to share (None: compute them, :data:`~agents.deferral.methods.N_FOLDS` folds
                by patient, seed 0).

        Raises:
            ValueError: bad capacities or shift size, ``out_of_fold`` not of tune's size.
        """
        if isinstance(shift_size, bool) or int(shift_size) != shift_size or shift_size < 1:
            raise ValueError(f"shift_size must be an integer >= 1, got {shift_size!r}.")
        self.read_cost = float(read_cost)
        self.capacities = check_capacities(capacities, tune.n_readers)
        self.shift_size = int(shift_size)
        self.ensemble, self.out_of_fold = cross_fitted(tune, ensemble, out_of_fold)
        self.skill = reader_skill(tune)
        self.tune_gains = self.estimated_gains(tune, self.out_of_fold.probabilities)
        self._fit_rule(tune)
        return self

    def _fit_rule(self, tune: WorklistData) -> None:
        """Fit the method's own rule on ``self.tune_gains``."""

    def probabilities(self, data: WorklistData) -> np.ndarray:
        """float64 ``[n]``: the full-tune stacking's P(abnormal) for the studies of ``data``."""
        return self.ensemble.predict(data.studies)[0]

    def estimated_gains(self, data: WorklistData, probabilities: np.ndarray) -> np.ndarray:
        """float64 ``[n, R]``: :func:`estimated_gains` of ``data``'s studies with the tune
        skill and the ensemble ``probabilities`` (float ``[n]``)."""
        return estimated_gains(probabilities, data.studies.body_part_index, self.skill,
                               self.read_cost)

    def decision_gains(self, data: WorklistData, probabilities: np.ndarray) -> np.ndarray:
        """float64 ``[n, R]``: the gains the method decides with (estimated; the oracle's are
        true)."""
        return self.estimated_gains(data, probabilities)

    def decide_shift(self, gains: np.ndarray, capacities: Any) -> np.ndarray:
        """int64 ``[N]``: who answers each study of one shift (reader index, or -1 for the
        ensemble), from the gains float ``[N, R]`` (arrival order) and capacities int
        ``[R]``."""
        return self.decide_shifts(np.asarray(gains)[None], capacities)[0]

    def decide_shifts(self, gains: np.ndarray, capacities: Any) -> np.ndarray:
        """int64 ``[S, N]``: :meth:`decide_shift` for ``S`` shifts at once (gains float
        ``[S, N, R]``)."""
        raise NotImplementedError  # pragma: no cover


class OnlineMethod(WorklistMethod):
    """A method deciding each study from its gains, the capacity left and the number of
    studies left (never a later study's gains); subclasses say which readers may read it
    (:meth:`_choose`) and the env's rule routes it (:func:`route_best`)."""

    def decide_shifts(self, gains: np.ndarray, capacities: Any) -> np.ndarray:
        gains = np.asarray(gains, dtype=np.float64)
        n_shifts, size, n_readers = gains.shape
        left = np.tile(check_capacities(capacities, n_readers), (n_shifts, 1))
        who = np.full((n_shifts, size), ENSEMBLE, dtype=np.int64)
        shifts = np.arange(n_shifts)
        for t in range(size):
            values, allowed = self._choose(gains[:, t], left, size - t)
            who[:, t] = chosen = route_best(values, allowed, left)
            read = chosen >= 0
            left[shifts[read], chosen[read]] -= 1
        return who

    def _choose(self, gains: np.ndarray, capacity_left: np.ndarray, remaining: int
                ) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        """``(values float [S, R], allowed bool [S, R])`` for the current study of each shift
        (gains float ``[S, R]``, capacity left int ``[S, R]``, ``remaining`` studies of the
        shift, the current one included)."""
        raise NotImplementedError


class EnsembleAlone(OnlineMethod):
    """The ensemble answers every study."""

    name = "ensemble_alone"

    def _choose(self, gains: np.ndarray, capacity_left: np.ndarray, remaining: int
                ) -> tuple[np.ndarray, np.ndarray]:
        return gains, np.zeros(gains.shape, dtype=bool)


class FirstComeFirstServed(OnlineMethod):
    """Every study to the first reader with capacity left, readers ordered by overall tune
    accuracy (best first, ties by column order), until every reader is full.

    Attributes (after fit): order: int64 ``[R]``, the reader indices best first."""

    name = "first_come_first_served"

    def _fit_rule(self, tune: WorklistData) -> None:
        overall = tune.reader_correct().mean(axis=0)
        self.order = np.argsort(-overall, kind="stable").astype(np.int64)

    def _choose(self, gains: np.ndarray, capacity_left: np.ndarray, remaining: int
                ) -> tuple[np.ndarray, np.ndarray]:
        rank_value = np.empty(len(self.order))
        rank_value[self.order] = -np.arange(len(self.order), dtype=np.float64)
        return np.broadcast_to(rank_value, gains.shape), capacity_left > 0


class MyopicThreshold(OnlineMethod):
    """A study goes to the reader of highest gain among those with capacity left whose gain
    beats their threshold; the thresholds (:func:`usage_thresholds` on the tune gains) make
    each reader's use on tune, without a capacity limit, its capacity share
    (``capacity / shift_size``). Reads even at a negative estimated gain when the threshold
    is negative (it fills the readers' capacity share).

    Attributes (after fit): thresholds: float64 ``[R]``."""

    name = "myopic_threshold"

    def _fit_rule(self, tune: WorklistData) -> None:
        shares = self.capacities / self.shift_size
        self.thresholds = usage_thresholds(self.tune_gains, shares)

    def _choose(self, gains: np.ndarray, capacity_left: np.ndarray, remaining: int
                ) -> tuple[np.ndarray, np.ndarray]:
        return gains, (gains > self.thresholds) & (capacity_left > 0)


class BudgetPaced(OnlineMethod):
    """Reader ``r`` qualifies for the current study when its gain is positive and beats the
    level that would spend its ``c_r`` reads left over the ``m`` studies left: the
    ``(1 - c_r / m)`` quantile of its tune gains (any positive gain once ``c_r >= m``); the
    qualifying reader of highest gain reads it.

    Attributes (after fit): sorted_tune_gains: float64 ``[n_tune, R]``, each column sorted."""

    name = "budget_paced"

    def _fit_rule(self, tune: WorklistData) -> None:
        self.sorted_tune_gains = np.sort(self.tune_gains, axis=0)

    def levels(self, capacity_left: np.ndarray, remaining: int) -> np.ndarray:
        """float64 ``[S, R]``: each reader's gain level for ``capacity_left`` (int ``[S, R]``)
        with ``remaining`` studies left (``-inf`` where the capacity covers them all)."""
        q = 1.0 - capacity_left / float(remaining)
        level = np.column_stack([sorted_quantiles(self.sorted_tune_gains[:, r], q[:, r])
                                 for r in range(capacity_left.shape[1])])
        return np.where(capacity_left >= remaining, -np.inf, level)

    def _choose(self, gains: np.ndarray, capacity_left: np.ndarray, remaining: int
                ) -> tuple[np.ndarray, np.ndarray]:
        allowed = (gains > 0) & (gains > self.levels(capacity_left, remaining))
        return gains, allowed & (capacity_left > 0)


class PartSkillGreedy(OnlineMethod):
    """Each study to the reader of highest estimated gain (the reader most skilled on its
    body part) when that gain is positive and the reader has capacity left; when that reader
    is full the ensemble answers (no other reader steps in, no pacing)."""

    name = "part_skill_greedy"

    def _choose(self, gains: np.ndarray, capacity_left: np.ndarray, remaining: int
                ) -> tuple[np.ndarray, np.ndarray]:
        return gains, gains > 0


def online_values(gains: np.ndarray, capacities: np.ndarray, size: int) -> np.ndarray:
    """The value of the optimal online policy for shifts of studies drawn independently and
    uniformly from the rows of ``gains``: ``V[m, c]``, the expected total gain of the reads
    still to come with ``m`` studies left and reads ``c`` left per reader, from

        ``V[0, c] = 0``,
        ``V[m, c] = mean_i max(V[m-1, c], max_{r: c_r > 0} gains[i, r] + V[m-1, c - e_r])``.

    Args:
        gains: float ``[n, R]`` the estimated gain of reading each of ``n`` studies by each
            reader (the ensemble answering is 0).
        capacities: int ``[R]`` the reads per reader at the start of a shift.
        size: the most studies left, ``N`` (>= 0).

    Returns:
        float64 ``[N + 1, *(capacities + 1)]``: ``V[m][c_0, ..., c_{R-1}]``.
    """
    gains = np.asarray(gains, dtype=np.float64)
    shape = tuple(int(c) + 1 for c in capacities)
    left = np.indices(shape).reshape(len(shape), -1)  # [R, states]
    flat = np.arange(left.shape[1])
    minus = [np.where(left[r] > 0, flat - int(np.prod(shape[r + 1:])), 0)
             for r in range(len(shape))]
    values = np.zeros((size + 1, left.shape[1]))
    for m in range(1, size + 1):
        before = values[m - 1]
        best = np.broadcast_to(before, (len(gains), len(before)))
        for r, index in enumerate(minus):
            read = gains[:, r, None] + before[index][None, :]
            best = np.where(left[r] > 0, np.maximum(best, read), best)
        values[m] = best.mean(axis=0)
    return values.reshape((size + 1, *shape))


class OptimalOnline(OnlineMethod):
    """The exact optimal online policy when a shift's studies are drawn independently from
    tune's estimated gains (:func:`online_values` of the tune gains, for the capacities and
    shift size it is asked about): with ``m`` studies left and reads ``c`` left, reader ``r``
    is worth ``g_r + V[m-1, c - e_r] - V[m-1, c]`` for the current study; the reader of highest
    positive worth reads it (none: the ensemble answers). It paces every reader against all
    the others' reads at once, where :class:`BudgetPaced` paces each against its own
    quantile. Valid shifts drawn with other body-part mixes (the scenarios) are not what it
    optimises for.

    Attributes (after fit): values: dict capacities tuple -> float64 ``[N + 1, ...]``
    (:func:`online_values`), filled as shifts are decided."""

    name = "dp"

    def _fit_rule(self, tune: WorklistData) -> None:
        self.values: dict[tuple[int, ...], np.ndarray] = {}
        self._value_table(self.capacities, self.shift_size)

    def _value_table(self, capacities: np.ndarray, size: int) -> np.ndarray:
        key = tuple(int(c) for c in capacities)
        table = self.values.get(key)
        if table is None or len(table) <= size:
            table = online_values(self.tune_gains, np.asarray(key), size)
            self.values[key] = table
        return table

    def decide_shifts(self, gains: np.ndarray, capacities: Any) -> np.ndarray:
        gains = np.asarray(gains, dtype=np.float64)
        self._table = self._value_table(check_capacities(capacities, gains.shape[2]),
                                        gains.shape[1])
        return super().decide_shifts(gains, capacities)

    def _choose(self, gains: np.ndarray, capacity_left: np.ndarray, remaining: int
                ) -> tuple[np.ndarray, np.ndarray]:
        after = self._table[remaining - 1]
        stay = after[tuple(capacity_left.T)]
        worth = np.empty_like(gains)
        for r in range(gains.shape[1]):
            fewer = capacity_left.copy()
            fewer[:, r] = np.maximum(fewer[:, r] - 1, 0)
            worth[:, r] = gains[:, r] + after[tuple(fewer.T)] - stay
        return worth, (worth > 0) & (capacity_left > 0)


class HindsightAssignment(WorklistMethod):
    """Reference: knows the whole shift's estimated gains in advance and reads the
    assignment of most total positive estimated gain (:func:`assign_shift`)."""

    name = "hindsight"
    reference = True
    online = False

    def decide_shifts(self, gains: np.ndarray, capacities: Any) -> np.ndarray:
        gains = np.asarray(gains, dtype=np.float64)
        capacities = check_capacities(capacities, gains.shape[2])
        who = np.full(gains.shape[:2], ENSEMBLE, dtype=np.int64)
        for s, shift_gains in enumerate(gains):
            who[s] = assign_shift(shift_gains, capacities)
        return who


class OracleAssignment(HindsightAssignment):
    """Reference: :class:`HindsightAssignment` with the true gains (reader right - ensemble
    right - read cost): reads only where the reader is right and the ensemble wrong (and the
    cost is below 1), as many such studies as the capacities allow."""

    name = "oracle"
    sees_truth = True

    def decision_gains(self, data: WorklistData, probabilities: np.ndarray) -> np.ndarray:
        return true_gains(data, probabilities, self.read_cost)


def all_worklist_methods() -> list[WorklistMethod]:
    """One fresh instance of every method, the references last."""
    return [EnsembleAlone(), FirstComeFirstServed(), MyopicThreshold(), BudgetPaced(),
            PartSkillGreedy(), OptimalOnline(), HindsightAssignment(), OracleAssignment()]


def fit_worklist_methods(tune: WorklistData, read_cost: float, capacities: Any,
                         shift_size: int = DEFAULT_SHIFT_SIZE, n_folds: int = N_FOLDS,
                         seed: int = 0) -> list[WorklistMethod]:
    """Every method (:func:`all_worklist_methods`) fitted on ``tune`` for ``read_cost`` and
    ``capacities`` (int ``[R]``, reads per shift of ``shift_size`` studies), all sharing one
    stacking fitted on all of tune and one cross-fitting (``n_folds``, ``seed``).

    Returns:
        The fitted methods; each has ``fit_time`` (seconds; the shared ensemble's and
        cross-fitting's count in the first one's).
    """
    return fit_with_shared_ensemble(
        all_worklist_methods(), tune, n_folds, seed,
        lambda method, ensemble, out_of_fold: method.fit(tune, read_cost, capacities,
                                                         shift_size, ensemble, out_of_fold))


def simulate(method: WorklistMethod, data: WorklistData, shifts: np.ndarray, capacities: Any,
             probabilities: np.ndarray | None = None) -> dict[str, Any]:
    """Run a fitted ``method`` over shifts of ``data``'s studies.

    Args:
        method: a fitted :class:`WorklistMethod`.
        data: the studies and reads the shifts draw from.
        shifts: int ``[S, N]``, each shift's study rows of ``data`` in arrival order (e.g.
            :meth:`~mura_env.worklist.problem.WorklistProblem.new_shifts`).
        capacities: int ``[R]``, each reader's reads per shift.
        probabilities: float ``[n]``, the ensemble's P(abnormal) for ``data``'s studies
            (None: :meth:`WorklistMethod.probabilities`; pass tune's out-of-fold ones to
            replay tune as the rules saw it).

    Returns:
        dict with, per shift, ``answered_by`` int64 ``[S, N]`` (reader index or -1),
        ``prediction`` int8 ``[S, N]`` (the answer that counts: the read, or ``p > 0.5``),
        ``correct`` bool ``[S, N]``, ``reads_used`` int64 ``[S, R]``, ``estimated_gain``
        float64 ``[S]`` (sum of the estimated gains of the reads) and ``reward`` float64
        ``[S]`` (studies right minus ``read_cost`` per read, the env's ``correct`` reward);
        and over all studies of all shifts ``accuracy``, ``kappa`` and ``read_rate`` (float).
    """
    shifts = np.asarray(shifts, dtype=np.int64)
    capacities = check_capacities(capacities, data.n_readers)
    p = method.probabilities(data) if probabilities is None else np.asarray(probabilities)
    estimated = method.estimated_gains(data, p)
    who = method.decide_shifts(method.decision_gains(data, p)[shifts], capacities)
    read = who >= 0
    reader = np.maximum(who, 0)
    reads = np.take_along_axis(data.reads[shifts], reader[..., None], axis=2)[..., 0]
    prediction = np.where(read, reads, (p > 0.5)[shifts]).astype(np.int8)
    labels = data.studies.labels[shifts]
    correct = prediction == labels
    reads_used = np.stack([(who == r).sum(axis=1) for r in range(data.n_readers)], axis=1)
    gain = np.where(read, np.take_along_axis(estimated[shifts], reader[..., None],
                                             axis=2)[..., 0], 0.0).sum(axis=1)
    scores = team_scores(labels.ravel(), prediction.ravel(), read.ravel())
    return {"answered_by": who, "prediction": prediction, "correct": correct,
            "reads_used": reads_used.astype(np.int64), "estimated_gain": gain,
            "reward": correct.sum(axis=1) - method.read_cost * read.sum(axis=1),
            "accuracy": scores["accuracy"], "kappa": scores["kappa"],
            "read_rate": scores["deferral_rate"]}


def routing_inputs(table: LogitsTable, split: str | list[str] | tuple[str, ...],
                   readers: tuple[str, ...], read_cost: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What ``MuraWorklist-v0``'s routing action and gain observations need, fitted on
    ``table``'s tune studies only: the stacking ensemble and each reader's skill per body part,
    as every method here fits them (:meth:`WorklistMethod.fit`).

    Args:
        table: the logits table (its members as the env selects them); split: the env's
            split(s); readers: the env's readers; read_cost: the env's cost of a read.

    Returns:
        ``(study_ids object [n], probabilities float64 [n], gains float64 [n, R])`` for the
        studies of ``split`` in table order: the ensemble's P(abnormal) (a tune study's from
        the cross-fitted stacking that did not see it, so tune looks to an agent as new studies
        do; any other study's from the stacking fitted on all of tune) and
        :func:`estimated_gains` with those probabilities.

    Raises:
        KeyError: a reader the table lacks.
    """
    tune = WorklistData.from_table(table, "tune", readers)
    fitted = EnsembleAlone().fit(tune, read_cost, np.zeros(tune.n_readers, dtype=np.int64))
    data = WorklistData.from_table(table, split, readers)
    probabilities = np.array(fitted.probabilities(data), dtype=np.float64)
    selected = table.select(split=split)
    in_tune = (selected.studies["split"] == "tune").to_numpy()
    if in_tune.any():
        tune_row = {sid: i for i, sid in enumerate(tune.studies.study_ids)}
        rows = [tune_row[sid] for sid in data.studies.study_ids[in_tune]]
        probabilities[in_tune] = fitted.out_of_fold.probabilities[rows]
    return (data.studies.study_ids, probabilities,
            fitted.estimated_gains(data, probabilities))
