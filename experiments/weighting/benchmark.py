"""The headline benchmark: every weighting agent and every baseline over every reference table.

``python -m experiments.benchmark [--tables PATH ...] [--seeds 3] [--out DIR] [--quick]``

For each table (default: every shipped reference table, :mod:`mura_env.reference`), each
agent of ``--algos`` trains ``--seeds`` times (seeds 0..S-1) on ``tune`` with the budget of
its ``--<algo>-steps`` field, its training curve evaluated on ``tune`` only; every baseline is
fitted on ``tune`` (once per table, or once per seed for the seeded ones); then every run
answers each ``valid`` study once. Valid is read for those final answers only. Statistics:
:mod:`experiments.common.statistics` (runs and studies resampled jointly; rliable's probability
of improvement); report: :mod:`experiments.weighting.benchmark_report`.

Writes into ``--out`` (default ``runs/benchmark/<time>``), all at once (everything is made in
a hidden folder beside it, renamed at the end; a failure leaves nothing): ``benchmark.md``,
``benchmark.csv`` (one row per method, every figure with its 95% interval), ``runs.csv``
(valid scores per table x seed x method), ``curves.csv`` (the agents' tune curves),
``config.json`` (resolved settings, the split each step used, sizes, wall times), the PNG
plots and ``agents/`` (every agent run folder).

Agent budgets: :data:`BUDGET_RULE` says how they were fixed (from tune curves only). The jobs
run in ``--workers`` processes (default 2, one torch thread each); every job is seeded, so the
numbers do not depend on the number of workers. ``--quick`` is a smoke test of the whole
pipeline with tiny budgets, not a result.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from agents.algos import ALGOS, get_algo
from agents.baselines import all_baselines
from agents.reporting import SPLIT_USE
from experiments.common.job_pool import PooledRunOptions, run_staged
from experiments.common.statistics import MethodRuns, draw_resamples, run_metrics, summarise
from experiments.weighting.benchmark_report import to_markdown, tune_gain_check, write_plots
from experiments.weighting.benchmark_runs import (
    BenchmarkInputError,
    Job,
    RunResult,
    TableSource,
    load_tables,
    run_jobs,
    valid_orders,
)
from experiments.weighting.compare import DIFFERENCE_REFERENCES
from mura_env.common.config_cli import parse_config, save_config
from mura_env.logits import LogitsTableError, MissingLogitsError

#: SAC's budget here: a compute cap, under a third of the registry's (its tune plateau), so that
#: the whole benchmark takes about 5 minutes on 2 idle CPU cores with 2 workers (SAC costs
#: about 2 s per 1,000 env steps there, the other agents together about 20 s per table and
#: seed), well inside 10 minutes when other work shares the machine.
SAC_BENCHMARK_STEPS = 20_480
#: How the agents' budgets were fixed; shown in benchmark.md.
BUDGET_RULE = (
    "softmax-pg, PPO and A2C get the registry's budgets (agents.algos default_timesteps): "
    "their tune plateaus (the first evaluation within 0.5 accuracy points of a run's best "
    "tune accuracy, largest over the reference tables and 2 seeds; valid not looked at). SAC "
    f"gets a compute cap, {SAC_BENCHMARK_STEPS:,} env steps instead of its tune plateau's "
    f"{ALGOS['sac'].default_timesteps:,}, so that the whole benchmark runs in about 5 minutes "
    "on 2 CPU cores; its row is not at its plateau.")
#: The config field holding each agent's budget.
STEP_FIELDS = {"softmax-pg": "softmax_pg_steps", "ppo": "ppo_steps", "a2c": "a2c_steps",
               "sac": "sac_steps"}
#: What ``--quick`` sets: a smoke test of the whole pipeline, not a result.
QUICK_SETTINGS = {"softmax_pg_steps": 8192, "ppo_steps": 2048, "a2c_steps": 400,
                  "sac_steps": 300, "curve_points": 2, "n_bootstrap": 200}
#: Rough relative cost per job, to start the longest jobs first.
_COST = {"sac": 4, "a2c": 3, "ppo": 2, "baselines": 1, "softmax-pg": 0}


@dataclass
class BenchmarkConfig(PooledRunOptions):
    """Every weighting agent (over seeds) and every baseline over every reference table."""

    tables: tuple[Path, ...] | None = field(default=None, metadata={
        "help": "logits tables (default: every shipped reference table, mura_env.reference)"})
    seeds: int = field(default=3, metadata={"help": "seeds per agent and seeded baseline"})
    out: Path | None = field(default=None, metadata={
        "help": "output folder, must not exist yet (default runs/benchmark/<time>)"})
    algos: tuple[str, ...] = field(default=tuple(ALGOS), metadata={"help": "agents to run"})
    softmax_pg_steps: int = field(default=ALGOS["softmax-pg"].default_timesteps, metadata={
        "help": "softmax-pg env steps per run (tune plateau)"})
    ppo_steps: int = field(default=ALGOS["ppo"].default_timesteps, metadata={
        "help": "PPO env steps per run (tune plateau)"})
    a2c_steps: int = field(default=ALGOS["a2c"].default_timesteps, metadata={
        "help": "A2C env steps per run (tune plateau)"})
    sac_steps: int = field(default=SAC_BENCHMARK_STEPS, metadata={
        "help": "SAC env steps per run (compute cap: below its tune plateau)"})
    curve_points: int = field(default=8, metadata={
        "help": "tune evaluations per agent run (its training curve)"})


def resolve(cfg: BenchmarkConfig) -> BenchmarkConfig:
    """``cfg`` with ``--quick`` applied and checked.

    Raises:
        ValueError: an unknown algo, or a count below 1.
    """
    if cfg.quick:
        cfg = replace(cfg, **QUICK_SETTINGS)
    for algo in cfg.algos:
        get_algo(algo)
    for name in ("seeds", "curve_points", "n_bootstrap", "workers", "threads",
                 *(STEP_FIELDS[a] for a in cfg.algos)):
        if getattr(cfg, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1.")
    return cfg


def make_jobs(cfg: BenchmarkConfig, n_tables: int) -> list[Job]:
    """Every agent run and every baseline fit, the costliest first."""
    jobs = [Job(t, algo, seed, getattr(cfg, STEP_FIELDS[algo]), cfg.curve_points)
            for t in range(n_tables) for algo in cfg.algos for seed in range(cfg.seeds)]
    jobs += [Job(t, "baselines", seed) for t in range(n_tables) for seed in range(cfg.seeds)]
    return sorted(jobs, key=lambda j: -_COST.get(j.method, 1))


def method_runs(results: list[RunResult], orders: list[np.ndarray], algos: tuple[str, ...],
                n_seeds: int) -> list[MethodRuns]:
    """Stack the runs into one :class:`MethodRuns` per method (agents in ``algos`` order,
    then the baselines in table order), valid studies in the first table's order."""
    by_method: dict[str, dict[tuple[int, int], RunResult]] = {}
    for r in results:
        by_method.setdefault(r.method, {})[(r.table, r.seed)] = r
    names = [*algos, *(b.name for b in all_baselines())]
    out = []
    for name in names:
        runs = by_method[name]
        seeds = n_seeds if (0, n_seeds - 1) in runs else 1
        grid = [[runs[(t, s)] for s in range(seeds)] for t in range(len(orders))]
        pred = np.array([[r.predictions[orders[t]] for r in row] for t, row in enumerate(grid)])
        prob = np.array([[r.probabilities[orders[t]] for r in row]
                         for t, row in enumerate(grid)])
        out.append(MethodRuns(name, grid[0][0].kind, pred, prob))
    return out


def run_frames(results: list[RunResult], methods: list[MethodRuns], labels: np.ndarray,
               body_parts: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``runs.csv`` (one row per table x seed x method: valid metrics, time, env steps) and
    ``curves.csv`` (every tune evaluation of every agent run)."""
    times = {(r.method, r.table, r.seed): (r.train_time, r.env_steps) for r in results}
    no_draws = np.zeros((0, len(labels)))
    rows = []
    for m in methods:
        values = run_metrics(labels, body_parts, m, no_draws)
        for t, s in np.ndindex(*m.predictions.shape[:2]):
            train_time, steps = times[(m.name, t, s)]
            rows.append({"table": t, "seed": s, "method": m.name, "kind": m.kind,
                         **{k: float(v[t, s, 0]) for k, v in values.items()},
                         "train_time": train_time, "env_steps": steps})
    order = [m.name for m in methods]
    ordered = sorted((r for r in results if r.history),
                     key=lambda r: (order.index(r.method), r.table, r.seed))
    curves = [{"table": r.table, "seed": r.seed, "method": r.method, **h}
              for r in ordered for h in r.history]
    return pd.DataFrame(rows), pd.DataFrame(curves)


def run_benchmark(cfg: BenchmarkConfig, sources: list[TableSource], orders: list[np.ndarray],
                  staging: Path, started: float) -> pd.DataFrame:
    """Run every job and write every output into ``staging`` (``started``: the command's
    ``time.perf_counter()`` at its start, for the total wall time); returns the method
    table."""
    load_at_start = os.getloadavg()[0]
    timings: dict[str, float] = {"loading tables": time.perf_counter() - started}
    start = time.perf_counter()
    jobs = make_jobs(cfg, len(sources))
    with tqdm(total=len(jobs), desc="benchmark runs", disable=not cfg.progress) as bar:
        results = run_jobs(jobs, [s.table for s in sources], staging, cfg.workers,
                           cfg.threads, on_done=lambda job: bar.update())
    timings["runs"] = time.perf_counter() - start
    start = time.perf_counter()
    valid = sources[0].table.studies.query("split == 'valid'")
    labels, parts = valid["label"].to_numpy(np.int64), valid["body_part"].to_numpy(object)
    methods = method_runs(results, orders, cfg.algos, cfg.seeds)
    resample = draw_resamples(parts, len(sources), cfg.seeds, cfg.n_bootstrap,
                              cfg.bootstrap_seed)
    frame = summarise(methods, labels, parts, resample, DIFFERENCE_REFERENCES)
    runs, curves = run_frames(results, methods, labels, parts)
    means = runs.groupby("method", sort=False)[["train_time", "env_steps"]].mean()
    frame = frame.join(means, on="method")
    timings["statistics"] = time.perf_counter() - start
    start = time.perf_counter()
    frame.to_csv(staging / "benchmark.csv", index=False)
    runs.to_csv(staging / "runs.csv", index=False)
    curves.to_csv(staging / "curves.csv", index=False)
    write_plots(frame, curves, staging, DIFFERENCE_REFERENCES)
    timings["report"] = time.perf_counter() - start
    timings["total"] = time.perf_counter() - started
    info = _info(cfg, sources, labels, timings, load_at_start)
    info["tune_gain_check"] = tune_gain_check(curves)
    (staging / "benchmark.md").write_text(to_markdown(frame, info, DIFFERENCE_REFERENCES))
    save_config(cfg, staging / "config.json", {
        "splits": {**SPLIT_USE, "agent_budgets_chosen_on": "tune"},
        "resolved_tables": info["tables"], "budgets": info["budgets"],
        "sizes": {k: info[k] for k in ("seeds", "n_tune", "n_valid", "n_valid_abnormal")},
        "statistics": info["design"], "timings_s": timings, "machine": info["machine"]})
    return frame


def _info(cfg: BenchmarkConfig, sources: list[TableSource], labels: np.ndarray,
          timings: dict[str, float], load_at_start: float) -> dict[str, Any]:
    """What the report says about sizes, budgets, design, time and the machine (its 1-minute
    load average at the start and at the end: other work slows the benchmark down)."""
    return {
        "tables": [s.label for s in sources], "seeds": cfg.seeds,
        "n_tune": [int((s.table.studies["split"] == "tune").sum()) for s in sources],
        "n_valid": len(labels), "n_valid_abnormal": int(labels.sum()),
        "budgets": {a: getattr(cfg, STEP_FIELDS[a]) for a in cfg.algos},
        "budget_note": BUDGET_RULE, "n_bootstrap": cfg.n_bootstrap,
        "design": design_note(cfg, len(sources)), "timings": timings,
        "machine": (f"{os.cpu_count()} CPUs ({platform.machine()}), {cfg.workers} worker "
                    f"process(es), 1-minute load average {load_at_start:.2f} at the start, "
                    f"{os.getloadavg()[0]:.2f} at the end"),
    }


def design_note(cfg: BenchmarkConfig, n_tables: int) -> str:
    """One paragraph: what the intervals and the probability of improvement are."""
    return (
        f"A method's score is its mean over runs (tables x seeds; a deterministic baseline has "
        f"one run per table). 95% percentile intervals from {cfg.n_bootstrap:,} seeded "
        f"bootstrap draws (seed {cfg.bootstrap_seed}) that each resample the {n_tables} "
        f"tables, the {cfg.seeds} seeds within each table, and the valid studies (within each "
        "body part), the same draw for every method and every run; differences pair each run "
        "with the reference's run on the same table and the same resampled studies. "
        "P(improve) is rliable's probability of improvement on a (runs, tasks) matrix with "
        "runs = seeds and tasks = table x body part, score = the run's accuracy on that part "
        "(Mann-Whitney, ties 1/2, averaged over tasks); its interval comes from the same draws.")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2: bad settings or tables)."""
    started = time.perf_counter()
    try:
        cfg = resolve(parse_config(BenchmarkConfig, argv))
        sources = load_tables(cfg.tables)
        orders = valid_orders(sources)
    except (ValueError, KeyError, MissingLogitsError, LogitsTableError,
            BenchmarkInputError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = cfg.out or Path("runs/benchmark") / time.strftime("%Y%m%d-%H%M%S")
    if out.exists():
        print(f"error: {out} exists already; pass a new --out.", file=sys.stderr)
        return 2
    resolved = replace(cfg, out=out)
    frame = run_staged(out, cfg.threads,
                       lambda staging: run_benchmark(resolved, sources, orders, staging, started))
    show = frame[["method", "kind", "accuracy", "accuracy_ci_low", "accuracy_ci_high",
                  "kappa", "accuracy_vs_uniform", "poi_vs_uniform"]]
    print(show.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {out}/benchmark.md, benchmark.csv, runs.csv, curves.csv, config.json, plots "
          f"in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
