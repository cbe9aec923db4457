"""TorchRL as an outside client of the mura_env envs (run by ``torchrl_check.sh``).

Builds ``torchrl.envs.GymEnv(id)`` for every env ``mura_env`` registers and runs
``check_env_specs`` on it, then trains TorchRL's own PPO (``ClipPPOLoss``, ``GAE``, the
single-process ``Collector``, which older TorchRL releases call ``SyncDataCollector``, a small
MLP actor with a ``TanhNormal`` over the Box action space and a small MLP critic) on ``--env``
for ``--frames`` frames.

Input: command-line options (``--help``). Output: one line per env checked, one per PPO batch,
then the mean reward per frame of the first and last collected batch and of a deterministic
evaluation rollout (all finite, else the exit status is 1).
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.data.replay_buffers import ReplayBuffer
from torchrl.data.replay_buffers.samplers import SamplerWithoutReplacement
from torchrl.data.replay_buffers.storages import LazyTensorStorage
from torchrl.envs import GymEnv
from torchrl.envs.utils import ExplorationType, check_env_specs, set_exploration_type
from torchrl.modules import ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE

from mura_env import TRIAGE_ENV_ID, registered_env_ids

#: Env arguments of the checks: random actions sample every slot of MuraTriage-v0, so a closed
#: slot reads the earliest waiting study instead of being refused.
CHECK_KWARGS = {TRIAGE_ENV_ID: {"masked_action": "earliest"}}


def parse_args() -> argparse.Namespace:
    """The command-line options: env id, frames, batch size, epochs, learning rate, seed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="MuraWeighting-v0", help="env id to train PPO on")
    parser.add_argument("--frames", type=int, default=8192, help="total frames collected")
    parser.add_argument("--frames-per-batch", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=4, help="PPO epochs per batch")
    parser.add_argument("--minibatch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eval-steps", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def check_every_env(seed: int) -> None:
    """``GymEnv(id)`` and ``check_env_specs`` for every env id ``mura_env`` registers; prints
    one line each and raises on the first failure."""
    for env_id in registered_env_ids():
        env = GymEnv(env_id, **CHECK_KWARGS.get(env_id, {}))
        env.set_seed(seed)
        check_env_specs(env)
        print(f"check_env_specs({env_id}): ok; observation "
              f"{tuple(env.observation_spec['observation'].shape)}, action "
              f"{tuple(env.action_spec.shape)}")
        env.close()


def build_modules(env: GymEnv, hidden: int = 64) -> tuple[ProbabilisticActor, ValueOperator]:
    """A TanhNormal actor bounded to ``env``'s action space and a state-value critic, each an
    MLP with two hidden layers of ``hidden`` units reading ``observation``."""
    n_obs = env.observation_spec["observation"].shape[-1]
    n_act = env.action_spec.shape[-1]
    actor_net = nn.Sequential(
        nn.Linear(n_obs, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
        nn.Linear(hidden, 2 * n_act), NormalParamExtractor())
    actor = ProbabilisticActor(
        TensorDictModule(actor_net, in_keys=["observation"], out_keys=["loc", "scale"]),
        spec=env.action_spec, in_keys=["loc", "scale"], distribution_class=TanhNormal,
        distribution_kwargs={"low": env.action_spec.space.low,
                             "high": env.action_spec.space.high},
        return_log_prob=True)
    critic = ValueOperator(
        nn.Sequential(nn.Linear(n_obs, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                      nn.Linear(hidden, 1)),
        in_keys=["observation"])
    return actor, critic


def train(args: argparse.Namespace) -> dict[str, float]:
    """PPO on ``args.env``; returns the mean reward per frame of the first and last batch and of
    a deterministic evaluation rollout, the frames collected and the seconds taken."""
    torch.manual_seed(args.seed)
    env = GymEnv(args.env)
    env.set_seed(args.seed)
    actor, critic = build_modules(env)
    with torch.no_grad():  # initialise lazy shapes
        actor(env.reset())
        critic(env.reset())
    collector = Collector(env, actor, frames_per_batch=args.frames_per_batch,
                          total_frames=args.frames, split_trajs=False,
                          auto_register_policy_transforms=False)  # a plain MLP: no InitTracker
    buffer = ReplayBuffer(storage=LazyTensorStorage(args.frames_per_batch),
                          sampler=SamplerWithoutReplacement(), batch_size=args.minibatch)
    advantage = GAE(gamma=0.99, lmbda=0.95, value_network=critic, average_gae=True)
    loss_fn = ClipPPOLoss(actor, critic, clip_epsilon=0.2, entropy_coeff=1e-3)
    optim = torch.optim.Adam(loss_fn.parameters(), lr=args.lr)
    start = time.perf_counter()
    frames, batch_means = 0, []
    for i, batch in enumerate(collector):
        frames += batch.numel()
        batch_means.append(batch["next", "reward"].float().mean().item())
        for _ in range(args.epochs):
            with torch.no_grad():
                advantage(batch)
            buffer.extend(batch.reshape(-1))
            for _ in range(args.frames_per_batch // args.minibatch):
                losses = loss_fn(buffer.sample())
                loss = losses["loss_objective"] + losses["loss_critic"] + losses["loss_entropy"]
                optim.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(loss_fn.parameters(), 1.0)
                optim.step()
        print(f"batch {i + 1}: {frames} frames, mean reward {batch_means[-1]:.4f}")
    collector.shutdown()
    with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
        rollout = env.rollout(args.eval_steps, actor, break_when_any_done=False)
    env.close()
    return {"first": batch_means[0], "last": batch_means[-1],
            "eval": rollout["next", "reward"].float().mean().item(),
            "frames": frames, "seconds": time.perf_counter() - start}


def main() -> int:
    """Check every env, train, print the summary line; 0 when every mean reward is finite."""
    args = parse_args()
    torch.set_num_threads(1)
    check_every_env(args.seed)
    out = train(args)
    print(f"torchrl PPO on {args.env}: {out['frames']} frames in {out['seconds']:.1f} s; "
          f"mean reward first batch {out['first']:.4f}, last batch {out['last']:.4f}, "
          f"deterministic eval ({args.eval_steps} steps) {out['eval']:.4f}")
    return 0 if all(math.isfinite(out[k]) for k in ("first", "last", "eval")) else 1


if __name__ == "__main__":
    raise SystemExit(main())
