"""The weighting problem behind ``MuraWeighting-v0``: the studies, the spaces and the batch step.

:class:`WeightingProblem` resolves a :class:`~mura_env.weighting.config.WeightingConfig` once
(loads the logits table, selects the studies, binds the reward) and is shared by the single env
(:class:`mura_env.weighting.env.MuraWeightingEnv`) and the native vector env
(:class:`mura_env.weighting.vector_env.MuraWeightingVectorEnv`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from sklearn.metrics import cohen_kappa_score

from mura_env.constants import BODY_PARTS
from mura_env.logits.study_set import LOGIT_BOUND, StudySet
from mura_env.rewards import make_reward, reward_bounds
from mura_env.weighting.config import WeightingConfig
from mura_env.weighting.mapping import batch_mixture, exact_predictions


class WeightingProblem:
    """The studies, spaces and reward of one :class:`WeightingConfig`.

    Attributes:
        config: the checked configuration.
        table: the whole :class:`~mura_env.logits.LogitsTable` it names.
        studies: the :class:`~mura_env.logits.study_set.StudySet` of the selection (``n`` studies,
            ``K`` members).
        observation_space: ``Box(float32, (2K + 7,))``; action_space: ``Box(-1, 1, (K,))``.
        reward_fn: ``reward(probability, prediction, label)``; reward_range: its bounds.
        probability_rows: ``studies.probabilities`` as Python lists of floats ``[n][K]``
            (the float64 single-study mapping reads them).

    Raises:
        ValueError: no study left after the selection, unknown names, or selected studies
            whose logits are hidden (NaN) in the table.
        MissingLogitsError, LogitsTableError: no table, or an invalid one.
    """

    #: The configuration class this problem is built from.
    config_class: type[WeightingConfig] = WeightingConfig
    #: The id of the reader a deferred study goes to (None: this problem defers nothing).
    reader: str | None = None

    def __init__(self, config: WeightingConfig | None = None, **kwargs: Any) -> None:
        """Resolve ``config`` with ``kwargs`` (:meth:`WeightingConfig.build`): load the table
        (``logits``, or reference table ``reference_table`` when ``logits`` is None) and
        select its studies."""
        self.config = cfg = self.config_class.build(config, **kwargs)
        self.table = cfg.load_table()
        self.studies = StudySet.select(self.table, split=cfg.split,
                                       models=cfg.models, body_parts=cfg.body_parts)
        reward_args = {"miss_cost": cfg.miss_cost, "false_alarm_cost": cfg.false_alarm_cost,
                       "probability_floor": cfg.probability_floor}
        self.reward_fn = make_reward(cfg.reward, **reward_args)
        self.reward_range = reward_bounds(cfg.reward, **reward_args)
        k = self.studies.n_models
        high = np.concatenate([np.full(2 * k, LOGIT_BOUND), np.ones(len(BODY_PARTS))])
        low = np.concatenate([np.full(2 * k, -LOGIT_BOUND), np.zeros(len(BODY_PARTS))])
        self.observation_space = spaces.Box(low.astype(np.float32), high.astype(np.float32),
                                            dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(k,), dtype=np.float32)
        # float32 probabilities for the batch step; float64 rows for single-study arithmetic.
        self._probabilities32 = self.studies.probabilities.astype(np.float32)
        self.probability_rows = self.studies.probabilities.tolist()
        self._labels8 = self.studies.labels.astype(np.int8)

    def action_contents(self) -> str:
        """What one action holds, in words (for error messages)."""
        return f"one preference per model {list(self.studies.model_names)}"

    @property
    def n_studies(self) -> int:
        """``n``, the number of selected studies."""
        return self.studies.n_studies

    @property
    def n_models(self) -> int:
        """``K``, the number of members weighted."""
        return self.studies.n_models

    def check_actions(self, actions: Any, n: int) -> np.ndarray:
        """Validate a batch of actions: array-like ``[n, A]`` of finite numbers (``A`` the
        action size: ``K``, or ``K + 1`` for the deferral problem).

        Returns:
            A float array ``[n, A]`` with values clipped to [-1, 1] (the input itself when it
            already lies there).

        Raises:
            ValueError: wrong shape, non-numeric, NaN or inf.
        """
        a = actions if isinstance(actions, np.ndarray) else np.asarray(actions)
        size = self.action_space.shape[0]
        if a.shape != (n, size):
            raise ValueError(
                f"actions must have shape (num_envs, {size}) = ({n}, {size}): "
                f"{self.action_contents()} per env; got shape {a.shape}.")
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
                    "No reward is given for them.")
            a = np.clip(a, -1.0, 1.0)
        return a

    def evaluate(self, study_index: np.ndarray, actions: np.ndarray) -> dict[str, np.ndarray]:
        """The mapping and reward for a batch of studies (the vector env's step).

        Runs :func:`mura_env.weighting.mapping.batch_mixture` in float32 (relative error ~1e-6,
        which keeps the vector env at CartPole speed) and makes its predictions exact with
        :func:`mura_env.weighting.mapping.exact_predictions`, so predictions and the ``correct``,
        ``signed`` and ``cost_sensitive`` rewards are exactly those of the single env;
        ``log_likelihood`` rewards agree to ~1e-5.

        Args:
            study_index: int array ``[n]`` of study rows.
            actions: float array ``[n, K]``, already checked by :meth:`check_actions`.

        Returns:
            dict with ``weights`` float32 ``[n, K]`` (a transposed view of a ``[K, n]`` array),
            ``probability`` float32 ``[n]``, ``prediction`` int8 ``[n]``, ``label`` int8
            ``[n]``, ``correct`` bool ``[n]``, ``reward`` float64 ``[n]``.
        """
        cfg = self.config
        w, p = batch_mixture(actions, self._probabilities32.take(study_index, axis=0),
                             cfg.softmax_scale, dtype=np.float32)
        above = exact_predictions(p, actions, self.probability_rows, study_index,
                                  cfg.softmax_scale, cfg.threshold)
        pred = above.view(np.int8)
        label = self._labels8.take(study_index)
        reward = np.asarray(self.reward_fn(p, pred, label), dtype=np.float64)
        return {"weights": w, "probability": p, "prediction": pred, "label": label,
                "correct": above == label, "reward": reward}

    def answer_scores(self, answers: dict[str, np.ndarray]) -> dict[str, float]:
        """``accuracy`` and Cohen's ``kappa`` of the answers that count, from an
        :meth:`evaluate` output."""
        label, prediction = answers["label"], answers["prediction"]
        return {"accuracy": float((prediction == label).mean()),
                "kappa": float(cohen_kappa_score(label, prediction))}
