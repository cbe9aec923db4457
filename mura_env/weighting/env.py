"""``MuraWeighting-v0``: weight an ensemble of frozen X-ray classifiers, one study at a time.

The single env, :class:`MuraWeightingEnv`. Its studies, spaces and reward come from
:class:`mura_env.weighting.problem.WeightingProblem`, its mapping from
:mod:`mura_env.weighting.mapping`; the
native vector env is :class:`mura_env.weighting.vector_env.MuraWeightingVectorEnv`.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from mura_env.weighting.config import WeightingConfig
from mura_env.weighting.mapping import study_mixture
from mura_env.weighting.problem import WeightingProblem
from mura_env.weighting.render import draw, study_view

#: Random study indices are drawn from ``np_random`` in blocks of this many.
DRAW_BLOCK = 4096
#: Render modes of both envs.
RENDER_MODES = ("ansi", "rgb_array")


def check_render_mode(render_mode: str | None,
                      modes: tuple[str, ...] = RENDER_MODES) -> str | None:
    """``render_mode`` if it is None or one of ``modes`` (default :data:`RENDER_MODES`); else
    ``ValueError``."""
    if render_mode is not None and render_mode not in modes:
        raise ValueError(f"render_mode must be None or one of {modes}, "
                         f"got {render_mode!r}.")
    return render_mode


def setup_single_env(env: Any, config: Any, render_mode: str | None, kwargs: dict[str, Any],
                     check: Any = check_render_mode) -> Any:
    """What every single env of this package sets up first: checks ``render_mode`` (with
    ``check``), builds ``env.problem_class(config, **kwargs)`` and sets ``render_mode``,
    ``problem``, ``config``, ``observation_space``, ``action_space`` and ``model_names`` on
    ``env``.

    Returns:
        The problem.
    """
    env.render_mode = check(render_mode)
    env.problem = problem = env.problem_class(config, **kwargs)
    env.config = problem.config
    env.observation_space = problem.observation_space
    env.action_space = problem.action_space
    env.model_names = problem.studies.model_names
    return problem


class MuraWeightingEnv(gym.Env[np.ndarray, np.ndarray]):
    """
    ## Description

    An ensemble of ``K`` frozen X-ray classifiers (CNN backbones trained on MURA) has produced
    two logits (normal, abnormal) for every study; they are stored in a
    :class:`~mura_env.logits.LogitsTable`. Each step shows the agent one study's logits and
    body part; the agent answers with a preference per model, which the env turns into
    ensemble weights. The weighted ensemble predicts whether the study is abnormal, and the
    reward scores that prediction against MURA's radiologist label.

    ## Action Space

    ``Box(-1, 1, (K,), float32)``: one preference per model, in ``model_names`` order. The
    env's mapping (the contract of this env, shared by the vector env) is::

        w = softmax(action_scale * clip(action, -1, 1) / temperature)   # [K] weights, sum 1
        q_k = softmax(logits_k)[1]          # model k's abnormality probability
        p = sum_k w_k * q_k                 # ensemble abnormality probability
        prediction = int(p > threshold)     # 1 = abnormal

    A zero action gives uniform weights (plain averaging). Values outside [-1, 1] are
    clipped; an action of the wrong shape or with NaN/inf raises ``ValueError`` and gives no
    reward.

    ## Observation Space

    ``Box(float32)`` of shape ``(2K + 7,)``:

    | Index           | Observation                                      | Min   | Max  |
    |-----------------|--------------------------------------------------|-------|------|
    | 2k, 2k+1        | model k's logits (normal, abnormal), k = 0..K-1  | -100  | 100  |
    | 2K .. 2K+6      | one-hot body part: ELBOW, FINGER, FOREARM, HAND, | 0     | 1    |
    |                 | HUMERUS, SHOULDER, WRIST                          |       |      |

    Logits are clipped to ``±LOGIT_BOUND`` (100) in the observation only.

    ## Rewards

    Chosen with ``reward`` (functions in :mod:`mura_env.rewards`), for the answered study:

    * ``"correct"`` (default): 1 if the prediction is right, else 0;
    * ``"signed"``: +1 if right, else -1;
    * ``"log_likelihood"``: ``log(max(P(true label), probability_floor))``, ``P(true label)``
      being ``p`` for an abnormal study and ``1 - p`` for a normal one;
    * ``"cost_sensitive"``: ``-miss_cost`` for a missed abnormality, ``-false_alarm_cost`` for a
      false alarm, 0 when right.

    ## Starting State

    A study of the selected split (and body parts): drawn uniformly with ``self.np_random`` when
    ``sampling="random"``, the next one in table order when ``sampling="sweep"`` (a seeded reset
    restarts the sweep at the first study). ``reset(options={"study_index": i})`` starts at
    study row ``i`` instead.

    ## Episode End

    The episode terminates after ``studies_per_episode`` answered studies (default 1: one step).
    Between steps of a longer episode the next study is drawn as at reset. There is no
    truncation. The terminal observation is that of the last answered study; stepping a
    finished episode raises ``RuntimeError`` (call ``reset()``).

    After each step ``info`` holds ``study_id``, ``body_part``, ``label``, ``weights``
    (float64 ``[K]``), ``probability``, ``prediction``, ``correct`` and ``study_index``
    (row of the study in the env's selection). ``reset`` returns an empty ``info``.

    ## Rendering

    ``render_mode=None`` (default) draws nothing. ``"rgb_array"``: ``render()`` returns a
    uint8 frame ``[160, W, 3]`` of the current study: its body part, each member's
    probability and weight, the ensemble probability against the threshold, and the label
    (layout: :func:`mura_env.weighting.render.render_rgb`). ``"ansi"``: the same as text. After
    ``reset`` the frame shows the new study unanswered; after ``step``, the answered one.

    ## Arguments

    Keyword arguments, or ``config=WeightingConfig(...)``
    (:class:`mura_env.weighting.config.WeightingConfig`
    holds the same fields, their defaults and their checks; keywords given beside ``config``
    replace its fields).

    The reference tables (:mod:`mura_env.logits.reference`, files
    ``mura_env/assets/reference/reference_{i}.parquet``) hold the ``tune`` and ``valid``
    studies only, so ``split="train"`` needs a ``logits=`` table that has train studies. A
    table whose logits are hidden (NaN) in some split (e.g. a copy with its ``valid`` logits
    withheld) serves the other splits; selecting the hidden one raises ``ValueError``.

    | Argument              | Default      | Meaning                                          |
    |-----------------------|--------------|--------------------------------------------------|
    | logits                | None         | LogitsTable or path of a saved one; None: the    |
    |                       |              | shipped reference table ``reference_table``      |
    | reference_table       | 0            | which reference table (0..5: backbone seed       |
    |                       |              | i // 2 on data draw i % 2) ``logits=None``       |
    |                       |              | loads; ignored when ``logits`` is given          |
    | split                 | "tune"       | "train", "tune", "valid", a list, or None (all)  |
    | models                | None (all)   | model names to use, in order (K = their count)   |
    | body_parts            | None (all)   | body parts whose studies are used                |
    | reward                | "correct"    | "correct", "signed", "log_likelihood",           |
    |                       |              | "cost_sensitive"                                 |
    | action_scale          | 3.0          | multiplies the action before the softmax         |
    | temperature           | 1.0          | divides it (> 0)                                 |
    | threshold             | 0.5          | ``prediction = p > threshold``                   |
    | studies_per_episode   | 1            | answered studies per episode                     |
    | sampling              | "random"     | "random" or "sweep" (every study once, in order) |
    | miss_cost             | 2.0          | cost of a missed abnormality (cost_sensitive)    |
    | false_alarm_cost      | 1.0          | cost of a false alarm (cost_sensitive)           |
    | probability_floor     | 1e-6         | floor of P(true label) (log_likelihood)          |
    | render_mode           | None         | None, "rgb_array" or "ansi"                      |

    ## Vectorized environment

    ``gymnasium.make_vec("MuraWeighting-v0", num_envs=N, ...)`` builds the native, NumPy-batched
    :class:`~mura_env.weighting.vector_env.MuraWeightingVectorEnv` (same kwargs, same mapping and
    rewards) which resets finished episodes in the same step (``AutoresetMode.SAME_STEP``), so
    one-step episodes waste no steps. The same studies and actions give the same predictions and
    rewards (``log_likelihood`` to ~1e-5: the batch runs in float32 with a float64 recheck near
    the threshold); its step info sits in ``info["final_info"]`` and carries ``study_index``
    in place of the ``study_id``/``body_part`` strings.

    ## Version History

    * v0: initial version.

    ## Example

    >>> import gymnasium as gym
    >>> import numpy as np
    >>> import pandas as pd
    >>> import mura_env
    >>> from mura_env.logits import LogitsTable
    >>> studies = pd.DataFrame({
    ...     "study_id": ["s0", "s1"], "patient_id": ["p0", "p1"],
    ...     "body_part": ["WRIST", "HAND"], "label": [1, 0], "split": ["tune", "tune"],
    ...     "n_images": [2, 3]})
    >>> logits = np.array([[[0.0, 2.0], [1.0, 0.0]],
    ...                    [[0.0, -1.0], [0.5, 0.0]]], dtype=np.float32)
    >>> table = LogitsTable.from_arrays(studies, ["resnet", "densenet"], logits)
    >>> env = gym.make("MuraWeighting-v0", logits=table)
    >>> env.observation_space.shape, env.action_space.shape
    ((11,), (2,))
    >>> obs, info = env.reset(seed=0, options={"study_index": 0})
    >>> obs
    array([0., 2., 1., 0., 0., 0., 0., 0., 0., 0., 1.], dtype=float32)
    >>> obs, reward, terminated, truncated, info = env.step(np.zeros(2, dtype=np.float32))
    >>> # uniform weights: p = (sigmoid(2 - 0) + sigmoid(0 - 1)) / 2 > 0.5, and label 1
    >>> info["weights"], round(info["probability"], 4), info["prediction"], reward
    (array([0.5, 0.5]), 0.5749, 1, 1.0)
    >>> terminated, truncated
    (True, False)
    """

    metadata: dict[str, Any] = {"render_modes": list(RENDER_MODES), "render_fps": 4}
    #: The problem (studies, spaces, reward) this env steps through.
    problem_class: type[WeightingProblem] = WeightingProblem

    def __init__(self, config: WeightingConfig | None = None, render_mode: str | None = None,
                 **kwargs: Any) -> None:
        studies = setup_single_env(self, config, render_mode, kwargs).studies
        self.n_studies = studies.n_studies
        # What step() reads, as plain Python values (no NumPy scalar or property overhead).
        self._action_shape = self.action_space.shape
        self._reward_fn = self.problem.reward_fn
        self._obs_rows = list(studies.observations)
        self._probabilities = self.problem.probability_rows
        self._labels = studies.labels.tolist()
        self._study_ids = studies.study_ids.tolist()
        self._body_parts = studies.body_parts.tolist()
        self._cursor = 0  # next study of a sweep
        self._buffer: list[int] = []  # pre-drawn random study rows, popped from the end
        self._buffer_rng: np.random.Generator | None = None
        self._study = -1  # current study row; -1: no episode running
        self._answered = 0  # studies answered in this episode
        self._last: dict[str, Any] | None = None  # info of the last step, for render()

    # ------------------------------------------------------------------ study draws
    def _draw(self) -> int:
        """Next study row: in order (sweep) or uniform from ``np_random`` (drawn in blocks)."""
        if self.config.sampling == "sweep":
            j = self._cursor
            self._cursor = j + 1 if j + 1 < self.n_studies else 0
            return j
        if not self._buffer or self._buffer_rng is not self._np_random:
            rng = self.np_random
            self._buffer = rng.integers(0, self.n_studies, size=DRAW_BLOCK).tolist()[::-1]
            self._buffer_rng = rng
        return self._buffer.pop()

    # ------------------------------------------------------------------ gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode at a new study.

        Args:
            seed: reseeds ``np_random`` (and restarts a sweep at the first study).
            options: ``{"study_index": i}`` starts at study row ``i`` (0 <= i < n_studies).

        Returns:
            ``(observation float32 [2K + 7], {})``.
        """
        if seed is not None:
            super().reset(seed=seed)
            self._buffer = []
            self._cursor = 0
        if options and "study_index" in options:
            i = options["study_index"]
            if (isinstance(i, bool) or not isinstance(i, (int, np.integer))
                    or not 0 <= i < self.n_studies):
                raise ValueError(
                    f"options['study_index'] must be an int in [0, {self.n_studies}), got {i!r}."
                )
            i = int(i)
            if self.config.sampling == "sweep":
                self._cursor = i + 1 if i + 1 < self.n_studies else 0
        else:
            i = self._draw()
        self._study = i
        self._answered = 0
        self._last = None
        return self._obs_rows[i].copy(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Answer the current study with ``action`` (float ``[K]``, see the class docstring).

        Returns:
            ``(observation float32 [2K + 7], reward float, terminated, False, info)``.

        Raises:
            ValueError: wrong shape, non-numeric, NaN or inf action (no reward is given).
            RuntimeError: no running episode (call ``reset()`` first).
        """
        i = self._study
        if i < 0:
            raise RuntimeError("No running episode: call reset() before step().")
        reward, info = self._answer(i, self._clipped(action))
        self._last = info
        self._answered += 1
        if self._answered >= self.config.studies_per_episode:
            self._study = -1
            return self._obs_rows[i].copy(), reward, True, False, info
        self._study = j = self._draw()
        return self._obs_rows[j].copy(), reward, False, False, info

    def _answer(self, i: int, action: list[float]) -> tuple[float, dict[str, Any]]:
        """The reward and step info of answering study row ``i`` with the clipped ``action``."""
        config = self.config
        weights, p = study_mixture(action, self._probabilities[i], config.softmax_scale)
        prediction = 1 if p > config.threshold else 0
        label = self._labels[i]
        info = {
            "study_id": self._study_ids[i], "body_part": self._body_parts[i], "label": label,
            "weights": np.array(weights), "probability": p, "prediction": prediction,
            "correct": prediction == label, "study_index": i,
        }
        return self._reward_fn(p, prediction, label), info

    def _clipped(self, action: Any) -> list[float]:
        """The action as Python floats (one per entry of the action space) clipped to [-1, 1];
        ``ValueError`` if it has the wrong shape, is not numeric, or holds NaN or inf."""
        if not isinstance(action, np.ndarray):
            action = self._as_array(action)
        if action.shape != self._action_shape:
            raise ValueError(
                f"action must have shape {self._action_shape} "
                f"({self.problem.action_contents()}), got shape {action.shape}.")
        values = action.tolist()
        try:
            total = sum(values)
        except TypeError:  # booleans are numbers here; strings and objects are not
            values = self._as_array(action).tolist()
            total = sum(values)
        if total - total != 0.0 and not all(map(math.isfinite, values)):  # NaN or inf
            raise ValueError(f"action must be finite, got {action!r}; no reward is given for it.")
        if min(values) < -1.0 or max(values) > 1.0:
            values = [-1.0 if v < -1.0 else 1.0 if v > 1.0 else v for v in values]
        return values

    @staticmethod
    def _as_array(action: Any) -> np.ndarray:
        try:
            return np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"action must be an array of numbers, got {action!r}.") from e

    def render(self) -> np.ndarray | str | None:
        """The current study (the one just answered, after a step): a uint8 RGB frame
        ``[160, W, 3]`` (``"rgb_array"``), its text (``"ansi"``), or None
        (``render_mode=None``)."""
        if self.render_mode is None:
            return None
        last = self._last
        i = last["study_index"] if last is not None else self._study
        if i < 0:
            raise RuntimeError("Nothing to render: call reset() first.")
        view = study_view(self.problem.studies, i, self.config.threshold,
                          None if last is None else last["weights"],
                          None if last is None else last["probability"])
        return draw(view, self.render_mode)
