"""The typed configuration of ``MuraTriage-v0``: which studies (``MuraWeighting-v0``'s
selection arguments), the reading room (:class:`~mura_env.triage.shifts.RoomSetting`'s fields)
and what the agent sees and pays."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from mura_env.common.checks import whole_number
from mura_env.triage.arrivals import relative_rates
from mura_env.triage.shifts import READ_MINUTES, RoomSetting
from mura_env.weighting.config import WeightingConfig

#: Queued studies the observation shows and the action can pick from, by default.
DEFAULT_QUEUE_SLOTS = 32
#: What the env does with an action that names a closed slot: refuse it (``ValueError``), or
#: read the earliest waiting study instead (for libraries that sample the whole action space).
MASKED_ACTIONS = ("raise", "earliest")
#: The fit behind the studies' probability by default: the worklist's stacking combiner,
#: fitted on tune (a tune study's probability from the cross-fitted model that did not see it).
DEFAULT_COMBINER = "agents.worklist.methods:routing_inputs"
#: Cost units (weighted minutes of waiting) per unit of reward: rewards are weighted hours.
COST_PER_REWARD = 60.0


@dataclass(frozen=True)
class TriageConfig(WeightingConfig):
    """The arguments of ``MuraTriage-v0`` (see :class:`mura_env.triage.env.MuraTriageEnv`),
    checked when made: the study selection of
    :class:`~mura_env.weighting.config.WeightingConfig` (``split``, ``models``, ``body_parts``,
    ``logits``, ``reference_table``; its ensemble-mapping and reward fields are not read), plus:

    Attributes:
        minutes: the shift's length (arrivals stop then; the worklist is read to its end).
        profile: the arrival profile (``steady``, ``surge``;
            :data:`mura_env.triage.arrivals.ARRIVAL_PROFILES`).
        load: arrival rate over the radiologists' combined reading rate (> 0; < 1 for a
            worklist that empties on average).
        urgency: an abnormal study's cost per minute of waiting, a normal one's being 1 (>= 1).
        readers: the radiologists, keys of :data:`mura_env.triage.shifts.READ_MINUTES` and
            reader columns of the table (their reads score wrong reads); None: all three.
        read_shape, read_cv: the reading times' shape (``lognormal``, ``exponential``) and
            coefficient of variation.
        deadline: minutes after arrival by which an abnormal study's read should start (None:
            none); late_cost: its further cost per minute past the deadline.
        fatigue: how much a read lengthens per hour a radiologist has read without rest (0:
            none; :class:`mura_env.triage.room.ReadingRoom`).
        wrong_read_cost: the cost of a read that disagrees with the label, in weighted minutes
            of waiting (>= 0).
        queue_slots: ``Q``, the queued studies the observation shows and the action picks from
            (the earliest ``Q``; int >= 1).
        masked_action: ``"raise"`` (a closed slot is refused with ``ValueError``) or
            ``"earliest"`` (the earliest waiting study is read instead), one of
            :data:`MASKED_ACTIONS`.
        combiner: ``"module:function"``, the fit behind the studies' probability (as
            :class:`~mura_env.worklist.config.WorklistConfig`'s ``combiner``; default
            :data:`DEFAULT_COMBINER`).

    Raises:
        ValueError: any argument outside its range (the message names it).
    """

    minutes: float = 480.0
    profile: str = "steady"
    load: float = 0.9
    urgency: float = 10.0
    readers: tuple[str, ...] | None = None
    read_shape: str = "lognormal"
    read_cv: float = 0.5
    deadline: float | None = None
    late_cost: float = 10.0
    fatigue: float = 0.0
    wrong_read_cost: float = 0.0
    queue_slots: int = DEFAULT_QUEUE_SLOTS
    masked_action: str = "raise"
    combiner: str = DEFAULT_COMBINER
    env_id: ClassVar[str] = "MuraTriage-v0"

    def __post_init__(self) -> None:
        super().__post_init__()
        set_ = object.__setattr__
        if self.readers is not None:
            readers = (self.readers,) if isinstance(self.readers, str) else tuple(self.readers)
            set_(self, "readers", readers)
        relative_rates(self.profile)
        self.room_setting()  # checks the room's fields, naming the bad one
        if not (isinstance(self.wrong_read_cost, (int, float)) and math.isfinite(
                self.wrong_read_cost) and self.wrong_read_cost >= 0):
            raise ValueError(f"wrong_read_cost must be finite and >= 0, got "
                             f"{self.wrong_read_cost!r}.")
        set_(self, "queue_slots", whole_number("queue_slots", self.queue_slots))
        if self.masked_action not in MASKED_ACTIONS:
            raise ValueError(f"masked_action must be one of {list(MASKED_ACTIONS)}, got "
                             f"{self.masked_action!r}.")
        module, _, function = str(self.combiner).partition(":")
        if not (isinstance(self.combiner, str) and module and function):
            raise ValueError(f"combiner must name a function as 'module:function', got "
                             f"{self.combiner!r}.")

    @property
    def reader_ids(self) -> tuple[str, ...]:
        """The radiologists of the room (``readers``, or every key of ``READ_MINUTES``)."""
        return self.readers if self.readers is not None else tuple(READ_MINUTES)

    @property
    def training_sampling(self) -> str:
        """Shifts are always drawn at random (arrivals are a random process)."""
        return "random"

    def room_setting(self) -> RoomSetting:
        """The :class:`~mura_env.triage.shifts.RoomSetting` of these arguments."""
        return RoomSetting(minutes=float(self.minutes), profile=self.profile,
                           load=float(self.load), urgency=float(self.urgency),
                           readers=self.reader_ids, read_shape=self.read_shape,
                           read_cv=float(self.read_cv),
                           deadline=None if self.deadline is None else float(self.deadline),
                           late_cost=float(self.late_cost), fatigue=float(self.fatigue))
