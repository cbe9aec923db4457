"""The deferral problem behind ``MuraDeferral-v0``: the weighting problem plus a reader and a
defer decision.

:class:`DeferralProblem` extends :class:`~mura_env.weighting.problem.WeightingProblem`: the action
gets one more entry, the defer score; a deferred study is answered by the table's reader instead of
the weighted ensemble, and costs ``defer_cost``. It is shared by the single env
(:class:`mura_env.deferral.env.MuraDeferralEnv`) and the vector env
(:class:`mura_env.deferral.env.MuraDeferralVectorEnv`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from sklearn.metrics import cohen_kappa_score

from mura_env.deferral.config import DeferralConfig
from mura_env.readers import resolve_reader
from mura_env.weighting.problem import WeightingProblem


def defer_reward(reward_fn: Any, read: Any, label: Any, defer_cost: float) -> Any:
    """The reward of a deferred study: the reward of the reader's read minus ``defer_cost``.

    The read stands in for both the probability and the prediction of the reward function
    (``log_likelihood`` then scores 0 for a right read and ``log(probability_floor)`` for a
    wrong one).

    Args:
        reward_fn: ``reward(probability, prediction, label)`` (:mod:`mura_env.rewards`).
        read: the reader's 0/1 read, an int or int array ``[n]``.
        label: the 0/1 true label, same kind as ``read``.
        defer_cost: cost of the deferral (>= 0).

    Returns:
        A float (scalars) or float64 array ``[n]``.
    """
    probability = read * 1.0
    return reward_fn(probability, read, label) - defer_cost


def team_answer(deferred: Any, read: Any, ensemble_prediction: Any) -> np.ndarray:
    """The answer that counts for a team of ensemble and reader: the read where the study was
    deferred, else the ensemble's prediction.

    Args:
        deferred: bool ``[n]`` (or a bool); read: the reader's 0/1 reads ``[n]``;
        ensemble_prediction: the ensemble's 0/1 predictions ``[n]``.

    Returns:
        int8 ``[n]`` (a 0-d array for scalars).
    """
    return np.where(deferred, read, ensemble_prediction).astype(np.int8)


def team_scores(labels: np.ndarray, team: np.ndarray, deferred: np.ndarray
                ) -> dict[str, float]:
    """The team's ``accuracy`` and Cohen's ``kappa`` (its answers ``team`` against ``labels``,
    int ``[n]``) and its ``deferral_rate`` (share of ``deferred``, bool ``[n]``)."""
    return {"accuracy": float((team == labels).mean()),
            "kappa": float(cohen_kappa_score(labels, team)),
            "deferral_rate": float(np.mean(deferred))}


class DeferralProblem(WeightingProblem):
    """The studies, spaces and reward of one :class:`~mura_env.deferral.config.DeferralConfig`.

    Attributes (besides those of :class:`~mura_env.weighting.problem.WeightingProblem`):
        reader: the id of the reader deferred studies go to.
        reads: read-only int8 ``[n]``, the reader's read of each selected study (never part
            of the observation).
        action_space: ``Box(-1, 1, (K + 1,))``: ``K`` preferences, then the defer score.

    Raises:
        KeyError: the table has no reader column, several and ``reader`` is None, or none
            named ``reader`` (the message gives the two ways to add reads).
    """

    config_class = DeferralConfig

    def __init__(self, config: DeferralConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        cfg = self.config
        self.reader = reader = resolve_reader(self.table.reader_ids, cfg.reader)
        selected = self.table.select(split=cfg.split, body_parts=cfg.body_parts)
        reads = selected.reads(reader).copy()
        reads.flags.writeable = False
        self.reads = reads
        self.read_rows = reads.tolist()
        self.action_space = spaces.Box(-1.0, 1.0, shape=(self.n_models + 1,), dtype=np.float32)
        lowest, highest = self.reward_range
        self.reward_range = (min(lowest, lowest - cfg.defer_cost), highest)

    def action_contents(self) -> str:
        """What one action holds, in words (for error messages)."""
        return (f"one preference per model {list(self.studies.model_names)}, then the defer "
                "score (> 0 defers)")

    def evaluate(self, study_index: np.ndarray, actions: np.ndarray) -> dict[str, np.ndarray]:
        """The mapping, the defer decision and the reward for a batch of studies.

        Args:
            study_index: int array ``[n]`` of study rows.
            actions: float array ``[n, K + 1]``, already checked by :meth:`check_actions`.

        Returns:
            dict with ``weights`` float32 ``[n, K]``, ``probability`` (the ensemble's) float32
            ``[n]``, ``ensemble_prediction``, ``read``, ``prediction`` (the answer that counts:
            the read where deferred) and ``label`` int8 ``[n]``, ``deferred``,
            ``ensemble_correct``, ``reader_correct`` and ``correct`` bool ``[n]``, ``reward``
            float64 ``[n]``.
        """
        k = self.n_models
        out = super().evaluate(study_index, np.ascontiguousarray(actions[:, :k]))
        deferred = actions[:, k] > 0
        label = out["label"]
        read = self.reads.take(study_index)
        kept_reward = out["reward"]
        deferred_reward = np.asarray(
            defer_reward(self.reward_fn, read, label, self.config.defer_cost), dtype=np.float64)
        prediction = team_answer(deferred, read, out["prediction"])
        return {
            "weights": out["weights"], "probability": out["probability"],
            "ensemble_prediction": out["prediction"], "read": read, "prediction": prediction,
            "label": label, "deferred": deferred, "ensemble_correct": out["correct"],
            "reader_correct": read == label, "correct": prediction == label,
            "reward": np.where(deferred, deferred_reward, kept_reward),
        }

    def answer_scores(self, answers: dict[str, np.ndarray]) -> dict[str, float]:
        """The team's ``accuracy``, ``kappa`` and ``deferral_rate`` (:func:`team_scores`)
        from an :meth:`evaluate` output."""
        return team_scores(answers["label"], answers["prediction"], answers["deferred"])

