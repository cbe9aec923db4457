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
* :class:`ServerAwareCMu`: c-mu that also weighs how much slower this reader is on the study than
  the fastest reader for it (the parallel-server rule, with one exponent);
* :class:`Clairvoyant`: c-mu with the true labels; what a perfect classifier would allow, a
  reference, not a target.

A study's expected cost per minute is ``1 + (urgency - 1) p`` (an abnormal study weighs
``urgency``, a normal one 1); :func:`run_shift` plays a rule through a
:class:`~mura_env.triage.room.ReadingRoom`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mura_env.triage.room import ReadingRoom


@dataclass(frozen=True)
class ShiftView:
    """What a rule may know of a shift's studies.

    Attributes:
        probability: float ``[n]``, the classifier's P(abnormal) of each study.
        mean_minutes: float ``[n, R]``, each reader's expected reading time of each study (its
            body part's mean for that reader).
        urgency: the cost weight of an abnormal study relative to a normal one (>= 1).
        labels: int ``[n]`` (0/1), the truth; read only by :class:`Clairvoyant`.
    """

    probability: np.ndarray
    mean_minutes: np.ndarray
    urgency: float
    labels: np.ndarray | None = None

    def expected_weight(self, studies: np.ndarray) -> np.ndarray:
        """float64 ``[m]``: ``1 + (urgency - 1) p`` of ``studies`` (int ``[m]``)."""
        return 1.0 + (self.urgency - 1.0) * self.probability[studies]


class FirstInFirstOut:
    """Arrival order."""

    name = "first_in_first_out"

    def index(self, view: ShiftView, studies: np.ndarray, reader: int) -> np.ndarray:
        """float64 ``[m]``: 0 for every study (the earliest wins the tie)."""
        return np.zeros(len(studies))


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

    def index(self, view: ShiftView, studies: np.ndarray, reader: int) -> np.ndarray:
        """float64 ``[m]``: 1 for a flagged study, 0 otherwise."""
        return (view.probability[studies] > self.threshold).astype(np.float64)


class ByProbability:
    """The most probably abnormal study first."""

    name = "by_probability"

    def index(self, view: ShiftView, studies: np.ndarray, reader: int) -> np.ndarray:
        """float64 ``[m]``: the studies' probabilities."""
        return view.probability[studies].astype(np.float64)


class CMu:
    """Expected cost per minute over the free reader's expected reading time."""

    name = "c_mu"

    def index(self, view: ShiftView, studies: np.ndarray, reader: int) -> np.ndarray:
        """float64 ``[m]``: ``(1 + (urgency - 1) p) / E[read time of the reader]``."""
        return view.expected_weight(studies) / view.mean_minutes[studies, reader]


@dataclass
class ServerAwareCMu:
    """c-mu times ``(fastest expected reading time / this reader's) ** exponent``: a study
    this reader is slow on waits for a faster reader unless it is urgent enough (exponent 0:
    plain c-mu)."""

    exponent: float = 1.0
    name: str = "server_aware_c_mu"

    def index(self, view: ShiftView, studies: np.ndarray, reader: int) -> np.ndarray:
        """float64 ``[m]``: the index above."""
        minutes = view.mean_minutes[studies]
        relative = minutes.min(axis=1) / minutes[:, reader]
        return view.expected_weight(studies) / minutes[:, reader] * relative ** self.exponent


class Clairvoyant:
    """c-mu with each study's true cost weight (``urgency`` if abnormal, else 1)."""

    name = "clairvoyant"

    def index(self, view: ShiftView, studies: np.ndarray, reader: int) -> np.ndarray:
        """float64 ``[m]``: ``weight / E[read time of the reader]``.

        Raises:
            ValueError: the view has no labels."""
        if view.labels is None:
            raise ValueError("the clairvoyant rule needs the view's labels.")
        weight = np.where(view.labels[studies] == 1, view.urgency, 1.0)
        return weight / view.mean_minutes[studies, reader]


def run_shift(room: ReadingRoom, view: ShiftView, rule: object) -> ReadingRoom:
    """Play ``rule`` (an object with ``index(view, studies, reader)``) through ``room`` until
    every study has started; returns the room."""
    while (reader := room.next_decision()) is not None:
        waiting = np.asarray(room.queue)
        room.assign(reader, int(np.argmax(rule.index(view, waiting, reader))))
    return room
