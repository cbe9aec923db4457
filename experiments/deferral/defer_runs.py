"""The deferral experiment's runs: one job per (table, cost) for the classical methods and per
(table, agent, seed, cost) for the RL agents, run in this process or in worker processes.

Every job fits or trains on ``tune`` only and then decides once for every ``valid`` study;
those decisions are its only use of ``valid``. An RL job also fits the global confidence
threshold whose *tune* deferral rate equals the agent's (``global_threshold@<agent>``), the
comparison at equal deferral rate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from agents.deferral_methods import (
    Decision,
    DeferralData,
    GlobalThreshold,
    fit_deferral_methods,
    policy_decision,
)
from agents.train import TrainedAgent, train_agent
from experiments.common.job_pool import JobPool, PooledRunOptions
from mura_env.deferral.config import DeferralConfig
from mura_env.logits import LogitsTable

#: The method names of the classical job.
CLASSICAL = "classical"


@dataclass(frozen=True)
class DeferJob:
    """One unit of work: ``method`` is :data:`CLASSICAL` (every classical method) or an RL
    agent name, trained for ``steps`` env steps with ``seed``; deferred studies go to
    ``reader`` (None: the table's only reader)."""

    table: int
    method: str
    seed: int
    cost: float
    steps: int = 0
    reader: str | None = None


@dataclass
class DeferRun:
    """One run's valid decisions, in the table's valid order.

    Attributes:
        deferred: bool ``[n]``; prediction: int64 ``[n]``, the answer that counts (the read
            where deferred); score: float64 ``[n]``, the read where deferred, else the
            ensemble probability (what AUROC ranks).
        tune_deferral_rate: the share of tune studies it defers.
    """

    table: int
    seed: int
    method: str
    kind: str
    cost: float
    deferred: np.ndarray
    prediction: np.ndarray
    score: np.ndarray
    tune_deferral_rate: float
    train_time: float


def matched_threshold(tune: DeferralData, rate: float) -> GlobalThreshold:
    """A :class:`GlobalThreshold` (stacking ensemble fitted on tune) whose threshold defers
    the share ``rate`` of tune studies: the least sure ones."""
    method = GlobalThreshold().fit(tune, 0.0)
    margin = np.abs(method.ensemble.predict(tune.studies)[0] - 0.5)
    method.threshold = (0.0 if rate <= 0 else np.inf if rate >= 1
                        else float(np.quantile(margin, rate)))
    return method


def _run(job: DeferJob, name: str, kind: str, valid: DeferralData, decision: Decision,
         tune_rate: float, seconds: float) -> DeferRun:
    """A :class:`DeferRun` from a valid ``decision``."""
    prediction = decision.team_prediction(valid.reads).astype(np.int64)
    score = np.where(decision.deferred, valid.reads, decision.probability).astype(np.float64)
    return DeferRun(job.table, job.seed, name, kind, job.cost, decision.deferred.copy(),
                    prediction, score, float(tune_rate), seconds)


def _classical(job: DeferJob, tune: DeferralData, valid: DeferralData) -> list[DeferRun]:
    """Every classical method at ``job.cost`` (:func:`agents.deferral_methods.
    fit_deferral_methods`: one stacking ensemble, its fitting time in the first method's)."""
    return [_run(job, method.name, method.kind, valid, method.decide(valid),
                 method.decide(tune).deferred.mean(), method.fit_time)
            for method in fit_deferral_methods(tune, job.cost)]


def train_job_agent(job: DeferJob, table: LogitsTable) -> TrainedAgent:
    """Train the RL agent of ``job`` on ``table``'s tune split (``MuraDeferral-v0`` at the
    job's cost and reader) with :func:`agents.train.train_agent`, the route
    ``python -m experiments.train_agent --defer-cost`` takes too; nothing is written."""
    config = DeferralConfig(logits=table, defer_cost=job.cost, reader=job.reader)  # split: tune
    return train_agent(job.method, config, None, total_timesteps=job.steps, seed=job.seed,
                       tensorboard=False)


def run_defer_job(job: DeferJob, table: LogitsTable) -> list[DeferRun]:
    """Run ``job`` on ``table``: fit or train on tune, decide on valid."""
    tune, valid = (DeferralData.from_table(table, split, job.reader) for split in ("tune", "valid"))
    if job.method == CLASSICAL:
        return _classical(job, tune, valid)
    trained = train_job_agent(job, table)
    config, policy = trained.agent.config.replace(logits=table), trained.model
    tune_rate = float(policy_decision(policy, config, "tune").deferred.mean())
    agent = _run(job, job.method, "agent", valid, policy_decision(policy, config, "valid"),
                 tune_rate, trained.wall_time)
    matched = matched_threshold(tune, tune_rate)
    twin = _run(job, f"global_threshold@{job.method}", "baseline", valid,
                matched.decide(valid), matched.decide(tune).deferred.mean(), 0.0)
    return [agent, twin]


def run_defer_jobs(jobs: Sequence[DeferJob], tables: Sequence[LogitsTable],
                   options: PooledRunOptions,
                   on_done: Callable[[DeferJob], None] = lambda job: None) -> list[DeferRun]:
    """Run every job where ``options`` say (``workers``, ``threads``, ``ray``:
    :class:`experiments.common.job_pool.JobPool`); jobs are seeded, so results do not depend
    on the order or the pool.

    Returns:
        Every job's runs (job order). The first failure stops every other job and is raised.
    """
    return JobPool.of(options).run(run_defer_job, jobs, lambda job: (tables[job.table],),
                                   on_done)
