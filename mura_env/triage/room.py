"""A reading room over one shift, stepped from one decision to the next.

Studies arrive at given times and wait in one worklist (in arrival order). ``R`` readers each
read one study at a time, without interruption; a read of study ``i`` by reader ``r`` takes
``read_minutes[i, r]``. Whenever a reader is free and the worklist is not empty, someone must
say which waiting study that reader reads next (:meth:`ReadingRoom.next_decision`, then
:meth:`ReadingRoom.assign`). The shift ends when every study has been started.

The room keeps the cost of waiting: each study costs ``weight[i]`` per minute from its arrival
until its read starts (e.g. ``urgency`` for an abnormal study, 1 for a normal one), plus
``late_weights[i]`` per minute it still waits past its deadline (``deadlines[i]`` minutes after
its arrival), and the area under the worklist's length (the number waiting, integrated over
time). By Little's law the area
equals the sum of the waits once every study has started; both are kept separately, so a test can
hold the room to it.

Reader fatigue (``fatigue > 0``) lengthens reads: a reader's *strain* is the minutes it has read
without rest (each idle minute takes one minute off, down to 0), and a read started at strain
``s`` takes ``read_minutes[i, r] * (1 + fatigue * s / 60)``. Long uninterrupted reading slows
radiologists and lowers their accuracy (Krupinski et al., J Am Coll Radiol 2010; the review of
Stec et al., AJR 2018); this model keeps the slowing only, and its size is a parameter to study,
not a measured value (``fatigue=0.2``: an hour of uninterrupted reading makes the next read 20%
longer).
"""

from __future__ import annotations

import heapq
import math

import numpy as np


class ReadingRoom:
    """One shift of a reading room (see the module docstring).

    Args:
        arrivals: float ``[n]``, arrival minutes, non-decreasing, >= 0.
        read_minutes: float ``[n, R]``, each reader's reading time of each study (> 0).
        weights: float ``[n]``, each study's cost per minute of waiting (>= 0); default 1.
        deadlines: float ``[n]``, minutes after arrival by which each study's read should start
            (>= 0; ``inf``: none); default none.
        late_weights: float ``[n]``, each study's further cost per minute waited past its
            deadline (>= 0); default 0.
        fatigue: the share a read lengthens per hour of strain (>= 0; 0: no fatigue).

    Attributes:
        now: float, the current minute.
        queue: list of study indices waiting, in arrival order (position 0: the earliest).
        busy_until: float64 ``[R]``, when each reader finishes its current read (<= ``now``:
            free).
        start: float64 ``[n]``, when each study's read started (NaN until then).
        reader: int64 ``[n]``, who read it (-1 until then).
        taken: float64 ``[n]``, how long its read took (NaN until started; ``read_minutes``
            lengthened by fatigue).
        cost: the waiting cost accumulated so far (sum over studies of weight x minutes waited
            plus late weight x minutes waited past the deadline, up to ``now``).
        queue_area: the worklist's length integrated over time, up to ``now``.

    Raises:
        ValueError: arrays of the wrong shape, unsorted or negative arrivals, reading times
            <= 0, negative weights, deadlines or fatigue.
    """

    def __init__(self, arrivals: np.ndarray, read_minutes: np.ndarray,
                 weights: np.ndarray | None = None, deadlines: np.ndarray | None = None,
                 late_weights: np.ndarray | None = None, fatigue: float = 0.0) -> None:
        arrivals = np.asarray(arrivals, dtype=np.float64)
        read_minutes = np.asarray(read_minutes, dtype=np.float64)
        n = arrivals.size
        if arrivals.ndim != 1 or read_minutes.ndim != 2 or read_minutes.shape[0] != n \
                or read_minutes.shape[1] < 1:
            raise ValueError(f"arrivals must be [n] and read_minutes [n, R >= 1], got "
                             f"{arrivals.shape} and {read_minutes.shape}.")
        if n and (not np.isfinite(arrivals).all() or arrivals[0] < 0
                  or (np.diff(arrivals) < 0).any()):
            raise ValueError("arrivals must be finite, >= 0 and in non-decreasing order.")
        if not (np.isfinite(read_minutes).all() and (read_minutes > 0).all()):
            raise ValueError("reading times must be finite and > 0.")
        if not (np.isfinite(fatigue) and fatigue >= 0):
            raise ValueError(f"fatigue must be finite and >= 0, got {fatigue!r}.")
        self.fatigue = float(fatigue)
        weights = _per_study("weights", weights, n, 1.0)
        self.deadlines = _per_study("deadlines", deadlines, n, math.inf, finite=False)
        self.late_weights = _per_study("late_weights", late_weights, n, 0.0)
        self.arrivals, self.read_minutes, self.weights = arrivals, read_minutes, weights
        self.due = arrivals + self.deadlines  # when each study turns late
        self._dues: list[tuple[float, int]] = []  # (due, study) of waiting studies that can be late
        self._late = np.zeros(n, dtype=np.bool_)  # waiting past its deadline, counted
        self._late_weight = 0.0
        self._n_late = 0
        self.now = 0.0
        self.queue: list[int] = []
        self.busy_until = np.zeros(read_minutes.shape[1])
        self.start = np.full(n, np.nan)
        self.reader = np.full(n, -1, dtype=np.int64)
        self.taken = np.full(n, np.nan)
        self._strain = np.zeros(read_minutes.shape[1])  # at the end of each reader's last read
        self.cost = 0.0
        self.queue_area = 0.0
        self._next = 0  # the next study to arrive
        self._waiting_weight = 0.0

    @property
    def n_readers(self) -> int:
        """``R``."""
        return self.busy_until.size

    @property
    def waits(self) -> np.ndarray:
        """float64 ``[n]``: each study's minutes from arrival to the start of its read (NaN for a
        study not started yet)."""
        return self.start - self.arrivals

    def strain(self) -> np.ndarray:
        """float64 ``[R]``: each reader's strain now (minutes read without rest; see the module
        docstring), for a busy reader the strain its current read will end with."""
        return np.maximum(self._strain - np.maximum(self.now - self.busy_until, 0.0), 0.0)

    @property
    def done(self) -> bool:
        """Whether every study has been started."""
        return self._next == self.arrivals.size and not self.queue

    def next_decision(self) -> int | None:
        """Run the room forward (arrivals join the worklist, reads end) until a reader is free
        while studies wait.

        Returns:
            That reader (the lowest-numbered free one), or None once every study has been
            started (the shift is over).
        """
        arrivals, n = self.arrivals, self.arrivals.size
        while True:
            while self._next < n and arrivals[self._next] <= self.now:
                self.queue.append(self._next)
                self._waiting_weight += self.weights[self._next]
                if self.late_weights[self._next] > 0 and self.due[self._next] < math.inf:
                    heapq.heappush(self._dues, (float(self.due[self._next]), self._next))
                self._next += 1
            next_due = self._turn_late()
            if self.queue:
                free = np.flatnonzero(self.busy_until <= self.now)
                if free.size:
                    return int(free[0])
                next_free = float(self.busy_until.min())
            else:
                next_free = math.inf
            next_arrival = float(arrivals[self._next]) if self._next < n else math.inf
            until = min(next_free, next_arrival, next_due)
            if until == math.inf:
                return None
            self._advance(until)

    def _turn_late(self) -> float:
        """Count the waiting studies whose deadline has passed; returns the next deadline of a
        waiting study (``inf`` for none)."""
        dues = self._dues
        while dues and (dues[0][0] <= self.now or not math.isnan(self.start[dues[0][1]])):
            due, study = heapq.heappop(dues)
            if math.isnan(self.start[study]):  # still waiting: late from now on
                self._late[study] = True
                self._late_weight += self.late_weights[study]
                self._n_late += 1
        return dues[0][0] if dues else math.inf

    def _advance(self, until: float) -> None:
        """Move the clock to ``until``, adding the waiting cost and worklist area."""
        elapsed = until - self.now
        self.cost += (self._waiting_weight + self._late_weight) * elapsed
        self.queue_area += len(self.queue) * elapsed
        self.now = until

    def assign(self, reader: int, position: int) -> int:
        """Reader ``reader`` (free now) starts the study at ``position`` of the worklist.

        Returns:
            The study's index.

        Raises:
            ValueError: the reader is busy or unknown, or no study waits at ``position``.
        """
        if not 0 <= reader < self.n_readers or self.busy_until[reader] > self.now:
            raise ValueError(f"reader {reader!r} is not a free reader of the room now.")
        if not 0 <= position < len(self.queue):
            raise ValueError(f"position must name a waiting study, 0..{len(self.queue) - 1}, "
                             f"got {position!r}.")
        study = self.queue.pop(position)
        self._waiting_weight = max(self._waiting_weight - self.weights[study], 0.0) \
            if self.queue else 0.0
        if self._late[study]:
            self._late[study] = False
            self._n_late -= 1
            self._late_weight = max(self._late_weight - self.late_weights[study], 0.0) \
                if self._n_late else 0.0
        self.start[study] = self.now
        self.reader[study] = reader
        minutes = self.read_minutes[study, reader]
        if self.fatigue > 0:
            strain = max(self._strain[reader] - (self.now - self.busy_until[reader]), 0.0)
            minutes *= 1.0 + self.fatigue * strain / 60.0
            self._strain[reader] = strain + minutes
        self.taken[study] = minutes
        self.busy_until[reader] = self.now + minutes
        return study


def _per_study(name: str, values: np.ndarray | None, n: int, default: float,
               finite: bool = True) -> np.ndarray:
    """float64 ``[n]``: ``values`` (``default`` everywhere when None); ``ValueError`` unless
    ``[n]``, >= 0 and (``finite``) finite."""
    out = np.full(n, default) if values is None else np.asarray(values, dtype=np.float64)
    ok = out.shape == (n,) and not np.isnan(out).any() and (out >= 0).all() and (
        np.isfinite(out).all() or not finite)
    if not ok:
        raise ValueError(f"{name} must be [n] = [{n}] values >= 0"
                         f"{', finite' if finite else ''}.")
    return out
