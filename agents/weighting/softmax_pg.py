"""Native softmax policy-gradient agent for ``MuraWeighting-v0`` (REINFORCE with a baseline).

The policy is a per-body-part softmax weighting of the members made into a stochastic
policy: one preference vector per body part (``[7, K]``), optionally plus a small network on
the models' logits for per-study weighting. Exploration is Gaussian over the preferences:
``z ~ Normal(preferences[part] (+ net(logits)), std)``, and the action is ``tanh(z)``, so it
always lies inside the env's action box (a squashed Gaussian, as in SAC; the deterministic
action is ``tanh`` of the mean). The env turns the action into weights
``softmax(action_scale * action / temperature)``. The baseline is a learned value
per body part. It trains on :class:`mura_env.weighting.vector_env.MuraWeightingVectorEnv` with
thousands of studies per update.

The env's actions never change which study comes next, so each step's own reward is an unbiased
return for its action, whatever ``studies_per_episode`` is; the agent uses it directly.

The module reads top to bottom: :class:`SoftmaxPGConfig` (hyper-parameters),
:class:`SoftmaxPGAgent` (the policy, with CleanRL's ``get_action_and_value`` API, ``predict``,
``save``/``load``), :func:`train_softmax_pg` (the loop).
"""

from __future__ import annotations

import dataclasses
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from agents.core.schedule import EvaluationSchedule, read_agent_file
from mura_env.common.atomic import atomic_write
from mura_env.constants import BODY_PARTS

N_PARTS = len(BODY_PARTS)


@dataclass
class SoftmaxPGConfig:
    """Hyper-parameters of the native softmax policy-gradient agent."""

    num_envs: int = field(default=4096, metadata={
        "help": "studies answered per update (sub-environments of the vector env)"})
    learning_rate: float = field(default=0.05, metadata={"help": "Adam step size"})
    init_std: float = field(default=0.5, metadata={
        "help": "initial standard deviation of the Gaussian exploration over preferences"})
    min_std: float = field(default=0.05, metadata={"help": "floor of the exploration std"})
    learn_std: bool = field(default=True, metadata={
        "help": "learn the exploration std (per model) instead of keeping init_std"})
    per_study: bool = field(default=False, metadata={
        "help": "add a small network on the logits for per-study weights"})
    hidden: int = field(default=32, metadata={"help": "hidden units of the per-study network"})
    net_learning_rate: float = field(default=0.005, metadata={
        "help": "Adam step size of the per-study network; kept well below the preferences' "
                "(at the same rate it locks into the 'follow the models that agree' local "
                "optimum of a study's logits)"})
    value_coef: float = field(default=0.5, metadata={"help": "weight of the baseline's loss"})
    entropy_coef: float = field(default=0.0, metadata={"help": "entropy bonus"})
    normalize_advantage: bool = field(default=True, metadata={
        "help": "divide advantages by their batch standard deviation"})


def check_batch_size(num_envs: int, config: SoftmaxPGConfig) -> None:
    """Refuse a batch the update cannot use.

    Raises:
        ValueError: fewer than 2 studies per update while ``config.normalize_advantage``
            (the advantages' standard deviation needs at least two).
    """
    if num_envs < 2 and config.normalize_advantage:
        raise ValueError(f"softmax-pg needs at least 2 studies per update (num_envs; --n-envs "
                         f"on the command line) to normalise its advantages, got {num_envs}; "
                         f"the default is {SoftmaxPGConfig.num_envs} (or set "
                         "normalize_advantage=False).")


class SoftmaxPGAgent(nn.Module):
    """Gaussian policy over per-body-part preferences (action = ``tanh`` of the sampled
    preferences), plus a per-body-part value baseline.

    Args:
        n_models: ``K``, the number of ensemble members (the action size).
        config: hyper-parameters (:class:`SoftmaxPGConfig`).

    Input observations are the env's float32 ``[B, 2K + 7]``: ``2K`` logits then the one-hot
    body part. Parameters: ``preferences`` ``[7, K]`` (zeros: uniform weights),
    ``log_std`` ``[K]``, ``values`` ``[7]`` and, with ``per_study``, ``net`` (``2K -> hidden ->
    K``, last layer zero-initialised so training starts from the per-part policy).
    """

    #: The hyper-parameter class (what :meth:`load` rebuilds the config with).
    config_class: type[SoftmaxPGConfig] = SoftmaxPGConfig
    #: Fields of :attr:`config_class` set from the env configuration it trains on (not
    #: hyper-parameters of its own).
    env_settings: tuple[str, ...] = ()

    def __init__(self, n_models: int, config: SoftmaxPGConfig | None = None) -> None:
        super().__init__()
        self.config = config or self.config_class()
        self.n_models = int(n_models)
        k = self.n_models
        self.preferences = nn.Parameter(torch.zeros(N_PARTS, k))
        self.log_std = nn.Parameter(torch.full((k,), float(np.log(self.config.init_std))),
                                    requires_grad=self.config.learn_std)
        self.values = nn.Parameter(torch.zeros(N_PARTS))
        self.net: nn.Module | None = None
        if self.config.per_study:
            last = nn.Linear(self.config.hidden, k)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            self.net = nn.Sequential(nn.Linear(2 * k, self.config.hidden), nn.Tanh(), last)

    def param_groups(self) -> list[dict[str, Any]]:
        """The optimizer's parameter groups: preferences, std and values at
        ``learning_rate``; the per-study network (if any) at ``net_learning_rate``."""
        groups: list[dict[str, Any]] = [{"params": [
            p for p in (self.preferences, self.log_std, self.values) if p.requires_grad]}]
        if self.net is not None:
            groups.append({"params": list(self.net.parameters()),
                           "lr": self.config.net_learning_rate})
        return groups

    def _split(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.n_models
        if obs.ndim != 2 or obs.shape[1] != 2 * k + N_PARTS:
            raise ValueError(f"observations must have shape (B, {2 * k + N_PARTS}) for "
                             f"{k} models, got {tuple(obs.shape)}.")
        return obs[:, : 2 * k], obs[:, 2 * k:]

    def mean_preferences(self, obs: torch.Tensor) -> torch.Tensor:
        """The study's preferences ``preferences[part] (+ net(logits))``: float ``[B, K]``."""
        logits, part = self._split(obs)
        pre = part @ self.preferences
        if self.net is not None:
            pre = pre + self.net(logits)
        return pre

    def mean_action(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic action ``tanh(mean_preferences(obs))``: float ``[B, K]`` in (-1, 1)."""
        return torch.tanh(self.mean_preferences(obs))

    def std(self) -> torch.Tensor:
        """Exploration standard deviation per model (in preference units), float ``[K]``
        (at least ``min_std``)."""
        return self.log_std.exp().clamp_min(self.config.min_std)

    def distribution(self, obs: torch.Tensor) -> torch.distributions.Normal:
        """The Gaussian over preferences ``z`` for a batch: mean ``[B, K]``, std ``[K]``."""
        mean = self.mean_preferences(obs)
        return torch.distributions.Normal(mean, self.std().expand_as(mean))

    def get_value(self, obs: torch.Tensor) -> torch.Tensor:
        """Baseline: the learned expected reward of the study's body part, float ``[B]``."""
        _, part = self._split(obs)
        return part @ self.values

    def get_action_and_value(
        self, obs: torch.Tensor, action: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample (or score) actions, CleanRL style.

        Args:
            obs: float ``[B, 2K + 7]``.
            action: float ``[B, K]`` in (-1, 1) to score; None samples one.

        Returns:
            ``(action [B, K], log_prob [B], entropy [B], value [B])``: ``action = tanh(z)``
            with ``z`` drawn from :meth:`distribution`; ``log_prob`` is the action's log
            density (the Gaussian's at ``z = atanh(action)`` minus ``log(1 - action^2)``, the
            change of variables); ``entropy`` is the Gaussian's over preferences. The training
            loop scores the sampled ``z`` itself, which avoids ``atanh`` near +-1.
        """
        dist = self.distribution(obs)
        if action is None:
            z = dist.sample()
            action = torch.tanh(z)
        else:
            z = torch.atanh(action.clamp(-1 + 1e-6, 1 - 1e-6))
        # log(1 - tanh(z)^2) written stably in z (finite even where tanh(z) rounds to +-1)
        log_det = 2.0 * (np.log(2.0) - z - nn.functional.softplus(-2.0 * z))
        log_prob = (dist.log_prob(z) - log_det).sum(-1)
        return action, log_prob, dist.entropy().sum(-1), self.get_value(obs)

    def sample(self, obs: torch.Tensor) -> tuple[Any, np.ndarray]:
        """Draw exploratory actions for a batch: ``(sample, actions)``, where ``sample`` is
        what :meth:`sample_log_prob` scores and ``actions`` float32 ``[B, K]`` go to the env."""
        dist = self.distribution(obs)
        z = dist.sample()  # Gaussian exploration over preferences (sample() is gradient-free)
        return (dist, z), torch.tanh(z).numpy()

    def sample_log_prob(self, sample: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log_prob [B], entropy [B])`` of a :meth:`sample`: the log-density of the sampled
        preferences (tanh's Jacobian does not depend on the parameters, so it drops out of
        the gradient) and the Gaussian's entropy."""
        dist, z = sample
        return dist.log_prob(z).sum(-1), dist.entropy().sum(-1)

    @torch.no_grad()
    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, None]:
        """SB3-style prediction: float32 ``[B, 2K + 7]`` (or ``[2K + 7]``) observations to
        float32 actions of the same batch shape; returns ``(actions, None)``."""
        obs = torch.tensor(np.asarray(observation, dtype=np.float32))
        single = obs.ndim == 1
        obs = obs[None] if single else obs
        if deterministic:
            act = self.mean_action(obs)
        else:
            act, *_ = self.get_action_and_value(obs)
        out = act.numpy().astype(np.float32)
        return (out[0] if single else out), None

    def save(self, path: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> Path:
        """Write ``{"state_dict", "config", "n_models", "extra"}`` to ``path`` atomically
        (a torch file; ``extra`` must hold only plain Python values)."""
        payload = {"state_dict": self.state_dict(), "config": dataclasses.asdict(self.config),
                   "n_models": self.n_models, "extra": extra or {}}
        return atomic_write(path, lambda tmp: torch.save(payload, tmp))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> tuple[SoftmaxPGAgent, dict[str, Any]]:
        """Read a file written by :meth:`save` (``weights_only=True``).

        Returns:
            ``(agent, extra)``; the agent is in eval mode.

        Raises:
            FileNotFoundError: no such file. ValueError: not a softmax-pg agent file.
        """
        expected = ("expected a file written by SoftmaxPGAgent.save, with the keys "
                    "state_dict, config, n_models")
        payload = read_agent_file(path, "softmax-pg", "SoftmaxPGAgent.save",
                                  ("state_dict", "config", "n_models"))
        try:
            agent = cls(int(payload["n_models"]), cls.config_class(**payload["config"]))
            agent.load_state_dict(payload["state_dict"])
        except (TypeError, ValueError, RuntimeError) as e:
            raise ValueError(f"{path} holds a softmax-pg agent this version cannot rebuild "
                             f"({e}); {expected}.") from e
        agent.eval()
        return agent, dict(payload.get("extra") or {})


def train_softmax_pg(
    agent: SoftmaxPGAgent,
    env: Any,
    total_timesteps: int,
    seed: int = 0,
    writer: Any | None = None,
    eval_fn: Callable[[SoftmaxPGAgent], dict[str, float]] | None = None,
    eval_every: int = 10_000,
    checkpoint_fn: Callable[[SoftmaxPGAgent, int], None] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Train ``agent`` on a vector env with REINFORCE and a per-body-part baseline.

    Args:
        agent: the policy to train (in place).
        env: a :class:`~mura_env.weighting.vector_env.MuraWeightingVectorEnv` (``num_envs`` studies
            per update; its ``num_envs`` should equal ``agent.config.num_envs``).
        total_timesteps: env steps (answered studies) to use; rounded up to whole updates.
        seed: seeds torch's sampling and the env's study draws.
        writer: a TensorBoard ``SummaryWriter`` or None. Tags (step = env steps):
            ``rollout/ep_rew_mean`` (mean return of the last ``max(100, num_envs)`` finished
            episodes; SB3's tag, which SB3 computes over the last 100),
            ``train/policy_loss``, ``train/value_loss``, ``train/std``, ``time/fps``, and
            whatever ``eval_fn`` returns under ``eval/``.
        eval_fn: called as ``eval_fn(agent)`` every ``eval_every`` env steps and at the end;
            returns ``{name: number}`` logged as ``eval/<name>``.
        eval_every: env steps between evaluations.
        checkpoint_fn: called as ``checkpoint_fn(agent, env_steps)`` after each evaluation.
        progress: show a tqdm bar.

    Returns:
        ``{"env_steps", "updates", "wall_time", "history"}`` where ``history`` is a list of
        ``{"env_steps", "wall_time", "ep_rew_mean", **eval}`` at each evaluation; wall times
        are training time in seconds, without the time spent in ``eval_fn`` and
        ``checkpoint_fn``.

    Raises:
        ValueError: fewer than 2 envs with ``normalize_advantage`` (one study has no spread).
    """
    cfg = agent.config
    torch.manual_seed(seed)
    optimizer = make_optimizer(agent)
    n = env.num_envs
    check_batch_size(n, cfg)
    updates = max(1, -(-int(total_timesteps) // n))
    obs, _ = env.reset(seed=seed)
    returns = np.zeros(n)
    schedule = EvaluationSchedule(eval_every, eval_fn, writer, checkpoint_fn)
    steps = 0
    recent: deque[float] = deque(maxlen=max(100, n))  # SB3 keeps the last 100 episodes
    agent.train()
    for update in tqdm(range(1, updates + 1), desc="softmax-pg", disable=not progress):
        obs_t = torch.as_tensor(obs)
        sample, action = agent.sample(obs_t)
        obs, reward, terminated, truncated, _ = env.step(action)
        steps += n
        returns += reward
        done = terminated | truncated
        if done.any():
            recent.extend(returns[done].tolist())
            returns[done] = 0.0
        losses = reinforce_update(agent, optimizer, sample, obs_t, reward)
        ep_rew = float(np.mean(recent)) if recent else float("nan")
        if writer is not None:
            _log_update(writer, agent, losses, ep_rew, steps, schedule.training_seconds())
        schedule.after_update(agent, steps, update == updates, ep_rew)
    agent.eval()
    return schedule.result(steps, updates)


def make_optimizer(agent: SoftmaxPGAgent) -> torch.optim.Optimizer:
    """Adam over the agent's trainable tensors (:meth:`SoftmaxPGAgent.param_groups`)."""
    return torch.optim.Adam(agent.param_groups(), lr=agent.config.learning_rate)


def reinforce_update(agent: SoftmaxPGAgent, optimizer: torch.optim.Optimizer, sample: Any,
                     obs: torch.Tensor, reward: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """One REINFORCE step with the per-body-part value baseline.

    Args:
        agent, optimizer: the policy and its optimizer (stepped once).
        sample: what ``agent.sample(obs)`` drew for ``obs`` (float32 ``[n, 2K + 7]``).
        reward: float ``[n]``, each study's reward (its unbiased return).

    Returns:
        ``(policy_loss, value_loss)``, detached scalars.
    """
    cfg = agent.config
    r = torch.as_tensor(reward, dtype=torch.float32)
    logp, entropy = agent.sample_log_prob(sample)
    value = agent.get_value(obs)
    adv = r - value.detach()
    if cfg.normalize_advantage:
        adv = adv / (adv.std() + 1e-8)
    policy_loss = -(adv * logp).mean()
    value_loss = ((value - r) ** 2).mean()
    loss = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * entropy.mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return policy_loss.detach(), value_loss.detach()


def _log_update(writer: Any, agent: SoftmaxPGAgent, losses: tuple[torch.Tensor, torch.Tensor],
                ep_rew: float, steps: int, elapsed: float) -> None:
    writer.add_scalar("rollout/ep_rew_mean", ep_rew, steps)
    writer.add_scalar("train/policy_loss", losses[0].item(), steps)
    writer.add_scalar("train/value_loss", losses[1].item(), steps)
    writer.add_scalar("train/std", agent.std().mean().item(), steps)
    writer.add_scalar("time/fps", steps / max(elapsed, 1e-9), steps)
