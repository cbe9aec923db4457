"""The benchmark's run on the tables it is given: every job, the statistics
(:mod:`mura_env.evaluation.statistics`: the design's units resampled jointly, and the
seed-level interval) and every output.
:mod:`experiments.benchmark.__main__` runs it on the reference tables,
:mod:`experiments.compare.__main__` on one table."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from agents.weighting.baselines import all_baselines
from agents.weighting.reporting import SPLIT_USE
from experiments.common.benchmark.config import (
    BUDGET_RULE,
    BenchmarkConfig,
    agent_budgets,
    make_jobs,
)
from experiments.common.benchmark.report import (
    TITLE,
    to_markdown,
    tune_gain_check,
    write_plots,
)
from experiments.common.benchmark.runs import RunResult, run_jobs
from experiments.common.job_pool import run_staged
from experiments.common.tables import AlignedValid, TableSource, with_table_info
from mura_env.common.config_cli import save_config
from mura_env.evaluation.statistics import (
    MethodRuns,
    ValidSets,
    coverage_note,
    draw_resamples,
    method_metrics,
    method_runs,
    run_metrics,
    summarise,
    summarise_tables,
)

#: Methods every other one is compared with, paired on the same bootstrap resamples.
DIFFERENCE_REFERENCES = ("uniform", "stacking")


def run_frames(results: list[RunResult], methods: list[MethodRuns], valid: ValidSets
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``runs.csv`` (one row per table x seed x method: valid metrics, time, env steps, the
    fingerprint of what the run fitted) and ``curves.csv`` (every tune evaluation of every
    agent run)."""
    by_run = {(r.method, r.table, r.seed): r for r in results}
    rows = []
    for m in methods:
        values = run_metrics(valid, m)
        for t, s in np.ndindex(*m.predictions.shape[:2]):
            run = by_run[(m.name, t, s)]
            rows.append({"table": t, "seed": s, "method": m.name, "kind": m.kind,
                         **{k: float(v[t, s, 0]) for k, v in values.items()},
                         "train_time": run.train_time, "env_steps": run.env_steps,
                         "fitted": run.fitted})
    order = [m.name for m in methods]
    ordered = sorted((r for r in results if r.history),
                     key=lambda r: (order.index(r.method), r.table, r.seed))
    curves = [{"table": r.table, "seed": r.seed, "method": r.method, **h}
              for r in ordered for h in r.history]
    return pd.DataFrame(rows), pd.DataFrame(curves)


def run_benchmark(cfg: BenchmarkConfig, sources: list[TableSource], valid: AlignedValid,
                  staging: Path, started: float, title: str = TITLE) -> pd.DataFrame:
    """Run every job and write every output into ``staging``.

    Args:
        cfg: the resolved settings (:func:`~experiments.common.benchmark.config.resolve`).
        sources: the tables; valid: their valid studies and orders
            (:func:`~experiments.common.tables.valid_sets`).
        staging: the folder every output goes to.
        started: the command's ``time.perf_counter()`` at its start, for the total wall time.
        title: the heading of ``benchmark.md``.

    Returns:
        The method table written to ``benchmark.csv``:
        :func:`~mura_env.evaluation.statistics.summarise`'s
        rows plus the mean ``train_time`` and ``env_steps`` of each method's runs.
    """
    load_at_start = os.getloadavg()[0]
    timings: dict[str, float] = {"loading tables": time.perf_counter() - started}
    start = time.perf_counter()
    jobs = make_jobs(cfg, len(sources))
    with tqdm(total=len(jobs), desc="benchmark runs", disable=not cfg.progress) as bar:
        results = run_jobs(jobs, [s.table for s in sources], staging, cfg,
                           on_done=lambda job: bar.update())
    timings["runs"] = time.perf_counter() - start
    start = time.perf_counter()
    names = [*cfg.algos, *(b.name for b in all_baselines())]
    methods = method_runs(results, valid.orders, names=names)
    resample = draw_resamples(valid.sets, cfg.seeds, cfg.n_bootstrap, cfg.bootstrap_seed)
    metrics = method_metrics(methods, valid.sets, resample)
    frame = summarise(methods, valid.sets, resample, DIFFERENCE_REFERENCES, metrics=metrics)
    per_table = with_table_info(summarise_tables(
        methods, valid.sets, resample, DIFFERENCE_REFERENCES, metrics=metrics), sources)
    runs, curves = run_frames(results, methods, valid.sets)
    means = runs.groupby("method", sort=False)[["train_time", "env_steps"]].mean()
    frame = frame.join(means, on="method")
    timings["statistics"] = time.perf_counter() - start
    start = time.perf_counter()
    frame.to_csv(staging / "benchmark.csv", index=False)
    per_table.to_csv(staging / "per_table.csv", index=False)
    runs.to_csv(staging / "runs.csv", index=False)
    curves.to_csv(staging / "curves.csv", index=False)
    write_plots(frame, curves, staging, DIFFERENCE_REFERENCES)
    timings["report"] = time.perf_counter() - start
    timings["total"] = time.perf_counter() - started
    info = _info(cfg, sources, valid.sets, timings, load_at_start)
    info["tune_gain_check"] = tune_gain_check(curves)
    (staging / "benchmark.md").write_text(to_markdown(frame, info, DIFFERENCE_REFERENCES,
                                                      title, per_table))
    save_config(cfg, staging / "config.json", {
        "splits": {**SPLIT_USE, "agent_budgets_chosen_on": "tune"},
        "resolved_tables": info["tables"], "budgets": info["budgets"],
        "sizes": {k: info[k] for k in ("seeds", "n_tune", "n_valid", "n_valid_abnormal",
                                       "study_sets", "backbone_seeds")},
        "statistics": info["design"], "timings_s": timings, "machine": info["machine"]})
    return frame


def valid_abnormal(valid: ValidSets) -> int | list[int]:
    """The abnormal valid studies per study set: one number when every set has as many, else
    one per set."""
    counts = [int(valid.labels[t].sum()) for t in valid.first_tables()]
    return counts[0] if len(set(counts)) == 1 else counts


def _info(cfg: BenchmarkConfig, sources: list[TableSource], valid: ValidSets,
          timings: dict[str, float], load_at_start: float) -> dict[str, Any]:
    """What the report says about sizes, budgets, design, time and the machine (its 1-minute
    load average at the start and at the end: other work slows the benchmark down)."""
    return {
        "tables": [s.label for s in sources], "seeds": cfg.seeds,
        "n_tune": [int((s.table.studies["split"] == "tune").sum()) for s in sources],
        "n_valid": valid.n_studies, "n_valid_abnormal": valid_abnormal(valid),
        "study_sets": valid.study_set.tolist(), "backbone_seeds": valid.seed_unit.tolist(),
        "budgets": agent_budgets(cfg),
        "budget_note": BUDGET_RULE, "n_bootstrap": cfg.n_bootstrap,
        "design": design_note(cfg, valid), "timings": timings,
        "machine": (f"{os.cpu_count()} CPUs ({platform.machine()}), {cfg.workers} worker "
                    f"process(es), 1-minute load average {load_at_start:.2f} at the start, "
                    f"{os.getloadavg()[0]:.2f} at the end"),
    }


def design_note(cfg: BenchmarkConfig, valid: ValidSets) -> str:
    """One paragraph: what the intervals and the probability of improvement are, and what each
    interval covers (:func:`~mura_env.evaluation.statistics.coverage_note`)."""
    return (
        f"A method's score is its mean over runs (tables x seeds; a deterministic baseline has "
        f"one run per table). 95% percentile intervals from {cfg.n_bootstrap:,} seeded "
        f"bootstrap draws (seed {cfg.bootstrap_seed}), the same draws for every method and "
        "every run; differences pair each run with the reference's run on the same table and "
        "the same resampled studies. P(improve) is rliable's probability of improvement per "
        "table on a (runs, tasks) matrix with runs = seeds and tasks = body parts, score = the "
        "run's accuracy on that part (Mann-Whitney, ties 1/2, averaged over tasks), pooled "
        "over the tables like the other figures; its interval comes from the same draws. "
        + coverage_note(valid.n_tables, valid.n_seeds, valid.n_sets))


#: The columns of ``benchmark.csv`` a command prints when it ends.
SHOWN_COLUMNS = ["method", "kind", "accuracy", "accuracy_ci_low", "accuracy_ci_high",
                 "accuracy_seed_ci_low", "accuracy_seed_ci_high", "kappa",
                 "accuracy_vs_uniform", "poi_vs_uniform", "train_time", "env_steps"]


def run_and_show(cfg: BenchmarkConfig, sources: list[TableSource], valid: AlignedValid,
                 started: float, title: str = TITLE) -> int:
    """Run the benchmark into ``cfg.out`` (staged: written all at once, nothing left when
    stopped; :func:`experiments.common.job_pool.run_staged`), then print the method table
    (:data:`SHOWN_COLUMNS`) and what was written. Returns the exit status 0."""
    frame = run_staged(cfg.out, cfg.threads, lambda staging: run_benchmark(
        cfg, sources, valid, staging, started, title))
    print(f"valid split, {valid.n_studies} studies per table, {len(sources)} table(s), "
          f"{valid.sets.n_sets} study set(s) (SYNTHETIC data; nothing clinical):")
    print(frame[SHOWN_COLUMNS].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {cfg.out}/benchmark.md, benchmark.csv, per_table.csv, runs.csv, curves.csv, "
          "config.json, "
          f"plots in {time.perf_counter() - started:.0f} s")
    return 0

