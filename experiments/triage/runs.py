"""The triage experiment's runs: one job per table for the rules (every cell: arrival profile and
load) and one per (table, cell, agent, seed) for the learned schedulers. Every job fits or trains
on tune and then plays the same valid shifts of its cells.

Shifts come from ``MuraTriage-v0``'s own problem (:func:`agents.triage.rollout.
evaluation_episodes`), fixed by (cell, split) seeds and not by table, so the tables of one data
draw play the same arrivals of the same studies with the same reading times, and the rules and
the agents play exactly the same shifts. The classifier's probability is the env's (its
combiner: stacking fitted on tune, tune studies cross-fitted).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from agents.core.fingerprint import fitted_fingerprint
from agents.core.train import train_agent
from agents.triage.rollout import (
    evaluation_episodes,
    play_policy,
    play_rule,
    start_episodes,
    triage_scores,
)
from agents.triage.rules import fit_rules
from mura_env.logits import LogitsTable
from mura_env.triage.config import TriageConfig
from mura_env.triage.problem import TriageEpisode, TriageProblem

#: Seeds of the tune and the valid shifts (plus the cell's position).
TUNE_SEED, VALID_SEED = 1_000, 2_024
#: The rules, in report order; the last is a reference (it knows the labels).
RULES = ("first_in_first_out", "flag_first", "by_probability", "c_mu", "generalized_c_mu",
         "server_aware_c_mu", "tuned_index", "clairvoyant")
#: The method name of the rules' job.
RULES_JOB = "rules"
#: A shift's hours, for the waits by time of day.
HOUR = 60.0


@dataclass(frozen=True)
class TriageJob:
    """One unit of work on table ``table``: every rule on every cell (``method`` is
    :data:`RULES_JOB`), or agent ``method`` trained for ``steps`` env steps with ``seed`` on
    cell ``cell`` (its position among the experiment's cells)."""

    table: int
    method: str
    seed: int = 0
    cell: int = -1
    steps: int = 0


def waits_by_hour(played: list[TriageEpisode], minutes: float) -> list[dict]:
    """Per hour of the shift (by arrival time): the mean wait of the abnormal and of the normal
    studies that arrived in it (NaN for none), over the played episodes."""
    rooms = [e.shift.room for e in played]
    arrivals = np.concatenate([r.arrivals for r in rooms])
    waits = np.concatenate([r.waits for r in rooms])
    abnormal = np.concatenate([e.shift.labels for e in played]) == 1
    hour = (arrivals // HOUR).astype(np.int64)
    rows = []
    for h in range(int(np.ceil(minutes / HOUR))):
        row = {"hour": h}
        for name, chosen in (("abnormal", abnormal), ("normal", ~abnormal)):
            some = waits[chosen & (hour == h)]
            row[f"mean_wait_{name}"] = float(some.mean()) if some.size else float("nan")
        rows.append(row)
    return rows


def _rows(job: TriageJob, cell: tuple[str, float], method: str, kind: str,
          problem: TriageProblem, played: list[TriageEpisode], extra: dict
          ) -> tuple[dict, list[dict]]:
    """The run row (:func:`agents.triage.rollout.triage_scores` of ``played`` and ``extra``) and
    the rows by hour of one method on one cell."""
    key = {"table": job.table, "profile": cell[0], "load": cell[1], "rule": method,
           "kind": kind, "seed": job.seed}
    hours = [{**key, **row} for row in waits_by_hour(played, problem.setting.minutes)]
    return {**key, **triage_scores(problem, played), **extra}, hours


def run_rules(job: TriageJob, table: LogitsTable, cells: list[tuple[str, float]],
              configs: list[TriageConfig], n_shifts: int, tune_shifts: int
              ) -> tuple[list[dict], list[dict]]:
    """Every rule of :data:`RULES`, fitted on tune (the flag threshold on the tune studies, the
    server-aware exponent and the tuned index's powers on ``tune_shifts`` tune shifts), on
    every cell's ``n_shifts`` valid shifts; returns ``(run rows, rows by hour)``."""
    rows, hours = [], []
    for position, (cell, config) in enumerate(zip(cells, configs, strict=True)):
        config = config.replace(logits=table)
        tune_problem = TriageProblem(config.replace(split="tune"))
        problem = TriageProblem(config.replace(split="valid"))

        def shifts(tune_problem: TriageProblem = tune_problem, position: int = position
                   ) -> list:
            episodes = start_episodes(tune_problem, tune_shifts, TUNE_SEED + position)
            return [e.shift for e in episodes]

        rules = fit_rules(tune_problem.probability, tune_problem.studies.labels, shifts)
        for name, rule in rules.items():
            episodes = start_episodes(problem, n_shifts, VALID_SEED + position)
            fitted = {key: getattr(rule, key, np.nan) for key in (
                "threshold", "exponent", "weight_power", "time_power", "relative_power")}
            kind = "reference" if name in ("tuned_index", "clairvoyant") else "rule"
            row, by_hour = _rows(job, cell, name, kind, problem, play_rule(rule, episodes),
                                 {**fitted, "fitted": fitted_fingerprint(rule),
                                  "train_time": 0.0})
            rows.append(row)
            hours += by_hour
    return rows, hours


def run_agent(job: TriageJob, table: LogitsTable, cells: list[tuple[str, float]],
              configs: list[TriageConfig], n_shifts: int, tune_shifts: int
              ) -> tuple[list[dict], list[dict]]:
    """Agent ``job.method`` trained on cell ``job.cell``'s tune shifts (the registry's
    settings; one tune evaluation, at the end), then played on the cell's valid shifts."""
    cell, config = cells[job.cell], configs[job.cell].replace(logits=table)
    start = time.perf_counter()
    trained = train_agent(job.method, config, None, seed=job.seed, total_timesteps=job.steps,
                          eval_every=job.steps, tensorboard=False)
    seconds = time.perf_counter() - start
    problem, episodes = evaluation_episodes(config, "valid", n_shifts, VALID_SEED + job.cell)
    row, hours = _rows(job, cell, job.method, "agent", problem,
                       play_policy(trained.model, problem, episodes),
                       {"fitted": fitted_fingerprint(trained.model), "train_time": seconds,
                        "tune_cost_per_shift": trained.history[-1]["cost_per_shift"]})
    return [row], hours


def run_job(job: TriageJob, table: LogitsTable, cells: list[tuple[str, float]],
            configs: list[TriageConfig], n_shifts: int, tune_shifts: int
            ) -> list[tuple[list[dict], list[dict]]]:
    """:func:`run_rules` or :func:`run_agent`, as the job says (a one-item list, as the job
    pool wants)."""
    run = run_rules if job.method == RULES_JOB else run_agent
    return [run(job, table, cells, configs, n_shifts, tune_shifts)]
