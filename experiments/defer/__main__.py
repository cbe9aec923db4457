"""When should the ensemble hand a study to a radiologist? Every deferral method, over a grid
of deferral costs, for every reader, on every reference table; and how the answer moves when the
reader's errors share the ensemble's hard cases.

``python -m experiments.defer [--tables PATH ...] [--costs 0 0.005 0.01 0.05 0.1 0.2 0.3]
[--readers ID ...]
[--sharing 0 0.4 0.7 0.9] [--seeds 3] [--out DIR] [--quick]``

For each table (default: every shipped reference table; each carries the three simulated
radiologists ``radiologist_1..3``, the MURA paper's per-part kappas, their errors sharing the
studies' difficulty), each reader and each ``defer_cost``, every classical method
(:mod:`agents.deferral.methods`; its rule fitted on out-of-fold tune predictions of a
cross-fitted stacking ensemble) is fitted on ``tune`` and every RL agent
(:func:`agents.core.train.train_agent`: softmax-pg with a Bernoulli defer head by default, SB3 PPO
with ``--agents softmax-pg ppo``) trains ``--seeds`` times on ``MuraDeferral-v0``'s ``tune``
split; then every run decides once for each ``valid`` study (valid is read for those final
decisions only). Each RL run gets a threshold twin: the agent's own ensemble deferring its
least sure studies, as many on tune as the agent (``global_threshold@<agent>``).

**Sensitivity to shared difficulty** (``--no-sensitivity`` skips it). For
``--sensitivity-reader`` (default radiologist 3; it must be one of the readers analysed) at
``--sensitivity-cost`` (default 0.005), the reads are made again at each ``--sharing`` value (same
reader, same per-part kappas; 0 = errors independent of the ensemble's) and every method runs
again; the classical method shown is the one with the best *tune* team accuracy at the
tables' own sharing (on the out-of-fold predictions its rule was fitted on), beside the RL
agents. Tables without a ``difficulty`` column (real MURA) skip it.

Statistics: per reader, sharing and cost, :func:`mura_env.evaluation.statistics.summarise`
(backbone seeds and data draws resampled as crossed factors, agent seeds and the valid studies
of each draw jointly; percentile 95% intervals; a seed-level Student-t interval over the
backbone seeds' means) and
:func:`~mura_env.evaluation.statistics.summarise_tables` (each table on its own). Report:
:mod:`experiments.defer.report`. Writes into ``--out`` (default ``runs/defer/<time>``), all at once
(a hidden folder renamed at the end): ``defer.md``, ``defer.csv`` (one row per reader, sharing, cost
and method), ``per_table.csv`` (one row per reader x sharing x cost x method x table: team accuracy,
kappa, differences from the references with 95% intervals over that table's seeds and studies,
deferral rate; the table's label, backbone seed and data seed), ``runs.csv`` (one row per run,
with its tune accuracy and its deferral rate per body part), ``readers.csv`` (each reader's
error correlation with the members and with stacking), ``sensitivity.csv``, ``config.json``
and the plots.
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

from agents.core.algos import DEFERRAL, UnknownAlgoError
from experiments.common.job_pool import PooledRunOptions, new_output_folder, run_staged
from experiments.common.options import BudgetOptions
from experiments.common.provenance import machine_description
from experiments.common.reader_columns import with_simulated_readers
from experiments.common.tables import (
    INPUT_ERRORS,
    AlignedValid,
    TableSource,
    input_error_status,
    load_tables,
    valid_sets,
    with_table_info,
)
from experiments.defer.report import ALONE_LABELS, is_twin, to_markdown, write_plots
from experiments.defer.runs import CLASSICAL, DeferJob, DeferRun, run_defer_jobs
from mura_env.common.config_cli import parse_config, save_config
from mura_env.constants import BODY_PARTS
from mura_env.evaluation.statistics import (
    draw_resamples,
    method_metrics,
    method_runs,
    summarise,
    summarise_tables,
)
from mura_env.logits import LogitsTable
from mura_env.readers import DEFAULT_READER, READER_PROFILES, error_correlation

#: Which split each step uses (recorded in config.json).
SPLIT_USE = {"fit_and_train": "tune (classical rules: on out-of-fold tune predictions)",
             "agent_budgets": "fixed beforehand: softmax-pg's from its tune team accuracy on "
                              "reference table 0, PPO's the weighting benchmark's",
             "matched_thresholds": "tune (deferral count)",
             "sensitivity_method": "tune (the classical method with the best out-of-fold "
                                   "tune team accuracy at the tables' own sharing)",
             "scores": "valid"}
#: What ``--quick`` sets: a smoke test of the whole pipeline, not a result.
QUICK_SETTINGS = {"costs": (0.0, 0.2), "seeds": 2, "n_bootstrap": 100, "sharing": (0.0, 0.9),
                  "sensitivity_cost": 0.0}
#: ``--quick`` budgets (``--steps`` still overrides them), and that of any other agent.
QUICK_STEPS = {"softmax-pg": 8192, "ppo": 1024}
QUICK_OTHER_STEPS = 1024
#: The RL agents the experiment trains by default.
DEFAULT_AGENTS = ("softmax-pg",)
#: Comparisons every method gets (when present): the reader alone and the ensemble alone.
ALONE = ("always_defer", "never_defer")
#: Sharing values of the sensitivity study.
SHARING_GRID = (0.0, 0.4, 0.7, 0.9)


@dataclass
class DeferConfig(BudgetOptions, PooledRunOptions):
    """Every deferral method over a grid of deferral costs, for every reader, on every
    reference table."""

    tables: tuple[Path, ...] | None = field(default=None, metadata={
        "help": "logits tables with reader columns (default: the shipped reference tables)"})
    costs: tuple[float, ...] = field(default=(0.0, 0.005, 0.01, 0.05, 0.1, 0.2, 0.3), metadata={
        "help": "deferral costs (reward given up per deferred study); at 0 the deferral rate "
                "is not determined by the task, the small costs 0.005 and 0.01 determine it"})
    readers: tuple[str, ...] | None = field(default=None, metadata={
        "help": "reader ids (columns reader_<id>) to hand deferred studies to, one analysis "
                "each (default: every reader the tables share)"})
    seeds: int = field(default=3, metadata={"help": "seeds per RL agent"})
    agents: tuple[str, ...] = field(default=DEFAULT_AGENTS, metadata={
        "help": "RL agents to train (any of agents.core.algos.ALGOS)"})
    sensitivity: bool = field(default=True, metadata={
        "help": "run the sensitivity study over difficulty sharing"})
    sharing: tuple[float, ...] = field(default=SHARING_GRID, metadata={
        "help": "difficulty-sharing values of the sensitivity study (the sensitivity reader's "
                "reads made again at each)"})
    sensitivity_reader: str = field(default=DEFAULT_READER, metadata={
        "help": "the simulated reader of the sensitivity study"})
    sensitivity_cost: float = field(default=0.005, metadata={
        "help": "the deferral cost of the sensitivity study"})
    out: Path | None = field(default=None, metadata={
        "help": "output folder, must not exist yet (default runs/defer/<time>)"})


def resolve(cfg: DeferConfig) -> DeferConfig:
    """``cfg`` with ``--quick`` applied and checked.

    Raises:
        ValueError: an unknown agent, no cost, a negative or non-finite cost, seeds < 1, a
            sharing value outside [0, 1).
    """
    costs = np.asarray(cfg.costs, dtype=float)
    if not len(costs) or not (np.isfinite(costs).all() and (costs >= 0).all()):
        raise ValueError(f"--costs must be finite numbers >= 0, got {list(cfg.costs)}.")
    if not (np.isfinite(cfg.sensitivity_cost) and cfg.sensitivity_cost >= 0):
        raise ValueError(f"--sensitivity-cost must be >= 0, got {cfg.sensitivity_cost}.")
    if cfg.quick:
        cfg = replace(cfg, **QUICK_SETTINGS)
    try:
        agent_budgets(cfg)
    except UnknownAlgoError as e:
        raise ValueError(str(e)) from None
    if cfg.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {cfg.seeds}.")
    if not all(0.0 <= x < 1.0 for x in cfg.sharing):
        raise ValueError(f"--sharing values must lie in [0, 1), got {list(cfg.sharing)}.")
    return replace(cfg, costs=tuple(sorted({float(c) for c in cfg.costs})),
                   sharing=tuple(sorted({float(x) for x in cfg.sharing})))


def agent_budgets(cfg: DeferConfig) -> dict[str, int]:
    """Env steps per run of each RL agent: ``--steps`` where it names the agent, else the
    ``--quick`` budgets (:data:`QUICK_STEPS`) with ``--quick``, else the registry's on
    ``MuraDeferral-v0``."""
    defaults = ({a: QUICK_STEPS.get(a, QUICK_OTHER_STEPS) for a in cfg.agents} if cfg.quick
                else {})
    return cfg.budgets(cfg.agents, DEFERRAL, defaults)


# ---------------------------------------------------------------------- readers and variants


def shared_readers(tables: list[LogitsTable], wanted: tuple[str, ...] | None) -> list[str]:
    """The readers to analyse: ``wanted``, or every reader all ``tables`` carry (the
    simulated radiologists first, in profile order).

    Raises:
        KeyError: a table lacks a wanted reader, or the tables share no reader (the message
            says how to add reads).
    """
    common = [r for r in tables[0].reader_ids if all(r in t.reader_ids for t in tables)]
    if wanted:
        missing = [r for r in wanted if r not in common]
        if missing:
            raise KeyError(f"not every table has the reader(s) {missing} (shared: {common}).")
        return list(dict.fromkeys(wanted))
    if not common:
        have = [list(t.reader_ids) for t in tables]
        raise KeyError(f"the tables share no reader column (readers per table: {have}).")
    order = list(READER_PROFILES)
    return sorted(common, key=lambda r: (order.index(r) if r in order else len(order), r))


def own_sharing(table: LogitsTable, reader: str) -> float | None:
    """The difficulty sharing of ``reader``'s column in ``table`` as its provenance records it
    (0 when it fell back to independent reads), or None when not a simulated reader."""
    record = ((table.provenance or {}).get("readers") or {}).get(reader) or {}
    return float(record["sharing"]) if record.get("kind") == "simulated" else None


@dataclass(frozen=True)
class Variants:
    """The sensitivity study's table variants: ``sharing[v]`` is the sensitivity reader's
    difficulty sharing in the tables ``v * T .. v * T + T - 1`` of the extended list (``T``
    tables; v = 0: the tables' own reads); ``own``: each analysed reader's sharing in the
    tables' own reads (None: not one simulated sharing); ``skipped``: why there is no study,
    or ""."""

    sharing: tuple[float | None, ...]
    own: dict[str, float | None]
    skipped: str = ""

    def of(self, reader: str, variant: int) -> float | None:
        """The sharing of ``reader``'s reads in variant ``variant``."""
        return self.own.get(reader) if variant == 0 else self.sharing[variant]


def sensitivity_variants(cfg: DeferConfig, tables: list[LogitsTable]
                         ) -> tuple[Variants, list[LogitsTable]]:
    """The study's variants and the extended table list: ``tables``, then for each
    ``--sharing`` value other than the tables' own a copy of every table with the sensitivity
    reader's reads made again at that sharing
    (:func:`experiments.common.reader_columns.with_simulated_readers`).

    Returns:
        ``(variants, extended)``; with a reason in ``variants.skipped`` (no study wanted, no
        difficulty column, the sensitivity reader not analysed or not simulated) the extended
        list is ``tables`` alone.
    """
    reader = cfg.sensitivity_reader
    own_by_reader = {}
    for name in cfg.readers or ():
        values = {own_sharing(t, name) for t in tables}
        own_by_reader[name] = values.pop() if len(values) == 1 else None
    base = own_by_reader.get(reader)
    why = ""
    if not cfg.sensitivity or not cfg.sharing:
        why = "--no-sensitivity"
    elif reader not in (cfg.readers or ()):
        why = (f"the sensitivity reader {reader!r} is not among the readers analysed "
               f"({list(cfg.readers or ())}); pass --sensitivity-reader")
    elif any(t.difficulty is None for t in tables):
        why = "the tables have no difficulty column (no latent, as for real MURA)"
    elif reader not in READER_PROFILES or base is None:
        why = (f"{reader!r} is not a simulated radiologist with one sharing in every table "
               f"(sharing per table: {[own_sharing(t, reader) for t in tables]})")
    if why:
        return Variants((base,), own_by_reader, why), list(tables)
    extended, values = list(tables), [base]
    for value in cfg.sharing:
        if np.isclose(value, base):
            continue
        seeds = [((t.provenance or {}).get("readers") or {})[reader].get("seed", 0)
                 for t in tables]
        extended += [with_simulated_readers(t, [reader], seed, value, replace=True)
                     for t, seed in zip(tables, seeds, strict=True)]
        values.append(value)
    return Variants(tuple(values), own_by_reader), extended


def make_jobs(cfg: DeferConfig, n_tables: int, readers: list[str], variants: Variants
              ) -> list[DeferJob]:
    """Every job, the slowest (PPO) first: every reader at every cost on the tables' own
    reads (and the sensitivity reader at the sensitivity cost, when that cost is not in the
    grid and there is a study), then the sensitivity reader at the sensitivity cost on each
    other variant.

    Returns:
        The :class:`~experiments.defer.runs.DeferJob` list; a job's ``table``
        indexes the extended table list (:func:`sensitivity_variants`).
    """
    steps = agent_budgets(cfg)
    cells = [(t, reader, cost) for reader in readers for t in range(n_tables)
             for cost in cfg.costs]
    study = len(variants.sharing) > 1
    if study and not any(np.isclose(cfg.sensitivity_cost, c) for c in cfg.costs):
        cells += [(t, cfg.sensitivity_reader, cfg.sensitivity_cost) for t in range(n_tables)]
    cells += [(v * n_tables + t, cfg.sensitivity_reader, cfg.sensitivity_cost)
              for v in range(1, len(variants.sharing)) for t in range(n_tables)]
    jobs = [DeferJob(t, agent, seed, cost, steps[agent], reader)
            for agent in sorted(cfg.agents, key=lambda a: a != "ppo")
            for t, reader, cost in cells for seed in range(cfg.seeds)]
    return jobs + [DeferJob(t, CLASSICAL, 0, cost, reader=reader) for t, reader, cost in cells]


# ---------------------------------------------------------------------- frames


def run_frame(runs: list[DeferRun], labels_of: list[np.ndarray], parts_of: list[np.ndarray],
              variants: Variants) -> pd.DataFrame:
    """One row per run: reader, sharing, method, kind, cost, table (of the base list),
    seed, valid and tune deferral rates, valid and tune accuracy, the deferral rate per body
    part and the training seconds."""
    n_tables = len(labels_of)
    rows = []
    for r in runs:
        table = r.table % n_tables
        parts, labels = parts_of[table], labels_of[table]
        row: dict[str, Any] = {
            "reader": r.reader, "sharing": variants.of(r.reader, r.table // n_tables),
            "method": r.method, "kind": r.kind, "cost": r.cost, "table": table,
            "seed": r.seed, "deferral_rate": float(r.deferred.mean()),
            "tune_deferral_rate": r.tune_deferral_rate,
            "accuracy": float((r.prediction == labels).mean()),
            "tune_accuracy": r.tune_accuracy, "train_seconds": r.train_time,
            "fitted": r.fitted}
        for part in BODY_PARTS:
            rows_part = parts == part
            row[f"deferral_rate_{part}"] = float(r.deferred[rows_part].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def summary_frames(cfg: DeferConfig, runs: list[DeferRun], valid: AlignedValid,
                   per_run: pd.DataFrame, resample: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """For one reader and sharing (``runs`` and ``per_run`` of it alone, tables numbered in
    the base list): per cost, every method's figures with intervals (:func:`summarise`), its
    mean deferral rates (valid, tune) overall and per body part (rows ordered by cost); and per
    cost, method and table, its figures on that table alone (:func:`summarise_tables`) with
    its mean deferral rate there."""
    references = [*ALONE, *(f"global_threshold@{a}" for a in cfg.agents)]
    frames, tables = [], []
    for cost in sorted({r.cost for r in runs}):
        methods = method_runs([r for r in runs if r.cost == cost], valid.orders,
                              ("prediction", "score"))
        metrics = method_metrics(methods, valid.sets, resample)
        present = [m for m in references if any(x.name == m for x in methods)]
        frame = summarise(methods, valid.sets, resample, present, metrics=metrics)
        at_cost = per_run[per_run["cost"] == cost]
        rates = at_cost.groupby("method").mean(numeric_only=True)
        columns = ["deferral_rate", "tune_deferral_rate", "tune_accuracy",
                   *(f"deferral_rate_{p}" for p in BODY_PARTS)]
        frame = frame.join(rates[columns], on="method")
        frame.insert(0, "cost", cost)
        frames.append(frame)
        per_table = summarise_tables(methods, valid.sets, resample, present, metrics=metrics)
        table_rates = at_cost.groupby(["method", "table"])["deferral_rate"].mean()
        per_table = per_table.join(table_rates, on=["method", "table"])
        per_table.insert(0, "cost", cost)
        tables.append(per_table)
    return pd.concat(frames, ignore_index=True), pd.concat(tables, ignore_index=True)


def scenario_frames(cfg: DeferConfig, runs: list[DeferRun], aligned: AlignedValid,
                    per_run: pd.DataFrame, variants: Variants
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`summary_frames` for every (reader, sharing) the runs cover, with those two
    columns first; one set of bootstrap draws serves every one."""
    resample = draw_resamples(aligned.sets, cfg.seeds, cfg.n_bootstrap, cfg.bootstrap_seed)
    n_tables = aligned.sets.n_tables
    frames, tables = [], []
    keys = dict.fromkeys((r.reader, r.table // n_tables) for r in runs)
    for reader, v in keys:
        mine = [replace(r, table=r.table % n_tables) for r in runs
                if r.reader == reader and r.table // n_tables == v]
        sharing = variants.of(reader, v)
        rows = per_run[(per_run["reader"] == reader) & (per_run["sharing"].isna()
                        if sharing is None else per_run["sharing"] == sharing)]
        frame, per_table = summary_frames(cfg, mine, aligned, rows, resample)
        for out in (frame, per_table):
            out.insert(0, "sharing", sharing)
            out.insert(0, "reader", reader)
        frames.append(frame)
        tables.append(per_table)
    return pd.concat(frames, ignore_index=True), pd.concat(tables, ignore_index=True)


def reader_correlations(tables: list[LogitsTable], runs: list[DeferRun], variants: Variants
                        ) -> pd.DataFrame:
    """How each reader's errors go with the ensemble's, per (reader, sharing): the mean over
    tables of the within-body-part correlation (:func:`mura_env.readers.error_correlation`)
    between the reader's wrong reads and each member's wrong answers on tune
    (``members_tune``, mean over members), and stacking's (``never_defer``) on valid
    (``stacking_valid``); the reader's tune accuracy."""
    n_tables = len(tables) // len(variants.sharing)
    rows = []
    for reader, v in dict.fromkeys((r.reader, r.table // n_tables) for r in runs):
        members, stacking, accuracy = [], [], []
        for t in range(n_tables):
            table = tables[v * n_tables + t]
            for split in ("tune", "valid"):
                part = table.select(split=split)
                labels = part.studies["label"].to_numpy()
                groups = part.studies["body_part"].to_numpy()
                wrong = part.reads(reader) != labels
                if split == "tune":
                    accuracy.append(1.0 - wrong.mean())
                    member_wrong = part.logits.argmax(axis=2) != labels[:, None]
                    members.append(np.mean([error_correlation(wrong, member_wrong[:, k], groups)
                                            for k in range(part.n_models)]))
                    continue
                ensemble = next(r for r in runs if r.reader == reader and r.method == "never_defer"
                                and r.table == v * n_tables + t)
                stacking.append(error_correlation(wrong, ensemble.prediction != labels, groups))
        rows.append({"reader": reader, "sharing": variants.of(reader, v),
                     "reader_tune_accuracy": float(np.mean(accuracy)),
                     "members_tune": float(np.nanmean(members)),
                     "stacking_valid": float(np.nanmean(stacking))})
    return pd.DataFrame(rows)


def sensitivity_frame(frame: pd.DataFrame, cfg: DeferConfig, variants: Variants
                      ) -> tuple[pd.DataFrame, str]:
    """The sensitivity study's rows of ``frame`` (the sensitivity reader at the sensitivity
    cost, every sharing): the classical method with the best tune team accuracy at the tables'
    own sharing (``variants.sharing[0]``; classical tune figures come from the out-of-fold
    predictions their rules were fitted on, where an agent's tune figures are in-sample), the
    RL agents, the oracle, the reader alone and the ensemble alone; and that method's name
    ("" without a study)."""
    if len(variants.sharing) < 2:
        return frame.iloc[:0], ""
    rows = frame[(frame["reader"] == cfg.sensitivity_reader)
                 & np.isclose(frame["cost"], cfg.sensitivity_cost)]
    own = rows[np.isclose(rows["sharing"].astype(float), float(variants.sharing[0]))]
    classical = own[(own["kind"] == "baseline") & ~own["method"].map(is_twin)
                    & ~own["method"].isin(list(ALONE_LABELS))]
    best = str(classical.sort_values("tune_accuracy", ascending=False)["method"].iloc[0])
    shown = rows[rows["method"].isin([best, *cfg.agents, "oracle_deferral", *ALONE_LABELS])]
    return shown.sort_values(["method", "sharing"]).reset_index(drop=True), best


# ---------------------------------------------------------------------- the run


def run_defer(cfg: DeferConfig, sources: list[TableSource], aligned: AlignedValid,
              staging: Path, started: float) -> pd.DataFrame:
    """Run every job, summarise, write every output into ``staging``; returns the summary
    (``aligned``: the tables' valid studies and orders,
    :func:`~experiments.common.tables.valid_sets`)."""
    load_at_start = os.getloadavg()[0]
    tables = [s.table for s in sources]
    variants, extended = sensitivity_variants(cfg, tables)
    jobs = make_jobs(cfg, len(tables), list(cfg.readers), variants)
    bar = tqdm(total=len(jobs), desc="defer", disable=not cfg.progress)
    runs = run_defer_jobs(jobs, extended, cfg, lambda job: bar.update())
    bar.close()
    valid_rows = [t.studies[t.studies["split"] == "valid"] for t in tables]
    per_run = run_frame(runs, [v["label"].to_numpy() for v in valid_rows],
                        [v["body_part"].to_numpy() for v in valid_rows], variants)
    frame, per_table = scenario_frames(cfg, runs, aligned, per_run, variants)
    per_table = with_table_info(per_table, sources)
    correlations = reader_correlations(extended, runs, variants)
    sensitivity, best = sensitivity_frame(frame, cfg, variants)
    provenance = (tables[0].provenance or {}).get("readers") or {}
    info = {"tables": [s.label for s in sources], "n_tune": int(
        (tables[0].studies["split"] == "tune").sum()), "n_valid": aligned.n_studies,
        "study_sets": aligned.sets.study_set.tolist(),
        "backbone_seeds": aligned.sets.seed_unit.tolist(),
        "seeds": cfg.seeds, "costs": list(cfg.costs), "agents": list(cfg.agents),
        "split_use": SPLIT_USE, "wall_seconds": round(time.perf_counter() - started, 1),
        "quick": cfg.quick, "readers": list(cfg.readers),
        "reader_sharing": variants.own,
        "reader_provenance": {r: provenance.get(r) for r in cfg.readers},
        "sensitivity": {"reader": cfg.sensitivity_reader, "cost": cfg.sensitivity_cost,
                        "sharing": [x for x in variants.sharing if x is not None],
                        "method": best, "skipped": variants.skipped},
        "machine": (f"{machine_description('cpu')}, {cfg.workers} worker process(es), "
                    f"1-minute load average {load_at_start:.2f} at the start, "
                    f"{os.getloadavg()[0]:.2f} at the end")}
    frame.to_csv(staging / "defer.csv", index=False)
    per_table.to_csv(staging / "per_table.csv", index=False)
    per_run.to_csv(staging / "runs.csv", index=False)
    correlations.to_csv(staging / "readers.csv", index=False)
    sensitivity.to_csv(staging / "sensitivity.csv", index=False)
    (staging / "defer.md").write_text(to_markdown(frame, info, per_table, correlations,
                                                  sensitivity))
    write_plots(frame, staging, info, sensitivity)
    save_config(cfg, staging / "config.json", {"resolved": info})
    return frame


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2: bad settings or tables)."""
    started = time.perf_counter()
    try:
        cfg = resolve(parse_config(DeferConfig, argv, __doc__))
        sources = load_tables(cfg.tables)
        valid = valid_sets(sources)
        readers = shared_readers([s.table for s in sources], cfg.readers)
        out = new_output_folder(cfg.out, "runs/defer")
    except INPUT_ERRORS as e:
        return input_error_status(e)
    resolved = replace(cfg, out=out, readers=tuple(readers))
    run_staged(out, cfg.threads,
               lambda staging: run_defer(resolved, sources, valid, staging, started))
    print((out / "defer.md").read_text().split("\n## ")[0])
    print(f"wrote {out}/defer.md, defer.csv, per_table.csv, runs.csv, readers.csv, "
          f"sensitivity.csv, config.json, plots in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
