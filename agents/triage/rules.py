"""Which waiting study a free radiologist reads next: the rules clinics and the queueing
literature use, each an index over the worklist (the highest index is read first; ties go to the
study that arrived first).

* :class:`FirstInFirstOut`: arrival order, how most worklists are read;
* :class:`FlagFirst`: studies the classifier flags (probability above a threshold) first, first in
  first out within flagged and unflagged (the FDA's computer-aided triage devices, "CADt", as
  QuCAD models them);
* :class:`ByProbability`: the most probably abnormal study first;
* :class:`CMu`: the c-mu rule, expected cost per minute of waiting over the expected reading time
  for the free reader (optimal for one reader with linear waiting costs);
* :class:`GeneralizedCMu`: c-mu with the marginal cost of waiting now, which jumps when a study
  passes its deadline;
* :class:`ServerAwareCMu`: c-mu that also weighs how much slower this reader is on the study than
  the fastest reader for it (the parallel-server rule, with one exponent);
* :class:`TunedIndex`: an index of the same quantities with three powers searched on tune shifts,
  a reference for what such an index can reach;
* :class:`Clairvoyant`: c-mu with the true labels; what a perfect classifier would allow, a
  reference, not a target.

A rule's ``index(shift, waiting, reader)`` takes a :class:`~mura_env.triage.shifts.TriageShift`,
the waiting arrivals (int ``[m]``, indices into the shift, in arrival order) and the free reader,
and returns float64 ``[m]``. A study's expected cost per minute is ``1 + (urgency - 1) p`` (an
abnormal study weighs ``urgency``, a normal one 1); :func:`run_shift` plays a rule through the
shift's room.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mura_env.triage.shifts import TriageShift


class FirstInFirstOut:
    """Arrival order."""

    name = "first_in_first_out"

    def index(self, shift: TriageShift, waiting: np.ndarray, reader: int) -> np.ndarray:
        """float64 ``[m]``: 0 for every study (the earliest wins the tie)."""
        return np.zeros(len(waiting))


@dataclass
class FlagFirst:
    """Flagged studies (``p > threshold``) first, arrival order within each group."""

    threshold: float = 0.5
    name: str = "flag_first"

    def fit(self, probability: np.ndarray, labels: np.ndarray) -> FlagFirst:
        """Set the threshold where sensitivity plus specificity is highest on the given
        (tune) studies (float ``[n]`` probabilities, int ``[n]`` labels); returns self."""
        probability = np.asarray(probability, dtype=np.float64)
        labels = np.asarray(labels)
        if labels.min() == labels.max():
            raise ValueError("fitting a flag threshold needs both labels among the studies.")
        candidates = np.unique(probability)
        positives, negatives = labels == 1, labels == 0
        best, best_j = 0.5, -np.inf
        for threshold in candidates:
            flagged = probability > threshold
            j = flagged[positives].mean() - flagged[negatives].mean()
            if j > best_j:
                best, best_j = float(threshold), j
        self.threshold = best
        return self

    def index(self, shift: TriageShift, waiting: np.ndarray, reader: int) -> np.ndarray:
        """float64 ``[m]``: 1 for a flagged study, 0 otherwise."""
        return (shift.probability[waiting] > self.threshold).astype(np.float64)


class ByProbability:
    """The most probably abnormal study first."""

    name = "by_probability"

    def index(self, shift: TriageShift, waiting: np.ndarray, reader: int) -> np.ndarray:
        """float64 ``[m]``: the studies' probabilities."""
        return shift.probability[waiting].astype(np.float64)


class CMu:
    """Expected cost per minute over the free reader's expected reading time."""

    name = "c_mu"

    def index(self, shift: TriageShift, waiting: np.ndarray, reader: int) -> np.ndarray:
        """float64 ``[m]``: ``(1 + (urgency - 1) p) / E[read time of the reader]``."""
        return shift.expected_weight(waiting) / shift.mean_minutes[waiting, reader]


class GeneralizedCMu:
    """c-mu with the marginal cost of waiting now: an abnormal study past its deadline costs
    ``late_cost`` more per minute, so the expected rate is ``1 + (urgency - 1) p + late_cost p``
    once a study has waited ``deadline`` minutes (the generalised c-mu rule for deadline costs;
    plain c-mu without a deadline)."""

    name = "generalized_c_mu"

    def index(self, shift: TriageShift, waiting: np.ndarray, reader: int) -> np.ndarray:
        """float64 ``[m]``: the marginal expected cost per minute over ``E[read time]``."""
        rate = shift.expected_weight(waiting)
        if shift.late_cost > 0 and shift.deadline < np.inf:
            late = shift.room.now - shift.room.arrivals[waiting] >= shift.deadline
            rate = rate + late * shift.late_cost * shift.probability[waiting]
        return rate / shift.mean_minutes[waiting, reader]


@dataclass
class ServerAwareCMu:
    """c-mu times ``(fastest expected reading time / this reader's) ** exponent``: a study
    this reader is slow on waits for a faster reader unless it is urgent enough (exponent 0:
    plain c-mu)."""

    exponent: float = 1.0
    name: str = "server_aware_c_mu"

    def fit(self, tune_shifts: Callable[[], list[TriageShift]],
            exponents: Sequence[float] = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0)) -> ServerAwareCMu:
        """Set the exponent with the least mean cost over the shifts ``tune_shifts()`` returns
        (:func:`least_cost`); returns self."""
        best = least_cost({e: ServerAwareCMu(float(e)) for e in exponents}, tune_shifts)
        self.exponent = float(best)
        return self

    def index(self, shift: TriageShift, waiting: np.ndarray, reader: int) -> np.ndarray:
        """float64 ``[m]``: the index above."""
        minutes = shift.mean_minutes[waiting]
        relative = minutes.min(axis=1) / minutes[:, reader]
        return shift.expected_weight(waiting) / minutes[:, reader] * relative ** self.exponent


@dataclass
class TunedIndex:
    """``(1 + (urgency - 1) p) ** weight_power / E[T] ** time_power * relative **
    relative_power`` (``relative``: the fastest expected reading time for the study over this
    reader's), the powers searched on tune shifts: c-mu is ``(1, 1, 0)``, the server-aware rule
    ``(1, 1, exponent)``. A reference for what an index of the probability, the reading times and
    the readers' speeds can reach."""

    weight_power: float = 1.0
    time_power: float = 1.0
    relative_power: float = 0.0
    name: str = "tuned_index"

    def fit(self, tune_shifts: Callable[[], list[TriageShift]],
            weight_powers: Sequence[float] = (0.5, 1.0, 2.0),
            time_powers: Sequence[float] = (0.0, 1.0, 2.0),
            relative_powers: Sequence[float] = (0.0, 1.0, 2.0, 4.0)) -> TunedIndex:
        """Set the powers of the grid with the least mean cost over ``tune_shifts()``
        (:func:`least_cost`); returns self."""
        grid = {(a, b, c): TunedIndex(a, b, c) for a in weight_powers for b in time_powers
                for c in relative_powers}
        self.weight_power, self.time_power, self.relative_power = least_cost(grid, tune_shifts)
        return self

    def index(self, shift: TriageShift, waiting: np.ndarray, reader: int) -> np.ndarray:
        """float64 ``[m]``: the index above."""
        minutes = shift.mean_minutes[waiting]
        relative = minutes.min(axis=1) / minutes[:, reader]
        return (shift.expected_weight(waiting) ** self.weight_power
                / minutes[:, reader] ** self.time_power * relative ** self.relative_power)


class Clairvoyant:
    """c-mu with each study's true cost weight (``urgency`` if abnormal, else 1)."""

    name = "clairvoyant"

    def index(self, shift: TriageShift, waiting: np.ndarray, reader: int) -> np.ndarray:
        """float64 ``[m]``: ``weight / E[read time of the reader]``."""
        weight = np.where(shift.labels[waiting] == 1, shift.urgency, 1.0)
        return weight / shift.mean_minutes[waiting, reader]


def run_shift(shift: TriageShift, rule: object) -> TriageShift:
    """Play ``rule`` (an object with ``index(shift, waiting, reader)``) through the shift's room
    until every study has started; returns the shift."""
    room = shift.room
    while (reader := room.next_decision()) is not None:
        waiting = np.asarray(room.queue)
        room.assign(reader, int(np.argmax(rule.index(shift, waiting, reader))))
    return shift


def least_cost(candidates: dict[Any, object], tune_shifts: Callable[[], list[TriageShift]]
               ) -> Any:
    """The key of the candidate rule with the least mean cost over ``tune_shifts()`` (called
    once per candidate: it must return fresh shifts, the same ones each time, e.g. drawn with one
    seed from tune studies); the first key on a tie."""
    costs = {key: float(np.mean([run_shift(shift, rule).room.cost for shift in tune_shifts()]))
             for key, rule in candidates.items()}
    return min(costs, key=costs.__getitem__)


def fit_rules(probability: np.ndarray, labels: np.ndarray,
              tune_shifts: Callable[[], list[TriageShift]]) -> dict[str, Any]:
    """Every rule of this module, fitted on tune: the flag threshold on the tune studies
    (``probability`` float ``[n]``, ``labels`` int ``[n]``), the server-aware exponent and the
    tuned index's powers on the shifts ``tune_shifts()`` returns (fresh ones, the same each
    call). Returns ``{rule name: rule}`` in report order (the last, the clairvoyant rule, knows
    the labels: a reference)."""
    return {
        "first_in_first_out": FirstInFirstOut(),
        "flag_first": FlagFirst().fit(probability, labels),
        "by_probability": ByProbability(),
        "c_mu": CMu(),
        "generalized_c_mu": GeneralizedCMu(),
        "server_aware_c_mu": ServerAwareCMu().fit(tune_shifts),
        "tuned_index": TunedIndex().fit(tune_shifts),
        "clairvoyant": Clairvoyant(),
    }
