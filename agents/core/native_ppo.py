"""Native PPO on the project's vector envs, in one file (CleanRL's ``ppo.py`` and
``ppo_continuous_action.py`` made one agent).

It steps a native NumPy vector env (``gymnasium.make_vec(..., vectorization_mode=
"vector_entry_point")``: thousands of sub-environments as one batch) with one forward of the
policy per step, then updates on the whole rollout: generalised advantage estimation
(:func:`gae`), the clipped policy loss and the clipped value loss (:func:`ppo_losses`), an
entropy bonus, gradient-norm clipping, minibatches over several epochs. Observations are
normalised by running statistics (:class:`RunningNorm`, updated after each rollout and saved
with the agent), and rewards are divided by the running standard deviation of the discounted
return while training (gymnasium's ``NormalizeReward``), so the value targets of a 100-study
shift and of a one-study episode have the same scale. The action head follows the env's action
space:

* ``Box``: a Gaussian with a state-independent log standard deviation; the env gets the sample
  clipped to the box (the log-probability is of the unclipped sample, as in CleanRL);
* ``Discrete``: a categorical;
* ``Discrete`` with a mask: when the env has ``action_masks()`` (bool ``[num_envs, n]``, e.g.
  ``MuraWorklist-v0`` with ``action="routing"``), closed actions get a logit of
  :data:`MASKED_LOGIT`, so they are never sampled and the deterministic action is the best open
  one.

The module reads top to bottom: :class:`NativePPOConfig` (hyper-parameters),
:class:`RunningNorm`, :class:`PPOAgent` (the policy and value networks, ``predict``,
``save``/``load``), :func:`gae`, :func:`ppo_losses`, :func:`train_native_ppo` (the loop).
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
from gymnasium import spaces
from torch import nn
from torch.distributions import Categorical, Normal
from tqdm import tqdm

from agents.core.schedule import EvaluationSchedule, read_agent_file
from mura_env.common.atomic import atomic_write

#: The logit of a closed action (as sb3-contrib's MaskablePPO): its probability is 0 in float32.
MASKED_LOGIT = -1e8
#: Normalised observations are clipped to this many standard deviations.
OBS_CLIP = 10.0


@dataclass
class NativePPOConfig:
    """Hyper-parameters of native PPO (CleanRL's names and, where not said, its defaults)."""

    num_envs: int = field(default=1024, metadata={
        "help": "sub-environments of the vector env, stepped as one batch"})
    num_steps: int = field(default=32, metadata={"help": "rollout steps per sub-environment"})
    learning_rate: float = field(default=3e-4, metadata={"help": "Adam step size"})
    anneal_lr: bool = field(default=True, metadata={
        "help": "decay the step size linearly to 0 over the run"})
    gamma: float = field(default=0.99, metadata={"help": "discount factor"})
    gae_lambda: float = field(default=0.95, metadata={"help": "GAE lambda"})
    num_minibatches: int = field(default=8, metadata={"help": "minibatches per epoch"})
    update_epochs: int = field(default=4, metadata={"help": "epochs over each rollout"})
    clip_coef: float = field(default=0.2, metadata={"help": "policy ratio clip"})
    clip_vloss: bool = field(default=True, metadata={"help": "clip the value loss too"})
    ent_coef: float = field(default=0.0, metadata={"help": "entropy bonus"})
    vf_coef: float = field(default=0.5, metadata={"help": "weight of the value loss"})
    max_grad_norm: float = field(default=0.5, metadata={"help": "gradient norm clip"})
    hidden: int = field(default=64, metadata={"help": "units of each of the two hidden layers"})
    norm_obs: bool = field(default=True, metadata={
        "help": "normalise observations by running mean and variance (saved with the agent)"})
    norm_adv: bool = field(default=True, metadata={"help": "normalise advantages per minibatch"})
    norm_reward: bool = field(default=True, metadata={
        "help": "divide rewards by the running standard deviation of the discounted return "
                "(as gymnasium's NormalizeReward), so values and advantages keep one scale "
                "whatever the episode length"})
    init_log_std: float = field(default=-0.5, metadata={
        "help": "initial log standard deviation of a Box action's Gaussian"})
    slot_head: int = field(default=0, metadata={
        "help": "with slot_size: the values before the slots in an observation"})
    slot_size: int = field(default=0, metadata={
        "help": "values per slot of an observation made of a head and one slot per Discrete "
                "action (0: a plain MLP actor); the actor then scores every slot with one "
                "shared network of the head and that slot"})
    torch_threads: int = field(default=1, metadata={
        "help": "torch's intra-op threads while training (networks this small gain nothing "
                "from more; restored after)"})

    def __post_init__(self) -> None:
        for name in ("slot_head", "slot_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 0:
                raise ValueError(f"native PPO's {name} must be an integer >= 0, got {value!r}.")
        for name in ("num_envs", "num_steps", "num_minibatches", "update_epochs", "hidden",
                     "torch_threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"native PPO's {name} must be an integer >= 1, got {value!r}.")
        if self.num_envs * self.num_steps < self.num_minibatches:
            raise ValueError(f"native PPO's rollout of num_envs * num_steps = "
                             f"{self.num_envs * self.num_steps} samples cannot fill "
                             f"{self.num_minibatches} minibatches.")
        if not (0.0 <= self.gamma <= 1.0 and 0.0 <= self.gae_lambda <= 1.0):
            raise ValueError(f"native PPO's gamma and gae_lambda must lie in [0, 1], got "
                             f"{self.gamma} and {self.gae_lambda}.")


class RunningNorm(nn.Module):
    """Running mean and variance of observations (the parallel algorithm of Chan et al., as
    ``gymnasium.wrappers.NormalizeObservation``), kept as buffers so they are saved.

    Args:
        size: observation size ``D``.
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(size, dtype=torch.float64))
        self.register_buffer("var", torch.ones(size, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Fold a batch ``x`` (float ``[B, D]``) into the statistics."""
        x = x.to(torch.float64)
        batch_mean, batch_var, n = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        delta = batch_mean - self.mean
        total = self.count + n
        m2 = self.var * self.count + batch_var * n + delta.square() * self.count * n / total
        self.mean += delta * n / total
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float32 ``[B, D]``: ``(x - mean) / sqrt(var + 1e-8)`` clipped to
        :data:`OBS_CLIP`."""
        z = (x.to(torch.float64) - self.mean) / torch.sqrt(self.var + 1e-8)
        return z.clamp(-OBS_CLIP, OBS_CLIP).to(torch.float32)


def _layer(n_in: int, n_out: int, std: float = float(np.sqrt(2))) -> nn.Linear:
    """A linear layer with CleanRL's orthogonal initialisation."""
    layer = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, 0.0)
    return layer


def _mlp(n_in: int, hidden: int, n_out: int, out_std: float) -> nn.Sequential:
    return nn.Sequential(_layer(n_in, hidden), nn.Tanh(), _layer(hidden, hidden), nn.Tanh(),
                         _layer(hidden, n_out, out_std))


class SlotActor(nn.Module):
    """An actor for observations made of a head and ``n`` slots, one per action: each slot's
    logit is one shared tanh MLP of the head and that slot (a pointer-style head, the same
    function for every slot whatever its position).

    Args:
        head: values of the head ``H``; slot: values per slot ``S``; n: slots; hidden: units.
    """

    def __init__(self, head: int, slot: int, n: int, hidden: int) -> None:
        super().__init__()
        self.head, self.slot, self.n = head, slot, n
        self.score = _mlp(head + slot, hidden, 1, 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float32 ``[B, n]`` logits of observations ``x`` float32 ``[B, H + n S]``."""
        heads = x[:, :self.head].unsqueeze(1).expand(-1, self.n, -1)
        slots = x[:, self.head:].reshape(len(x), self.n, self.slot)
        return self.score(torch.cat([heads, slots], dim=-1)).squeeze(-1)


class PPOAgent(nn.Module):
    """Policy and value networks (two tanh MLPs; with ``slot_size`` a :class:`SlotActor`)
    over normalised observations.

    Args:
        observation_space: a flat ``Box`` (``D`` values).
        action_space: a ``Box`` (``A`` values) or a ``Discrete`` (``n`` actions).
        config: the hyper-parameters (``hidden``, ``norm_obs``, ``init_log_std`` shape the
            networks).

    Raises:
        ValueError: other spaces.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space,
                 config: NativePPOConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or NativePPOConfig()
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
            raise ValueError(f"native PPO needs a flat Box observation space, got "
                             f"{observation_space}.")
        self.observation_space, self.action_space = observation_space, action_space
        size = observation_space.shape[0]
        if isinstance(action_space, spaces.Discrete):
            self.discrete, n_out = True, int(action_space.n)
        elif isinstance(action_space, spaces.Box) and len(action_space.shape) == 1:
            self.discrete, n_out = False, action_space.shape[0]
            self.log_std = nn.Parameter(torch.full((n_out,), float(config.init_log_std)))
            self.register_buffer("low", torch.as_tensor(action_space.low, dtype=torch.float32))
            self.register_buffer("high", torch.as_tensor(action_space.high, dtype=torch.float32))
        else:
            raise ValueError(f"native PPO needs a Discrete or flat Box action space, got "
                             f"{action_space}.")
        self.norm = RunningNorm(size)
        if config.slot_size:
            if not self.discrete or size != config.slot_head + n_out * config.slot_size:
                raise ValueError(f"a slot actor needs a Discrete(n) action and observations of "
                                 f"slot_head + n * slot_size values, got {action_space} and "
                                 f"{size} values for head {config.slot_head}, slot "
                                 f"{config.slot_size}.")
            self.actor: nn.Module = SlotActor(config.slot_head, config.slot_size, n_out,
                                              config.hidden)
        else:
            self.actor = _mlp(size, config.hidden, n_out, 0.01)
        self.critic = _mlp(size, config.hidden, 1, 1.0)

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """float32 ``[B, D]``: ``obs`` as the networks see it (normalised when ``norm_obs``)."""
        return self.norm(obs) if self.config.norm_obs else obs.to(torch.float32)

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        """float32 ``[B]``: the value of normalised observations ``x``."""
        return self.critic(x).squeeze(-1)

    def distribution(self, x: torch.Tensor, mask: torch.Tensor | None = None
                     ) -> Categorical | Normal:
        """The action distribution at normalised observations ``x`` (``mask``: bool ``[B, n]``,
        the open actions of a masked ``Discrete``)."""
        out = self.actor(x)
        if self.discrete:
            if mask is not None:
                out = out.masked_fill(~mask, MASKED_LOGIT)
            return Categorical(logits=out, validate_args=False)
        return Normal(out, self.log_std.expand_as(out).exp(), validate_args=False)

    def get_action_and_value(self, x: torch.Tensor, action: torch.Tensor | None = None,
                             mask: torch.Tensor | None = None
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """CleanRL's API: ``(action, log_prob [B], entropy [B], value [B])`` at normalised
        observations ``x``; samples an action when ``action`` is None."""
        if self.discrete:  # the categorical's quantities straight from one log-softmax
            logits = self.actor(x)
            if mask is not None:
                logits = logits.masked_fill(~mask, MASKED_LOGIT)
            log_probs = torch.log_softmax(logits, -1)
            probs = log_probs.exp()
            if action is None:
                action = torch.multinomial(probs, 1).squeeze(-1)
            logp = log_probs.gather(-1, action.unsqueeze(-1)).squeeze(-1)
            entropy = -(probs * log_probs).sum(-1)
            return action, logp, entropy, self.get_value(x)
        dist = self.distribution(x, mask)
        if action is None:
            action = dist.sample()
        logp, entropy = dist.log_prob(action).sum(-1), dist.entropy().sum(-1)
        return action, logp, entropy, self.get_value(x)

    def env_actions(self, action: torch.Tensor) -> np.ndarray:
        """What the env gets for sampled ``action``: int64 ``[B]`` (Discrete), or float32
        ``[B, A]`` clipped to the box."""
        if self.discrete:
            return action.numpy().astype(np.int64)
        return torch.maximum(torch.minimum(action, self.high), self.low).numpy()

    @torch.no_grad()
    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = True, action_masks: np.ndarray | None = None
                ) -> tuple[np.ndarray, None]:
        """SB3-style prediction: observations float32 ``[B, D]`` (or ``[D]``) to actions of
        the same batch shape (the distribution's mode when ``deterministic``; a ``Box``
        action clipped to the box); ``action_masks`` bool ``[B, n]`` (or ``[n]``) closes
        actions of a ``Discrete``. Returns ``(actions, None)``."""
        obs = torch.tensor(np.asarray(observation, dtype=np.float32))
        single = obs.ndim == 1
        obs = obs[None] if single else obs
        mask = None
        if action_masks is not None:
            mask = torch.as_tensor(np.asarray(action_masks, dtype=np.bool_)).reshape(
                len(obs), -1)
        dist = self.distribution(self.normalize(obs), mask)
        if deterministic:
            action = dist.probs.argmax(-1) if self.discrete else dist.mean
        else:
            action = dist.sample()
        out = self.env_actions(action)
        return (out[0] if single else out), None

    def save(self, path: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> Path:
        """Write ``{"state_dict", "config", "observation_size", "action", "extra"}`` to
        ``path`` atomically (a torch file; ``extra`` holds plain Python values only)."""
        if self.discrete:
            action = {"n": int(self.action_space.n)}
        else:
            action = {"low": self.action_space.low.tolist(),
                      "high": self.action_space.high.tolist()}
        payload = {"state_dict": self.state_dict(), "config": dataclasses.asdict(self.config),
                   "observation_size": int(self.observation_space.shape[0]),
                   "action": action, "extra": extra or {}}
        return atomic_write(path, lambda tmp: torch.save(payload, tmp))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> tuple[PPOAgent, dict[str, Any]]:
        """Read a file written by :meth:`save` (``weights_only=True``).

        Returns:
            ``(agent, extra)``; the agent is in eval mode.

        Raises:
            FileNotFoundError: no such file. ValueError: not a native PPO agent file.
        """
        expected = ("expected a file written by PPOAgent.save, with the keys state_dict, "
                    "config, observation_size, action")
        payload = read_agent_file(path, "native PPO", "PPOAgent.save",
                                  ("state_dict", "config", "observation_size", "action"))
        try:
            size = int(payload["observation_size"])
            observation_space = spaces.Box(-np.inf, np.inf, (size,), np.float32)
            action = payload["action"]
            action_space = (spaces.Discrete(int(action["n"])) if "n" in action else spaces.Box(
                np.asarray(action["low"], np.float32), np.asarray(action["high"], np.float32)))
            agent = cls(observation_space, action_space, NativePPOConfig(**payload["config"]))
            agent.load_state_dict(payload["state_dict"])
        except (TypeError, ValueError, KeyError, RuntimeError) as e:
            raise ValueError(f"{path} holds a native PPO agent this version cannot rebuild "
                             f"({e}); {expected}.") from e
        agent.eval()
        return agent, dict(payload.get("extra") or {})


def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor,
        next_value: torch.Tensor, gamma: float, lam: float
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over a rollout.

    Args:
        rewards, values: float ``[T, n]``: each step's reward and the value of the state it
            was taken in.
        dones: float ``[T, n]``: 1 where the episode ended with step ``t`` (its next state is
            a new episode's and is not bootstrapped; a truncated episode's bootstrap is added
            to its reward beforehand).
        next_value: float ``[n]``: the value of the state after the last step.
        gamma, lam: discount and GAE lambda.

    Returns:
        ``(advantages [T, n], returns [T, n])`` with ``returns = advantages + values``:
        ``delta_t = r_t + gamma (1 - d_t) V_{t+1} - V_t``,
        ``A_t = delta_t + gamma lam (1 - d_t) A_{t+1}``.
    """
    steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(steps)):
        following = next_value if t == steps - 1 else values[t + 1]
        going = 1.0 - dones[t]
        delta = rewards[t] + gamma * following * going - values[t]
        last = delta + gamma * lam * going * last
        advantages[t] = last
    return advantages, advantages + values


def ppo_losses(new_logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
               new_value: torch.Tensor, old_value: torch.Tensor, returns: torch.Tensor,
               clip_coef: float, clip_vloss: bool = True, norm_adv: bool = True
               ) -> dict[str, torch.Tensor]:
    """PPO's losses on a minibatch (all float ``[B]``).

    ``ratio = exp(new_logp - old_logp)``; advantages normalised by their mean and standard
    deviation when ``norm_adv``; policy loss ``mean(max(-A ratio, -A clip(ratio, 1 - c,
    1 + c)))``; value loss ``0.5 mean(max((V - R)^2, (old_V + clip(V - old_V, -c, c) - R)^2))``
    (``0.5 mean((V - R)^2)`` without ``clip_vloss``).

    Returns:
        ``{"policy", "value", "approx_kl", "clipfrac"}`` (scalars; the last two detached:
        ``mean((ratio - 1) - log ratio)`` and the share of ratios outside the clip range).
    """
    log_ratio = new_logp - old_logp
    ratio = log_ratio.exp()
    if norm_adv and advantages.numel() > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    policy = torch.max(-advantages * ratio,
                       -advantages * ratio.clamp(1 - clip_coef, 1 + clip_coef)).mean()
    if clip_vloss:
        clipped = old_value + (new_value - old_value).clamp(-clip_coef, clip_coef)
        value = 0.5 * torch.max((new_value - returns).square(),
                                (clipped - returns).square()).mean()
    else:
        value = 0.5 * (new_value - returns).square().mean()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean()
        clipfrac = ((ratio - 1.0).abs() > clip_coef).float().mean()
    return {"policy": policy, "value": value, "approx_kl": approx_kl, "clipfrac": clipfrac}


def _masks(env: Any) -> np.ndarray | None:
    """The env's action masks now (bool ``[n, A]``), or None for an env without them or whose
    action has none."""
    method = getattr(env, "action_masks", None)
    if method is None:
        return None
    try:
        return np.asarray(method(), dtype=np.bool_)
    except ValueError:  # an env that has the method but not a masked action
        return None


def train_native_ppo(
    agent: PPOAgent,
    env: Any,
    total_timesteps: int,
    seed: int = 0,
    writer: Any | None = None,
    eval_fn: Callable[[PPOAgent], dict[str, float]] | None = None,
    eval_every: int = 100_000,
    checkpoint_fn: Callable[[PPOAgent, int], None] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Train ``agent`` with PPO on a native vector env.

    Args:
        agent: the policy to train (in place); its config's ``num_envs`` should be the env's.
        env: a Gymnasium ``VectorEnv`` with ``AutoresetMode.SAME_STEP`` (the project's native
            vector envs): a finished episode's next observation is the new episode's, its last
            one in ``info["final_obs"]``. ``action_masks()``, when it has one, masks a
            ``Discrete`` action.
        total_timesteps: env steps (summed over sub-environments); rounded up to whole
            rollouts of ``num_envs * num_steps``.
        seed: seeds torch (sampling, minibatch order) and the env.
        writer: a TensorBoard ``SummaryWriter`` or None. Tags (step = env steps):
            ``rollout/ep_rew_mean`` (mean return of the last ``max(100, num_envs)`` finished
            episodes), ``train/policy_loss``, ``train/value_loss``, ``train/entropy``,
            ``train/approx_kl``, ``train/clipfrac``, ``train/learning_rate``, ``time/fps``, and
            whatever ``eval_fn`` returns under ``eval/``.
        eval_fn: called as ``eval_fn(agent)`` every ``eval_every`` env steps and at the end;
            returns ``{name: number}``, logged as ``eval/<name>``.
        eval_every: env steps between evaluations.
        checkpoint_fn: called as ``checkpoint_fn(agent, env_steps)`` after each evaluation.
        progress: show a tqdm bar.

    Returns:
        ``{"env_steps", "updates", "wall_time", "history"}`` as
        :func:`agents.weighting.softmax_pg.train_softmax_pg` returns them (wall times without
        the time spent in ``eval_fn`` and ``checkpoint_fn``).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(agent.config.torch_threads)
    try:
        return _train(agent, env, total_timesteps, seed, writer, eval_fn, eval_every,
                      checkpoint_fn, progress)
    finally:
        torch.set_num_threads(threads)


def _train(agent: PPOAgent, env: Any, total_timesteps: int, seed: int, writer: Any | None,
           eval_fn: Callable[[PPOAgent], dict[str, float]] | None, eval_every: int,
           checkpoint_fn: Callable[[PPOAgent, int], None] | None, progress: bool
           ) -> dict[str, Any]:
    """The loop of :func:`train_native_ppo`."""
    cfg = agent.config
    torch.manual_seed(seed)
    n, steps_per_env = env.num_envs, cfg.num_steps
    batch = n * steps_per_env
    minibatch = batch // cfg.num_minibatches
    updates = max(1, -(-int(total_timesteps) // batch))
    optimizer = torch.optim.Adam(agent.parameters(), lr=cfg.learning_rate, eps=1e-5,
                                 foreach=True)
    size = agent.observation_space.shape[0]
    obs_buf = torch.zeros((steps_per_env, n, size))
    act_shape = () if agent.discrete else agent.action_space.shape
    act_buf = torch.zeros((steps_per_env, n, *act_shape),
                          dtype=torch.int64 if agent.discrete else torch.float32)
    logp_buf, rew_buf, done_buf, val_buf = (torch.zeros((steps_per_env, n)) for _ in range(4))
    obs, _ = env.reset(seed=seed)
    masks = _masks(env)
    mask_buf = None if masks is None else torch.zeros((steps_per_env, *masks.shape),
                                                     dtype=torch.bool)
    raw_buf = np.zeros((steps_per_env, n, size), dtype=np.float32)
    reward_buf, return_buf, bootstrap_buf = (np.zeros((steps_per_env, n)) for _ in range(3))
    returns, discounted = np.zeros(n), np.zeros(n)
    reward_scale = RunningNorm(1)
    recent: deque[float] = deque(maxlen=max(100, n))
    schedule = EvaluationSchedule(eval_every, eval_fn, writer, checkpoint_fn)
    steps = 0
    agent.train()
    for update in tqdm(range(1, updates + 1), desc="native-ppo", disable=not progress):
        if cfg.anneal_lr:
            optimizer.param_groups[0]["lr"] = cfg.learning_rate * (1 - (update - 1) / updates)
        bootstrap_buf[:] = 0.0
        for t in range(steps_per_env):
            raw_buf[t] = obs
            with torch.no_grad():
                x = agent.normalize(torch.as_tensor(raw_buf[t]))
                mask = None if masks is None else torch.as_tensor(masks)
                action, logp, _, value = agent.get_action_and_value(x, mask=mask)
            obs_buf[t], act_buf[t], logp_buf[t], val_buf[t] = x, action, logp, value
            if mask_buf is not None:
                mask_buf[t] = mask
            obs, reward, terminated, truncated, info = env.step(agent.env_actions(action))
            done = terminated | truncated
            reward_buf[t] = reward
            returns += reward_buf[t]
            discounted = discounted * cfg.gamma + reward_buf[t]
            return_buf[t] = discounted
            if done.any():
                recent.extend(returns[done].tolist())
                returns[done] = 0.0
                discounted[done] = 0.0
            if truncated.any():  # bootstrap a cut episode from its last observation
                last = torch.as_tensor(info["final_obs"][truncated])
                with torch.no_grad():
                    bootstrap_buf[t, truncated] = cfg.gamma * agent.get_value(
                        agent.normalize(last)).numpy()
            done_buf[t] = torch.as_tensor(done, dtype=torch.float32)
            if masks is not None:  # an env with masks keeps them; one without never has any
                masks = np.asarray(env.action_masks(), dtype=np.bool_)
        # the statistics move once per rollout: every step of it saw the same normalisation
        if cfg.norm_obs:
            agent.norm.update(torch.as_tensor(raw_buf.reshape(batch, size)))
        scale = 1.0
        if cfg.norm_reward:  # rewards over the running std of the discounted return
            reward_scale.update(torch.as_tensor(return_buf.reshape(batch, 1)))
            scale = float(torch.sqrt(reward_scale.var[0] + 1e-8))
        rew_buf.copy_(torch.as_tensor(reward_buf / scale + bootstrap_buf, dtype=torch.float32))
        steps += batch
        with torch.no_grad():
            next_value = agent.get_value(agent.normalize(torch.as_tensor(obs)))
        advantages, targets = gae(rew_buf, val_buf, done_buf, next_value, cfg.gamma,
                                  cfg.gae_lambda)
        losses = _update(agent, optimizer, obs_buf.reshape(batch, size),
                         act_buf.reshape(batch, *act_shape), logp_buf.reshape(-1),
                         advantages.reshape(-1), targets.reshape(-1), val_buf.reshape(-1),
                         None if mask_buf is None else mask_buf.reshape(batch, -1), minibatch)
        ep_rew = float(np.mean(recent)) if recent else float("nan")
        if writer is not None:
            _log_update(writer, losses, optimizer.param_groups[0]["lr"], ep_rew, steps,
                        schedule.training_seconds())
        schedule.after_update(agent, steps, update == updates, ep_rew)
    agent.eval()
    return schedule.result(steps, updates)


def _update(agent: PPOAgent, optimizer: torch.optim.Optimizer, obs: torch.Tensor,
            actions: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
            returns: torch.Tensor, old_values: torch.Tensor, masks: torch.Tensor | None,
            minibatch: int) -> dict[str, float]:
    """``update_epochs`` passes over the rollout in shuffled minibatches; returns the last
    minibatch's losses and the entropy (floats)."""
    cfg = agent.config
    batch = len(obs)
    params = list(agent.parameters())
    for _ in range(cfg.update_epochs):
        order = torch.randperm(batch)
        for begin in range(0, batch - minibatch + 1, minibatch):
            idx = order[begin:begin + minibatch]
            _, logp, entropy, value = agent.get_action_and_value(
                obs[idx], actions[idx], None if masks is None else masks[idx])
            parts = ppo_losses(logp, old_logp[idx], advantages[idx], value, old_values[idx],
                               returns[idx], cfg.clip_coef, cfg.clip_vloss, cfg.norm_adv)
            mean_entropy = entropy.mean()
            loss = parts["policy"] - cfg.ent_coef * mean_entropy + cfg.vf_coef * parts["value"]
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, cfg.max_grad_norm, foreach=True)
            optimizer.step()
    out = {k: float(v.detach()) for k, v in parts.items()}
    out["entropy"] = float(mean_entropy.detach())
    return out


def _log_update(writer: Any, losses: dict[str, float], lr: float, ep_rew: float, steps: int,
                elapsed: float) -> None:
    writer.add_scalar("rollout/ep_rew_mean", ep_rew, steps)
    for key in ("policy", "value"):
        writer.add_scalar(f"train/{key}_loss", losses[key], steps)
    for key in ("entropy", "approx_kl", "clipfrac"):
        writer.add_scalar(f"train/{key}", losses[key], steps)
    writer.add_scalar("train/learning_rate", lr, steps)
    writer.add_scalar("time/fps", steps / max(elapsed, 1e-9), steps)
