"""``MuraWorklist-v0``: a reading shift with radiologists of limited capacity.

The single env :class:`MuraWorklistEnv` and the native vector env
:class:`MuraWorklistVectorEnv`; both step :class:`mura_env.worklist.problem.ShiftState`
through :class:`mura_env.worklist.problem.WorklistProblem`, so they agree study for study.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from mura_env.weighting.env import setup_single_env
from mura_env.weighting.render import draw, study_view
from mura_env.weighting.vector_env import setup_vector_env
from mura_env.worklist.config import WorklistConfig
from mura_env.worklist.problem import ENSEMBLE, ShiftState, WorklistProblem

#: Per-study keys of the vector env's step info (see :class:`MuraWorklistVectorEnv`).
STEP_INFO_KEYS = ("study_index", "weights", "probability", "ensemble_prediction",
                  "ensemble_correct", "answered_by", "prediction", "label", "correct",
                  "reader_correct", "capacity_left")


class MuraWorklistEnv(gym.Env[np.ndarray, np.ndarray]):
    """
    ## Description

    A reading shift. ``N`` studies (``shift_size``, default 100) arrive one at a time; for
    each, the agent weights an ensemble of ``K`` frozen X-ray classifiers (as in
    ``MuraWeighting-v0``) and may send the study to one of ``R`` radiologists (default: every
    reader of the table; the shipped tables carry three simulated radiologists with the MURA
    paper's per-part kappas). Each radiologist can read only ``capacity * N`` studies in the
    shift (default 10% each), so a read spent now is missing for a harder study later. The
    body-part mix of a shift varies (``scenario``: a random mix around the split's, an
    emergency night heavy in fingers, hands and wrists, an orthopaedic clinic heavy in
    shoulders and elbows; :mod:`mura_env.worklist.shifts`).

    ## Action Space

    ``action="weights"`` (the default): ``Box(-1, 1, (K + R,), float32)``: ``K`` preferences
    mapped to ensemble weights exactly as in ``MuraWeighting-v0``, then one score per reader.
    **Routing rule:** the study goes to the reader with the highest score if that score is > 0
    and that reader has capacity left; otherwise (no positive score, or the best reader is
    full) the ensemble answers. Ties go to the first reader. Values outside [-1, 1] are
    clipped; a wrong shape or NaN/inf raises ``ValueError``. Both this env and the vector env
    compute the ensemble in float32, as ``MuraWeighting-v0``'s vector env does (predictions
    exact; probabilities and weights within about 1e-6 of float64,
    :meth:`mura_env.weighting.problem.WeightingProblem.evaluate`).

    ``action="routing"``: ``Discrete(R + 1)``: 0, the ensemble answers; ``r + 1``, reader
    ``r`` reads. The ensemble is a stacking combiner of the members fitted on the table's tune
    studies (``combiner``, by default :func:`agents.worklist.methods.routing_inputs`; a tune
    study's probability comes from the cross-fitted model that did not see it), predicting
    abnormal when its probability is above 0.5. :meth:`action_masks` (bool ``[R + 1]``) says
    which actions are open: a reader without reads left is closed; asked for anyway, the
    ensemble answers. A value
    outside ``[0, R]`` or not a whole number raises ``ValueError``. This interface leaves the
    agent one decision per study, the one the worklist is about; the weights interface asks it
    to learn the ensemble as well.

    ## Observation Space

    ``Box(float32, (2K + 7 + R + 1,))`` (``+ 7`` with ``observe_mix=True``, ``+ R`` with
    ``observe_gains=True``): the current study as ``MuraWeighting-v0`` shows it (``K`` logit
    pairs, body part one-hot), each reader's remaining capacity as a share of its capacity (0
    for a reader without capacity), the share of the shift still to come (1 at the first
    study, ``1/N`` at the last), optionally the share of each body part among the shift's
    studies so far (the current one included), and optionally each reader's estimated gain for
    the study: its tune accuracy on the body part (shrunk toward its overall accuracy) minus
    the stacking ensemble's confidence ``max(p, 1 - p)`` minus ``read_cost``, the quantity the
    classical worklist methods decide with (:mod:`agents.worklist.methods`).

    ## Rewards

    The env's reward function (``reward``, as in ``MuraWeighting-v0``) on the answer that
    counts: the ensemble's prediction, or the reader's read minus ``read_cost`` (default 0)
    when a reader answered (a read scores as ``MuraDeferral-v0`` scores a deferred study).

    ## Starting State

    ``reset`` draws a new shift (``sampling="random"``: by the scenario with ``np_random``;
    ``"sweep"``: the next ``N`` studies in table order) with every reader's capacity full;
    ``reset(options={"shift": rows})`` starts the shift of the given study rows instead.

    ## Episode End

    Terminates after the shift's ``N``-th study; never truncates.

    ## Info

    ``step`` returns the study's ``study_id``, ``body_part``, ``label``, ``study_index``,
    ``position`` (0-based, in the shift); the ensemble's ``weights`` (all 0 with
    ``action="routing"``: the stacking combiner is not a weighting), ``probability``,
    ``ensemble_prediction`` and ``ensemble_correct``; ``answered_by`` (the reader id or
    ``"ensemble"``) and ``answered_by_index`` (-1 for the ensemble), ``prediction`` (the
    answer that counts) and ``correct``; ``reader_correct`` (bool ``[R]``: each reader's read
    right or not, whoever answered) and ``capacity_left`` (int ``[R]``, after this study).

    ## Arguments

    Every argument of ``MuraWeighting-v0``, or ``config=WorklistConfig(...)``
    (:class:`mura_env.worklist.config.WorklistConfig`), plus:

    | Argument      | Default  | Meaning                                                      |
    |---------------|----------|--------------------------------------------------------------|
    | shift_size    | 100      | studies per shift (the episode length)                       |
    | scenario      | "random" | ``random``, ``split``, ``emergency`` or ``orthopaedic``      |
    | concentration | 20       | Dirichlet concentration of ``random`` around the split's mix |
    | readers       | None     | reader ids (columns ``reader_<id>``); None: all the table's  |
    | capacity      | 0.1      | reads per reader per shift, share of ``shift_size``          |
    | read_cost     | 0        | subtracted from the reward of each study a reader answers    |
    | observe_mix   | False    | add the body-part mix seen so far to the observation         |
    | action        | "weights"| ``weights`` (Box) or ``routing`` (Discrete with a mask)      |
    | observe_gains | False    | add each reader's estimated gain to the observation          |
    | combiner      | stacking | ``"module:function"`` fitting the ensemble and gains on tune |

    ## Vectorized environment

    ``gymnasium.make_vec("MuraWorklist-v0", num_envs=N, ...)`` builds
    :class:`MuraWorklistVectorEnv`: the same shifts and rule, batched with NumPy.

    ## Version History

    * v0: initial version.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}
    #: The problem (studies, reads, spaces, reward) this env steps through.
    problem_class: type[WorklistProblem] = WorklistProblem

    def __init__(self, config: WorklistConfig | None = None, render_mode: str | None = None,
                 **kwargs: Any) -> None:
        problem = setup_single_env(self, config, render_mode, kwargs)
        self.readers = problem.readers
        self._state: ShiftState | None = None
        self._cursor = 0
        self._last: dict[str, Any] | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a shift.

        Args:
            seed: reseeds ``np_random`` (and restarts a sweep).
            options: ``{"shift": rows}``: the shift's study rows (``shift_size`` ints in
                ``[0, n_studies)``), instead of a drawn one.

        Returns:
            ``(observation float32 [obs], {"shift": int64 [N], the shift's study rows})``.
        """
        super().reset(seed=seed)
        if seed is not None:
            self._cursor = 0
        problem = self.problem
        if options and "shift" in options:
            rows = np.asarray(options["shift"])
            size = self.config.shift_size
            if rows.shape != (size,) or rows.dtype.kind not in "iu" or rows.min() < 0 \
                    or rows.max() >= problem.n_studies:
                raise ValueError(f"options['shift'] must be {size} study rows in "
                                 f"[0, {problem.n_studies}), got {options['shift']!r}.")
            rows = rows.astype(np.int64)[None, :]
        else:
            rows, self._cursor = problem.new_shifts(1, self.np_random, self._cursor)
        self._state = ShiftState.start(rows, problem.capacities,
                                       problem.studies.body_part_index)
        self._last = None
        return problem.observe(self._state)[0], {"shift": rows[0].copy()}

    def action_masks(self) -> np.ndarray:
        """bool ``[R + 1]``: the routing actions open now (``action="routing"`` only; the
        method ``sb3_contrib.MaskablePPO`` reads).

        Raises:
            ValueError: the env's action is not ``routing``. RuntimeError: no running shift.
        """
        if self._state is None:
            raise RuntimeError("No running shift: call reset() first.")
        return self.problem.action_masks(self._state)[0]

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Answer the current study with ``action`` (float ``[K + R]``, or an int in
        ``[0, R]`` with ``action="routing"``; see the class).

        Returns:
            ``(observation float32 [obs], reward float, terminated, False, info)``; after the
            last study the observation is that study's, with no capacity change.

        Raises:
            ValueError: wrong shape, non-numeric, NaN or inf action (no reward is given).
            RuntimeError: no running shift (call ``reset()`` first).
        """
        state = self._state
        if state is None:
            raise RuntimeError("No running shift: call reset() before step().")
        problem = self.problem
        actions = problem.check_actions(np.asarray(action).reshape(1, -1)
                                        if np.ndim(action) <= 1 else action, 1)
        position = int(state.position[0])
        out = problem.answer(state, actions)
        done = bool(out["done"][0])
        i = int(out["study_index"][0])
        who = int(out["answered_by"][0])
        info = {
            "study_id": str(problem.studies.study_ids[i]),
            "body_part": str(problem.studies.body_parts[i]), "label": int(out["label"][0]),
            "study_index": i, "position": position,
            "weights": out["weights"][0].astype(np.float64),
            "probability": float(out["probability"][0]),
            "ensemble_prediction": int(out["ensemble_prediction"][0]),
            "ensemble_correct": bool(out["ensemble_correct"][0]),
            "answered_by": "ensemble" if who == ENSEMBLE else self.readers[who],
            "answered_by_index": who, "prediction": int(out["prediction"][0]),
            "correct": bool(out["correct"][0]),
            "reader_correct": out["reader_correct"][0].copy(),
            "capacity_left": out["capacity_left"][0].copy(),
        }
        self._last = info
        if done:
            self._state = None
            return problem.observe(state)[0], float(out["reward"][0]), True, False, info
        return problem.observe(state)[0], float(out["reward"][0]), False, False, info

    def render(self) -> np.ndarray | str | None:
        """The study just answered (or the current one before a step), as
        ``MuraWeighting-v0`` draws it: uint8 RGB (``"rgb_array"``), text (``"ansi"``) or None."""
        if self.render_mode is None:
            return None
        last = self._last
        if last is None and self._state is None:
            raise RuntimeError("Nothing to render: call reset() first.")
        i = last["study_index"] if last is not None else int(self._state.current()[0])
        weights = None if last is None or self.problem.routing else last["weights"]
        view = study_view(self.problem.studies, i, self.config.threshold, weights,
                          None if last is None else last["probability"])
        return draw(view, self.render_mode)


class MuraWorklistVectorEnv(VectorEnv):
    """``num_envs`` shifts of ``MuraWorklist-v0`` stepped together with NumPy.

    Semantics per sub-environment are those of :class:`MuraWorklistEnv` (same problem, same
    routing rule, same rewards). Batched spaces: observations float32 ``[num_envs, obs]``,
    actions float32 ``[num_envs, K + R]`` (int64 ``[num_envs]`` with ``action="routing"``;
    :meth:`action_masks` gives bool ``[num_envs, R + 1]``), rewards float64, terminations
    bool ``[num_envs]``, truncations always False.

    Autoreset (``AutoresetMode.SAME_STEP``): a shift that ends is replaced in the same
    ``step`` call by a new one, whose first observation is returned; ``info["final_obs"]``
    holds the last observation of the finished shift and ``info["final_info"]`` its step info
    (keys :data:`STEP_INFO_KEYS`, arrays over the sub-environments, each with its ``_key``
    mask). Sub-environments whose shift goes on get the same keys at the top level of
    ``info``. Shifts are drawn with ``self.np_random`` (seeded by ``reset(seed=...)``);
    ``reset(options={"reset_mask": mask})`` restarts only the masked sub-environments.

    Args:
        num_envs: number of sub-environments (>= 1).
        config, render_mode, other keywords: as :class:`MuraWorklistEnv`.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4,
                                "autoreset_mode": AutoresetMode.SAME_STEP}
    problem_class: type[WorklistProblem] = WorklistProblem

    def __init__(self, num_envs: int = 1, config: WorklistConfig | None = None,
                 render_mode: str | None = None, **kwargs: Any) -> None:
        problem = setup_vector_env(self, num_envs, config, render_mode, kwargs)
        self.readers = problem.readers
        self._state: ShiftState | None = None
        self._cursor = 0
        self._last_obs: np.ndarray | None = None
        self._no_truncation = np.zeros(self.num_envs, dtype=np.bool_)
        self._no_truncation.flags.writeable = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start new shifts in every sub-environment (or those of ``options["reset_mask"]``).

        Returns:
            ``(observations float32 [num_envs, obs], {})``.
        """
        if seed is not None and not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int or None, got {seed!r}.")
        super().reset(seed=None if seed is None else int(seed))
        if seed is not None:
            self._cursor = 0
        problem = self.problem
        parts = problem.studies.body_part_index
        mask = None if options is None else options.get("reset_mask")
        if mask is None or self._state is None:
            rows, self._cursor = problem.new_shifts(self.num_envs, self.np_random, self._cursor)
            self._state = ShiftState.start(rows, problem.capacities, parts)
        else:
            mask = np.asarray(mask)
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_:
                raise ValueError(f"options['reset_mask'] must be a bool array of shape "
                                 f"({self.num_envs},), got {mask.dtype} {mask.shape}.")
            rows, self._cursor = problem.new_shifts(int(mask.sum()), self.np_random,
                                                    self._cursor)
            self._state.restart(mask, rows, problem.capacities, parts)
        obs = problem.observe(self._state)
        self._last_obs = obs
        return obs.copy(), {}

    def action_masks(self) -> np.ndarray:
        """bool ``[num_envs, R + 1]``: the routing actions open to each sub-environment now
        (``action="routing"`` only).

        Raises:
            ValueError: the env's action is not ``routing``. RuntimeError: before ``reset()``.
        """
        if self._state is None:
            raise RuntimeError("Call reset() before action_masks().")
        return self.problem.action_masks(self._state)

    def step(self, actions: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Answer every sub-environment's current study; start new shifts where one ended.

        Args:
            actions: float ``[num_envs, K + R]`` (int ``[num_envs]`` with
                ``action="routing"``).

        Returns:
            ``(observations, rewards float64, terminations bool, truncations bool, info)``
            (see the class docstring).

        Raises:
            ValueError: wrong shape, non-numeric, NaN or inf actions.
            RuntimeError: ``reset()`` was never called.
        """
        state = self._state
        if state is None:
            raise RuntimeError("Call reset() before step().")
        problem = self.problem
        out = problem.answer(state, problem.check_actions(actions, self.num_envs))
        done = out["done"]
        info: dict[str, Any] = {}
        step_info = {key: out[key] for key in STEP_INFO_KEYS}
        if done.any():
            final_obs = problem.observe(state)  # the finished shifts' last study
            ended = done.copy()
            info["final_obs"], info["_final_obs"] = final_obs, ended
            info["final_info"] = {**step_info, **{"_" + k: ended for k in step_info}}
            info["_final_info"] = ended
            rows, self._cursor = problem.new_shifts(int(done.sum()), self.np_random,
                                                    self._cursor)
            state.restart(done, rows, problem.capacities, problem.studies.body_part_index)
        going = ~done
        if going.any():
            info.update(step_info)
            info.update({"_" + k: going for k in step_info})
        obs = problem.observe(state)
        self._last_obs = obs
        return obs, out["reward"], done.copy(), self._no_truncation, info

    def render(self) -> np.ndarray | str | None:
        """Sub-environment 0's current study, drawn as the single env draws it."""
        if self.render_mode is None:
            return None
        if self._state is None:
            raise RuntimeError("Nothing to render: call reset() first.")
        view = study_view(self.problem.studies, int(self._state.current()[0]),
                          self.config.threshold, None, None)
        return draw(view, self.render_mode)
