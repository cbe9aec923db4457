"""A reading-room shift made of a logits table's studies: who arrives when, how long each
radiologist takes, what the classifier says.

Each arrival is a study drawn uniformly from the given studies (with replacement), carrying its
label, its body part and the classifier's probability. A radiologist's mean reading time depends
on the body part (:data:`READ_MINUTES`); the arrival rate is set by the room's load, the arrival
rate over the radiologists' combined reading rate on the studies' body-part mix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mura_env.constants import BODY_PARTS
from mura_env.triage.arrivals import poisson_arrivals, relative_rates
from mura_env.triage.read_times import READ_TIME_SHAPES, draw_read_minutes
from mura_env.triage.room import ReadingRoom

_UPPER_ARM = {"ELBOW": 3.0, "FINGER": 5.0, "FOREARM": 4.0, "HAND": 5.0, "HUMERUS": 3.0,
              "SHOULDER": 3.0, "WRIST": 5.0}
_HAND = {"ELBOW": 5.0, "FINGER": 3.0, "FOREARM": 4.0, "HAND": 3.0, "HUMERUS": 5.0,
         "SHOULDER": 5.0, "WRIST": 3.0}
#: Mean minutes a radiologist takes to read a study of each body part: an assumption of this
#: simulator, not a measurement (a plain radiograph study takes a few minutes; each simulated
#: radiologist averages about 4, faster on the parts it reads most).
READ_MINUTES: dict[str, dict[str, float]] = {
    "radiologist_1": _UPPER_ARM,
    "radiologist_2": _HAND,
    "radiologist_3": dict.fromkeys(BODY_PARTS, 4.0),
}


@dataclass(frozen=True)
class RoomSetting:
    """A reading room's shift.

    Attributes:
        minutes: the shift's length (arrivals stop then; the worklist is read to its end).
        profile: the arrival profile (:data:`mura_env.triage.arrivals.ARRIVAL_PROFILES`).
        load: arrival rate over the radiologists' combined reading rate (< 1 for a queue that
            empties on average).
        urgency: an abnormal study's cost per minute of waiting, a normal one's being 1.
        readers: the radiologists (keys of :data:`READ_MINUTES`).
        read_shape, read_cv: the reading times' shape and coefficient of variation
            (:func:`mura_env.triage.read_times.draw_read_minutes`).
        deadline: minutes after arrival by which an abnormal study's read should start (None:
            no deadline); late_cost: an abnormal study's further cost per minute past it.
        fatigue: how much a read lengthens per hour a reader has read without rest
            (:class:`~mura_env.triage.room.ReadingRoom`; 0: no fatigue).
    """

    minutes: float = 480.0
    profile: str = "steady"
    load: float = 0.9
    urgency: float = 10.0
    readers: tuple[str, ...] = field(default_factory=lambda: tuple(READ_MINUTES))
    read_shape: str = "lognormal"
    read_cv: float = 0.5
    deadline: float | None = None
    late_cost: float = 10.0
    fatigue: float = 0.0

    def __post_init__(self) -> None:
        relative_rates(self.profile)  # raises on an unknown profile
        unknown = [r for r in self.readers if r not in READ_MINUTES]
        if unknown or not self.readers:
            raise ValueError(f"readers must be some of {list(READ_MINUTES)}, got "
                             f"{list(self.readers)}.")
        if self.read_shape not in READ_TIME_SHAPES:
            raise ValueError(f"read_shape must be one of {list(READ_TIME_SHAPES)}, got "
                             f"{self.read_shape!r}.")
        for name, low in (("minutes", 0.0), ("load", 0.0), ("read_cv", 0.0)):
            if not (np.isfinite(getattr(self, name)) and getattr(self, name) > low):
                raise ValueError(f"{name} must be finite and > {low:g}, got "
                                 f"{getattr(self, name)!r}.")
        if not (np.isfinite(self.urgency) and self.urgency >= 1):
            raise ValueError(f"urgency must be finite and >= 1, got {self.urgency!r}.")
        if self.deadline is not None and not (np.isfinite(self.deadline) and self.deadline >= 0):
            raise ValueError(f"deadline must be None or finite and >= 0, got {self.deadline!r}.")
        for name in ("late_cost", "fatigue"):
            if not (np.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {getattr(self, name)!r}.")

    def mean_minutes(self) -> np.ndarray:
        """float64 ``[7, R]``: each radiologist's mean reading time per body part
        (``BODY_PARTS`` order)."""
        return np.array([[READ_MINUTES[r][part] for r in self.readers] for part in BODY_PARTS])

    def arrival_rate(self, part_index: np.ndarray) -> float:
        """Arrivals per minute that make :attr:`load` on studies of the given body parts (int
        ``[n]``, indices into ``BODY_PARTS``): ``load * sum_r 1 / E[minutes of r]``."""
        mix = np.bincount(np.asarray(part_index), minlength=len(BODY_PARTS)) / len(part_index)
        return float(self.load * (1.0 / (mix @ self.mean_minutes())).sum())


@dataclass(frozen=True)
class TriageShift:
    """One drawn shift: the room to play and what a scheduler may know.

    Attributes:
        room: the :class:`~mura_env.triage.room.ReadingRoom` (fresh, nothing read yet).
        studies: int64 ``[m]``, each arrival's row among the studies it was drawn from.
        probability: float64 ``[m]``; labels: int64 ``[m]``; part_index: int64 ``[m]``.
        mean_minutes: float64 ``[m, R]``, each radiologist's mean reading time of each arrival.
        urgency: as in :class:`RoomSetting`; deadline: an abnormal study's deadline in minutes
            (``inf``: none); late_cost: its cost per minute past it.
    """

    room: ReadingRoom
    studies: np.ndarray
    probability: np.ndarray
    labels: np.ndarray
    part_index: np.ndarray
    mean_minutes: np.ndarray
    urgency: float
    deadline: float = math.inf
    late_cost: float = 0.0

    def expected_weight(self, arrivals: np.ndarray) -> np.ndarray:
        """float64 ``[k]``: the expected cost per minute of waiting, ``1 + (urgency - 1) p``,
        of the arrivals ``arrivals`` (int ``[k]``, indices into the shift)."""
        return 1.0 + (self.urgency - 1.0) * self.probability[arrivals]


def draw_shift(probability: np.ndarray, labels: np.ndarray, part_index: np.ndarray,
               setting: RoomSetting, rng: np.random.Generator) -> TriageShift:
    """A shift of ``setting`` whose arrivals are drawn from ``n`` studies.

    Args:
        probability: float ``[n]``, the classifier's P(abnormal) of each study.
        labels: int ``[n]`` (0/1); part_index: int ``[n]``, each study's body part.
        setting: the room; rng: draws the arrival times, then the studies, then the reading
            times.

    Returns:
        A :class:`TriageShift` whose room weighs an abnormal study's wait ``urgency`` times a
        normal one's, plus ``late_cost`` per minute past the setting's deadline.
    """
    probability = np.asarray(probability, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    part_index = np.asarray(part_index, dtype=np.int64)
    n = len(probability)
    if n == 0 or labels.shape != (n,) or part_index.shape != (n,):
        raise ValueError(f"probability, labels and part_index must be [n >= 1] each, got "
                         f"{probability.shape}, {labels.shape}, {part_index.shape}.")
    arrivals = poisson_arrivals(setting.arrival_rate(part_index), setting.minutes,
                                setting.profile, rng)
    studies = rng.integers(0, n, size=arrivals.size)
    mean = setting.mean_minutes()[part_index[studies]]
    minutes = draw_read_minutes(mean, setting.read_shape, setting.read_cv, rng)
    abnormal = labels[studies] == 1
    weights = np.where(abnormal, setting.urgency, 1.0)
    deadline = math.inf if setting.deadline is None else float(setting.deadline)
    late = setting.late_cost if setting.deadline is not None else 0.0
    room = ReadingRoom(arrivals, minutes, weights, np.where(abnormal, deadline, math.inf),
                       np.where(abnormal, late, 0.0), setting.fatigue)
    return TriageShift(room, studies, probability[studies], labels[studies],
                       part_index[studies], mean, setting.urgency, deadline, late)
