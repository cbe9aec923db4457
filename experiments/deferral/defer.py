"""When should the ensemble hand a study to a radiologist? Every deferral method, over a grid
of deferral costs, on every reference table.

``python -m experiments.defer [--tables PATH ...] [--costs 0 0.05 0.1 0.2 0.3] [--seeds 3]
[--out DIR] [--quick]``

For each table (default: every shipped reference table; each carries the simulated reader
``reader_simulated``) and each ``defer_cost``, every classical method
(:mod:`agents.deferral_methods`) is fitted on ``tune`` and every RL agent
(:func:`agents.train.train_agent`: softmax-pg with a Bernoulli defer head, SB3 PPO) trains
``--seeds`` times on ``MuraDeferral-v0``'s ``tune`` split; then every run decides once for
each ``valid`` study (valid is read for those final decisions only). Each RL run gets a twin:
the global confidence threshold fitted on tune to defer the same share of tune studies
(``global_threshold@<agent>``), the comparison at equal deferral rate.

Statistics: per cost, :func:`mura_env.statistics.summarise` (tables, seeds and valid
studies resampled jointly, studies within each data draw; percentile 95% intervals; a
table-level Student-t interval over the tables' means) and
:func:`~mura_env.statistics.summarise_tables` (each table on its own). Report:
:mod:`experiments.deferral.defer_report`.
Writes into ``--out`` (default ``runs/defer/<time>``), all at once (a hidden folder renamed at
the end): ``defer.md``, ``defer.csv`` (one row per method and cost), ``per_table.csv`` (one row
per cost x method x table: team accuracy, kappa, differences from the references with 95%
intervals over that table's seeds and studies, deferral rate; the table's label, backbone seed
and data seed), ``runs.csv`` (one row per run, with its deferral rate per body part),
``config.json`` and the plots.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from agents.algos import DEFERRAL, UnknownAlgoError
from experiments.common.job_pool import PooledRunOptions, new_output_folder, run_staged
from experiments.common.options import BudgetOptions
from experiments.common.provenance import machine_description
from experiments.common.tables import (
    AlignedValid,
    TableSetError,
    TableSource,
    load_tables,
    valid_sets,
    with_table_info,
)
from experiments.deferral.defer_report import to_markdown, write_plots
from experiments.deferral.defer_runs import CLASSICAL, DeferJob, DeferRun, run_defer_jobs
from mura_env.common.config_cli import parse_config, save_config
from mura_env.constants import BODY_PARTS
from mura_env.logits import LogitsTableError, MissingLogitsError
from mura_env.readers import resolve_reader
from mura_env.statistics import (
    draw_resamples,
    method_metrics,
    method_runs,
    summarise,
    summarise_tables,
)

#: Which split each step uses (recorded in config.json).
SPLIT_USE = {"fit_and_train": "tune",
             "agent_budgets": "fixed beforehand: softmax-pg's from its tune team accuracy on "
                              "reference table 0, PPO's the weighting benchmark's",
             "matched_thresholds": "tune (deferral rate)", "scores": "valid"}
#: What ``--quick`` sets: a smoke test of the whole pipeline, not a result.
QUICK_SETTINGS = {"costs": (0.0, 0.2), "seeds": 2, "n_bootstrap": 100}
#: ``--quick`` budgets (``--steps`` still overrides them), and that of any other agent.
QUICK_STEPS = {"softmax-pg": 8192, "ppo": 1024}
QUICK_OTHER_STEPS = 1024
#: The RL agents the experiment trains by default.
DEFAULT_AGENTS = ("softmax-pg", "ppo")
#: Comparisons every method gets (when present): the reader alone and the ensemble alone.
ALONE = ("always_defer", "never_defer")


@dataclass
class DeferConfig(BudgetOptions, PooledRunOptions):
    """Every deferral method over a grid of deferral costs on every reference table."""

    tables: tuple[Path, ...] | None = field(default=None, metadata={
        "help": "logits tables with a reader column (default: the shipped reference tables)"})
    costs: tuple[float, ...] = field(default=(0.0, 0.05, 0.1, 0.2, 0.3), metadata={
        "help": "deferral costs (reward given up per deferred study)"})
    reader: str | None = field(default=None, metadata={
        "help": "reader id (column reader_<id>) deferred studies go to (default: the tables' "
                "only reader)"})
    seeds: int = field(default=3, metadata={"help": "seeds per RL agent"})
    agents: tuple[str, ...] = field(default=DEFAULT_AGENTS, metadata={
        "help": "RL agents to train (any of agents.algos.ALGOS)"})
    out: Path | None = field(default=None, metadata={
        "help": "output folder, must not exist yet (default runs/defer/<time>)"})


def resolve(cfg: DeferConfig) -> DeferConfig:
    """``cfg`` with ``--quick`` applied and checked.

    Raises:
        ValueError: an unknown agent, no cost, a negative or non-finite cost, seeds < 1.
    """
    costs = np.asarray(cfg.costs, dtype=float)
    if not len(costs) or not (np.isfinite(costs).all() and (costs >= 0).all()):
        raise ValueError(f"--costs must be finite numbers >= 0, got {list(cfg.costs)}.")
    if cfg.quick:
        cfg = replace(cfg, **QUICK_SETTINGS)
    try:
        agent_budgets(cfg)
    except UnknownAlgoError as e:
        raise ValueError(str(e)) from None
    if cfg.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {cfg.seeds}.")
    return replace(cfg, costs=tuple(sorted({float(c) for c in cfg.costs})))


def agent_budgets(cfg: DeferConfig) -> dict[str, int]:
    """Env steps per run of each RL agent: ``--steps`` where it names the agent, else the
    ``--quick`` budgets (:data:`QUICK_STEPS`) with ``--quick``, else the registry's on
    ``MuraDeferral-v0``."""
    defaults = ({a: QUICK_STEPS.get(a, QUICK_OTHER_STEPS) for a in cfg.agents} if cfg.quick
                else {})
    return cfg.budgets(cfg.agents, DEFERRAL, defaults)


def make_jobs(cfg: DeferConfig, n_tables: int) -> list[DeferJob]:
    """Every job, the slowest (PPO) first."""
    steps = agent_budgets(cfg)
    jobs = [DeferJob(t, agent, seed, cost, steps[agent], cfg.reader) for agent in sorted(
        cfg.agents, key=lambda a: a != "ppo") for t in range(n_tables)
        for seed in range(cfg.seeds) for cost in cfg.costs]
    return jobs + [DeferJob(t, CLASSICAL, 0, cost, reader=cfg.reader) for t in range(n_tables)
                   for cost in cfg.costs]


def run_frame(runs: list[DeferRun], labels_of: list[np.ndarray], parts_of: list[np.ndarray]
              ) -> pd.DataFrame:
    """One row per run: method, kind, cost, table, seed, valid and tune deferral rates, valid
    accuracy, the deferral rate per body part and the training seconds."""
    rows = []
    for r in runs:
        parts, labels = parts_of[r.table], labels_of[r.table]
        row: dict[str, Any] = {
            "method": r.method, "kind": r.kind, "cost": r.cost, "table": r.table,
            "seed": r.seed, "deferral_rate": float(r.deferred.mean()),
            "tune_deferral_rate": r.tune_deferral_rate,
            "accuracy": float((r.prediction == labels).mean()), "train_seconds": r.train_time}
        for part in BODY_PARTS:
            rows_part = parts == part
            row[f"deferral_rate_{part}"] = float(r.deferred[rows_part].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def summary_frames(cfg: DeferConfig, runs: list[DeferRun], valid: AlignedValid,
                   per_run: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per cost, every method's figures with intervals (:func:`summarise`), its mean deferral
    rate overall and per body part (rows ordered by cost); and per cost, method and table, its
    figures on that table alone (:func:`summarise_tables`) with its mean deferral rate there.
    One set of bootstrap draws serves every cost."""
    resample = draw_resamples(valid.sets, cfg.seeds, cfg.n_bootstrap, cfg.bootstrap_seed)
    references = [*ALONE, *(f"global_threshold@{a}" for a in cfg.agents)]
    frames, tables = [], []
    for cost in cfg.costs:
        methods = method_runs([r for r in runs if r.cost == cost], valid.orders,
                              ("prediction", "score"))
        metrics = method_metrics(methods, valid.sets, resample)
        frame = summarise(methods, valid.sets, resample, references, metrics=metrics)
        at_cost = per_run[per_run["cost"] == cost]
        rates = at_cost.groupby("method").mean(numeric_only=True)
        columns = ["deferral_rate", *(f"deferral_rate_{p}" for p in BODY_PARTS)]
        frame = frame.join(rates[columns], on="method")
        frame.insert(0, "cost", cost)
        frames.append(frame)
        per_table = summarise_tables(methods, valid.sets, resample, references,
                                     metrics=metrics)
        table_rates = at_cost.groupby(["method", "table"])["deferral_rate"].mean()
        per_table = per_table.join(table_rates, on=["method", "table"])
        per_table.insert(0, "cost", cost)
        tables.append(per_table)
    return pd.concat(frames, ignore_index=True), pd.concat(tables, ignore_index=True)


def run_defer(cfg: DeferConfig, sources: list[TableSource], aligned: AlignedValid,
              staging: Path, started: float) -> pd.DataFrame:
    """Run every job, summarise, write every output into ``staging``; returns the summary
    (``aligned``: the tables' valid studies and orders,
    :func:`~experiments.common.tables.valid_sets`)."""
    load_at_start = os.getloadavg()[0]
    tables = [s.table for s in sources]
    jobs = make_jobs(cfg, len(tables))
    bar = tqdm(total=len(jobs), desc="defer", disable=not cfg.progress)
    runs = run_defer_jobs(jobs, tables, cfg, lambda job: bar.update())
    bar.close()
    valid_rows = [t.studies[t.studies["split"] == "valid"] for t in tables]
    per_run = run_frame(runs, [v["label"].to_numpy() for v in valid_rows],
                        [v["body_part"].to_numpy() for v in valid_rows])
    frame, per_table = summary_frames(cfg, runs, aligned, per_run)
    per_table = with_table_info(per_table, sources)
    info = {"tables": [s.label for s in sources], "n_tune": int(
        (tables[0].studies["split"] == "tune").sum()), "n_valid": aligned.n_studies,
        "study_sets": aligned.sets.study_set.tolist(),
        "seeds": cfg.seeds, "costs": list(cfg.costs), "agents": list(cfg.agents),
        "split_use": SPLIT_USE, "wall_seconds": round(time.perf_counter() - started, 1),
        "quick": cfg.quick, "reader": cfg.reader,
        "reader_provenance": (tables[0].provenance or {}).get("reader"),
        "machine": (f"{machine_description('cpu')}, {cfg.workers} worker process(es), "
                    f"1-minute load average {load_at_start:.2f} at the start, "
                    f"{os.getloadavg()[0]:.2f} at the end")}
    frame.to_csv(staging / "defer.csv", index=False)
    per_table.to_csv(staging / "per_table.csv", index=False)
    per_run.to_csv(staging / "runs.csv", index=False)
    (staging / "defer.md").write_text(to_markdown(frame, info, per_table))
    write_plots(frame, staging)
    save_config(cfg, staging / "config.json", {"resolved": info})
    return frame


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2: bad settings or tables)."""
    started = time.perf_counter()
    try:
        cfg = resolve(parse_config(DeferConfig, argv, __doc__))
        sources = load_tables(cfg.tables)
        valid = valid_sets(sources)
        out = new_output_folder(cfg.out, "runs/defer")
        readers = [resolve_reader(s.table.reader_ids, cfg.reader) for s in sources]
        if len(set(readers)) > 1:
            raise KeyError(f"the tables' readers differ ({readers}); pick one with --reader.")
    except KeyError as e:
        print(f"error: {e.args[0]} (for a table file: `python -m experiments.attach_reader "
              "--table PATH`)", file=sys.stderr)
        return 2
    except (ValueError, MissingLogitsError, LogitsTableError, TableSetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    resolved = replace(cfg, out=out, reader=readers[0])
    run_staged(out, cfg.threads,
               lambda staging: run_defer(resolved, sources, valid, staging, started))
    print((out / "defer.md").read_text().split("\n## ")[0])
    print(f"wrote {out}/defer.md, defer.csv, per_table.csv, runs.csv, config.json, plots in "
          f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
