"""skrl as an outside client of the mura_env envs (run by ``skrl_check.sh``).

Wraps every env ``mura_env`` registers with skrl's ``wrap_env`` (single and native vector env)
and steps each once, then trains skrl's PPO (torch backend, ``SequentialTrainer``, a Gaussian
MLP policy and a deterministic MLP value) on ``gymnasium.make_vec(--env, num_envs=--num-envs)``
wrapped with ``wrap_env`` for ``--timesteps`` vector steps.

Input: command-line options (``--help``). Output: one line per env wrapped, then the mean reward
per env step over the first and last tenth of training and of a deterministic evaluation (the
policy's mean action) on the same vector env (all finite, else the exit status is 1).
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import gymnasium as gym
import torch
from skrl.agents.torch.ppo import PPO, PPO_CFG
from skrl.envs.wrappers.torch import wrap_env
from skrl.memories.torch import RandomMemory
from skrl.models.torch import DeterministicMixin, GaussianMixin, Model
from skrl.trainers.torch import SequentialTrainer
from skrl.utils import set_seed
from torch import nn

from mura_env import TRIAGE_ENV_ID, registered_env_ids

#: Env arguments of the checks: random actions sample every slot of MuraTriage-v0, so a closed
#: slot reads the earliest waiting study instead of being refused.
CHECK_KWARGS = {TRIAGE_ENV_ID: {"masked_action": "earliest"}}


class Policy(GaussianMixin, Model):
    """Gaussian policy: an MLP from the observation to the mean action, with a learned
    state-independent log standard deviation; actions clipped to the Box action space."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, device: str,
                 hidden: int = 64) -> None:
        Model.__init__(self, observation_space=observation_space, action_space=action_space,
                       device=device)
        GaussianMixin.__init__(self, clip_actions=True, role="policy")
        self.net = nn.Sequential(
            nn.Linear(self.num_observations, hidden), nn.Tanh(), nn.Linear(hidden, hidden),
            nn.Tanh(), nn.Linear(hidden, self.num_actions))
        self.log_std = nn.Parameter(torch.zeros(self.num_actions))

    def compute(self, inputs: dict[str, Any], role: str = "") -> tuple[torch.Tensor, dict]:
        """The mean action for ``inputs["observations"]`` and ``{"log_std": ...}``."""
        return self.net(inputs["observations"]), {"log_std": self.log_std}


class Value(DeterministicMixin, Model):
    """State-value MLP from the observation to one value."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, device: str,
                 hidden: int = 64) -> None:
        Model.__init__(self, observation_space=observation_space, action_space=action_space,
                       device=device)
        DeterministicMixin.__init__(self, role="value")
        self.net = nn.Sequential(
            nn.Linear(self.num_observations, hidden), nn.Tanh(), nn.Linear(hidden, hidden),
            nn.Tanh(), nn.Linear(hidden, 1))

    def compute(self, inputs: dict[str, Any], role: str = "") -> tuple[torch.Tensor, dict]:
        """The value of ``inputs["observations"]`` and no extra outputs."""
        return self.net(inputs["observations"]), {}


def parse_args() -> argparse.Namespace:
    """The command-line options: env id, vector size, timesteps, rollout length, seed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="MuraWeighting-v0", help="env id to train PPO on")
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--timesteps", type=int, default=2048,
                        help="vector steps (each steps every sub-env once)")
    parser.add_argument("--rollouts", type=int, default=64, help="vector steps per update")
    parser.add_argument("--eval-steps", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def check_every_env(num_envs: int) -> None:
    """``wrap_env`` on ``gymnasium.make(id)`` and ``gymnasium.make_vec(id, num_envs)`` for every
    env id ``mura_env`` registers (``wrapper="auto"``, or ``"gymnasium"`` where skrl's detection
    does not recognise the env), each reset and stepped once with a sampled action; prints one
    line each and raises on the first failure."""
    for env_id in registered_env_ids():
        kwargs = CHECK_KWARGS.get(env_id, {})
        for name, raw in (("make", gym.make(env_id, **kwargs)),
                          ("make_vec", gym.make_vec(env_id, num_envs=num_envs, **kwargs))):
            try:
                env, how = wrap_env(raw, wrapper="auto", verbose=False), "auto"
            except ValueError:  # skrl's "auto" reads only the direct base classes
                env, how = wrap_env(raw, wrapper="gymnasium", verbose=False), "gymnasium"
            obs, _ = env.reset()
            n = env.num_envs
            action = torch.stack([torch.as_tensor(env.action_space.sample()) for _ in range(n)])
            _, reward, _, _, _ = env.step(action)
            print(f"wrap_env(gymnasium.{name}({env_id!r}), wrapper={how!r}): "
                  f"{type(env).__name__}, "
                  f"{n} env(s), observation {tuple(obs.shape)}, reward {tuple(reward.shape)}")
            env.close()


def train(args: argparse.Namespace) -> dict[str, float]:
    """skrl PPO on ``wrap_env(gymnasium.make_vec(args.env, num_envs=args.num_envs))``; returns
    the mean reward per env step over the first and last tenth of training and of a
    deterministic evaluation, the env steps taken and the seconds."""
    set_seed(args.seed)
    env = wrap_env(gym.make_vec(args.env, num_envs=args.num_envs), verbose=False)
    device = env.device
    models = {"policy": Policy(env.observation_space, env.action_space, device),
              "value": Value(env.observation_space, env.action_space, device)}
    memory = RandomMemory(memory_size=args.rollouts, num_envs=env.num_envs, device=device)
    cfg = PPO_CFG(rollouts=args.rollouts, learning_epochs=4, mini_batches=4,
                  learning_rate=3e-4, entropy_loss_scale=1e-3)
    cfg.experiment.write_interval = 0  # no TensorBoard files
    cfg.experiment.checkpoint_interval = 0  # no checkpoints
    agent = PPO(models=models, memory=memory, observation_space=env.observation_space,
                action_space=env.action_space, device=device, cfg=cfg)
    step_means: list[float] = []
    record = agent.record_transition

    def recording(**transition: Any) -> None:
        step_means.append(transition["rewards"].float().mean().item())
        record(**transition)

    agent.record_transition = recording
    trainer = SequentialTrainer(env=env, agents=agent, cfg={
        "timesteps": args.timesteps, "headless": True, "disable_progressbar": True,
        "close_environment_at_exit": False})
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    tenth = max(1, len(step_means) // 10)
    agent.enable_training_mode(False)
    obs, _ = env.reset()
    eval_rewards = []
    with torch.no_grad():
        for _ in range(args.eval_steps):
            _, outputs = agent.act(obs, None, timestep=0, timesteps=0)
            obs, reward, _, _, _ = env.step(outputs["mean_actions"].clamp(-1.0, 1.0))
            eval_rewards.append(reward.mean().item())
    env.close()
    return {"first": sum(step_means[:tenth]) / tenth, "last": sum(step_means[-tenth:]) / tenth,
            "eval": sum(eval_rewards) / len(eval_rewards),
            "steps": len(step_means) * args.num_envs, "seconds": seconds}


def main() -> int:
    """Check every env, train, print the summary line; 0 when every mean reward is finite."""
    args = parse_args()
    torch.set_num_threads(1)
    check_every_env(args.num_envs)
    out = train(args)
    print(f"skrl PPO on make_vec({args.env!r}, num_envs={args.num_envs}): {args.timesteps} "
          f"vector steps = {out['steps']} env steps in {out['seconds']:.1f} s; mean reward "
          f"first tenth {out['first']:.4f}, last tenth {out['last']:.4f}, deterministic eval "
          f"({args.eval_steps} x {args.num_envs} steps) {out['eval']:.4f}")
    return 0 if all(math.isfinite(out[k]) for k in ("first", "last", "eval")) else 1


if __name__ == "__main__":
    raise SystemExit(main())
