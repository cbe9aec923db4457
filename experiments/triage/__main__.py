"""Which study a free radiologist reads next: every scheduling rule of the reading room over the
reference tables, arrival profiles and loads.

``python -m experiments.triage [--tables PATH ...] [--profiles steady surge] [--loads 0.8 0.9]
[--n-shifts 50] [--tune-shifts 20] [--minutes 480] [--urgency 10] [--deadline MINUTES]
[--late-cost 10] [--out DIR] [--quick]``

For each table (default: every shipped reference table), the classifier's probability of each
study is the stacking ensemble's (fitted on tune; tune studies cross-fitted). For each arrival
profile and load (:class:`mura_env.triage.shifts.RoomSetting`), the rules of
:mod:`agents.triage.rules` are fitted on tune (the flag threshold on the tune studies, the
server-aware exponent and the tuned index's powers on ``--tune-shifts`` tune shifts) and every
rule plays the same ``--n-shifts`` shifts of valid studies (valid is read for those final figures
only). Reported per
rule: the waiting cost per shift, against c-mu and against first in, first out; the mean and
90th-percentile wait of abnormal and normal studies; the minutes saved for abnormal studies
against first in, first out (QuCAD's measure); the share of abnormal studies the classifier
missed and their wait. Means over tables, with the Student-t 95% interval over backbone seeds.
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

from experiments.common.job_pool import new_output_folder, run_staged
from experiments.common.provenance import machine_description
from experiments.common.tables import (
    INPUT_ERRORS,
    TableSource,
    input_error_status,
    load_tables,
    valid_sets,
)
from experiments.triage.report import plot_waits_by_hour, summary_frame, to_markdown
from experiments.triage.runs import run_table
from mura_env.common.config_cli import parse_config, save_config
from mura_env.triage.arrivals import ARRIVAL_PROFILES
from mura_env.triage.shifts import READ_MINUTES, RoomSetting

#: Which split each step uses (recorded in config.json).
SPLIT_USE = {"fit": "tune (stacking; the flag threshold; the server-aware exponent and the "
                    "tuned index's powers on tune shifts)",
             "scores": "valid (fixed shifts per profile and load)"}
#: What ``--quick`` sets: a smoke test of the pipeline, not a result.
QUICK_SETTINGS = {"n_shifts": 3, "tune_shifts": 2, "minutes": 120.0}


@dataclass
class TriageExperimentConfig:
    """Every scheduling rule over the reference tables, arrival profiles and loads."""

    tables: tuple[Path, ...] | None = field(default=None, metadata={
        "help": "logits tables (default: the shipped reference tables)"})
    profiles: tuple[str, ...] = field(default=("steady", "surge"), metadata={
        "help": f"arrival profiles (any of {list(ARRIVAL_PROFILES)})"})
    loads: tuple[float, ...] = field(default=(0.8, 0.9), metadata={
        "help": "arrival rate over the radiologists' combined reading rate"})
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
    quick: bool = field(default=False, metadata={
        "help": "tiny settings (QUICK_SETTINGS): a smoke test of the pipeline, not a result"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})
    out: Path | None = field(default=None, metadata={
        "help": "output folder, must not exist yet (default runs/triage/<time>)"})


def resolve(cfg: TriageExperimentConfig) -> tuple[TriageExperimentConfig,
                                                  dict[tuple[str, float], RoomSetting]]:
    """``cfg`` with ``--quick`` applied, and the room of each (profile, load).

    Raises:
        ValueError: an unknown profile, no load, shifts below 1, or a room setting out of range.
    """
    if cfg.quick:
        cfg = replace(cfg, **QUICK_SETTINGS)
    if not cfg.profiles or any(p not in ARRIVAL_PROFILES for p in cfg.profiles):
        raise ValueError(f"--profiles must name some of {list(ARRIVAL_PROFILES)}, got "
                         f"{list(cfg.profiles)}.")
    if not cfg.loads:
        raise ValueError("--loads needs at least one load.")
    for name in ("n_shifts", "tune_shifts"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got "
                             f"{getattr(cfg, name)}.")
    settings = {(p, float(load)): RoomSetting(minutes=cfg.minutes, profile=p, load=float(load),
                                              urgency=cfg.urgency, read_cv=cfg.read_cv,
                                              deadline=cfg.deadline, late_cost=cfg.late_cost)
                for p in cfg.profiles for load in cfg.loads}
    return cfg, settings


def run_triage(cfg: TriageExperimentConfig, settings: dict[tuple[str, float], RoomSetting],
               sources: list[TableSource], staging: Path, started: float) -> pd.DataFrame:
    """Run every table, summarise, write every output into ``staging``; returns the summary."""
    load_at_start = os.getloadavg()[0]
    seed_unit = valid_sets(sources).sets.seed_unit
    rows, hours = [], []
    for index, source in enumerate(tqdm(sources, desc="triage", disable=not cfg.progress)):
        table_rows, table_hours = run_table(source.table, index, settings, cfg.n_shifts,
                                            cfg.tune_shifts)
        rows += table_rows
        hours += table_hours
    runs = pd.DataFrame(rows)
    summary = summary_frame(runs, seed_unit)
    by_hour = pd.DataFrame(hours).groupby(["profile", "load", "rule", "hour"], sort=False)[
        ["mean_wait_abnormal", "mean_wait_normal"]].mean().reset_index()
    info = {"tables": [s.label for s in sources], "backbone_seeds": seed_unit.tolist(),
            "minutes": cfg.minutes, "n_shifts": cfg.n_shifts, "tune_shifts": cfg.tune_shifts,
            "urgency": cfg.urgency, "read_cv": cfg.read_cv, "deadline": cfg.deadline,
            "late_cost": cfg.late_cost if cfg.deadline is not None else 0.0,
            "readers": list(READ_MINUTES),
            "read_minutes": READ_MINUTES, "split_use": SPLIT_USE, "quick": cfg.quick,
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
