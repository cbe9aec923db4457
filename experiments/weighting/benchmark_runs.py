"""The benchmark's runs: its tables, and one job per (table, agent, seed) or (table, seed) of
baselines, run in this process or in a pool of worker processes.

Every job trains or fits on ``tune`` only (agents' curves are evaluated on ``tune``) and then
answers every ``valid`` study once; valid answers are the job's only use of ``valid``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.baselines import all_baselines
from agents.evaluate import run_policy
from agents.reporting import fit_and_evaluate, is_seeded, kind_of
from agents.train import train_agent
from experiments.common.job_pool import run_pool
from mura_env.config import WeightingConfig
from mura_env.logits import LogitsTable
from mura_env.reference import load_reference_table, reference_indices, reference_table_path
from mura_env.study_set import StudySet


class BenchmarkInputError(ValueError):
    """Tables the benchmark cannot compare (e.g. different valid studies)."""


@dataclass(frozen=True)
class TableSource:
    """A loaded table and where it came from (``label``: its path)."""

    label: str
    table: LogitsTable


def load_tables(paths: Sequence[Path] | None) -> list[TableSource]:
    """The tables of ``paths``, or every shipped reference table when None.

    Raises:
        MissingLogitsError, LogitsTableError: a table is missing or corrupt; for a shipped
            reference table the message names the file and the command that remakes it.
    """
    if paths:
        return [TableSource(_shown(p), LogitsTable.load(p)) for p in paths]
    indices = reference_indices() or [0]  # none present: table 0's error says how to make it
    return [TableSource(_shown(reference_table_path(i)), load_reference_table(i))
            for i in indices]


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when inside it (as reports show it)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def valid_orders(sources: Sequence[TableSource]) -> list[np.ndarray]:
    """Per table, the positions of its valid studies in the first table's valid order.

    Returns:
        int64 ``[n]`` per table: ``valid_rows_t[order_t]`` are the first table's valid studies.

    Raises:
        BenchmarkInputError: a table without tune or valid studies, with hidden (NaN) logits,
            or whose valid studies (ids, labels, body parts) differ from the first table's.
    """
    first = None
    orders = []
    for source in sources:
        studies = source.table.studies
        for split in ("tune", "valid"):
            rows = (studies["split"] == split).to_numpy()
            if not rows.any() or source.table.hidden_rows()[rows].any():
                raise BenchmarkInputError(
                    f"{source.label}: the benchmark needs {split} studies with every logit "
                    f"known (none, or hidden logits, found).")
        valid = studies[studies["split"] == "valid"].set_index("study_id")
        if first is None:
            first = valid
        order = valid.index.get_indexer(first.index)
        same = (len(valid) == len(first) and (order >= 0).all() and (
            valid.iloc[order][["label", "body_part"]].to_numpy()
            == first[["label", "body_part"]].to_numpy()).all())
        if not same:
            raise BenchmarkInputError(
                f"{source.label}: its valid studies differ from those of {sources[0].label}; "
                "the benchmark pairs runs study by study across tables, so every table needs "
                "the same valid studies (ids, labels, body parts).")
        orders.append(order.astype(np.int64))
    return orders


@dataclass(frozen=True)
class Job:
    """One unit of work: ``method`` is an algo name, or ``"baselines"`` (every baseline at
    ``seed``: all of them at seed 0, only the seeded ones at other seeds)."""

    table: int
    method: str
    seed: int
    steps: int = 0
    curve_points: int = 1


@dataclass
class RunResult:
    """One run's valid answers (``predictions`` int64 ``[n]``, ``probabilities`` float64
    ``[n]``, in the table's valid order), its training/fitting seconds, env steps and, for
    agents, the tune curve (``history``: dicts with ``env_steps``, ``accuracy``, ...)."""

    table: int
    seed: int
    method: str
    kind: str
    predictions: np.ndarray
    probabilities: np.ndarray
    train_time: float
    env_steps: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def run_job(job: Job, table: LogitsTable, root: Path) -> list[RunResult]:
    """Run ``job`` on ``table`` (agent run folders go under ``root/agents``)."""
    config = WeightingConfig(logits=table)  # split: tune
    if job.method == "baselines":
        tune, valid = (StudySet.select(table, split) for split in ("tune", "valid"))
        out = []
        for baseline in all_baselines(job.seed):
            if job.seed == 0 or is_seeded(baseline):
                ev = fit_and_evaluate(baseline, tune, valid, config, n_bootstrap=0)
                out.append(RunResult(job.table, job.seed, ev.name, kind_of(baseline),
                                     ev.predictions, ev.probabilities, ev.fit_time))
        return out
    run_dir = root / "agents" / f"table{job.table}_{job.method}_seed{job.seed}"
    trained = train_agent(job.method, config, run_dir, total_timesteps=job.steps,
                          seed=job.seed, eval_split="tune",
                          eval_every=max(1, job.steps // job.curve_points), tensorboard=False)
    answers = run_policy(trained.policy, config, "valid")
    return [RunResult(job.table, job.seed, job.method, "agent",
                      answers.prediction.astype(np.int64),
                      answers.probability.astype(np.float64), trained.wall_time,
                      trained.env_steps, trained.history)]


def run_jobs(jobs: Sequence[Job], tables: Sequence[LogitsTable], root: Path, workers: int,
             threads: int, on_done: Callable[[Job], None] = lambda job: None
             ) -> list[RunResult]:
    """Run every job, in this process (``workers`` <= 1) or in ``workers`` processes, each
    with ``threads`` torch threads (:func:`experiments.common.job_pool.run_pool`). Jobs are seeded,
    so results do not depend on the order.

    Returns:
        Every job's :class:`RunResult` (job order). The first failure is raised once the jobs
        running are done; jobs not started yet are cancelled.
    """
    return run_pool(run_job, jobs, lambda job: (tables[job.table], root), workers, threads,
                    on_done)
