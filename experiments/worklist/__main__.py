"""A reading shift with radiologists of limited capacity: every worklist method over the
reference tables, scenarios and capacity levels.

``python -m experiments.worklist [--tables PATH ...] [--scenarios emergency orthopaedic]
[--capacities 0.05 0.1] [--seeds 3] [--agents native-ppo ppo] [--action routing]
[--observe-gains | --no-observe-gains] [--steps ALGO=N] [--n-shifts 50] [--out DIR] [--quick]``

For each table (default: every shipped reference table, each carrying the simulated
radiologists ``radiologist_1..3``) and each capacity (reads per reader per shift, as a share
of the shift), the classical methods (:mod:`agents.worklist.methods`: ensemble alone, first
come first served, a myopic threshold per reader, the budget-paced rule, per-part greedy
assignment, ``dp``: the exact optimal online policy for shifts drawn like tune's; the
hindsight assignment and the oracle as references) are fitted on ``tune``, and
each RL agent (native PPO and SB3 PPO by default; :func:`agents.core.train.train_agent`, native
PPO at the registry's budget on ``MuraWorklist-v0``, SB3 PPO at :data:`AGENT_STEPS`'s, unless
``--steps`` says otherwise) trains ``--seeds`` times on ``MuraWorklist-v0``'s tune shifts of the
``random`` scenario (mixes drawn around the split's), through the env's action interface
``--action`` (``routing`` with ``--observe-gains`` by default: who answers, each reader's
estimated gain observed; ``--action weights --no-observe-gains``: member weights and reader
scores, the env's own default).
Then every method answers the same ``--n-shifts`` valid shifts of each ``--scenarios`` mix
(valid is read for those final answers only). A worklist agent sees no scenario name: one
agent per table, capacity and seed serves every scenario.

Statistics per (scenario, capacity): :func:`mura_env.evaluation.statistics.summarise` over the
backbone seeds and data draws (crossed), the agent seeds and the shift studies (a shift's
positions are studies of its table's valid split, and the tables of one data draw answer the
same shifts: the distinct studies of each draw are resampled, within body part; see
:class:`WorklistDesign`), with the seed-level interval; paired differences against the
budget-paced rule, first come first served and the ensemble alone. Writes into ``--out``
(default ``runs/worklist/<time>``), all at once: ``worklist.md``, ``worklist.csv`` (one row
per scenario, capacity and method), ``readers.csv`` (reads per shift, capacity used and the
share of each body part's studies sent to each reader), ``runs.csv``, ``config.json`` and
``worklist_accuracy.png``.
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

from agents.core.algos import UnknownAlgoError
from experiments.common.job_pool import PooledRunOptions, new_output_folder, run_staged
from experiments.common.options import BudgetOptions
from experiments.common.provenance import machine_description
from experiments.common.tables import (
    INPUT_ERRORS,
    TableSource,
    input_error_status,
    load_tables,
    valid_sets,
)
from experiments.worklist.report import to_markdown, write_plots
from experiments.worklist.runs import (
    CLASSICAL,
    WorklistJob,
    WorklistRun,
    WorklistSettings,
    run_worklist_jobs,
)
from mura_env import WORKLIST_ENV_ID
from mura_env.common.config_cli import parse_config, save_config
from mura_env.constants import BODY_PARTS
from mura_env.evaluation.statistics import ValidSets, draw_resamples, method_runs, summarise
from mura_env.worklist.config import check_capacity_share, reads_per_shift
from mura_env.worklist.problem import WorklistProblem
from mura_env.worklist.shifts import SCENARIOS

#: Which split each step uses (recorded in config.json).
SPLIT_USE = {"fit_and_train": "tune (classical rules on out-of-fold tune predictions; agents on "
                              "random-scenario tune shifts)",
             "agent_budgets": "fixed beforehand (agents.core.algos, MuraWorklist-v0 entry: native "
                              "PPO's from its tune curves; AGENT_STEPS here: SB3 PPO's)",
             "scores": "valid (fixed shifts per scenario)"}
#: The comparisons every method gets.
REFERENCES = ("budget_paced", "first_come_first_served", "ensemble_alone")
#: What ``--quick`` sets: a smoke test of the pipeline, not a result.
QUICK_SETTINGS = {"seeds": 2, "n_shifts": 8, "n_bootstrap": 100}
QUICK_STEPS = {"ppo": 2048, "native-ppo": 8192}
#: Budgets this experiment sets in place of the registry's: SB3 PPO at 8,192 env steps, what
#: fits the 10-minute budget beside native PPO (far below its plateau; stated in the report).
AGENT_STEPS = {"ppo": 8192}


@dataclass
class WorklistExperimentConfig(BudgetOptions, PooledRunOptions):
    """Every worklist method over the reference tables, scenarios and capacities."""

    tables: tuple[Path, ...] | None = field(default=None, metadata={
        "help": "logits tables with reader columns (default: the shipped reference tables)"})
    scenarios: tuple[str, ...] = field(default=("emergency", "orthopaedic"), metadata={
        "help": f"body-part mixes of the valid shifts (any of {list(SCENARIOS)})"})
    capacities: tuple[float, ...] = field(default=(0.05, 0.1), metadata={
        "help": "reads per reader per shift, as shares of the shift"})
    seeds: int = field(default=3, metadata={"help": "seeds per RL agent"})
    agents: tuple[str, ...] = field(default=("native-ppo", "ppo"), metadata={
        "help": "RL agents to train (agents.core.algos.ALGOS with a MuraWorklist-v0 budget)"})
    action: str = field(default="routing", metadata={
        "help": "the agents' action: weights (member preferences and reader scores) or routing "
                "(who answers; the stacking ensemble)", "choices": ("weights", "routing")})
    observe_gains: bool = field(default=True, metadata={
        "help": "the agents observe each reader's estimated gain for the study"})
    n_shifts: int = field(default=50, metadata={"help": "valid shifts per scenario"})
    shift_size: int = field(default=100, metadata={"help": "studies per shift"})
    read_cost: float = field(default=0.0, metadata={"help": "reward given up per read"})
    out: Path | None = field(default=None, metadata={
        "help": "output folder, must not exist yet (default runs/worklist/<time>)"})


def resolve(cfg: WorklistExperimentConfig) -> WorklistExperimentConfig:
    """``cfg`` with ``--quick`` applied and checked.

    Raises:
        ValueError: an unknown scenario or agent, a capacity outside [0, 1], seeds, shifts or
            shift size below 1, a negative read cost.
    """
    if cfg.quick:
        cfg = replace(cfg, **QUICK_SETTINGS)
    unknown = [s for s in cfg.scenarios if s not in SCENARIOS]
    if unknown or not cfg.scenarios:
        raise ValueError(f"--scenarios must name some of {list(SCENARIOS)}, got "
                         f"{list(cfg.scenarios)}.")
    if not cfg.capacities:
        raise ValueError("--capacities needs at least one share in [0, 1].")
    for share in cfg.capacities:
        check_capacity_share(share)
    for name in ("seeds", "n_shifts", "shift_size"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got "
                             f"{getattr(cfg, name)}.")
    if not cfg.read_cost >= 0:
        raise ValueError(f"--read-cost must be >= 0, got {cfg.read_cost}.")
    try:
        agent_budgets(cfg)
    except UnknownAlgoError as e:
        raise ValueError(str(e)) from None
    return replace(cfg, capacities=tuple(sorted({float(c) for c in cfg.capacities})))


def agent_budgets(cfg: WorklistExperimentConfig) -> dict[str, int]:
    """Env steps per run of each RL agent: ``--steps``, else the ``--quick`` budgets, else
    :data:`AGENT_STEPS`, else the registry's on ``MuraWorklist-v0``."""
    if cfg.quick:
        defaults = {a: QUICK_STEPS.get(a, 2048) for a in cfg.agents}
    else:
        defaults = {a: AGENT_STEPS[a] for a in cfg.agents if a in AGENT_STEPS}
    return cfg.budgets(cfg.agents, WORKLIST_ENV_ID, defaults)


def shift_readers(sources: list[TableSource]) -> tuple[str, ...]:
    """The readers of a shift on every table (:class:`WorklistProblem`'s default: each
    table's readers).

    Raises:
        KeyError: a table without a reader column. ValueError: tables with other readers.
    """
    readers = [WorklistProblem(logits=s.table, split="valid").readers for s in sources]
    if any(r != readers[0] for r in readers):
        raise ValueError(f"the tables' readers differ ({readers}); give every table the same "
                         "readers (python -m experiments.attach_reader).")
    return readers[0]


def make_jobs(cfg: WorklistExperimentConfig, n_tables: int) -> list[WorklistJob]:
    """Every job, the agents' (slowest) first."""
    steps = agent_budgets(cfg)
    jobs = [WorklistJob(t, agent, seed, capacity, steps[agent]) for agent in cfg.agents
            for t in range(n_tables) for capacity in cfg.capacities for seed in range(cfg.seeds)]
    return jobs + [WorklistJob(t, CLASSICAL, 0, capacity) for t in range(n_tables)
                   for capacity in cfg.capacities]


@dataclass(frozen=True)
class WorklistDesign:
    """The units of the tables a worklist experiment runs on (see
    :class:`mura_env.evaluation.statistics.ValidSets`).

    Attributes:
        study_set: int64 ``[T]``: each table's data draw (tables of one draw answer the same
            shifts of the same studies).
        backbone_seed: int64 ``[T]``: each table's backbone training as ``0..U-1``
            (:attr:`mura_env.evaluation.statistics.ValidSets.seed_unit` of
            :func:`experiments.common.tables.backbone_key`).
        study_ids: per table, object ``[n_valid]``: the study id of each row of its valid
            selection (what a run's ``study_index`` points at).
    """

    study_set: np.ndarray
    backbone_seed: np.ndarray
    study_ids: tuple[np.ndarray, ...]

    @classmethod
    def of(cls, sources: list[TableSource]) -> WorklistDesign:
        """The design of ``sources`` (:func:`experiments.common.tables.valid_sets`)."""
        sets = valid_sets(sources).sets
        ids = tuple(s.table.select(split="valid").studies["study_id"].to_numpy(dtype=object)
                    for s in sources)
        return cls(sets.study_set, sets.seed_unit, ids)


def cell_valid(runs: list[WorklistRun], design: WorklistDesign) -> ValidSets:
    """The shift studies of one (scenario, capacity) per table: positions in shift order,
    each named by its study, tables grouped by data draw and backbone seed (every run of a
    table answers the same shifts; a study a shift shows twice is one study)."""
    first = {r.table: r for r in runs}
    tables = range(len(design.study_set))
    labels = np.stack([first[t].label for t in tables])
    parts = np.stack([np.asarray(BODY_PARTS, dtype=object)[first[t].body_part_index]
                      for t in tables])
    ids = np.stack([design.study_ids[t][first[t].study_index] for t in tables])
    return ValidSets(labels, parts, design.study_set, backbone_seed=design.backbone_seed,
                     study_ids=ids)


def summary_frame(cfg: WorklistExperimentConfig, runs: list[WorklistRun],
                  design: WorklistDesign) -> pd.DataFrame:
    """Per (scenario, capacity): every method's figures with intervals (:func:`summarise`),
    one set of bootstrap draws per cell."""
    frames = []
    for scenario in cfg.scenarios:
        for capacity in cfg.capacities:
            mine = [r for r in runs if r.scenario == scenario and r.capacity == capacity]
            valid = cell_valid(mine, design)
            orders = [np.arange(valid.n_studies)] * valid.n_tables
            methods = method_runs(mine, orders, ("prediction", "score"))
            resample = draw_resamples(valid, cfg.seeds, cfg.n_bootstrap, cfg.bootstrap_seed)
            frame = summarise(methods, valid, resample, REFERENCES)
            frame.insert(0, "capacity", capacity)
            frame.insert(0, "scenario", scenario)
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def reader_frame(runs: list[WorklistRun], readers: tuple[str, ...], shift_size: int
                 ) -> pd.DataFrame:
    """Per (scenario, capacity, method, reader): reads per shift (mean over runs and shifts),
    the share of its capacity used, and per body part the share of that part's studies the
    reader answered."""
    rows = []
    keys = dict.fromkeys((r.scenario, r.capacity, r.method) for r in runs)
    for scenario, capacity, method in keys:
        mine = [r for r in runs if (r.scenario, r.capacity, r.method)
                == (scenario, capacity, method)]
        who = np.concatenate([r.answered_by for r in mine])
        parts = np.concatenate([r.body_part_index for r in mine])
        n_shifts = len(who) / shift_size
        for index, reader in enumerate(readers):
            reads = float((who == index).sum()) / n_shifts
            row: dict[str, Any] = {
                "scenario": scenario, "capacity": capacity, "method": method,
                "reader": reader, "reads_per_shift": reads,
                "capacity_used": reads / max(int(reads_per_shift(capacity, shift_size)), 1)}
            for p, part in enumerate(BODY_PARTS):
                in_part = parts == p
                row[f"share_{part}"] = (float((who[in_part] == index).mean())
                                        if in_part.any() else float("nan"))
            rows.append(row)
    return pd.DataFrame(rows)


def run_frame(runs: list[WorklistRun]) -> pd.DataFrame:
    """One row per run: its cell, method, table, seed, accuracy, read share, training time."""
    return pd.DataFrame([{
        "scenario": r.scenario, "capacity": r.capacity, "method": r.method, "kind": r.kind,
        "table": r.table, "seed": r.seed, "accuracy": float((r.prediction == r.label).mean()),
        "read_share": float((r.answered_by >= 0).mean()), "train_seconds": r.train_time,
        "fitted": r.fitted}
        for r in runs])


def run_worklist(cfg: WorklistExperimentConfig, sources: list[TableSource],
                 readers: tuple[str, ...], staging: Path, started: float) -> pd.DataFrame:
    """Run every job, summarise, write every output into ``staging``; returns the summary
    (``readers``: the tables' readers, every table's the same)."""
    load_at_start = os.getloadavg()[0]
    tables = [s.table for s in sources]
    settings = WorklistSettings(tuple(cfg.scenarios), cfg.n_shifts, cfg.shift_size,
                                cfg.read_cost, cfg.action, cfg.observe_gains)
    jobs = make_jobs(cfg, len(tables))
    bar = tqdm(total=len(jobs), desc="worklist", disable=not cfg.progress)
    runs = run_worklist_jobs(jobs, tables, settings, cfg, lambda job: bar.update())
    bar.close()
    design = WorklistDesign.of(sources)
    frame = summary_frame(cfg, runs, design)
    reads = reader_frame(runs, readers, cfg.shift_size)
    info = {"tables": [s.label for s in sources], "seeds": cfg.seeds,
            "study_sets": design.study_set.tolist(),
            "backbone_seeds": design.backbone_seed.tolist(),
            "scenarios": list(cfg.scenarios), "capacities": list(cfg.capacities),
            "agents": list(cfg.agents), "budgets": agent_budgets(cfg),
            "agent_interface": {"action": cfg.action, "observe_gains": cfg.observe_gains},
            "n_shifts": cfg.n_shifts, "shift_size": cfg.shift_size, "readers": list(readers),
            "read_cost": cfg.read_cost, "split_use": SPLIT_USE, "quick": cfg.quick,
            "wall_seconds": round(time.perf_counter() - started, 1),
            "machine": (f"{machine_description('cpu')}, {cfg.workers} worker process(es), "
                        f"1-minute load average {load_at_start:.2f} at the start, "
                        f"{os.getloadavg()[0]:.2f} at the end")}
    frame.to_csv(staging / "worklist.csv", index=False)
    reads.to_csv(staging / "readers.csv", index=False)
    run_frame(runs).to_csv(staging / "runs.csv", index=False)
    (staging / "worklist.md").write_text(to_markdown(frame, reads, info))
    write_plots(frame, staging)
    save_config(cfg, staging / "config.json", {"resolved": info})
    return frame


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2: bad settings or tables)."""
    started = time.perf_counter()
    try:
        cfg = resolve(parse_config(WorklistExperimentConfig, argv, __doc__))
        sources = load_tables(cfg.tables)
        readers = shift_readers(sources)
        out = new_output_folder(cfg.out, "runs/worklist")
    except INPUT_ERRORS as e:
        return input_error_status(e)
    resolved = replace(cfg, out=out)
    run_staged(out, cfg.threads, lambda staging: run_worklist(resolved, sources, readers,
                                                              staging, started))
    print((out / "worklist.md").read_text().split("\n## ")[0])
    print(f"wrote {out}/worklist.md, worklist.csv, readers.csv, runs.csv, config.json, plot in "
          f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
