"""Native PPO's tune curves on ``MuraTriage-v0``: where they flatten fixes its budget in
``agents.core.algos`` (``NATIVE_PPO_TRIAGE_BUDGET``).

For each reference table, arrival profile, load and seed, native PPO (the registry's settings:
the slot actor) trains on tune shifts for ``--steps`` env steps (decisions) and is scored every
``--eval-every`` steps on 16 fixed tune shifts (:func:`agents.triage.rollout.
policy_triage_scores`); c-mu and the server-aware c-mu (exponent 2) are scored on the same tune
shifts for scale. A run's plateau is the first evaluation whose cost per shift is within
``--tolerance`` (relative, default 2%) of the run's lowest; the budget is the smallest multiple
of ``--round-to`` env steps at or above the largest plateau. ``valid`` is never read.

    python benchmarks/triage_curves.py [--tables 0 5] [--profiles steady surge] [--loads 0.9]
        [--seeds 0] [--steps 786432] [--eval-every 65536] [--readers ID ...] [--workers 2]
        [--out runs/benchmarks]

Writes ``triage_curves.csv`` (one row per evaluation) and ``triage_curves.json`` (the plateaus
and the budget) into ``--out``, and prints both.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pandas as pd

from agents.core.train import train_agent
from agents.triage.rollout import (
    EVAL_SEED,
    EVAL_SHIFTS,
    evaluation_episodes,
    play_rule,
    triage_scores,
)
from agents.triage.rules import CMu, ServerAwareCMu
from mura_env.logits.reference import load_reference_table
from mura_env.triage.config import TriageConfig


def rule_costs(config: TriageConfig) -> dict[str, float]:
    """Tune-shift cost per shift of c-mu and the server-aware c-mu (exponent 2), on the shifts
    the curves are scored on."""
    out = {}
    for name, rule in (("c_mu", CMu()), ("server_aware_c_mu_2", ServerAwareCMu(2.0))):
        problem, episodes = evaluation_episodes(config, "tune", EVAL_SHIFTS, EVAL_SEED)
        out[name] = triage_scores(problem, play_rule(rule, episodes))["cost_per_shift"]
    return out


def plateau(env_steps: list[int], costs: list[float], tolerance: float) -> int:
    """The env steps of the first evaluation whose cost is within ``tolerance`` (relative) of
    the curve's lowest."""
    best = min(costs)
    return next(s for s, c in zip(env_steps, costs, strict=True) if c <= best * (1 + tolerance))


def curve_job(index: int, profile: str, load: float, seed: int, steps: int, eval_every: int,
              tolerance: float, readers: tuple[str, ...] | None) -> tuple[list[dict], dict]:
    """One run; returns ``(curve rows, plateau row)``."""
    config = TriageConfig(logits=load_reference_table(index), split="tune", profile=profile,
                          load=load, readers=readers)
    start = time.perf_counter()
    trained = train_agent("native-ppo", config, None, seed=seed, total_timesteps=steps,
                          eval_every=eval_every, tensorboard=False)
    rules = rule_costs(config)
    cell = {"table": index, "profile": profile, "load": load, "seed": seed}
    rows = [{**cell, "env_steps": h["env_steps"], "wall_time": h["wall_time"],
             "cost_per_shift": h["cost_per_shift"], **rules} for h in trained.history]
    curve = [r["cost_per_shift"] for r in rows]
    at = plateau([r["env_steps"] for r in rows], curve, tolerance)
    return rows, {**cell, "plateau": at, "best_cost": min(curve), "final_cost": curve[-1],
                  **rules, "seconds": round(time.perf_counter() - start, 1)}


def main(argv: list[str] | None = None) -> dict:
    """Run the curves; returns the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", type=int, nargs="+", default=[0, 5])
    parser.add_argument("--profiles", nargs="+", default=["steady", "surge"])
    parser.add_argument("--loads", type=float, nargs="+", default=[0.9])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=786_432)
    parser.add_argument("--eval-every", type=int, default=65_536)
    parser.add_argument("--tolerance", type=float, default=0.02)
    parser.add_argument("--round-to", type=int, default=65_536)
    parser.add_argument("--readers", nargs="+", default=None,
                        help="the radiologists (default: all three)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    jobs = list(itertools.product(args.tables, args.profiles, args.loads, args.seeds))
    readers = None if args.readers is None else tuple(args.readers)
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers,
                             mp_context=get_context("forkserver")) as pool:
        results = list(pool.map(curve_job, *zip(*jobs, strict=True),
                                *[[x] * len(jobs) for x in (args.steps, args.eval_every,
                                                            args.tolerance, readers)]))
    curves = pd.DataFrame([r for rows, _ in results for r in rows])
    plateaus = [p for _, p in results]
    largest = max(p["plateau"] for p in plateaus)
    summary = {"plateaus": plateaus, "largest_plateau": largest,
               "budget": int(math.ceil(largest / args.round_to) * args.round_to),
               "steps": args.steps, "eval_every": args.eval_every,
               "tolerance": args.tolerance, "eval_shifts": EVAL_SHIFTS,
               "readers": args.readers or "all",
               "wall_seconds": round(time.perf_counter() - start, 1),
               "machine": f"{platform.processor() or platform.machine()}, "
                          f"{os.cpu_count()} CPUs, {args.workers} workers"}
    args.out.mkdir(parents=True, exist_ok=True)
    curves.to_csv(args.out / "triage_curves.csv", index=False)
    (args.out / "triage_curves.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(curves.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
