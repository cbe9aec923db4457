"""``MuraDeferral-v0``: weight an ensemble of frozen X-ray classifiers, or hand the study to a
radiologist.

The single env :class:`MuraDeferralEnv` and the native vector env
:class:`MuraDeferralVectorEnv`. Both extend their ``MuraWeighting-v0`` counterparts (whose
contract does not change) with the :class:`~mura_env.deferral.problem.DeferralProblem`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import VectorEnv

from mura_env.deferral.problem import DeferralProblem, defer_reward, team_answer
from mura_env.weighting.env import MuraWeightingEnv
from mura_env.weighting.mapping import study_mixture
from mura_env.weighting.vector_env import STEP_INFO_KEYS, MuraWeightingVectorEnv

#: Keys of the per-study step info of the vector env.
DEFERRAL_STEP_INFO_KEYS = (*STEP_INFO_KEYS, "deferred", "ensemble_prediction",
                           "ensemble_correct", "reader_correct")


class MuraDeferralEnv(MuraWeightingEnv):
    """
    ## Description

    ``MuraWeighting-v0`` with a second decision: for each study the agent weights the ``K``
    frozen members *and* decides whether to hand the study to a radiologist (the *reader*).
    A deferred study is answered by the reader's read, stored in the logits table's reader
    column (real reads from a CSV or a simulated reader: :mod:`mura_env.readers`), at a cost
    ``defer_cost``; any other study by the weighted ensemble. The question it asks is which
    studies the ensemble may read alone.

    ## Action Space

    ``Box(-1, 1, (K + 1,), float32)``: ``K`` preferences, one per member in ``model_names``
    order, mapped to weights exactly as in ``MuraWeighting-v0``, then the defer score::

        w = softmax(action_scale * clip(action[:K], -1, 1) / temperature)
        p = sum_k w_k * softmax(logits_k)[1]             # ensemble abnormality probability
        deferred = action[K] > 0 answer = read if deferred else int(p > threshold)

    A zero action gives uniform weights and keeps the study. An action of the wrong shape or
    with NaN/inf raises ``ValueError`` and gives no reward.

    ## Observation Space

    ``MuraWeighting-v0``'s: ``Box(float32, (2K + 7,))``, the members' logits (clipped to
    ``±100``) and the one-hot body part. The reader's read is never observed.

    ## Rewards

    The reward function ``reward`` of ``MuraWeighting-v0`` (``correct``, ``signed``,
    ``log_likelihood``, ``cost_sensitive`` with ``miss_cost`` and ``false_alarm_cost``) scores
    whichever answer counts:

    * kept study: ``reward(p, int(p > threshold), label)``, as in ``MuraWeighting-v0``;
    * deferred study: ``reward(read, read, label) - defer_cost``: the read stands in for the
      probability too, so ``log_likelihood`` gives 0 for a right read and
      ``log(probability_floor)`` for a wrong one.

    With the default ``correct`` reward a deferral gains ``1 - defer_cost`` when the reader is
    right and the ensemble wrong, and loses ``defer_cost`` when both are right.

    ## Starting State, Episode End, Rendering

    As ``MuraWeighting-v0`` (:class:`mura_env.weighting.env.MuraWeightingEnv`): one study per
    episode by default, ``sampling="random"`` or ``"sweep"``, ``reset(options={"study_index": i})``;
    renders show the members' weights and the ensemble probability.

    After each step ``info`` holds ``MuraWeighting-v0``'s keys, with ``prediction`` and
    ``correct`` those of the answer that counts, plus ``deferred`` (bool),
    ``ensemble_prediction``, ``ensemble_correct`` and ``reader_correct``; ``probability`` is
    the ensemble's.

    ## Arguments

    Every argument of ``MuraWeighting-v0`` (:class:`mura_env.weighting.config.WeightingConfig`), or
    ``config=DeferralConfig(...)`` (:class:`mura_env.deferral.config.DeferralConfig`), plus:

    | Argument    | Default | Meaning                                                     |
    |-------------|---------|-------------------------------------------------------------|
    | defer_cost  | 0.1     | subtracted from a deferred study's reward (finite, >= 0)    |
    | reader      | None    | reader id (column ``reader_<id>``); None: radiologist_3 if  |
    |             |         | the table has it, else the table's only reader              |

    The shipped reference tables carry three simulated radiologists, ``radiologist_1``,
    ``radiologist_2`` and ``radiologist_3`` (the MURA paper's per-part kappas; their errors
    share the studies' difficulty, :mod:`mura_env.readers`). A table
    without a reader column raises ``KeyError`` naming the two ways to add one
    (``table.with_reads(load_reader_csv(path))``, ``table.with_simulated_reader()``); a
    negative or non-finite ``defer_cost`` raises ``ValueError``.

    ## Vectorized environment

    ``gymnasium.make_vec("MuraDeferral-v0", num_envs=N, ...)`` builds
    :class:`MuraDeferralVectorEnv`, the same NumPy-batched env as ``MuraWeighting-v0``'s
    with the deferral keys added to its step info.

    ## Version History

    * v0: initial version.

    ## Example

    >>> import gymnasium as gym
    >>> import numpy as np
    >>> import mura_env
    >>> env = gym.make("MuraDeferral-v0", defer_cost=0.1)
    >>> env.action_space.shape == (len(env.unwrapped.model_names) + 1,)
    True
    >>> obs, info = env.reset(seed=0)
    >>> action = np.zeros(env.action_space.shape, dtype=np.float32)
    >>> action[-1] = 1.0  # defer
    >>> obs, reward, terminated, truncated, info = env.step(action)
    >>> info["deferred"], reward == (1.0 if info["reader_correct"] else 0.0) - 0.1
    (True, True)
    """

    problem_class = DeferralProblem

    def __init__(self, config: Any = None, render_mode: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(config, render_mode, **kwargs)
        self.reader = self.problem.reader
        self._reads = self.problem.read_rows

    def _answer(self, i: int, action: list[float]) -> tuple[float, dict[str, Any]]:
        """The reward and step info of answering study row ``i`` with the clipped ``action``
        (``K`` preferences, then the defer score)."""
        config = self.config
        weights, p = study_mixture(action[:-1], self._probabilities[i], config.softmax_scale)
        ensemble_prediction = 1 if p > config.threshold else 0
        label = self._labels[i]
        read = self._reads[i]
        deferred = action[-1] > 0.0
        prediction = int(team_answer(deferred, read, ensemble_prediction))
        reward = (defer_reward(self._reward_fn, read, label, config.defer_cost) if deferred
                  else self._reward_fn(p, ensemble_prediction, label))
        info = {
            "study_id": self._study_ids[i], "body_part": self._body_parts[i], "label": label,
            "weights": np.array(weights), "probability": p, "prediction": prediction,
            "correct": prediction == label, "study_index": i, "deferred": deferred,
            "ensemble_prediction": ensemble_prediction,
            "ensemble_correct": ensemble_prediction == label, "reader_correct": read == label,
        }
        return float(reward), info


class MuraDeferralVectorEnv(MuraWeightingVectorEnv, VectorEnv):
    """``num_envs`` copies of ``MuraDeferral-v0`` stepped together with NumPy.

    (``VectorEnv`` is named among its bases as well, for libraries that recognise a Gymnasium
    vector env by its direct bases, such as skrl's ``wrap_env``.)

    Per sub-environment the semantics are those of :class:`MuraDeferralEnv`: actions
    float32 ``[num_envs, K + 1]`` (preferences, then the defer score), the same observation,
    rewards and defer decision (the batch uses
    :meth:`mura_env.deferral.problem.DeferralProblem.evaluate`). Everything else (same-step
    autoreset, ``final_info`` with ``_key`` masks, sweeps, rendering) is
    :class:`mura_env.weighting.vector_env.MuraWeightingVectorEnv`'s; the step info adds
    ``deferred``, ``ensemble_prediction``, ``ensemble_correct`` and ``reader_correct``, and its
    ``prediction`` and ``correct`` are those of the answer that counts.

    Args:
        num_envs: number of sub-environments (>= 1).
        config, render_mode, other keywords: as :class:`MuraDeferralEnv`.
    """

    problem_class = DeferralProblem
    step_info_keys = DEFERRAL_STEP_INFO_KEYS
