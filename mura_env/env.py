"""``MuraWeighting-v0``: weight an ensemble of frozen X-ray classifiers, one study at a time.

:class:`WeightingProblem` resolves the logits table, precomputes every per-study array and holds
the action -> weights -> probability -> reward mapping shared by the single env
(:class:`MuraWeightingEnv`, here) and the native vector env
(:class:`mura_env.vector_env.MuraWeightingVectorEnv`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from math import exp
from operator import mul
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mura_env.constants import BODY_PARTS, SPLITS
from mura_env.logits import LogitsTable, resolve_logits
from mura_env.rewards import (
    DEFAULT_FALSE_ALARM_COST,
    DEFAULT_MISS_COST,
    DEFAULT_PROBABILITY_FLOOR,
    make_reward,
    reward_bounds,
)

#: Observation bound of a logit: logits are clipped to [-LOGIT_BOUND, LOGIT_BOUND] in the
#: observation (softmax saturates long before); probabilities use the unclipped logits.
LOGIT_BOUND = 100.0
#: Sampling modes: ``random`` draws studies with ``np_random``; ``sweep`` visits them in order.
SAMPLING_MODES = ("random", "sweep")
#: Default action scale: weights of two models can differ by up to ``exp(2 * 3)`` ~ 400x.
DEFAULT_ACTION_SCALE = 3.0
# |action_scale / temperature| up to this needs no max-shift in the softmax (exp(50) is fine).
_NO_SHIFT_LIMIT = 50.0
# Relative error scale of the float32 batch path (see WeightingProblem.evaluate).
_RECHECK_MARGIN = 1e-6
# Random study indices are drawn from np_random in blocks of this many (see _draw).
_DRAW_BLOCK = 4096


def _positive_finite(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
    return v


class WeightingProblem:
    """The data and the action -> reward mapping behind ``MuraWeighting-v0``.

    Built from the env kwargs (see :class:`MuraWeightingEnv`); precomputes, for the ``n``
    selected studies and ``K`` selected models:

    * ``observations``: float32 ``[n, 2K + 7]``, logits flattened model by model (each clipped
      to ``±LOGIT_BOUND``), then the one-hot body part in ``BODY_PARTS`` order;
    * ``probabilities``: float64 ``[n, K]``, each model's ``softmax(logits)[1]``;
    * ``labels`` int64 ``[n]``, ``study_ids`` (object) and ``body_parts`` (str) arrays ``[n]``.

    Attributes also hold the spaces, the bound reward function ``reward_fn`` and
    ``coef = action_scale / temperature``.
    """

    def __init__(
        self,
        logits: LogitsTable | str | os.PathLike[str] | None = None,
        split: str | Sequence[str] | None = "tune",
        models: Sequence[str] | None = None,
        body_parts: Sequence[str] | None = None,
        reward: str = "correct",
        action_scale: float = DEFAULT_ACTION_SCALE,
        temperature: float = 1.0,
        threshold: float = 0.5,
        studies_per_episode: int = 1,
        sampling: str = "random",
        miss_cost: float = DEFAULT_MISS_COST,
        false_alarm_cost: float = DEFAULT_FALSE_ALARM_COST,
        probability_floor: float = DEFAULT_PROBABILITY_FLOOR,
    ) -> None:
        self.action_scale = _positive_finite("action_scale", action_scale)
        self.temperature = _positive_finite("temperature", temperature)
        self.coef = self.action_scale / self.temperature
        self.shift = abs(self.coef) > _NO_SHIFT_LIMIT
        try:
            self.threshold = float(threshold)
        except (TypeError, ValueError):
            self.threshold = math.nan
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {threshold!r}.")
        if (isinstance(studies_per_episode, bool)
                or not isinstance(studies_per_episode, (int, np.integer))
                or studies_per_episode < 1):
            raise ValueError(
                f"studies_per_episode must be an integer >= 1, got {studies_per_episode!r}."
            )
        self.studies_per_episode = int(studies_per_episode)
        if sampling not in SAMPLING_MODES:
            raise ValueError(f"sampling must be one of {SAMPLING_MODES}, got {sampling!r}.")
        self.sampling = sampling
        self.reward = reward
        self.reward_fn = make_reward(reward, miss_cost=miss_cost,
                                     false_alarm_cost=false_alarm_cost,
                                     probability_floor=probability_floor)
        self.reward_range = reward_bounds(reward, miss_cost=miss_cost,
                                          false_alarm_cost=false_alarm_cost,
                                          probability_floor=probability_floor)
        if isinstance(split, str) and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} (or None for all), got {split!r}.")

        full = resolve_logits(logits)
        table = full.select(split=split, body_parts=body_parts, models=models)
        if len(table) == 0:
            raise ValueError(
                f"No studies left in the logits table for split={split!r}, "
                f"body_parts={body_parts!r}: {full!r}. Pick another split or body parts."
            )
        self.table = table
        self.model_names = table.model_names
        self.n_studies = n = len(table)
        self.n_models = k = table.n_models

        part_idx = table.studies["body_part"].map({b: i for i, b in enumerate(BODY_PARTS)})
        part_idx = part_idx.to_numpy(dtype=np.int64)
        obs = np.zeros((n, 2 * k + len(BODY_PARTS)), dtype=np.float32)
        obs[:, : 2 * k] = np.clip(table.logits.reshape(n, 2 * k), -LOGIT_BOUND, LOGIT_BOUND)
        obs[np.arange(n), 2 * k + part_idx] = 1.0
        obs.flags.writeable = False
        self.observations = obs
        self.probabilities = np.ascontiguousarray(table.abnormal_probabilities())
        self.probabilities.flags.writeable = False
        # float32 copies and Python lists for the vector env's fast path and its rechecks.
        self._probabilities_t32 = np.ascontiguousarray(self.probabilities.T, dtype=np.float32)
        self._probs_list = self.probabilities.tolist()
        self._coef32 = np.float32(self.coef)
        self._threshold32 = np.float32(self.threshold)
        #: float32 results this close to the threshold are recomputed in float64.
        self.recheck_margin = float(_RECHECK_MARGIN * (4.0 + 2.0 * abs(self.coef)))
        self.labels = table.studies["label"].to_numpy(dtype=np.int64)
        self._labels8 = self.labels.astype(np.int8)
        self.study_ids = table.studies["study_id"].to_numpy(dtype=object)
        self.body_parts = np.array(BODY_PARTS)[part_idx]  # fixed-width str, fast to gather
        self.body_part_index = part_idx

        high = np.concatenate([np.full(2 * k, LOGIT_BOUND), np.ones(len(BODY_PARTS))])
        low = np.concatenate([np.full(2 * k, -LOGIT_BOUND), np.zeros(len(BODY_PARTS))])
        self.observation_space = spaces.Box(low.astype(np.float32), high.astype(np.float32),
                                            dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(k,), dtype=np.float32)

    # ------------------------------------------------------------------ batched mapping
    def check_actions(self, actions: Any, n: int) -> np.ndarray:
        """Validate a batch of actions: array-like ``[n, K]`` of finite numbers.

        Returns:
            A float array ``[n, K]`` with values clipped to [-1, 1] (the input itself when it
            already lies there).

        Raises:
            ValueError: wrong shape, non-numeric, NaN or inf.
        """
        a = actions if isinstance(actions, np.ndarray) else np.asarray(actions)
        if a.shape != (n, self.n_models):
            raise ValueError(
                f"actions must have shape (num_envs, K) = ({n}, {self.n_models}): one preference "
                f"per model {list(self.model_names)} per env; got shape {a.shape}."
            )
        if a.dtype.kind not in "fiu":
            try:
                a = a.astype(np.float64)
            except (TypeError, ValueError) as e:
                raise ValueError(f"actions must be numbers, got dtype {a.dtype}.") from e
        if not (a.min() >= -1.0 and a.max() <= 1.0):
            finite = np.isfinite(a)
            if not finite.all():
                bad = np.flatnonzero(~finite.all(axis=1))
                raise ValueError(
                    f"actions must be finite; NaN/inf in the actions of env(s) "
                    f"{bad[:10].tolist()}{' ...' if len(bad) > 10 else ''}. "
                    "No reward is given for them."
                )
            a = np.clip(a, -1.0, 1.0)
        return a

    def evaluate(self, study_index: np.ndarray, actions: np.ndarray) -> dict[str, np.ndarray]:
        """Apply the action -> reward mapping to a batch of studies (the vector env's path).

        The weights and probabilities are computed in float32 (relative error ~1e-6, which
        keeps the vector env at CartPole speed); every study whose probability lies within
        ``recheck_margin`` of the threshold is recomputed with the single env's float64
        :func:`mixture`, so predictions, and the ``correct``, ``signed`` and ``cost_sensitive``
        rewards, are exactly those of the single env; ``log_likelihood`` rewards agree to ~1e-5.

        Args:
            study_index: int array ``[n]`` of study rows.
            actions: float array ``[n, K]``, already checked by :meth:`check_actions`.

        Returns:
            dict with ``weights`` float32 ``[n, K]`` (a transposed view of a ``[K, n]`` array),
            ``probability`` float32 ``[n]``, ``prediction`` int8 ``[n]``, ``label`` int8
            ``[n]``, ``correct`` bool ``[n]``, ``reward`` float64 ``[n]``.
        """
        # Model-major ([K, n] rows), so every NumPy op runs on long contiguous rows.
        z = np.multiply(actions.T, self._coef32, dtype=np.float32, order="C")
        if self.shift:
            z -= z.max(axis=0)
        e = np.exp(z, out=z)
        w = np.divide(e, e.sum(axis=0), out=e)
        q = self._probabilities_t32.take(study_index, axis=1)
        q *= w
        p = q.sum(axis=0)
        np.minimum(p, np.float32(1.0), out=p)
        above = p > self._threshold32
        near = np.flatnonzero(np.abs(p - self._threshold32) <= self.recheck_margin)
        for j in near.tolist():
            i = int(study_index[j])
            _, _, pj = mixture(actions[j].tolist(), self._probs_list[i], self.coef, self.shift)
            p[j] = pj
            above[j] = pj > self.threshold
        pred = above.view(np.int8)
        label = self._labels8.take(study_index)
        correct = above == label
        reward = np.asarray(self.reward_fn(p, pred, label), dtype=np.float64)
        return {"weights": w.T, "probability": p, "prediction": pred, "label": label,
                "correct": correct, "reward": reward}


def mixture(
    action: list[float], probabilities: list[float], coef: float, shift: bool
) -> tuple[list[float], float, float]:
    """The env's mapping for one study, in float64 Python arithmetic (the single env's path).

    Args:
        action: the ``K`` preferences, already clipped to [-1, 1].
        probabilities: the ``K`` models' abnormality probabilities for the study.
        coef: ``action_scale / temperature``.
        shift: subtract the largest preference first (needed when ``|coef|`` is large).

    Returns:
        ``(e, total, p)``: unnormalized softmax terms ``e`` (weights are ``e / total``), their
        sum, and the ensemble abnormality probability ``p = sum(e * probabilities) / total``
        (at most 1).
    """
    if shift:
        m = max(action)
        es = [math.exp(coef * (v - m)) for v in action]
    else:
        es = [math.exp(coef * v) for v in action]
    tot = sum(es)
    p = sum(map(mul, es, probabilities)) / tot
    return es, tot, (p if p <= 1.0 else 1.0)


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

    ## Arguments

    | Argument              | Default      | Meaning                                          |
    |-----------------------|--------------|--------------------------------------------------|
    | logits                | None         | LogitsTable or path of a saved one; None: the    |
    |                       |              | built-in ``mura_env/assets/default_logits.parquet``|
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

    ## Vectorized environment

    ``gymnasium.make_vec("MuraWeighting-v0", num_envs=N, ...)`` builds the native, NumPy-batched
    :class:`~mura_env.vector_env.MuraWeightingVectorEnv` (same kwargs, same mapping and rewards)
    which resets finished episodes in the same step (``AutoresetMode.SAME_STEP``), so one-step
    episodes waste no steps. The same studies and actions give the same predictions and
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

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        logits: LogitsTable | str | os.PathLike[str] | None = None,
        split: str | Sequence[str] | None = "tune",
        models: Sequence[str] | None = None,
        body_parts: Sequence[str] | None = None,
        reward: str = "correct",
        action_scale: float = DEFAULT_ACTION_SCALE,
        temperature: float = 1.0,
        threshold: float = 0.5,
        studies_per_episode: int = 1,
        sampling: str = "random",
        miss_cost: float = DEFAULT_MISS_COST,
        false_alarm_cost: float = DEFAULT_FALSE_ALARM_COST,
        probability_floor: float = DEFAULT_PROBABILITY_FLOOR,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None:
            raise ValueError(f"MuraWeighting-v0 has no render modes; got {render_mode!r}.")
        self.problem = pb = WeightingProblem(
            logits, split, models, body_parts, reward, action_scale, temperature, threshold,
            studies_per_episode, sampling, miss_cost, false_alarm_cost, probability_floor,
        )
        self.render_mode = None
        self.observation_space = pb.observation_space
        self.action_space = pb.action_space
        self.model_names = pb.model_names
        self.n_studies = pb.n_studies
        # Lean per-study Python data for step()/reset().
        self._obs_rows = list(pb.observations)
        self._probs = pb.probabilities.tolist()
        self._labels = pb.labels.tolist()
        self._ids = pb.study_ids.tolist()
        self._parts = pb.body_parts.tolist()
        self._action_shape = (pb.n_models,)
        self._coef = pb.coef
        self._shift = pb.shift
        self._threshold = pb.threshold
        self._reward_fn = pb.reward_fn
        self._spe = pb.studies_per_episode
        self._sweep = pb.sampling == "sweep"
        self._cursor = 0
        self._buffer: list[int] = []
        self._buffer_rng: np.random.Generator | None = None
        self._study = -1  # current study row; -1: no episode running
        self._t = 0  # studies answered in this episode

    # ------------------------------------------------------------------ study draws
    def _draw(self) -> int:
        """Next study row: in order (sweep) or uniform from ``np_random`` (drawn in blocks)."""
        if self._sweep:
            j = self._cursor
            self._cursor = j + 1 if j + 1 < self.n_studies else 0
            return j
        if not self._buffer or self._buffer_rng is not self._np_random:
            rng = self.np_random
            self._buffer = rng.integers(0, self.n_studies, size=_DRAW_BLOCK).tolist()[::-1]
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
            if self._sweep:
                self._cursor = i + 1 if i + 1 < self.n_studies else 0
        else:
            i = self._draw()
        self._study = i
        self._t = 0
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
        try:
            shape = action.shape
        except AttributeError:
            action = self._as_array(action)
            shape = action.shape
        if shape != self._action_shape:
            raise ValueError(
                f"action must have shape {self._action_shape} (one preference per model "
                f"{list(self.model_names)}), got shape {shape}."
            )
        vals = action.tolist()
        try:
            s = sum(vals)
        except TypeError:
            vals = self._as_array(action).tolist()
            s = sum(vals)
        if s - s != 0.0:  # a NaN or inf (or a float64 overflow of the sum)
            if not all(map(math.isfinite, vals)):
                raise ValueError(
                    f"action must be finite, got {action!r}; no reward is given for it."
                )
        if min(vals) < -1.0 or max(vals) > 1.0:
            vals = [-1.0 if v < -1.0 else 1.0 if v > 1.0 else v for v in vals]
        # mixture(vals, self._probs[i], self._coef, self._shift), inlined for speed (the
        # vector env's recheck calls mixture(); tests hold the two to the same numbers).
        c = self._coef
        if self._shift:
            m = max(vals)
            es = [exp(c * (v - m)) for v in vals]
        else:
            es = [exp(c * v) for v in vals]
        tot = sum(es)
        p = sum(map(mul, es, self._probs[i])) / tot
        if p > 1.0:
            p = 1.0
        pred = 1 if p > self._threshold else 0
        label = self._labels[i]
        reward = self._reward_fn(p, pred, label)
        info = {
            "study_id": self._ids[i], "body_part": self._parts[i], "label": label,
            "weights": np.array([e / tot for e in es]), "probability": p,
            "prediction": pred, "correct": pred == label, "study_index": i,
        }
        self._t += 1
        if self._t >= self._spe:
            self._study = -1
            return self._obs_rows[i].copy(), reward, True, False, info
        j = self._study = self._draw()
        return self._obs_rows[j].copy(), reward, False, False, info

    @staticmethod
    def _as_array(action: Any) -> np.ndarray:
        try:
            return np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"action must be an array of numbers, got {action!r}.") from e

    def render(self) -> None:
        """No rendering (``metadata["render_modes"]`` is empty)."""
        return None
