"""Env steps per second of native PPO against Stable-Baselines3 PPO on ``MuraWorklist-v0``
(target: native PPO at least 20x SB3 PPO's), measured side by side in one run.

Both train through the one training route (:func:`agents.core.train.train_agent`) on the same
env configuration (reference table 0's tune shifts, routing action, gains observed, capacity
10%) with their registry settings (native PPO: its native vector env, at each ``--native-envs``
size; SB3 PPO: 8 Monitor-wrapped single envs in a DummyVecEnv), one torch thread each, no
evaluation during training. A rate is env steps over training seconds
(``TrainedAgent.wall_time``: without env construction); each figure is the best of
``--repeats`` interleaved runs (the machine may be shared).

    python benchmarks/agent_throughput.py [--native-steps 262144] [--sb3-steps 8192]
        [--native-envs 256 1024] [--repeats 3] [--reference-table 0]

Prints the comparison and writes ``runs/benchmarks/agent_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import torch

from agents.core.train import train_agent
from mura_env.common.atomic import atomic_write_bytes
from mura_env.logits.reference import load_reference_table
from mura_env.worklist.config import WorklistConfig

TARGET_RATIO = 20.0


def rate(algo: str, config: WorklistConfig, steps: int, seed: int, n_envs: int | None = None
         ) -> float:
    """Env steps per training second of one run of ``algo`` with ``n_envs`` env copies (None:
    the registry's), no evaluation, nothing saved."""
    trained = train_agent(algo, config, None, total_timesteps=steps, seed=seed,
                          eval_every=10 * steps, n_envs=n_envs, tensorboard=False)
    return trained.env_steps / trained.wall_time


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--native-steps", type=int, default=262_144)
    parser.add_argument("--sb3-steps", type=int, default=8_192)
    parser.add_argument("--native-envs", type=int, nargs="+", default=[256, 1024],
                        help="native PPO's env copies (256: its registry setting)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference-table", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    config = WorklistConfig(logits=load_reference_table(args.reference_table), split="tune",
                            capacity=0.1, action="routing", observe_gains=True)
    best = {n: 0.0 for n in args.native_envs} | {"ppo": 0.0}
    for repeat in range(args.repeats):
        for n in args.native_envs:
            best[n] = max(best[n], rate("native-ppo", config, args.native_steps, repeat, n))
        best["ppo"] = max(best["ppo"], rate("ppo", config, args.sb3_steps, repeat))
    native = {str(n): {"steps_per_s": round(best[n]), "ratio": round(best[n] / best["ppo"], 2)}
              for n in args.native_envs}
    result = {"native_ppo": native, "sb3_ppo_steps_per_s": round(best["ppo"]),
              "target_ratio": TARGET_RATIO,
              "meets_target": {k: v["ratio"] >= TARGET_RATIO for k, v in native.items()},
              "settings": vars(args) | {"out": str(args.out)},
              "torch_version": torch.__version__, "python": platform.python_version(),
              "cpu_count": os.cpu_count()}
    print(f"MuraWorklist-v0 (routing, gains observed), reference table {args.reference_table}, "
          f"best of {args.repeats}: SB3 PPO {best['ppo']:,.0f} env steps/s")
    for n in args.native_envs:
        print(f"  native PPO, {n:5d} envs: {best[n]:12,.0f} env steps/s | ratio "
              f"{best[n] / best['ppo']:.1f}x (target >= {TARGET_RATIO:.0f}x)")
    path = atomic_write_bytes(args.out / "agent_throughput.json",
                              (json.dumps(result, indent=2) + "\n").encode())
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
