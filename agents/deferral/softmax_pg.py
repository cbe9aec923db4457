"""Native softmax policy-gradient agent for ``MuraDeferral-v0``: the weighting policy of
:mod:`agents.weighting.softmax_pg` plus a Bernoulli defer head.

The action is ``[tanh(z), ±1]``: ``z`` the Gaussian preferences of
:class:`~agents.weighting.softmax_pg.SoftmaxPGAgent`, then +1 (defer) or -1 (keep) drawn from
``Bernoulli(sigmoid(defer_logit))``.

The defer head is a logistic model per body part on how unsure the ensemble is::

    defer_logit = bias[part] + slope[part] . u

``u`` holds each member's doubt and that of the ensemble ``p = sum_k w_k q_k`` of the current
mean weights ``w``; the doubt of a probability ``q`` is ``log(|2q - 1| + 0.01) / log(0.01)``
(0 when sure, about 1 at 0.5, spread out where the ensemble is nearly unsure; ``q_k`` is
member ``k``'s abnormality probability, read from the observed logits). Sure studies move
only the bias, the slopes learn from the unsure ones, and each body part learns from its own
studies only. The value baseline is per body part and linear in ``u`` too.

Both heads are trained by the same REINFORCE update
(:func:`agents.weighting.softmax_pg.train_softmax_pg`, which this agent plugs into): the
log-probability of an action is that of its preferences plus that of its defer decision. The
deterministic action defers when ``defer_logit > 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.weighting.softmax_pg import N_PARTS, SoftmaxPGAgent, SoftmaxPGConfig
from mura_env.weighting.mapping import EnsembleMapping

#: Doubt of a probability: ``log(|2q - 1| + DOUBT_FLOOR) / log(DOUBT_FLOOR)``.
DOUBT_FLOOR = 0.01


@dataclass
class DeferralPGConfig(SoftmaxPGConfig):
    """Hyper-parameters of the deferral agent:
    :class:`~agents.weighting.softmax_pg.SoftmaxPGConfig`'s,
    plus the defer head's."""

    defer_learning_rate: float = field(default=0.2, metadata={
        "help": "Adam step size of the defer head"})
    softmax_scale: float = field(default=EnsembleMapping().softmax_scale, metadata={
        "help": "the env's action_scale / temperature, with which the defer head computes "
                "the ensemble probability of the current mean weights (set from the env's "
                "configuration when trained)"})


class DeferralPGAgent(SoftmaxPGAgent):
    """Gaussian preferences (as :class:`~agents.weighting.softmax_pg.SoftmaxPGAgent`) and a
    Bernoulli defer decision.

    Args:
        n_models: ``K``; actions are float32 ``[B, K + 1]`` (``K`` preferences in (-1, 1),
            then +1 defer or -1 keep).
        config: :class:`DeferralPGConfig`.

    Extra parameters: ``defer_bias`` ``[7]`` and ``defer_slope`` ``[7, K + 1]``, per body
    part (zeros: defer half the studies at first), and ``value_slope`` ``[7, K + 1]``: the
    value baseline is per body part and linear in the doubt features, so a study's advantage
    is measured against what studies as hard usually score.
    """

    config_class = DeferralPGConfig
    env_settings = ("softmax_scale",)

    def __init__(self, n_models: int, config: DeferralPGConfig | None = None) -> None:
        super().__init__(n_models, config)
        self.defer_bias = nn.Parameter(torch.zeros(N_PARTS))
        self.defer_slope = nn.Parameter(torch.zeros(N_PARTS, self.n_models + 1))
        self.value_slope = nn.Parameter(torch.zeros(N_PARTS, self.n_models + 1))

    def doubt(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B, K + 1]``: each member's doubt, then that of the ensemble of the current mean
        weights (no gradient); see the module docstring."""
        logits, _ = self._split(obs)
        pairs = logits.reshape(len(logits), self.n_models, 2)
        q = torch.sigmoid(pairs[..., 1] - pairs[..., 0])  # member abnormality probabilities
        with torch.no_grad():  # the ensemble of the current mean weights (a feature only)
            w = torch.softmax(self.config.softmax_scale * super().mean_action(obs), dim=1)
        p = (w * q).sum(1, keepdim=True)
        confidence = (2 * torch.cat([q, p], dim=1) - 1).abs()
        return torch.log(confidence + DOUBT_FLOOR) / math.log(DOUBT_FLOOR)

    def defer_logit(self, obs: torch.Tensor) -> torch.Tensor:
        """The defer head's logit for a batch of observations ``[B, 2K + 7]``: float ``[B]``."""
        _, part = self._split(obs)
        return part @ self.defer_bias + ((part @ self.defer_slope) * self.doubt(obs)).sum(1)

    def get_value(self, obs: torch.Tensor) -> torch.Tensor:
        """Baseline: per body part, a value plus a slope on :meth:`doubt` (how hard the study
        is for the ensemble), float ``[B]``."""
        _, part = self._split(obs)
        return part @ self.values + ((part @ self.value_slope) * self.doubt(obs)).sum(1)

    def param_groups(self) -> list[dict[str, Any]]:
        """The weighting policy's groups, plus the defer head at ``defer_learning_rate``."""
        return [*super().param_groups(),
                {"params": [self.defer_bias, self.defer_slope, self.value_slope],
                 "lr": self.config.defer_learning_rate}]

    def sample(self, obs: torch.Tensor) -> tuple[Any, np.ndarray]:
        """Draw exploratory actions: ``(sample, actions float32 [B, K + 1])``."""
        (dist, z), weights = super().sample(obs)
        defer_dist = torch.distributions.Bernoulli(logits=self.defer_logit(obs))
        defer = defer_dist.sample()
        action = np.concatenate([weights, (2 * defer.numpy() - 1)[:, None]], axis=1)
        return (dist, z, defer_dist, defer), action.astype(np.float32)

    def sample_log_prob(self, sample: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log_prob [B], entropy [B])`` of a :meth:`sample`: preferences plus defer
        decision."""
        dist, z, defer_dist, defer = sample
        logp, entropy = super().sample_log_prob((dist, z))
        return logp + defer_dist.log_prob(defer), entropy + defer_dist.entropy()

    def mean_action(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic action ``[B, K + 1]``: ``tanh`` of the mean preferences, then +1
        where ``defer_logit > 0`` else -1."""
        defer = (self.defer_logit(obs) > 0).to(obs.dtype) * 2 - 1
        return torch.cat([super().mean_action(obs), defer[:, None]], dim=1)

    def get_action_and_value(self, obs: torch.Tensor, action: torch.Tensor | None = None
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """CleanRL-style ``(action [B, K + 1], log_prob [B], entropy [B], value [B])``:
        samples an action when ``action`` is None, else scores it."""
        k = self.n_models
        defer_dist = torch.distributions.Bernoulli(logits=self.defer_logit(obs))
        if action is None:
            weights, logp, entropy, value = super().get_action_and_value(obs)
            defer = defer_dist.sample()
            action = torch.cat([weights, (2 * defer - 1)[:, None]], dim=1)
        else:
            _, logp, entropy, value = super().get_action_and_value(obs, action[:, :k])
            defer = (action[:, k] > 0).to(obs.dtype)
        return (action, logp + defer_dist.log_prob(defer), entropy + defer_dist.entropy(),
                value)
