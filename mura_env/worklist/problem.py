"""The worklist problem behind ``MuraWorklist-v0``: the weighting problem plus readers with a
capacity per shift, and the rule that sends a study to one of them.

:class:`WorklistProblem` extends :class:`~mura_env.weighting.problem.WeightingProblem` with the
readers' reads, the shift sampler and the observation of a shift's state; :class:`ShiftState` holds
the state of a batch of shifts (one per sub-environment) and steps them together. Both the
single env and the vector env (:mod:`mura_env.worklist.env`) run it.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import pandas as pd
from gymnasium import spaces
from gymnasium.envs.registration import load_env_creator

from mura_env.constants import BODY_PARTS
from mura_env.deferral.problem import defer_reward
from mura_env.readers import missing_reader_message
from mura_env.weighting.problem import WeightingProblem
from mura_env.worklist.config import WorklistConfig
from mura_env.worklist.shifts import ShiftSampler

#: ``answered_by`` of a study the ensemble answered.
ENSEMBLE = -1
#: The combiner fits of each loaded table (the table is read-only once loaded): table ->
#: (combiner, models, readers, read_cost) -> what the combiner returned for every split of the
#: table whose logits are not hidden. Problems made again for the same table (one per
#: evaluation, one per split) fit once.
_COMBINER_FITS: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Any]] = (
    weakref.WeakKeyDictionary())


def route(scores: np.ndarray, capacity_left: np.ndarray) -> np.ndarray:
    """Who answers each study: the reader with the highest positive score if that reader has
    capacity left, else the ensemble.

    Args:
        scores: float ``[n, R]``, one score per reader (the action's last ``R`` entries).
        capacity_left: int ``[n, R]``, each reader's reads left in the shift.

    Returns:
        int64 ``[n]``: the reader's index, or :data:`ENSEMBLE` (-1). Ties between readers go
        to the first; a best reader who is full is not replaced by the next one.
    """
    n = len(scores)
    if scores.shape[1] == 0:
        return np.full(n, ENSEMBLE, dtype=np.int64)
    best, top = best_reader(scores)
    return routed(best, top, np.asarray(capacity_left)[np.arange(n), best] > 0)


def routed(best: np.ndarray, top: np.ndarray, free: np.ndarray) -> np.ndarray:
    """The routing rule itself: the best reader answers when its score is positive and it has
    capacity left, else the ensemble.

    Args:
        best: int ``[n]``, each study's best reader; top: float ``[n]``, that reader's score
            (:func:`best_reader`); free: bool ``[n]``, whether that reader has reads left.

    Returns:
        int64 ``[n]``: ``best`` or :data:`ENSEMBLE` (-1).
    """
    return np.where((top > 0) & free, best, ENSEMBLE)


def best_reader(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's highest score and its column (the first of equal ones, as ``argmax``).

    Args:
        scores: float ``[n, R]`` (``R >= 1``).

    Returns:
        ``(best int64 [n], top [n] in scores' dtype)``: ``best == scores.argmax(axis=1)`` and
        ``top == scores.max(axis=1)`` (up to the sign of a zero) where a row has no NaN; a row
        with a NaN has ``top`` NaN.
    """
    # one pass per reader over contiguous rows beats argmax over a short last axis
    columns = np.ascontiguousarray(scores.T)
    top = columns[0]
    best = np.zeros(len(scores), dtype=np.int64)
    for j in range(1, len(columns)):
        column = columns[j]
        np.putmask(best, column > top, j)
        top = np.maximum(top, column)
    return best, top


def combiner_values(table: Any, combiner: str, models: tuple[str, ...] | None,
                    readers: tuple[str, ...], read_cost: float, study_ids: np.ndarray,
                    split: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """What the combiner ``"module:function"`` (by default the worklist methods' stacking and
    reader skill, named by entry point because the agents package builds on this one) fitted on
    ``table``'s tune studies gives the studies ``study_ids``.

    The combiner is called once per table, combiner, members, readers and cost (cached while the
    table lives), on every split of the table whose logits are not hidden: a study's values do
    not depend on the split asked for.

    Returns:
        Read-only ``(probability float64 [n], gains float64 [n, R])`` of the studies, in the
        order of ``study_ids``.

    Raises:
        ValueError: the combiner cannot be loaded, or returns no values for some study (of
            ``split``, named in the message).
    """
    fits = _COMBINER_FITS.setdefault(table, {})
    key = (combiner, models, readers, read_cost)
    if key not in fits:
        try:
            function = load_env_creator(combiner)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"combiner {combiner!r} cannot be loaded ({e}); expected "
                             "'module:function' of an importable module.") from e
        members = table.select(models=models)
        splits = members.studies["split"].to_numpy()
        hidden = set(splits[~np.isfinite(members.logits).all(axis=(1, 2))])
        usable = tuple(sorted(set(splits) - hidden))  # a split with hidden logits is not scored
        fits[key] = function(members, usable, readers, read_cost)
    ids, probability, gains = fits[key]
    rows = pd.Index(ids).get_indexer(study_ids)
    if (rows < 0).any():
        raise ValueError(f"combiner {combiner!r} returned no values for some studies of split "
                         f"{split!r}; it must answer every study of the splits it is given.")
    probability, gains = probability[rows], gains[rows]
    for array in (probability, gains):
        array.flags.writeable = False
    return probability, gains


class WorklistProblem(WeightingProblem):
    """The studies, reads, spaces and reward of one :class:`WorklistConfig`.

    Attributes (besides those of :class:`~mura_env.weighting.problem.WeightingProblem`):
        readers: the ids of the ``R`` readers of the shift.
        reads: read-only int8 ``[n, R]``, each reader's read of each selected study.
        reader_correct: read-only bool ``[n, R]``.
        capacities: int64 ``[R]``, each reader's reads per shift.
        sampler: the :class:`~mura_env.worklist.shifts.ShiftSampler` of the scenario.
        observation_space: ``Box(float32, (2K + 7 + R + 1 [+ 7] [+ R],))``: the study as
            in ``MuraWeighting-v0``, each reader's share of capacity left, the share of the
            shift left, (``observe_mix``) the body-part mix of the shift so far and
            (``observe_gains``) each reader's estimated gain for the study.
        action_space: ``Box(-1, 1, (K + R,))`` (``action="weights"``: ``K`` preferences, then
            one score per reader) or ``Discrete(R + 1)`` (``action="routing"``: 0 the
            ensemble answers, ``r + 1`` reader ``r`` reads).
        ensemble_probability, gains: with ``action="routing"`` or ``observe_gains``, float64
            ``[n]`` and ``[n, R]`` (read-only): the stacking ensemble's P(abnormal) and each
            reader's estimated gain per study, fitted on tune by the config's ``combiner``
            (default :func:`agents.worklist.methods.routing_inputs`); otherwise None.

    Raises:
        KeyError: the table lacks a reader named in ``readers``, or has no reader column.
        ValueError: capacities that do not match the readers.
    """

    config_class = WorklistConfig

    def __init__(self, config: WorklistConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        cfg = self.config
        available = self.table.reader_ids
        readers = cfg.readers if cfg.readers is not None else available
        missing = [r for r in readers if r not in available]
        if missing or not readers:
            raise KeyError(missing_reader_message(available, missing[0] if missing else None))
        self.readers = tuple(readers)
        selected = self.table.select(split=cfg.split, body_parts=cfg.body_parts)
        reads = np.column_stack([selected.reads(r) for r in self.readers]).astype(np.int8)
        reads.flags.writeable = False
        self.reads = reads
        correct = reads == self.studies.labels[:, None]
        correct.flags.writeable = False
        self.reader_correct = correct
        self.capacities = cfg.capacities(len(self.readers))
        self.sampler = ShiftSampler(self.studies.body_part_index, cfg.scenario,
                                    cfg.concentration)
        self.ensemble_probability: np.ndarray | None = None
        self.gains: np.ndarray | None = None
        if cfg.uses_combiner:
            self._fit_combiner()
        n_readers, base = len(self.readers), self.observation_space
        extra = n_readers + 1 + (len(BODY_PARTS) if cfg.observe_mix else 0)
        low = [base.low, np.zeros(extra, dtype=np.float32)]
        high = [base.high, np.ones(extra, dtype=np.float32)]
        if cfg.observe_gains:  # skill - confidence - cost: in [-1 - cost, 0.5]
            low.append(np.full(n_readers, -1.0 - cfg.read_cost, dtype=np.float32))
            high.append(np.full(n_readers, 0.5, dtype=np.float32))
        self.observation_space = spaces.Box(np.concatenate(low), np.concatenate(high),
                                            dtype=np.float32)
        if self.routing:
            self.action_space = spaces.Discrete(n_readers + 1)
        else:
            self.action_space = spaces.Box(-1.0, 1.0, shape=(self.n_models + n_readers,),
                                           dtype=np.float32)
        self._prepare_step_tables()

    def _fit_combiner(self) -> None:
        """Set :attr:`ensemble_probability` and :attr:`gains` of the selected studies from the
        config's ``combiner`` (:func:`combiner_values`)."""
        cfg = self.config
        self.ensemble_probability, self.gains = combiner_values(
            self.table, cfg.combiner, cfg.models, self.readers, cfg.read_cost,
            self.studies.study_ids, cfg.split)

    def _prepare_step_tables(self) -> None:
        """Lookup tables that keep :meth:`answer` and :meth:`observe` to a few 1-D NumPy
        operations per step (gathers from them give exactly the values computed in full)."""
        n_readers, size = self.n_readers, self.config.shift_size
        # observation rows with the study's part filled in and the rest 0: one gather
        base = self.studies.observations
        template = np.zeros((self.n_studies, self.observation_space.shape[0]), np.float32)
        template[:, :base.shape[1]] = base
        if self.config.observe_gains:
            assert self.gains is not None
            template[:, -n_readers:] = self.gains
        template.flags.writeable = False
        self._obs_template = template
        self._capacity_col = base.shape[1]
        self._left_col = base.shape[1] + n_readers
        if self.routing:
            self._prepare_routing_tables()
        # per reader, float32 [capacity + 1]: the share of capacity left for each count left
        scale = np.where(self.capacities > 0, 1.0 / np.maximum(self.capacities, 1), 0.0)
        self._capacity_share = tuple(
            (np.arange(c + 1, dtype=np.int64) * scale[j]).astype(np.float32)
            for j, c in enumerate(self.capacities.tolist()))
        # float32 [N + 1]: the share of the shift left at each position
        self._left_share = ((size - np.arange(size + 1, dtype=np.int64)) / size
                            ).astype(np.float32)
        self._reads_flat = self.reads.reshape(-1)  # reads[i, r] == _reads_flat[i * R + r]
        # reader_correct rows packed into one word each (up to 8 readers): a 1-D gather
        width = next((w for w in (1, 2, 4, 8) if w >= n_readers), 0)
        self._correct_words: np.ndarray | None = None
        if width:
            padded = np.zeros((self.n_studies, width), dtype=np.bool_)
            padded[:, :n_readers] = self.reader_correct
            self._correct_words = padded.view(f"u{width}").reshape(-1)

    def _prepare_routing_tables(self) -> None:
        """Per study, what each answer of the routing action gives: the ensemble's
        probability, prediction (``p > 0.5``) and reward, and each reader's reward."""
        assert self.ensemble_probability is not None
        p = self.ensemble_probability
        labels = self._labels8
        prediction = (p > 0.5).astype(np.int8)
        self._routing_p32 = p.astype(np.float32)
        self._routing_prediction = prediction
        self._routing_correct = prediction == labels
        self._routing_reward = np.asarray(self.reward_fn(p, prediction, labels),
                                          dtype=np.float64)
        self._read_reward_flat = np.column_stack([
            np.asarray(defer_reward(self.reward_fn, self.reads[:, r], labels,
                                    self.config.read_cost), dtype=np.float64)
            for r in range(self.n_readers)]).reshape(-1)
        self._no_weights = np.zeros(self.n_models, dtype=np.float32)

    @property
    def n_readers(self) -> int:
        """``R``, the number of readers."""
        return len(self.readers)

    @property
    def routing(self) -> bool:
        """Whether the action says who answers (``action="routing"``)."""
        return self.config.action == "routing"

    def action_contents(self) -> str:
        """What one action holds, in words (for error messages)."""
        if self.routing:
            return (f"one integer in [0, {self.n_readers}]: 0 the ensemble answers, r + 1 "
                    f"reader r of {list(self.readers)} reads")
        return (f"one preference per model {list(self.studies.model_names)}, then one score "
                f"per reader {list(self.readers)} (the highest positive one reads the study)")

    def check_actions(self, actions: Any, n: int) -> np.ndarray:
        """Validate a batch of actions (see :meth:`WeightingProblem.check_actions`); with
        ``action="routing"``: whole numbers in ``[0, R]``, shape ``[n]`` (or ``[n, 1]``).

        Returns:
            float ``[n, K + R]`` clipped to [-1, 1], or int64 ``[n]`` (routing).

        Raises:
            ValueError: wrong shape, non-numeric, NaN or inf, or (routing) not a whole number
                in ``[0, R]``.
        """
        if not self.routing:
            return super().check_actions(actions, n)
        a = actions if isinstance(actions, np.ndarray) else np.asarray(actions)
        if a.shape == (n, 1):
            a = a[:, 0]
        if a.shape != (n,):
            raise ValueError(f"actions must have shape (num_envs,) = ({n},): "
                             f"{self.action_contents()} per env; got shape {a.shape}.")
        if a.dtype.kind not in "iu":
            whole = a.dtype.kind == "f" and bool(np.all(np.isfinite(a))) and bool(
                np.all(a == np.rint(a)))
            if not whole:
                raise ValueError(f"actions must be whole numbers ({self.action_contents()}), "
                                 f"got {a!r}.")
        if a.dtype != np.int64:
            a = a.astype(np.int64)
        if n and (a.min() < 0 or a.max() > self.n_readers):
            raise ValueError(f"actions must be in [0, {self.n_readers}] "
                             f"({self.action_contents()}), got {a!r}.")
        return a

    def action_masks(self, state: ShiftState) -> np.ndarray:
        """bool ``[E, R + 1]``: the routing actions open to each shift (the ensemble always;
        reader ``r`` while it has reads left).

        Raises:
            ValueError: the problem's action is not ``routing``.
        """
        if not self.routing:
            raise ValueError("only action='routing' has an action mask.")
        mask = np.ones((len(state.position), self.n_readers + 1), dtype=np.bool_)
        mask[:, 1:] = state.capacity_left > 0
        return mask

    def new_shifts(self, n_shifts: int, rng: np.random.Generator, cursor: int = 0
                   ) -> tuple[np.ndarray, int]:
        """The study rows of ``n_shifts`` new shifts: drawn by the scenario (``sampling
        ="random"``) or the next ``shift_size`` studies in table order from ``cursor``
        (``"sweep"``).

        Returns:
            ``(rows int64 [n_shifts, shift_size], the sweep's next cursor)``.
        """
        size = self.config.shift_size
        if self.config.sampling == "sweep":
            flat = (cursor + np.arange(n_shifts * size, dtype=np.int64)) % self.n_studies
            return flat.reshape(n_shifts, size), int((cursor + n_shifts * size) % self.n_studies)
        return self.sampler.draw(n_shifts, size, rng), cursor

    def observe(self, state: ShiftState) -> np.ndarray:
        """float32 ``[E, obs]`` (a new C-ordered array): each shift's current study and state
        (see the class)."""
        obs = self._obs_template.take(state.current(), axis=0)
        c, r = self._capacity_col, self._left_col
        left = state.capacity_left.T  # [R, E]: contiguous rows in the state's layout
        for j, share in enumerate(self._capacity_share):
            obs[:, c + j] = share.take(left[j])
        obs[:, r] = self._left_share.take(state.position)
        if self.config.observe_mix:
            counts = state.part_counts.T  # [7, E], contiguous rows
            obs[:, r + 1:r + 1 + len(BODY_PARTS)] = (
                counts / np.maximum(counts.sum(axis=0), 1)).astype(np.float32).T
        return obs

    def reader_correct_of(self, rows: np.ndarray) -> np.ndarray:
        """bool ``[m, R]``: ``reader_correct`` of the study rows ``rows`` (int ``[m]``)."""
        words = self._correct_words
        if words is None:
            return self.reader_correct.take(rows, axis=0)
        return words.take(rows).view(np.bool_).reshape(len(rows), -1)[:, :self.n_readers]

    def answer(self, state: ShiftState, actions: np.ndarray) -> dict[str, np.ndarray]:
        """Answer each shift's current study with ``actions`` and spend the read.

        Args:
            state: the shifts (changed in place: capacity spent, position moved on).
            actions: float ``[E, K + R]`` (or int64 ``[E]`` with ``action="routing"``),
                already checked by :meth:`check_actions`.

        Returns:
            dict of new arrays with ``study_index`` int64 ``[E]``; the ensemble's ``weights``
            float32 ``[E, K]``, ``probability`` float32, ``ensemble_prediction`` int8 and
            ``ensemble_correct`` bool ``[E]``; ``answered_by`` int64 ``[E]`` (reader index or
            -1), ``prediction`` int8 (the answer that counts), ``label`` int8, ``correct``
            bool, ``reader_correct`` bool ``[E, R]``, ``capacity_left`` int64 ``[E, R]``
            (after this study), ``reward`` float64 ``[E]`` and ``done`` bool ``[E]`` (the
            shift's last study). With ``action="routing"`` the ensemble is the stacking
            combiner: ``weights`` are 0 (it is not a weighting), and a reader asked for
            without reads left leaves the study to the ensemble.
        """
        if self.routing:
            return self._answer_routing(state, actions)
        k = self.n_models
        rows = state.current()
        out = self.evaluate(rows, actions[:, :k])
        best, top = best_reader(actions[:, k:])
        who = routed(best, top, state.left_of(best) > 0)
        envs = np.flatnonzero(who >= 0)
        label = out["label"]
        reward = out["reward"]  # a new array: evaluate's own
        prediction = out["prediction"].copy()
        if envs.size:
            readers = best.take(envs)
            read_value = self._reads_flat.take(rows.take(envs) * self.n_readers + readers)
            prediction[envs] = read_value
            reward[envs] = defer_reward(self.reward_fn, read_value, label.take(envs),
                                        self.config.read_cost)
            state.spend(envs, readers)
        capacity_left = state.capacity_left.copy(order="K")
        done = state.advance(rows, self.studies.body_part_index)
        return {"study_index": rows, "weights": out["weights"],
                "probability": out["probability"], "ensemble_prediction": out["prediction"],
                "ensemble_correct": out["correct"], "answered_by": who,
                "prediction": prediction, "label": label, "correct": prediction == label,
                "reader_correct": self.reader_correct_of(rows),
                "capacity_left": capacity_left, "reward": reward, "done": done}

    def _answer_routing(self, state: ShiftState, actions: np.ndarray) -> dict[str, np.ndarray]:
        """:meth:`answer` for ``action="routing"`` (``actions`` int64 ``[E]`` in ``[0, R]``):
        gathers from the per-study tables of :meth:`_prepare_routing_tables`."""
        rows = state.current()
        asked = actions - 1
        wanted = np.maximum(asked, 0)
        who = np.where((asked >= 0) & (state.left_of(wanted) > 0), wanted, ENSEMBLE)
        envs = np.flatnonzero(who >= 0)
        label = self._labels8.take(rows)
        ensemble_prediction = self._routing_prediction.take(rows)
        prediction = ensemble_prediction.copy()
        reward = self._routing_reward.take(rows)
        if envs.size:
            readers = who.take(envs)
            flat = rows.take(envs) * self.n_readers + readers
            prediction[envs] = self._reads_flat.take(flat)
            reward[envs] = self._read_reward_flat.take(flat)
            state.spend(envs, readers)
        capacity_left = state.capacity_left.copy(order="K")
        done = state.advance(rows, self.studies.body_part_index)
        return {"study_index": rows,
                "weights": np.broadcast_to(self._no_weights, (len(rows), self.n_models)),
                "probability": self._routing_p32.take(rows),
                "ensemble_prediction": ensemble_prediction,
                "ensemble_correct": self._routing_correct.take(rows), "answered_by": who,
                "prediction": prediction, "label": label, "correct": prediction == label,
                "reader_correct": self.reader_correct_of(rows),
                "capacity_left": capacity_left, "reward": reward, "done": done}


def _column_major(a: np.ndarray) -> np.ndarray:
    """``a`` as a Fortran-ordered int64 array (itself when it already is one)."""
    return np.asfortranarray(a, dtype=np.int64)


def _flat(a: np.ndarray) -> np.ndarray:
    """A 1-D view of the Fortran-ordered ``a`` (element ``[e, j]`` at ``j * E + e``)."""
    if not a.flags.f_contiguous:
        raise ValueError("ShiftState arrays must stay Fortran-ordered (see the class).")
    return a.reshape(-1, order="F")


class ShiftState:
    """The state of ``E`` shifts stepped together.

    Args and attributes:
        rows: int64 ``[E, N]``, each shift's study rows in arrival order.
        position: int64 ``[E]``, how many of its studies are answered.
        capacity_left: int64 ``[E, R]``, each reader's reads left.
        part_counts: int64 ``[E, 7]``, studies of each body part shown so far (the current
            one included); brought up to date when read, so that a step that does not read
            it does not pay for it.

    The arrays are changed in place by the methods. The 2-D ones are stored Fortran-ordered
    (``[:, j]`` contiguous, so that a step touches contiguous memory); the constructor makes
    them so (copying when needed), and they must not be replaced by arrays of another layout.
    """

    def __init__(self, rows: np.ndarray, position: np.ndarray, capacity_left: np.ndarray,
                 part_counts: np.ndarray) -> None:
        self.rows = _column_major(rows)
        self.position = np.ascontiguousarray(position, dtype=np.int64)
        self.capacity_left = _column_major(capacity_left)
        self._env = np.arange(len(self.rows), dtype=np.int64)
        self._part_index: np.ndarray | None = None
        self.part_counts = part_counts

    def __repr__(self) -> str:
        e, size = self.rows.shape
        return (f"ShiftState(shifts={e}, shift_size={size}, readers="
                f"{self.capacity_left.shape[1]}, position={self.position!r})")

    @property
    def part_counts(self) -> np.ndarray:
        """int64 ``[E, 7]`` (Fortran-ordered): each shift's studies per body part so far."""
        if self._counted_to is not None and self._part_index is not None:
            self._count_parts(self._counted_to, self._part_index)
        return self._part_counts

    @part_counts.setter
    def part_counts(self, counts: np.ndarray) -> None:
        self._part_counts = _column_major(counts)
        self._counted_to: np.ndarray | None = None  # position up to which counts are in

    def _count_parts(self, counted: np.ndarray, part_index: np.ndarray) -> None:
        """Add to ``part_counts`` the studies each shift moved past since position
        ``counted`` (int64 ``[E]``, where its counts stand); ``part_index`` int ``[n]`` gives
        each study row's body part."""
        lag = self.position - counted
        flat_rows, flat_counts, e = _flat(self.rows), _flat(self._part_counts), len(self._env)
        for step in range(1, int(lag.max(initial=0)) + 1):
            envs = self._env if step == 1 and lag.min() >= 1 else np.flatnonzero(lag >= step)
            at = (counted.take(envs) + step) * e + envs
            np.add.at(flat_counts, part_index.take(flat_rows.take(at)) * e + envs, 1)
        self._counted_to = None

    @classmethod
    def start(cls, rows: np.ndarray, capacities: np.ndarray, part_index: np.ndarray
              ) -> ShiftState:
        """Shifts at their first study: ``rows`` int64 ``[E, N]``, full ``capacities``
        (int64 ``[R]``); ``part_index`` int ``[n]`` maps study rows to body parts."""
        e = len(rows)
        counts = np.zeros((e, len(BODY_PARTS)), dtype=np.int64)
        counts[np.arange(e), part_index[rows[:, 0]]] = 1
        state = cls(rows, np.zeros(e, dtype=np.int64),
                    np.tile(capacities.astype(np.int64), (e, 1)), counts)
        state._part_index = part_index
        return state

    def current(self) -> np.ndarray:
        """int64 ``[E]``: each shift's current study row (a new array)."""
        index = self.position * len(self._env)
        index += self._env
        return _flat(self.rows).take(index)

    def left_of(self, readers: np.ndarray) -> np.ndarray:
        """int64 ``[E]``: the reads left to reader ``readers[e]`` (int ``[E]``) in shift
        ``e``."""
        index = readers * len(self._env)
        index += self._env
        return _flat(self.capacity_left).take(index)

    def spend(self, envs: np.ndarray, readers: np.ndarray) -> None:
        """Take one read from reader ``readers[i]`` of shift ``envs[i]`` (int ``[m]`` each,
        ``envs`` distinct)."""
        _flat(self.capacity_left)[readers * len(self._env) + envs] -= 1

    def advance(self, rows: np.ndarray, part_index: np.ndarray) -> np.ndarray:
        """Move every shift to its next study; returns bool ``[E]``, the shifts whose last
        study was just answered (their position stays on it until :meth:`restart`).

        Args:
            rows: int64 ``[E]``, the studies just answered (``current()`` before the move).
            part_index: int ``[n]``, each study row's body part.
        """
        if self._counted_to is None:
            self._counted_to = self.position.copy()
        self._part_index = part_index
        position = self.position
        done = position >= self.rows.shape[1] - 1
        if done.any():
            position[~done] += 1
        else:
            position += 1
        return done

    def restart(self, mask: np.ndarray, rows: np.ndarray, capacities: np.ndarray,
                part_index: np.ndarray) -> None:
        """Start new shifts (``rows`` int64 ``[m, N]``) in the sub-environments of ``mask``
        (bool ``[E]``, ``m`` of them True)."""
        counts, counted = self._part_counts, self._counted_to  # the others' stay as they are
        if mask.all():  # every shift: whole-array writes, no scatter
            self.rows[...] = rows
            self.position[...] = 0
            self.capacity_left[...] = capacities
            counts[...] = 0
            index = self._env
            self._counted_to = None
        else:
            index = np.flatnonzero(mask)
            self.rows[index] = rows
            self.position[index] = 0
            self.capacity_left[index] = capacities
            counts[index] = 0
            if counted is not None:
                counted[index] = 0
        counts[index, part_index[rows[:, 0]]] = 1
        self._part_index = part_index
