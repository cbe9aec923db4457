"""Native PPO's tune curves on ``MuraWorklist-v0`` (routing action, gains observed): where they
flatten fixes its budget in ``agents.core.algos`` (``MuraWorklist-v0`` entry).

For each reference table, capacity and seed, native PPO trains on tune shifts of random mixes
(as ``python -m experiments.worklist`` trains it) for ``--steps`` env steps and is scored every
``--eval-every`` steps on 64 fixed tune shifts (:func:`agents.worklist.rollout.
policy_shift_scores`); the classical budget-paced rule and ``dp`` are scored on the same tune
shifts for scale. A run's plateau is :func:`agents.core.algos.plateau_step` of its curve (the
first evaluation within 0.5 accuracy points of its best); the budget is the smallest multiple of
``--round-to`` env steps at or above the largest plateau. ``valid`` is never read.

    python benchmarks/native_ppo_curves.py [--tables 0 3 6 9] [--capacities 0.05 0.1]
        [--seeds 0 1] [--steps 1310720] [--eval-every 131072] [--workers 2]
        [--out runs/benchmarks]

Writes ``native_ppo_curves.csv`` (one row per evaluation) and ``native_ppo_curves.json`` (the
plateaus and the budget) into ``--out``, and prints both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pandas as pd

from agents.core.algos import plateau_step
from agents.core.train import train_agent
from agents.worklist.methods import BudgetPaced, OptimalOnline, WorklistData, simulate
from agents.worklist.rollout import EVAL_SEED, EVAL_SHIFTS, evaluation_shifts
from mura_env.logits.reference import load_reference_table
from mura_env.worklist.config import WorklistConfig


def rule_scores(config: WorklistConfig) -> dict[str, float]:
    """Tune-shift accuracy of the budget-paced rule and ``dp`` fitted on tune, on the shifts
    the curves are scored on."""
    table = config.load_table()
    tune = WorklistData.from_table(table, "tune")
    problem, rows = evaluation_shifts(config, "tune", EVAL_SHIFTS, EVAL_SEED)
    out = {}
    for method in (BudgetPaced(), OptimalOnline()):
        method.fit(tune, config.read_cost, problem.capacities, config.shift_size)
        answers = simulate(method, tune, rows, problem.capacities,
                           probabilities=method.out_of_fold.probabilities)
        out[method.name] = float(answers["accuracy"])
    return out


def curve_job(index: int, capacity: float, seed: int, steps: int, eval_every: int
              ) -> tuple[list[dict], dict]:
    """One run: native PPO on reference table ``index`` at ``capacity`` with ``seed``; returns
    ``(curve rows, plateau row)``."""
    table = load_reference_table(index)
    config = WorklistConfig(logits=table, split="tune", capacity=capacity, action="routing",
                            observe_gains=True)
    rules = rule_scores(config)
    trained = train_agent("native-ppo", config, None, total_timesteps=steps, seed=seed,
                          eval_every=eval_every, tensorboard=False)
    curve = trained.history
    rows = [{"table": index, "capacity": capacity, "seed": seed, "env_steps": r["env_steps"],
             "wall_time": r["wall_time"], "accuracy": r["accuracy"], **rules} for r in curve]
    step = plateau_step([r["env_steps"] for r in curve], [r["accuracy"] for r in curve])
    best = max(r["accuracy"] for r in curve)
    plateau = {"table": index, "capacity": capacity, "seed": seed, "plateau_step": step,
               "best_accuracy": best, "final_accuracy": curve[-1]["accuracy"],
               "train_seconds": trained.wall_time, **rules}
    print(f"table {index} capacity {capacity} seed {seed}: plateau at {step:,} steps, best "
          f"{best:.4f}, final {curve[-1]['accuracy']:.4f} (budget-paced "
          f"{rules['budget_paced']:.4f}, dp {rules['dp']:.4f}); {trained.wall_time:.0f} s of "
          "training", flush=True)
    return rows, plateau


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, nargs="+", default=[0, 3, 6, 9])
    parser.add_argument("--capacities", type=float, nargs="+", default=[0.05, 0.1])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=1_310_720)
    parser.add_argument("--eval-every", type=int, default=131_072)
    parser.add_argument("--round-to", type=int, default=131_072)
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel processes")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
    args = parser.parse_args(argv)

    started = time.perf_counter()
    jobs = [(t, c, s, args.steps, args.eval_every) for t in args.tables
            for c in args.capacities for s in args.seeds]
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(curve_job, *zip(*jobs, strict=True)))
    rows = [row for curve, _ in results for row in curve]
    plateaus = [plateau for _, plateau in results]
    largest = max(p["plateau_step"] for p in plateaus)
    budget = -(-largest // args.round_to) * args.round_to
    result = {"budget": budget, "largest_plateau": largest, "plateaus": plateaus,
              "settings": vars(args) | {"out": str(args.out)},
              "wall_seconds": round(time.perf_counter() - started, 1),
              "python": platform.python_version(), "cpu_count": os.cpu_count()}
    args.out.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    for name, text in (("native_ppo_curves.csv", frame.to_csv(index=False)),
                       ("native_ppo_curves.json", json.dumps(result, indent=2) + "\n")):
        path = args.out / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    print(f"largest plateau {largest:,} env steps -> budget {budget:,}; "
          f"wrote {args.out}/native_ppo_curves.csv and .json")
    print(frame.groupby(["capacity", "env_steps"])["accuracy"].mean().unstack(0).round(4)
          .to_string())
    return result


if __name__ == "__main__":
    main()
