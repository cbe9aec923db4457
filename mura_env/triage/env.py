"""``MuraTriage-v0``: the reading room in time; which waiting study a free radiologist reads next.

The single env :class:`MuraTriageEnv` and the native vector env :class:`MuraTriageVectorEnv`;
both step :class:`mura_env.triage.problem.TriageEpisode` through
:class:`mura_env.triage.problem.TriageProblem`, so they agree decision for decision.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from mura_env.triage.config import TriageConfig
from mura_env.triage.problem import TriageEpisode, TriageProblem
from mura_env.weighting.env import check_render_mode, setup_single_env
from mura_env.weighting.vector_env import setup_vector_env

#: Per-decision keys of the vector env's step info (see :class:`MuraTriageVectorEnv`).
STEP_INFO_KEYS = ("study", "reader", "wait", "read_minutes", "label", "probability",
                  "correct", "time", "queue_length")
#: Render modes of both envs.
TRIAGE_RENDER_MODES = ("ansi",)
#: Shift seeds are drawn below this bound.
SEED_BOUND = 2**63 - 1


def check_triage_render_mode(render_mode: str | None) -> str | None:
    """:func:`~mura_env.weighting.env.check_render_mode` with :data:`TRIAGE_RENDER_MODES`."""
    return check_render_mode(render_mode, TRIAGE_RENDER_MODES)


def describe(problem: TriageProblem, episode: TriageEpisode) -> str:
    """One line of text about the room of ``episode`` now (the ``"ansi"`` rendering)."""
    room = episode.shift.room
    who = "nobody" if episode.reader is None else problem.readers[episode.reader]
    waiting = room.queue[:problem.queue_slots]
    probabilities = " ".join(f"{episode.shift.probability[i]:.2f}" for i in waiting)
    return (f"minute {room.now:7.1f}: {len(room.queue)} waiting, {who} free; probabilities "
            f"of the first {len(waiting)}: {probabilities}\n")


class MuraTriageEnv(gym.Env[np.ndarray, np.int64]):
    """
    ## Description

    A radiology reading room over one shift. Studies of a split arrive as a Poisson process
    whose rate follows a time-of-day profile (``profile``: ``steady``, or ``surge``, an
    emergency department's evening peak), each with the classifier's probability that it is
    abnormal (a stacking ensemble of the table's members fitted on tune), its body part, its
    label and each radiologist's read. ``R`` radiologists (default the table's three simulated
    ones) read one study at a time without interruption; a read's time is lognormal around a
    mean per radiologist and body part (:data:`mura_env.triage.shifts.READ_MINUTES`: about 4
    minutes, each radiologist faster on the parts it reads most; an assumption of the
    simulator, a plain radiograph study taking a radiologist a few minutes). ``load`` is the
    arrival rate over the radiologists' combined reading rate (default 0.9, a busy room).
    Whenever a radiologist is free and studies wait, the agent picks which waiting study that
    radiologist reads next. Waiting is costly, and more so for abnormal studies: the env is the
    setting of AI triage ("CADt") devices, which move the studies a model flags to the front.

    ## Action Space

    ``Discrete(Q)`` (``queue_slots``, default 32): the position in the worklist, in arrival
    order, of the study to read next (0: the earliest waiting). Only the earliest ``Q`` waiting
    studies can be picked. A slot without a waiting study is closed: :meth:`action_masks` and
    ``info["action_mask"]`` (bool ``[Q]``) say which are open (sb3-contrib's ``MaskablePPO``
    reads ``action_masks()``). A closed slot raises ``ValueError`` with
    ``masked_action="raise"`` (the default); with ``masked_action="earliest"`` the earliest
    waiting study is read instead, for libraries that sample the whole action space.

    ## Observation Space

    ``Box(float32, (3R + 2 + Q (3 + 2K + 7),))``: the free radiologist (one-hot), each
    radiologist's minutes until its current read ends (/ 10) and its strain (minutes read
    without rest, / 60; 0 without ``fatigue``), the time of day (minutes / shift length) and
    the worklist's length / ``Q``; then per slot: open (1/0), the study's probability, its
    minutes waited (/ 10), its ``K`` members' logit pairs and body part one-hot (as
    ``MuraWeighting-v0`` shows a study). Empty slots are all 0. Nothing says which radiologist
    is fast on which body part: an agent learns it.

    ## Rewards

    Minus the cost accrued since the previous decision, in weighted hours: every waiting
    study costs ``urgency`` (abnormal, default 10) or 1 (normal) per minute until its read
    starts; with a ``deadline`` an abnormal study costs ``late_cost`` more per minute past
    it; each read that disagrees with the label costs ``wrong_read_cost`` (weighted minutes,
    default 0). An episode's return is minus its shift's whole cost / 60.

    ## Starting State

    ``reset`` draws a shift (arrival times, studies, reading times) from a seed drawn with
    ``np_random`` (``info["shift_seed"]``; ``reset(options={"shift_seed": s})`` plays the shift
    of seed ``s``) and runs the room to its first decision (the first arrival).

    ## Episode End

    Terminates when the last study of the shift has been started (arrivals stop after
    ``minutes``; the worklist is read to its end); never truncates.

    ## Info

    ``reset``: ``shift_seed``, ``action_mask``. ``step``: the study just started (``study``,
    its index in the shift; ``label``, ``probability``), who reads it (``reader``, its index;
    ``reader_id``), its ``wait`` and ``read_minutes``, whether the read is ``correct``, the
    minute of the next decision (``time``), the worklist's length then (``queue_length``) and
    the next ``action_mask``.

    ## Arguments

    The study selection of ``MuraWeighting-v0`` (``logits``, ``reference_table``, ``split``,
    ``models``, ``body_parts``), or ``config=TriageConfig(...)``
    (:class:`mura_env.triage.config.TriageConfig`), plus:

    | Argument        | Default     | Meaning                                                 |
    |-----------------|-------------|---------------------------------------------------------|
    | minutes         | 480         | shift length (arrivals stop then)                       |
    | profile         | "steady"    | arrival profile: ``steady`` or ``surge``                |
    | load            | 0.9         | arrival rate / total reading rate                       |
    | urgency         | 10          | an abnormal study's waiting cost per minute (normal: 1) |
    | readers         | None        | radiologist ids (None: all of ``READ_MINUTES``)         |
    | read_shape      | "lognormal" | ``lognormal`` or ``exponential`` reading times          |
    | read_cv         | 0.5         | the lognormal's coefficient of variation                |
    | deadline        | None        | minutes by which an abnormal study should be read       |
    | late_cost       | 10          | an abnormal study's extra cost per minute late          |
    | fatigue         | 0           | read lengthening per hour of reading without rest       |
    | wrong_read_cost | 0           | cost of a read that disagrees with the label            |
    | queue_slots     | 32          | ``Q``, the waiting studies shown and pickable           |
    | masked_action   | "raise"     | ``raise`` or ``earliest`` for a closed slot             |
    | combiner        | stacking    | ``"module:function"`` fitting the probability on tune   |

    ## Vectorized environment

    ``gymnasium.make_vec("MuraTriage-v0", num_envs=N, ...)`` builds
    :class:`MuraTriageVectorEnv`: the same rooms, one per sub-environment.

    ## Version History

    * v0: initial version.
    """

    metadata: dict[str, Any] = {"render_modes": list(TRIAGE_RENDER_MODES), "render_fps": 4}
    #: The problem (studies, rooms, spaces, costs) this env steps through.
    problem_class: type[TriageProblem] = TriageProblem

    def __init__(self, config: TriageConfig | None = None, render_mode: str | None = None,
                 **kwargs: Any) -> None:
        self.readers = setup_single_env(self, config, render_mode, kwargs,
                                        check_triage_render_mode).readers
        self.episode: TriageEpisode | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a shift.

        Args:
            seed: reseeds ``np_random``.
            options: ``{"shift_seed": s}``: play the shift drawn with seed ``s`` (an int >= 0).

        Returns:
            ``(observation float32 [obs], {"shift_seed": int, "action_mask": bool [Q]})``.
        """
        super().reset(seed=seed)
        if options and "shift_seed" in options:
            shift_seed = options["shift_seed"]
            if isinstance(shift_seed, bool) or not isinstance(shift_seed, (int, np.integer)) \
                    or shift_seed < 0:
                raise ValueError(f"options['shift_seed'] must be an int >= 0, got "
                                 f"{shift_seed!r}.")
        else:
            shift_seed = self.np_random.integers(SEED_BOUND)
        self.episode = episode = self.problem.start(int(shift_seed))
        return self.problem.observe(episode), {
            "shift_seed": episode.seed, "action_mask": self.problem.action_masks(episode)}

    def action_masks(self) -> np.ndarray:
        """bool ``[Q]``: the slots that hold a waiting study (the method ``MaskablePPO``
        reads).

        Raises:
            RuntimeError: no running shift.
        """
        if self.episode is None:
            raise RuntimeError("No running shift: call reset() first.")
        return self.problem.action_masks(self.episode)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """The free radiologist reads the study at slot ``action``; the room runs to the next
        decision.

        Returns:
            ``(observation float32 [obs], reward float, terminated, False, info)``; after the
            last decision the observation shows the empty room.

        Raises:
            ValueError: not a whole number in ``[0, Q)``, or a closed slot (see the class).
            RuntimeError: no running shift (call ``reset()`` first).
        """
        episode = self.episode
        if episode is None:
            raise RuntimeError("No running shift: call reset() before step().")
        problem = self.problem
        out = problem.act(episode, problem.check_action(episode, action))
        info = {key: out[key] for key in STEP_INFO_KEYS}
        info["reader_id"] = problem.readers[out["reader"]]
        info["action_mask"] = problem.action_masks(episode)
        return problem.observe(episode), float(out["reward"]), bool(out["done"]), False, info

    def render(self) -> str | None:
        """The room now as one line of text (``"ansi"``), or None."""
        if self.render_mode is None:
            return None
        if self.episode is None:
            raise RuntimeError("Nothing to render: call reset() first.")
        return describe(self.problem, self.episode)


class MuraTriageVectorEnv(VectorEnv):
    """``num_envs`` reading rooms of ``MuraTriage-v0`` stepped together.

    Semantics per sub-environment are those of :class:`MuraTriageEnv` (same problem, same
    rooms, same costs): given the same shift seed and actions, sub-environment ``i`` and a
    single env reset with ``options={"shift_seed": s}`` agree step for step. Batched spaces:
    observations float32 ``[num_envs, obs]``, actions int64 ``[num_envs]``, rewards float64,
    terminations bool ``[num_envs]``, truncations always False; :meth:`action_masks` gives
    bool ``[num_envs, Q]``.

    Autoreset (``AutoresetMode.SAME_STEP``): a shift that ends is replaced in the same
    ``step`` call by a new one (its seed drawn with ``self.np_random``), whose first
    observation is returned; ``info["final_obs"]`` holds the finished shift's last observation
    and ``info["final_info"]`` its step info (keys :data:`STEP_INFO_KEYS`, arrays over the
    sub-environments, each with its ``_key`` mask). Sub-environments whose shift goes on get
    the same keys at the top level of ``info``. ``reset`` returns ``{"shift_seed": int64
    [num_envs]}``; ``reset(options={"reset_mask": mask})`` restarts only the masked ones.

    Args:
        num_envs: number of sub-environments (>= 1).
        config, render_mode, other keywords: as :class:`MuraTriageEnv`.
    """

    metadata: dict[str, Any] = {"render_modes": list(TRIAGE_RENDER_MODES), "render_fps": 4,
                                "autoreset_mode": AutoresetMode.SAME_STEP}
    problem_class: type[TriageProblem] = TriageProblem

    def __init__(self, num_envs: int = 1, config: TriageConfig | None = None,
                 render_mode: str | None = None, **kwargs: Any) -> None:
        check_triage_render_mode(render_mode)
        problem = setup_vector_env(self, num_envs, config, None, kwargs)
        self.render_mode = render_mode
        self.readers = problem.readers
        self.episodes: list[TriageEpisode] = []
        self._obs = np.zeros((self.num_envs, *problem.observation_space.shape), np.float32)
        self._no_truncation = np.zeros(self.num_envs, dtype=np.bool_)
        self._no_truncation.flags.writeable = False

    def _start(self, envs: np.ndarray) -> np.ndarray:
        """Start new shifts in sub-environments ``envs`` (int ``[m]``, in order, one seed each
        from ``np_random``); returns their seeds, int64 ``[m]``."""
        seeds = self.np_random.integers(SEED_BOUND, size=len(envs))
        for i, seed in zip(envs.tolist(), seeds.tolist(), strict=True):
            episode = self.problem.start(int(seed))
            if i < len(self.episodes):
                self.episodes[i] = episode
            else:
                self.episodes.append(episode)
            self.problem.observe(episode, self._obs[i])
        return seeds.astype(np.int64)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start new shifts in every sub-environment (or those of ``options["reset_mask"]``).

        Returns:
            ``(observations float32 [num_envs, obs], {"shift_seed": int64 [num_envs]})``
            (-1 where a sub-environment was not restarted).
        """
        if seed is not None and not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int or None, got {seed!r}.")
        super().reset(seed=None if seed is None else int(seed))
        mask = None if options is None else options.get("reset_mask")
        if mask is None or len(self.episodes) < self.num_envs:
            self.episodes = []
            envs = np.arange(self.num_envs)
        else:
            mask = np.asarray(mask)
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_:
                raise ValueError(f"options['reset_mask'] must be a bool array of shape "
                                 f"({self.num_envs},), got {mask.dtype} {mask.shape}.")
            envs = np.flatnonzero(mask)
        seeds = np.full(self.num_envs, -1, dtype=np.int64)
        seeds[envs] = self._start(envs)
        return self._obs.copy(), {"shift_seed": seeds}

    def action_masks(self) -> np.ndarray:
        """bool ``[num_envs, Q]``: the slots open in each sub-environment now.

        Raises:
            RuntimeError: before ``reset()``.
        """
        if not self.episodes:
            raise RuntimeError("Call reset() before action_masks().")
        return np.stack([self.problem.action_masks(e) for e in self.episodes])

    def step(self, actions: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Each sub-environment's free radiologist reads the study its action names; shifts
        that end are replaced.

        Args:
            actions: int ``[num_envs]`` (or ``[num_envs, 1]``), slots in ``[0, Q)``.

        Returns:
            ``(observations, rewards float64, terminations bool, truncations bool, info)``
            (see the class docstring).

        Raises:
            ValueError: wrong shape or a bad slot (the sub-environment is named; no
                sub-environment has moved).
            RuntimeError: ``reset()`` was never called.
        """
        if not self.episodes:
            raise RuntimeError("Call reset() before step().")
        a = np.asarray(actions)
        if a.shape == (self.num_envs, 1):
            a = a[:, 0]
        if a.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape (num_envs,) = ({self.num_envs},): "
                             f"{self.problem.action_contents()} per env; got shape {a.shape}.")
        problem = self.problem
        slots = []
        for i, (episode, action) in enumerate(zip(self.episodes, a, strict=True)):
            try:
                slots.append(problem.check_action(episode, action))
            except ValueError as e:
                raise ValueError(f"sub-environment {i}: {e}") from None
        outs = [problem.act(e, s) for e, s in zip(self.episodes, slots, strict=True)]
        rewards = np.array([o["reward"] for o in outs], dtype=np.float64)
        done = np.array([o["done"] for o in outs], dtype=np.bool_)
        step_info = {key: np.array([o[key] for o in outs]) for key in STEP_INFO_KEYS}
        info: dict[str, Any] = {}
        for i, episode in enumerate(self.episodes):
            problem.observe(episode, self._obs[i])
        if done.any():
            info["final_obs"], info["_final_obs"] = self._obs.copy(), done.copy()
            info["final_info"] = {**step_info, **{"_" + k: done for k in step_info}}
            info["_final_info"] = done.copy()
            self._start(np.flatnonzero(done))
        going = ~done
        if going.any():
            info.update(step_info)
            info.update({"_" + k: going for k in step_info})
        return self._obs.copy(), rewards, done, self._no_truncation, info

    def render(self) -> str | None:
        """Sub-environment 0's room as one line of text (``"ansi"``), or None."""
        if self.render_mode is None:
            return None
        if not self.episodes:
            raise RuntimeError("Nothing to render: call reset() first.")
        return describe(self.problem, self.episodes[0])
