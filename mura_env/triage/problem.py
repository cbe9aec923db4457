"""The triage problem behind ``MuraTriage-v0``: a table's studies with the classifier's
probability and the radiologists' reads, shifts of the reading room drawn from them, and what the
agent sees, may do and pays at each decision.

:class:`TriageProblem` holds what every episode shares; :class:`TriageEpisode` is one shift in
play. The single env and the native vector env (:mod:`mura_env.triage.env`) both step episodes
through the problem, so they agree decision for decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from mura_env.readers import missing_reader_message
from mura_env.triage.config import COST_PER_REWARD, TriageConfig
from mura_env.triage.shifts import TriageShift, draw_shift
from mura_env.weighting.problem import WeightingProblem
from mura_env.worklist.problem import combiner_values

#: Minutes per unit of the observation's waiting and busy times.
MINUTES_SCALE = 10.0
#: Minutes per unit of the observation's strain.
STRAIN_SCALE = 60.0
#: Values per queued study in the observation besides the study's own (open, probability,
#: minutes waited).
SLOT_HEAD = 3
#: Upper bound of the observation's unbounded values (times, strain, worklist length), which are
#: clipped to it.
OBS_HIGH = 1e4
#: Most draws :meth:`TriageProblem.start` makes to find a shift with at least one arrival.
MAX_DRAWS = 1000


@dataclass
class TriageEpisode:
    """One shift in play.

    Attributes:
        shift: the :class:`~mura_env.triage.shifts.TriageShift` (its room moves as the episode
            goes); seed: the seed it was drawn with.
        reader: the radiologist who is free now and waits for a study (None: the shift is over).
        charged: the cost charged in rewards so far (waiting plus wrong reads, cost units).
        wrong_reads: reads that disagreed with the label so far.
    """

    shift: TriageShift
    seed: int
    reader: int | None
    charged: float = 0.0
    wrong_reads: int = 0

    @property
    def done(self) -> bool:
        """Whether every study of the shift has been started."""
        return self.reader is None


class TriageProblem(WeightingProblem):
    """The studies, readers, spaces and costs of one :class:`TriageConfig`.

    Attributes (besides those of :class:`~mura_env.weighting.problem.WeightingProblem`):
        readers: the ``R`` radiologists' ids.
        reads: read-only int8 ``[n, R]``, each radiologist's read of each selected study.
        probability: read-only float64 ``[n]``, the classifier's P(abnormal) of each study (the
            config's ``combiner``, fitted on tune).
        setting: the :class:`~mura_env.triage.shifts.RoomSetting`.
        observation_space: ``Box(float32, (3R + 2 + Q (3 + 2K + 7),))`` (see
            :meth:`observe`); action_space: ``Discrete(Q)``.

    Raises:
        KeyError: the table lacks one of the readers' columns.
    """

    config_class = TriageConfig

    def __init__(self, config: TriageConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        cfg = self.config
        available = self.table.reader_ids
        missing = [r for r in cfg.reader_ids if r not in available]
        if missing:
            raise KeyError(missing_reader_message(available, missing[0]))
        self.readers = cfg.reader_ids
        selected = self.table.select(split=cfg.split, body_parts=cfg.body_parts)
        reads = np.column_stack([selected.reads(r) for r in self.readers]).astype(np.int8)
        reads.flags.writeable = False
        self.reads = reads
        self.probability = combiner_values(self.table, cfg.combiner, cfg.models, self.readers,
                                           0.0, self.studies.study_ids, cfg.split)[0]
        self.setting = cfg.room_setting()
        n_readers, slots = len(self.readers), cfg.queue_slots
        base = self.observation_space  # the study: logit pairs and body part
        self.slot_size = SLOT_HEAD + base.shape[0]
        self.head_size = 3 * n_readers + 2
        head_high = np.concatenate([np.ones(n_readers), np.full(2 * n_readers + 2, OBS_HIGH)])
        slot_low = np.concatenate([[0.0, 0.0, 0.0], base.low])
        slot_high = np.concatenate([[1.0, 1.0, OBS_HIGH], base.high])
        low = np.concatenate([np.zeros(self.head_size), np.tile(slot_low, slots)])
        high = np.concatenate([head_high, np.tile(slot_high, slots)])
        self.observation_space = spaces.Box(low.astype(np.float32), high.astype(np.float32),
                                            dtype=np.float32)
        self.action_space = spaces.Discrete(slots)

    @property
    def n_readers(self) -> int:
        """``R``."""
        return len(self.readers)

    @property
    def slot_layout(self) -> tuple[int, int]:
        """``(head, slot)``: the observation's values before the slots and per slot (see
        :meth:`observe`), for policies that score every slot alike."""
        return self.head_size, self.slot_size

    @property
    def queue_slots(self) -> int:
        """``Q``."""
        return self.config.queue_slots

    def action_contents(self) -> str:
        """What one action holds, in words (for error messages)."""
        return (f"one integer in [0, {self.queue_slots - 1}]: the position in the worklist "
                "(0: the earliest waiting study) of the study the free radiologist reads next")

    def start(self, seed: int) -> TriageEpisode:
        """A new episode: the shift drawn with ``numpy.random.default_rng(seed)`` (drawn again
        with the same generator while it has no arrival), run to its first decision.

        Raises:
            RuntimeError: no shift with an arrival in :data:`MAX_DRAWS` draws (a room whose
                arrival rate is far too low for its shift length).
        """
        rng = np.random.default_rng(seed)
        studies = self.studies
        for _ in range(MAX_DRAWS):
            shift = draw_shift(self.probability, studies.labels, studies.body_part_index,
                               self.setting, rng)
            reader = shift.room.next_decision()
            if reader is not None:
                return TriageEpisode(shift, int(seed), reader)
        raise RuntimeError(f"no shift of {self.setting.minutes:g} minutes with an arrival in "
                           f"{MAX_DRAWS} draws; raise load or minutes.")

    def action_masks(self, episode: TriageEpisode) -> np.ndarray:
        """bool ``[Q]``: the slots that hold a waiting study (none once the shift is over)."""
        return np.arange(self.queue_slots) < (0 if episode.done else len(
            episode.shift.room.queue))

    def observe(self, episode: TriageEpisode, out: np.ndarray | None = None) -> np.ndarray:
        """The observation of ``episode`` now, float32 ``[3R + 2 + Q F]`` with
        ``F = 3 + 2K + 7``, written into ``out`` when given (else a new array):

        * the free radiologist, one-hot ``[R]`` (all 0 once the shift is over);
        * each radiologist's minutes until its current read ends, / 10 ``[R]``;
        * each radiologist's strain (minutes read without rest), / 60 ``[R]``;
        * the time of day, minutes / shift length (past 1 while the worklist is read after
          the last arrival), and the worklist's length / ``Q``;

        times, strains and the length clipped to :data:`OBS_HIGH`;
        * per slot ``q < Q``: 1 if it holds a study (the ``q``-th earliest waiting), that
          study's probability, its minutes waited / 10, and its logit pairs and body part
          one-hot as ``MuraWeighting-v0`` shows them; all 0 for an empty slot.
        """
        obs = np.zeros(self.observation_space.shape, np.float32) if out is None else out
        if out is not None:
            obs.fill(0.0)
        room, n_readers = episode.shift.room, self.n_readers
        if episode.reader is not None:
            obs[episode.reader] = 1.0
        obs[n_readers:2 * n_readers] = np.maximum(room.busy_until - room.now, 0.0) / MINUTES_SCALE
        obs[2 * n_readers:3 * n_readers] = room.strain() / STRAIN_SCALE
        obs[3 * n_readers] = room.now / self.setting.minutes
        obs[3 * n_readers + 1] = len(room.queue) / self.queue_slots
        waiting = room.queue[:self.queue_slots]
        if waiting:
            shift = episode.shift
            slots = obs[self.head_size:].reshape(self.queue_slots, self.slot_size)
            m = len(waiting)
            slots[:m, 0] = 1.0
            slots[:m, 1] = shift.probability[waiting]
            slots[:m, 2] = (room.now - room.arrivals[waiting]) / MINUTES_SCALE
            slots[:m, SLOT_HEAD:] = self.studies.observations[shift.studies[waiting]]
            np.minimum(slots[:m, 2], OBS_HIGH, out=slots[:m, 2])
        np.minimum(obs[:self.head_size], OBS_HIGH, out=obs[:self.head_size])
        return obs

    def check_action(self, episode: TriageEpisode, action: Any) -> int:
        """The slot ``action`` names, as an int: a whole number in ``[0, Q)`` naming a waiting
        study; a closed slot becomes 0 (the earliest study) with ``masked_action="earliest"``.

        Raises:
            ValueError: not a whole number in ``[0, Q)``, or (``masked_action="raise"``) a slot
                without a waiting study.
            RuntimeError: the shift is over.
        """
        if episode.done:
            raise RuntimeError("The shift is over: call reset() before step().")
        a = np.asarray(action)
        if a.shape not in ((), (1,)) or a.dtype.kind not in "iuf" or not np.isfinite(a).all() \
                or float(a.ravel()[0]) != round(float(a.ravel()[0])):
            raise ValueError(f"action must be {self.action_contents()}; got {action!r}.")
        slot = int(a.ravel()[0])
        if not 0 <= slot < self.queue_slots:
            raise ValueError(f"action must be {self.action_contents()}; got {slot}.")
        waiting = len(episode.shift.room.queue)
        if slot >= waiting:
            if self.config.masked_action == "earliest":
                return 0
            raise ValueError(f"action {slot} names an empty slot: {waiting} "
                             f"{'study waits' if waiting == 1 else 'studies wait'} (open slots "
                             f"0..{min(waiting, self.queue_slots) - 1}; see action_masks() or "
                             "info['action_mask']). Pass masked_action='earliest' to read the "
                             "earliest study instead.")
        return slot

    def act(self, episode: TriageEpisode, slot: int) -> dict[str, Any]:
        """The free radiologist starts the study at ``slot`` (checked by :meth:`check_action`);
        the room then runs to its next decision.

        Returns:
            ``reward`` (float: minus the cost since the last decision, waiting and wrong reads,
            in units of :data:`~mura_env.triage.config.COST_PER_REWARD`), ``done`` (bool),
            ``study`` (int: the study's index in the shift), ``reader`` (int: who reads it),
            ``wait`` (minutes it waited), ``read_minutes`` (how long the read takes),
            ``label``, ``probability``, ``correct`` (the read agrees with the label),
            ``time`` (the minute of the next decision, or the last start) and ``queue_length``
            (studies waiting then).
        """
        shift, reader = episode.shift, episode.reader
        room = shift.room
        study = room.assign(reader, slot)
        row = int(shift.studies[study])
        label = int(shift.labels[study])
        correct = bool(self.reads[row, reader] == label)
        episode.wrong_reads += not correct
        episode.reader = room.next_decision()
        cost = room.cost + self.config.wrong_read_cost * episode.wrong_reads
        reward = -(cost - episode.charged) / COST_PER_REWARD
        episode.charged = cost
        return {"reward": reward, "done": episode.done, "study": study, "reader": reader,
                "wait": float(room.start[study] - room.arrivals[study]),
                "read_minutes": float(room.taken[study]), "label": label,
                "probability": float(shift.probability[study]), "correct": correct,
                "time": room.now, "queue_length": len(room.queue)}

    def shift_cost(self, shift: TriageShift) -> dict[str, float]:
        """A played shift's costs: ``waiting`` (the room's, deadlines included), ``wrong_reads``
        (their count), ``total`` (waiting plus ``wrong_read_cost`` per wrong read) and
        ``read_accuracy`` (share of started reads that agree with the label)."""
        room = shift.room
        started = room.reader >= 0
        rows = shift.studies[started]
        correct = self.reads[rows, room.reader[started]] == shift.labels[started]
        wrong = int((~correct).sum())
        return {"waiting": float(room.cost), "wrong_reads": float(wrong),
                "total": float(room.cost + self.config.wrong_read_cost * wrong),
                "read_accuracy": float(correct.mean()) if correct.size else float("nan")}
