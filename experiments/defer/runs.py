"""The deferral experiment's runs: one job per (table, cost) for the classical methods and per
(table, agent, seed, cost) for the RL agents, run in this process or in worker processes.

Every job fits or trains on ``tune`` only and then decides once for every ``valid`` study;
those decisions are its only use of ``valid``. An RL job also makes the agent's threshold twin
(``global_threshold@<agent>``, :func:`threshold_twin`), the comparison at equal deferral rate:
the agent's own ensemble, deferring its least sure studies instead of those the agent picks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.core.fingerprint import fitted_fingerprint
from agents.core.train import TrainedAgent, train_agent
from agents.deferral.methods import (
    Decision,
    DeferralData,
    count_threshold,
    fit_deferral_methods,
    policy_decision,
)
from experiments.common.job_pool import JobPool, PooledRunOptions
from mura_env.deferral.config import DeferralConfig
from mura_env.logits import LogitsTable

#: The method names of the classical job.
CLASSICAL = "classical"


@dataclass(frozen=True)
class DeferJob:
    """One unit of work: ``method`` is :data:`CLASSICAL` (every classical method) or an RL
    agent name, trained for ``steps`` env steps with ``seed``; deferred studies go to
    ``reader`` (None: :func:`mura_env.readers.resolve_reader`'s choice)."""

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
        tune_deferral_rate: the share of tune studies it defers (a classical method: with
            the out-of-fold probabilities its rule was fitted on).
        tune_accuracy: the team's accuracy on tune (same decisions), what picks a method
            without reading valid.
        reader: the reader deferred studies went to.
        fitted: the fingerprint of what the run fitted
            (:func:`agents.core.fingerprint.fitted_fingerprint`: a classical method's rule, an
            agent's parameters, a twin's agent and tune decisions).
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
    tune_accuracy: float = float("nan")
    reader: str = ""
    fitted: str = ""


def threshold_twin(agent_tune: Decision, agent_valid: Decision, center: float = 0.5
                   ) -> tuple[Decision, Decision]:
    """An agent's threshold twin: the agent's own ensemble (its probabilities and
    predictions), deferring the studies where that probability is least sure.

    Args:
        agent_tune, agent_valid: the agent's decisions on tune and valid
            (:func:`agents.deferral.methods.policy_decision`).
        center: the ensemble's decision threshold (the env's ``threshold``); a study's
            margin is ``|probability - center|``.

    Returns:
        ``(tune, valid)`` :class:`~agents.deferral.methods.Decision` of the twin: the agent's
        ``probability`` and ``ensemble_prediction``, and ``deferred`` = margin below one
        threshold, chosen so that the twin defers as many tune studies as the agent (to the
        nearest cut between distinct margins, :func:`agents.deferral.methods.count_threshold`).
    """
    margin = np.abs(agent_tune.probability - center)
    threshold = count_threshold(margin, int(np.count_nonzero(agent_tune.deferred)))

    def twin(agent: Decision) -> Decision:
        deferred = np.abs(agent.probability - center) < threshold
        return Decision(agent.probability, deferred, agent.ensemble_prediction)

    return twin(agent_tune), twin(agent_valid)


def _run(job: DeferJob, name: str, kind: str, valid: DeferralData, decision: Decision,
         tune: DeferralData, tune_decision: Decision, seconds: float, fitted: str) -> DeferRun:
    """A :class:`DeferRun` from a valid ``decision``, the same rule's ``tune_decision`` and
    the fingerprint of what it fitted."""
    prediction = decision.team_prediction(valid.reads).astype(np.int64)
    score = np.where(decision.deferred, valid.reads, decision.probability).astype(np.float64)
    tune_scores = tune_decision.scores(tune.studies.labels, tune.reads)
    return DeferRun(job.table, job.seed, name, kind, job.cost, decision.deferred.copy(),
                    prediction, score, tune_scores["deferral_rate"], seconds,
                    tune_accuracy=tune_scores["accuracy"], reader=valid.reader, fitted=fitted)


def _classical(job: DeferJob, tune: DeferralData, valid: DeferralData) -> list[DeferRun]:
    """Every classical method at ``job.cost`` (:func:`agents.deferral.methods.
    fit_deferral_methods`: one stacking ensemble and one cross-fitting, their fitting time in
    the first method's); tune figures from the out-of-fold decisions its rule was fitted on."""
    return [_run(job, method.name, method.kind, valid, method.decide(valid), tune,
                 method.decide_out_of_fold(tune), method.fit_time, fitted_fingerprint(method))
            for method in fit_deferral_methods(tune, job.cost)]


def train_job_agent(job: DeferJob, table: LogitsTable) -> TrainedAgent:
    """Train the RL agent of ``job`` on ``table``'s tune split (``MuraDeferral-v0`` at the
    job's cost and reader) with :func:`agents.core.train.train_agent`, the route
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
    config = trained.agent.config.replace(logits=table)
    return agent_runs(job, trained.model, config, tune, valid, trained.wall_time)


def agent_runs(job: DeferJob, policy: Any, config: DeferralConfig, tune: DeferralData,
               valid: DeferralData, seconds: float) -> list[DeferRun]:
    """The runs of a trained deferral ``policy`` (``predict(obs, deterministic=True)``, as
    :func:`agents.deferral.methods.policy_decision` takes) and of its threshold twin
    (:func:`threshold_twin`), each with its tune deferral rate.

    Args:
        job: the job trained; config: the env configuration trained with (its table holds
            tune and valid); tune, valid: the studies and reads of each split; seconds:
            training time.

    Returns:
        ``[agent run, twin run (global_threshold@<agent>)]``.
    """
    agent_tune, agent_valid = (policy_decision(policy, config, split)
                               for split in ("tune", "valid"))
    twin_tune, twin_valid = threshold_twin(agent_tune, agent_valid, config.threshold)
    fitted = fitted_fingerprint(policy)
    return [_run(job, job.method, "agent", valid, agent_valid, tune, agent_tune, seconds,
                 fitted),
            _run(job, f"global_threshold@{job.method}", "baseline", valid, twin_valid, tune,
                 twin_tune, 0.0, fitted_fingerprint((fitted, twin_tune.deferred)))]


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
