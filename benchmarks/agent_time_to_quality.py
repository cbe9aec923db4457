"""Time to quality: softmax-pg vs. SB3 PPO (target: softmax-pg >= 20x faster in wall time), and
native PPO vs. softmax-pg (target: native PPO no slower than softmax-pg).

Quality = tune accuracy within ``--tolerance`` (0.5 points) of the stacking baseline's tune
accuracy. Everything here reads the ``tune`` split only: stacking is fitted and scored on it,
every agent learns on it and is evaluated on it, every ``--eval-every`` env steps for
softmax-pg and SB3 PPO (default 4,096: each softmax-pg update of 4,096 studies, every second PPO
rollout of 2,048 studies, scored after SB3's update) and after every update of native PPO
(``--native-eval-every``, its rollout of 1,024 envs x 32 steps). No number from ``valid`` is
used. The logits table is ``--logits PATH``, or shipped reference table ``--reference-table I``
(:mod:`mura_env.logits.reference`), else the newest ``runs/pretrain/*/logits.parquet``, else
reference table 0. The time reported is training time only (evaluations excluded) until the first
evaluation at quality; an agent that
never gets there is reported at its best accuracy, marked ``reached: false``. Each agent runs
``--repeats`` times, interleaved, with the same seed (so the same trajectory): the figure is
the fastest repeat, which takes out one-off warm-up costs and the noise of a shared machine
equally for both.

Prints the comparison and writes ``runs/benchmarks/agent_time_to_quality.json``.

    python benchmarks/agent_time_to_quality.py [--logits PATH | --reference-table I] [--seed 0]
        [--softmax-pg-steps 400000] [--ppo-steps 100000] [--native-ppo-steps 2097152]
        [--eval-every 4096] [--native-eval-every 32768] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from agents.core.evaluate import evaluate_baseline  # noqa: E402
from agents.core.train import train_agent  # noqa: E402
from agents.weighting.baselines import Stacking  # noqa: E402
from experiments.common.logits_source import resolve_table  # noqa: E402
from mura_env.common.atomic import atomic_write_bytes  # noqa: E402
from mura_env.logits import LogitsTable, LogitsTableError, MissingLogitsError  # noqa: E402
from mura_env.logits.study_set import StudySet  # noqa: E402
from mura_env.weighting.config import WeightingConfig  # noqa: E402

TARGET_SPEEDUP = 20.0
#: Native PPO must reach the quality in at most this multiple of softmax-pg's time.
NATIVE_TARGET_RATIO = 1.0


def time_to_quality(history: list[dict[str, Any]], target: float) -> dict[str, Any]:
    """First evaluation with ``accuracy >= target`` (or the first at the best accuracy).

    Returns ``{"reached", "accuracy", "env_steps", "wall_time", "best_accuracy"}``."""
    best = max(h["accuracy"] for h in history)
    hit = next((h for h in history if h["accuracy"] >= target), None)
    reached = hit is not None
    if hit is None:
        hit = next(h for h in history if h["accuracy"] == best)
    return {"reached": reached, "accuracy": hit["accuracy"], "env_steps": hit["env_steps"],
            "wall_time": hit["wall_time"], "best_accuracy": best}


def parse_args() -> argparse.Namespace:
    """The benchmark's command line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = ap.add_mutually_exclusive_group()
    source.add_argument("--logits", default=None, help="logits table (default: newest run's)")
    source.add_argument("--reference-table", type=int, default=None, metavar="I",
                        help="shipped reference table I (mura_env.logits.reference) instead")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tolerance", type=float, default=0.005, help="accuracy below stacking")
    ap.add_argument("--num-envs", type=int, default=4096, help="softmax-pg studies per update")
    ap.add_argument("--softmax-pg-steps", type=int, default=400_000)
    ap.add_argument("--ppo-steps", type=int, default=100_000)
    ap.add_argument("--native-ppo-steps", type=int, default=2_097_152,
                    help="native PPO's env steps (its registry budget on MuraWeighting-v0)")
    ap.add_argument("--native-eval-every", type=int, default=32_768,
                    help="env steps between native PPO's evaluations (one update)")
    ap.add_argument("--eval-every", type=int, default=4096,
                    help="env steps between evaluations on tune, the same for both agents")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for both agents (tiny networks: 1 is fastest and "
                         "least noisy on a shared machine)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per agent (fastest kept)")
    ap.add_argument("--out", default="runs/benchmarks/agent_time_to_quality.json")
    return ap.parse_args()


def race(args: argparse.Namespace, config: WeightingConfig, target: float
         ) -> dict[str, dict[str, Any]]:
    """Train softmax-pg, SB3 PPO and native PPO ``args.repeats`` times each, interleaved; per
    agent, the
    :func:`time_to_quality` of its fastest repeat, with every repeat's wall time."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for algo, steps, every in (
                    ("softmax-pg", args.softmax_pg_steps, args.eval_every),
                    ("ppo", args.ppo_steps, args.eval_every),
                    ("native-ppo", args.native_ppo_steps, args.native_eval_every)):
                start = time.perf_counter()
                trained = train_agent(algo, config, Path(tmp) / f"{algo}_{rep}",
                                      total_timesteps=steps, seed=args.seed,
                                      eval_split="tune", eval_every=every,
                                      tensorboard=False,
                                      n_envs=args.num_envs if algo == "softmax-pg" else None)
                r = {**time_to_quality(trained.history, target),
                     "total_env_steps": trained.env_steps,
                     "total_train_time": trained.wall_time,
                     "total_time_with_evals": time.perf_counter() - start}
                prev = results.get(algo)
                r["repeat_wall_times"] = [*(prev or {}).get("repeat_wall_times", []),
                                          r["wall_time"]]
                if prev is None or r["wall_time"] < prev["wall_time"]:
                    results[algo] = r
                else:
                    prev["repeat_wall_times"] = r["repeat_wall_times"]
    return results


def load_table(args: argparse.Namespace) -> tuple[LogitsTable, Path]:
    """The table of ``--reference-table`` or ``--logits`` (see :func:`resolve_table`) and its
    path.

    Raises:
        MissingLogitsError, LogitsTableError: the table is missing or corrupt (a reference
            table's message gives the command that remakes it).
    """
    if args.reference_table is None:
        return resolve_table(args.logits)
    from mura_env.logits.reference import load_reference_table, reference_table_path

    return (load_reference_table(args.reference_table),
            reference_table_path(args.reference_table))


def main() -> int:
    """Run the benchmark; returns the exit status."""
    args = parse_args()
    torch.set_num_threads(args.threads)
    try:
        table, source = load_table(args)
    except (MissingLogitsError, LogitsTableError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    tune = StudySet.select(table, "tune")
    stack_acc = evaluate_baseline(Stacking().fit(tune), tune, n_bootstrap=0).value("accuracy")
    target = stack_acc - args.tolerance
    results = race(args, WeightingConfig(logits=table), target)
    sp, ppo, native = results["softmax-pg"], results["ppo"], results["native-ppo"]
    speedup = ppo["wall_time"] / max(sp["wall_time"], 1e-9)
    native_ratio = native["wall_time"] / max(sp["wall_time"], 1e-9)
    report = {
        "logits": str(source), "seed": args.seed, "split": "tune",
        "stacking_tune_accuracy": stack_acc, "eval_every": args.eval_every,
        "target_accuracy": target, "results": results, "speedup_wall_time": speedup,
        "speedup_env_steps": ppo["env_steps"] / max(sp["env_steps"], 1),
        "torch_threads": args.threads, "repeats": args.repeats,
        "target_speedup": TARGET_SPEEDUP, "meets_target": bool(speedup >= TARGET_SPEEDUP
                                                               and sp["reached"]),
        "native_ppo_time_over_softmax_pg": native_ratio,
        "native_target_ratio": NATIVE_TARGET_RATIO,
        "native_meets_target": bool(native["reached"] and native_ratio <= NATIVE_TARGET_RATIO),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out, (json.dumps(report, indent=2) + "\n").encode())
    print(f"logits {source}; stacking tune accuracy {stack_acc:.4f}; target >= {target:.4f} "
          f"(tune accuracy, evaluated every {args.eval_every} env steps)")
    for algo, r in results.items():
        state = "reached" if r["reached"] else f"NOT reached (best {r['best_accuracy']:.4f})"
        print(f"  {algo:10s} {state}: accuracy {r['accuracy']:.4f} after {r['env_steps']:>7d} "
              f"env steps, {r['wall_time']:.3f} s of training")
    print(f"softmax-pg is {speedup:.1f}x faster in wall time ({report['speedup_env_steps']:.2f}x "
          f"in env steps); target {TARGET_SPEEDUP:.0f}x: "
          f"{'met' if report['meets_target'] else 'NOT met'}")
    print(f"native PPO takes {native_ratio:.2f}x softmax-pg's time to quality; target <= "
          f"{NATIVE_TARGET_RATIO:.0f}x: {'met' if report['native_meets_target'] else 'NOT met'}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
