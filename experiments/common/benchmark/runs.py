"""The benchmark's runs: one job per (table, agent, seed) or (table, seed) of
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

from agents.core.evaluate import run_policy
from agents.core.fingerprint import fitted_fingerprint
from agents.core.train import train_agent
from agents.weighting.baselines import all_baselines
from agents.weighting.reporting import fit_and_evaluate, is_seeded, kind_of
from experiments.common.job_pool import JobPool, PooledRunOptions
from experiments.common.options import EnvOptions
from mura_env.logits import LogitsTable
from mura_env.logits.study_set import StudySet
from mura_env.weighting.config import WeightingConfig


@dataclass(frozen=True)
class Job:
    """One unit of work: ``method`` is an algo name, or ``"baselines"`` (every baseline at
    ``seed``: all of them at seed 0, only the seeded ones at other seeds); ``env``: the env
    options agents train with and baselines map with."""

    table: int
    method: str
    seed: int
    steps: int = 0
    curve_points: int = 1
    env: EnvOptions = field(default_factory=EnvOptions, hash=False)


@dataclass
class RunResult:
    """One run's valid answers (``predictions`` int64 ``[n]``, ``probabilities`` float64
    ``[n]``, in the table's valid order), its training/fitting seconds, env steps, the
    fingerprint of what it fitted (:func:`agents.core.fingerprint.fitted_fingerprint`) and,
    for agents, the tune curve (``history``: dicts with ``env_steps``, ``accuracy``, ...)."""

    table: int
    seed: int
    method: str
    kind: str
    predictions: np.ndarray
    probabilities: np.ndarray
    train_time: float
    env_steps: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    fitted: str = ""


def run_job(job: Job, table: LogitsTable, root: Path) -> list[RunResult]:
    """Run ``job`` on ``table`` (agent run folders go under ``root/agents``)."""
    config = WeightingConfig.from_options(job.env, logits=table)  # split: tune
    if job.method == "baselines":
        tune, valid = (StudySet.select(table, split) for split in ("tune", "valid"))
        out = []
        for baseline in all_baselines(job.seed):
            if job.seed == 0 or is_seeded(baseline):
                ev = fit_and_evaluate(baseline, tune, valid, config, n_bootstrap=0)
                out.append(RunResult(job.table, job.seed, ev.name, kind_of(baseline),
                                     ev.predictions, ev.probabilities, ev.fit_time,
                                     fitted=fitted_fingerprint(baseline)))
        return out
    run_dir = root / "agents" / f"table{job.table}_{job.method}_seed{job.seed}"
    trained = train_agent(job.method, config, run_dir, total_timesteps=job.steps,
                          seed=job.seed, eval_split="tune",
                          eval_every=max(1, job.steps // job.curve_points), tensorboard=False)
    answers = run_policy(trained.policy, config, "valid")
    return [RunResult(job.table, job.seed, job.method, "agent",
                      answers.prediction.astype(np.int64),
                      answers.probability.astype(np.float64), trained.wall_time,
                      trained.env_steps, trained.history, fitted_fingerprint(trained.model))]


def run_jobs(jobs: Sequence[Job], tables: Sequence[LogitsTable], root: Path,
             options: PooledRunOptions, on_done: Callable[[Job], None] = lambda job: None
             ) -> list[RunResult]:
    """Run every job where ``options`` say (``workers``, ``threads``, ``ray``:
    :class:`experiments.common.job_pool.JobPool`). Jobs are seeded, so results do not depend
    on the order or the pool.

    Returns:
        Every job's :class:`RunResult` (job order). The first failure stops every other job
        and is raised.
    """
    return JobPool.of(options).run(run_job, jobs, lambda job: (tables[job.table], root),
                                   on_done)
