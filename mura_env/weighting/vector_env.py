"""Native NumPy-batched vector version of ``MuraWeighting-v0``.

Made by ``gymnasium.make_vec("MuraWeighting-v0", num_envs=N, ...)`` (the registered
``vector_entry_point``). Same kwargs, observation, action mapping and rewards as
:class:`mura_env.weighting.env.MuraWeightingEnv`, with
no Python loop over the sub-environments (both use
:class:`mura_env.weighting.problem.WeightingProblem`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from mura_env.common.checks import whole_number
from mura_env.weighting.config import WeightingConfig
from mura_env.weighting.env import DRAW_BLOCK, RENDER_MODES, check_render_mode
from mura_env.weighting.problem import WeightingProblem
from mura_env.weighting.render import draw, study_view

#: Keys of the per-study step info of the vector env (see the class docstring).
STEP_INFO_KEYS = ("label", "weights", "probability", "prediction", "correct", "study_index")


def setup_vector_env(env: Any, num_envs: Any, config: Any, render_mode: str | None,
                     kwargs: dict[str, Any]) -> Any:
    """What every native vector env of this package sets up first: checks ``num_envs``
    (an integer >= 1) and ``render_mode``, builds ``env.problem_class(config, **kwargs)`` and
    sets ``render_mode``, ``problem``, ``config``, ``num_envs``, the single and batched spaces,
    ``model_names``, ``n_studies``, ``study_ids`` and ``body_parts`` (arrays ``[n_studies]``)
    on ``env``.

    Returns:
        The problem.

    Raises:
        ValueError: a bad ``num_envs`` or ``render_mode`` (and the problem's own errors).
    """
    num_envs = whole_number("num_envs", num_envs)
    env.render_mode = check_render_mode(render_mode)
    env.problem = problem = env.problem_class(config, **kwargs)
    env.config = problem.config
    env.num_envs = num_envs
    env.single_observation_space = problem.observation_space
    env.single_action_space = problem.action_space
    env.observation_space = batch_space(problem.observation_space, env.num_envs)
    env.action_space = batch_space(problem.action_space, env.num_envs)
    env.model_names = problem.studies.model_names
    env.n_studies = problem.n_studies
    env.study_ids = problem.studies.study_ids
    env.body_parts = problem.studies.body_parts
    return problem


class MuraWeightingVectorEnv(VectorEnv):
    """``num_envs`` copies of ``MuraWeighting-v0`` stepped together with NumPy.

    Semantics per sub-environment are those of :class:`mura_env.weighting.env.MuraWeightingEnv`
    (see its docstring): observation float32 ``[2K + 7]``, action ``[K]`` in [-1, 1] mapped to
    ``w = softmax(action_scale * action / temperature)`` and ``p = sum_k w_k q_k``, the same
    reward functions, ``studies_per_episode`` answered studies per episode.

    Given the same studies and actions, both envs give the same predictions and rewards: the
    batch is computed in float32, and every study whose probability falls within
    :func:`mura_env.weighting.mapping.recheck_margin` (~1e-5) of the threshold is recomputed with
    the single env's float64 arithmetic, so predictions and the ``correct``, ``signed`` and
    ``cost_sensitive`` rewards are identical; weights, probabilities and ``log_likelihood``
    rewards agree to about 1e-5 (see :meth:`mura_env.weighting.problem.WeightingProblem.evaluate`).

    Batched spaces: observations float32 ``[num_envs, 2K + 7]``, actions float32
    ``[num_envs, K]``; rewards float64 ``[num_envs]``; terminations bool ``[num_envs]``;
    truncations always False (a shared read-only array).

    Autoreset (``metadata["autoreset_mode"] == AutoresetMode.SAME_STEP``): a sub-environment
    whose episode ends is reset in the same ``step`` call, so the returned observation is
    already the first study of its next episode and one-step episodes waste no steps. As
    Gymnasium documents for this mode, ``info`` then holds, with ``_key`` boolean masks over
    the sub-environments (read-only; one mask array may serve several keys):

    * ``final_obs``: float32 ``[num_envs, 2K + 7]``, the observation of the answered study
      (rows valid where ``info["_final_obs"]``; an array rather than an object array);
    * ``final_info``: dict of the step info of the finished sub-environments: ``label`` and
      ``prediction`` (int8), ``weights`` (float32 ``[num_envs, K]``), ``probability``
      (float32), ``correct`` (bool) and ``study_index`` (int64, the study's row in this env's
      selection), each with its ``_key`` mask.

    To keep the step at CartPole speed the step info carries ``study_index`` rather than the
    study id and body part strings; map it with the attributes ``study_ids`` and
    ``body_parts`` (arrays ``[n_studies]``), e.g.
    ``env.study_ids[info["final_info"]["study_index"]]``.
    Sub-environments whose episode goes on (``studies_per_episode > 1``) get the same step info
    keys at the top level of ``info``, masked likewise. ``reset`` returns an empty ``info``.

    Study draws: ``sampling="random"`` draws with ``self.np_random`` (seeded by
    ``reset(seed=...)``; one generator for the batch, as in Gymnasium's ``CartPoleVectorEnv``).
    ``sampling="sweep"`` hands out the studies in table order, sub-environment 0 first, each
    new study going to the next sub-environment that needs one: the first ``n_studies``
    answered studies are every study exactly once (then the sweep starts over; a sweep takes
    ``ceil(n_studies / num_envs)`` steps with one-study episodes); a seeded reset restarts it.
    ``reset(options={"reset_mask": mask})`` resets only the masked sub-environments.

    Rendering (``render_mode="rgb_array"`` or ``"ansi"``) shows sub-environment 0 as the single
    env draws it (:mod:`mura_env.weighting.render`).

    Args:
        num_envs: number of sub-environments (>= 1).
        config, render_mode, other keywords (``logits``, ``reference_table``, ``split``...):
            as :class:`mura_env.weighting.env.MuraWeightingEnv`.
    """

    metadata: dict[str, Any] = {"render_modes": list(RENDER_MODES), "render_fps": 4,
                                "autoreset_mode": AutoresetMode.SAME_STEP}
    #: The problem (studies, spaces, reward) this env steps through.
    problem_class: type[WeightingProblem] = WeightingProblem
    #: Keys of the per-study step info (values from ``problem.evaluate``, plus study_index).
    step_info_keys: tuple[str, ...] = STEP_INFO_KEYS

    def __init__(self, num_envs: int = 1, config: WeightingConfig | None = None,
                 render_mode: str | None = None, **kwargs: Any) -> None:
        setup_vector_env(self, num_envs, config, render_mode, kwargs)
        self._cursor = 0
        self._buffer = np.empty(0, dtype=np.int64)
        self._buffer_pos = 0
        self._buffer_rng: np.random.Generator | None = None
        self._study: np.ndarray | None = None  # current study row of each sub-env
        self._last_obs: np.ndarray | None = None  # private copy of the last observations
        self._answered = np.zeros(self.num_envs, dtype=np.int64)  # studies this episode
        self._last_step: dict[str, Any] | None = None  # step info, for render()
        # Read-only constant arrays, shared between calls: the "_key" masks of a step where
        # every episode ended, and the truncations (this env never truncates).
        self._all_true = np.ones(self.num_envs, dtype=np.bool_)
        self._all_true.flags.writeable = False
        self._all_false = np.zeros(self.num_envs, dtype=np.bool_)
        self._all_false.flags.writeable = False

    # ------------------------------------------------------------------ study draws
    def _draw(self, m: int) -> np.ndarray:
        """``m`` next study rows (int64): in order (sweep) or uniform from ``np_random``."""
        n = self.n_studies
        if self.config.sampling == "sweep":
            out = (self._cursor + np.arange(m, dtype=np.int64)) % n
            self._cursor = (self._cursor + m) % n
            return out
        if self._buffer_pos + m > len(self._buffer) or self._buffer_rng is not self._np_random:
            rng = self.np_random
            self._buffer = rng.integers(0, n, size=max(DRAW_BLOCK * 16, 4 * m), dtype=np.int64)
            self._buffer_pos = 0
            self._buffer_rng = rng
        out = self._buffer[self._buffer_pos : self._buffer_pos + m]
        self._buffer_pos += m
        return out

    # ------------------------------------------------------------------ gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all sub-environments (or those of ``options["reset_mask"]``).

        Args:
            seed: int seeding ``np_random`` (also restarts a sweep); None keeps the generator.
            options: ``{"reset_mask": bool array [num_envs]}`` to reset only some.

        Returns:
            ``(observations float32 [num_envs, 2K + 7], {})``.
        """
        if seed is not None and not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int or None (one generator for the batch), "
                            f"got {seed!r}.")
        super().reset(seed=None if seed is None else int(seed))
        if seed is not None:
            self._buffer = np.empty(0, dtype=np.int64)
            self._buffer_pos = 0
            self._cursor = 0
        mask = None if options is None else options.get("reset_mask")
        if mask is None or self._study is None:
            self._study = self._draw(self.num_envs).copy()
            self._answered[:] = 0
        else:
            mask = np.asarray(mask)
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_:
                raise ValueError(f"options['reset_mask'] must be a bool array of shape "
                                 f"({self.num_envs},), got {mask.dtype} {mask.shape}.")
            self._study[mask] = self._draw(int(mask.sum()))
            self._answered[mask] = 0
        obs = self.problem.studies.observations.take(self._study, axis=0)
        self._last_obs = obs.copy()
        self._last_step = None
        return obs, {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Answer each sub-environment's current study and move on (same-step autoreset).

        Args:
            actions: float array ``[num_envs, K]``.

        Returns:
            ``(observations float32 [num_envs, 2K + 7], rewards float64 [num_envs],
            terminations bool [num_envs], truncations bool [num_envs], info)``; see the class
            docstring for ``info``.

        Raises:
            ValueError: wrong shape, non-numeric, NaN or inf actions (no reward is given).
            RuntimeError: ``reset()`` was never called.
        """
        study = self._study
        if study is None:
            raise RuntimeError("Call reset() before step().")
        problem = self.problem
        out = problem.evaluate(study, problem.check_actions(actions, self.num_envs))
        n_envs = self.num_envs
        if self.config.studies_per_episode == 1:
            done = np.ones(n_envs, dtype=np.bool_)
            all_done = True
        else:
            self._answered += 1
            done = self._answered >= self.config.studies_per_episode
            self._answered[done] = 0
            all_done = bool(done.all())
        if self.render_mode is not None:
            self._last_step = {"study_index": study, "weights": out["weights"],
                               "probability": out["probability"]}
        step_info = {key: out[key] for key in self.step_info_keys if key != "study_index"}
        step_info["study_index"] = study
        info: dict[str, Any] = {}
        if all_done:
            mask = self._all_true  # read-only, so sharing it between keys is safe
            final_info: dict[str, Any] = {}
            for key, value in step_info.items():
                final_info[key] = value
                final_info["_" + key] = mask
            info["final_obs"] = self._last_obs
            info["_final_obs"] = mask
            info["final_info"] = final_info
            info["_final_info"] = mask
        else:
            ended = done.copy()
            ended.flags.writeable = False
            going = ~done
            going.flags.writeable = False
            if ended.any():
                final_info = {}
                for key, value in step_info.items():
                    final_info[key] = value.copy()
                    final_info["_" + key] = ended
                info["final_obs"] = self._last_obs
                info["_final_obs"] = ended
                info["final_info"] = final_info
                info["_final_info"] = ended
            for key, value in step_info.items():
                info[key] = value
                info["_" + key] = going
        # Every sub-env needs a new study: the next of its episode, or the first of a new one.
        self._study = self._draw(n_envs)
        obs = problem.studies.observations.take(self._study, axis=0)
        self._last_obs = obs.copy()  # private; next step's final_obs (copying beats gathering)
        return obs, out["reward"], done, self._all_false, info

    def render(self) -> np.ndarray | str | None:
        """Sub-environment 0's current study (the one just answered, after a step), drawn as
        the single env draws it: a uint8 RGB frame (``"rgb_array"``), text (``"ansi"``), or
        None (``render_mode=None``)."""
        if self.render_mode is None:
            return None
        if self._study is None:
            raise RuntimeError("Nothing to render: call reset() first.")
        last = self._last_step
        i = int(self._study[0] if last is None else last["study_index"][0])
        view = study_view(self.problem.studies, i, self.config.threshold,
                          None if last is None else last["weights"][0],
                          None if last is None else last["probability"][0])
        return draw(view, self.render_mode)
