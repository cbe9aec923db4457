"""Which study a free radiologist reads next: every scheduling rule and learned scheduler of the
reading room (``MuraTriage-v0``) over the reference tables, arrival profiles and loads.

``python -m experiments.triage [--tables PATH ...] [--profiles steady surge] [--loads 0.8 0.9]
[--agents native-ppo | --rules-only] [--seeds 3] [--steps ALGO=N] [--n-shifts 50] [--tune-shifts 20]
[--minutes 480] [--urgency 10] [--readers ID ...] [--deadline MINUTES] [--late-cost 10]
[--fatigue F] [--workers 2] [--out DIR] [--quick]``

For each table (default: every shipped reference table), the classifier's probability of each
study is the env's (stacking fitted on tune; tune studies cross-fitted). For each arrival
profile and load (a cell), the rules of :mod:`agents.triage.rules` are fitted on tune (the flag
threshold on the tune studies, the server-aware exponent and the tuned index's powers on
``--tune-shifts`` tune shifts), each agent of ``--agents`` trains ``--seeds`` times on the
cell's tune shifts (the registry's budget unless ``--steps`` says otherwise), and every rule and
agent plays the same ``--n-shifts`` shifts of valid studies (valid is read for those final
figures only). Reported per method: the waiting cost per shift, against c-mu, against the
better of the server-aware c-mu and the tuned index, and against first in, first out; the mean
and 90th-percentile wait of abnormal and normal studies; the minutes saved for abnormal studies
against first in, first out (QuCAD's measure); the share of abnormal studies the classifier
missed and their wait; the radiologists' utilisation. Means over tables (and agent seeds),
with the Student-t 95% interval over backbone seeds (each seed's tables and agent seeds
averaged first). Jobs run in ``--workers`` processes.
Writes into ``--out`` (default ``runs/triage/<time>``), all at once: ``triage.md``,
``triage.csv`` (one row per profile, load and rule), ``runs.csv`` (one per table too),
``waits_by_hour.csv`` and ``waits_by_hour.png`` (abnormal studies' mean wait by the hour they
arrived in, per rule; means over tables and shifts) and ``config.json``.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from agents.core.algos import UnknownAlgoError
from experiments.common.job_pool import JobPool, new_output_folder, run_staged
from experiments.common.options import BudgetOptions
from experiments.common.provenance import machine_description
from experiments.common.tables import (
    INPUT_ERRORS,
    TableSource,
    input_error_status,
    load_tables,
    valid_sets,
)
from experiments.triage.report import plot_waits_by_hour, summary_frame, to_markdown
from experiments.triage.runs import RULES_JOB, TriageJob, run_job
from mura_env import TRIAGE_ENV_ID
from mura_env.common.config_cli import parse_config, save_config
from mura_env.triage.arrivals import ARRIVAL_PROFILES
from mura_env.triage.config import TriageConfig
from mura_env.triage.shifts import READ_MINUTES

#: Which split each step uses (recorded in config.json).
SPLIT_USE = {"fit": "tune (stacking; the flag threshold; the server-aware exponent and the "
                    "tuned index's powers on tune shifts)",
             "train": "tune shifts (each agent, per cell and seed)",
             "agent_budgets": "agents.core.algos (MuraTriage-v0 entry: native PPO's from its "
                              "tune curves, benchmarks/triage_curves.py)",
             "scores": "valid (fixed shifts per profile and load, the same for every method)"}
#: What ``--quick`` sets: a smoke test of the pipeline, not a result.
QUICK_SETTINGS = {"n_shifts": 3, "tune_shifts": 2, "minutes": 120.0, "seeds": 1}
#: Agent budgets under ``--quick``.
QUICK_STEPS = 2048


@dataclass
class TriageExperimentConfig(BudgetOptions):
    """Every scheduling rule and learned scheduler over the reference tables, arrival profiles
    and loads."""

    tables: tuple[Path, ...] | None = field(default=None, metadata={
        "help": "logits tables (default: the shipped reference tables)"})
    profiles: tuple[str, ...] = field(default=("steady", "surge"), metadata={
        "help": f"arrival profiles (any of {list(ARRIVAL_PROFILES)})"})
    loads: tuple[float, ...] = field(default=(0.8, 0.9), metadata={
        "help": "arrival rate over the radiologists' combined reading rate"})
    agents: tuple[str, ...] = field(default=("native-ppo",), metadata={
        "help": "learned schedulers to train (agents.core.algos.ALGOS)"})
    rules_only: bool = field(default=False, metadata={
        "help": "train no agent (the rules alone)"})
    seeds: int = field(default=3, metadata={"help": "seeds per agent, table and cell"})
    n_shifts: int = field(default=50, metadata={"help": "valid shifts per profile and load"})
    tune_shifts: int = field(default=20, metadata={
        "help": "tune shifts the server-aware exponent and the tuned index are searched on"})
    minutes: float = field(default=480.0, metadata={"help": "a shift's length in minutes"})
    urgency: float = field(default=10.0, metadata={
        "help": "an abnormal study's cost per minute of waiting, a normal one's being 1"})
    read_cv: float = field(default=0.5, metadata={
        "help": "coefficient of variation of the lognormal reading times"})
    deadline: float | None = field(default=None, metadata={
        "help": "minutes after arrival by which an abnormal study should be started (none by "
                "default)"})
    late_cost: float = field(default=10.0, metadata={
        "help": "an abnormal study's further cost per minute past its deadline"})
    readers: tuple[str, ...] = field(default=tuple(READ_MINUTES), metadata={
        "help": f"the radiologists (some of {list(READ_MINUTES)})"})
    fatigue: float = field(default=0.0, metadata={
        "help": "how much a read lengthens per hour of reading without rest (0: none)"})
    workers: int = field(default=2, metadata={"help": "worker processes (1: this process)"})
    quick: bool = field(default=False, metadata={
        "help": "tiny settings (QUICK_SETTINGS): a smoke test of the pipeline, not a result"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})
    out: Path | None = field(default=None, metadata={
        "help": "output folder, must not exist yet (default runs/triage/<time>)"})


def resolve(cfg: TriageExperimentConfig) -> tuple[TriageExperimentConfig,
                                                  dict[tuple[str, float], TriageConfig]]:
    """``cfg`` with ``--quick`` applied, and the env configuration of each (profile, load) on
    tune (its table still to be set).

    Raises:
        ValueError: an unknown profile, no load, shifts or seeds below 1, an unknown agent,
            a bad ``--steps`` entry, or a room setting out of range.
    """
    if cfg.quick:
        cfg = replace(cfg, **QUICK_SETTINGS)
    if cfg.rules_only:
        cfg = replace(cfg, agents=())
    if not cfg.profiles or any(p not in ARRIVAL_PROFILES for p in cfg.profiles):
        raise ValueError(f"--profiles must name some of {list(ARRIVAL_PROFILES)}, got "
                         f"{list(cfg.profiles)}.")
    if not cfg.loads:
        raise ValueError("--loads needs at least one load.")
    for name in ("n_shifts", "tune_shifts", "seeds"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got "
                             f"{getattr(cfg, name)}.")
    agent_budgets(cfg)  # unknown agents and bad --steps entries, named
    settings = {(p, float(load)): TriageConfig(split="tune", minutes=cfg.minutes, profile=p,
                                               load=float(load), urgency=cfg.urgency,
                                               read_cv=cfg.read_cv, deadline=cfg.deadline,
                                               late_cost=cfg.late_cost,
                                               readers=tuple(cfg.readers), fatigue=cfg.fatigue)
                for p in cfg.profiles for load in cfg.loads}
    return cfg, settings


def agent_budgets(cfg: TriageExperimentConfig) -> dict[str, int]:
    """Env steps per run of each agent: ``--steps``, else :data:`QUICK_STEPS` under
    ``--quick``, else the registry's budget on ``MuraTriage-v0``."""
    defaults = {a: QUICK_STEPS for a in cfg.agents} if cfg.quick else {}
    try:
        return cfg.budgets(cfg.agents, TRIAGE_ENV_ID, defaults)
    except UnknownAlgoError as e:
        raise ValueError(str(e)) from None


def make_jobs(cfg: TriageExperimentConfig, n_tables: int, n_cells: int) -> list[TriageJob]:
    """Every job, the agents' (slowest) first."""
    steps = agent_budgets(cfg)
    jobs = [TriageJob(t, agent, seed, cell, steps[agent]) for agent in cfg.agents
            for t in range(n_tables) for cell in range(n_cells) for seed in range(cfg.seeds)]
    return jobs + [TriageJob(t, RULES_JOB) for t in range(n_tables)]


def run_triage(cfg: TriageExperimentConfig, settings: dict[tuple[str, float], TriageConfig],
               sources: list[TableSource], staging: Path, started: float) -> pd.DataFrame:
    """Run every job, summarise, write every output into ``staging``; returns the summary."""
    load_at_start = os.getloadavg()[0]
    seed_unit = valid_sets(sources).sets.seed_unit
    cells, configs = list(settings), list(settings.values())
    tables = [s.table for s in sources]
    jobs = make_jobs(cfg, len(tables), len(cells))
    bar = tqdm(total=len(jobs), desc="triage", disable=not cfg.progress)
    results = JobPool(cfg.workers, 1).run(
        run_job, jobs, lambda job: (tables[job.table], cells, configs, cfg.n_shifts,
                                    cfg.tune_shifts), lambda job: bar.update())
    bar.close()
    runs = with_minutes_saved(pd.DataFrame([r for rows, _ in results for r in rows]))
    hours = [h for _, by_hour in results for h in by_hour]
    summary = summary_frame(runs, seed_unit)
    by_hour = pd.DataFrame(hours).groupby(["profile", "load", "rule", "hour"], sort=False)[
        ["mean_wait_abnormal", "mean_wait_normal"]].mean().reset_index()
    info = {"tables": [s.label for s in sources], "backbone_seeds": seed_unit.tolist(),
            "minutes": cfg.minutes, "n_shifts": cfg.n_shifts, "tune_shifts": cfg.tune_shifts,
            "urgency": cfg.urgency, "read_cv": cfg.read_cv, "deadline": cfg.deadline,
            "late_cost": cfg.late_cost if cfg.deadline is not None else 0.0,
            "readers": list(cfg.readers), "fatigue": cfg.fatigue,
            "read_minutes": {r: READ_MINUTES[r] for r in cfg.readers},
            "agents": list(cfg.agents), "seeds": cfg.seeds, "budgets": agent_budgets(cfg),
            "train_seconds": runs.loc[runs["kind"] == "agent"].groupby("rule")[
                "train_time"].mean().round(1).to_dict(), "split_use": SPLIT_USE, "quick": cfg.quick,
            "wall_seconds": round(time.perf_counter() - started, 1),
            "machine": (f"{machine_description('cpu')}, 1-minute load average "
                        f"{load_at_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the "
                        "end")}
    runs.to_csv(staging / "runs.csv", index=False)
    summary.to_csv(staging / "triage.csv", index=False)
    by_hour.to_csv(staging / "waits_by_hour.csv", index=False)
    plot_waits_by_hour(by_hour, staging / "waits_by_hour.png")
    (staging / "triage.md").write_text(to_markdown(summary, info))
    save_config(cfg, staging / "config.json", {"resolved": info})
    return summary


def with_minutes_saved(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with ``minutes_saved_abnormal``: first in, first out's mean abnormal wait on the
    same table and cell minus the run's (QuCAD's measure)."""
    key = ["profile", "load", "table"]
    fifo = runs[runs["rule"] == "first_in_first_out"].set_index(key)["mean_wait_abnormal"]
    runs = runs.copy()
    runs["minutes_saved_abnormal"] = (fifo.reindex(runs.set_index(key).index).to_numpy()
                                      - runs["mean_wait_abnormal"].to_numpy())
    return runs


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2: bad settings or tables)."""
    started = time.perf_counter()
    try:
        cfg, settings = resolve(parse_config(TriageExperimentConfig, argv, __doc__))
        sources = load_tables(cfg.tables)
        out = new_output_folder(cfg.out, "runs/triage")
    except INPUT_ERRORS as e:
        return input_error_status(e)
    resolved = replace(cfg, out=out)
    run_staged(out, 1, lambda staging: run_triage(resolved, settings, sources, staging,
                                                  started))
    print((out / "triage.md").read_text())
    print(f"wrote {out}/triage.md, triage.csv, runs.csv, waits_by_hour.csv and .png, "
          f"config.json in "
          f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
