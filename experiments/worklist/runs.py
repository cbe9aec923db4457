"""The worklist experiment's runs: one job per (table, capacity) for the classical methods and
per (table, capacity, agent, seed) for the RL agents; every job fits or trains on ``tune`` and
then answers the same ``valid`` shifts of every scenario once.

Shifts are fixed by (table, scenario): :func:`agents.worklist.rollout.evaluation_shifts` with
seed :data:`SHIFT_SEED` plus the scenario's position, so every method answers the same
studies in the same order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from agents.core.fingerprint import fitted_fingerprint
from agents.core.saved import reads_digest, table_digest
from agents.core.train import train_agent
from agents.worklist.methods import WorklistData, fit_worklist_methods, simulate
from agents.worklist.rollout import evaluation_shifts, rollout
from experiments.common.job_pool import JobPool, PooledRunOptions
from mura_env.logits import LogitsTable
from mura_env.worklist.config import WorklistConfig
from mura_env.worklist.problem import WorklistProblem

#: The method name of the classical job.
CLASSICAL = "classical"
#: Seed of the valid shifts of the first scenario (the next scenarios: +1, +2...).
SHIFT_SEED = 2_024


@dataclass(frozen=True)
class WorklistSettings:
    """What every job of one experiment shares: the evaluation scenarios, shifts per
    scenario, shift size and read cost, and the agents' interface to the env (its ``action``
    and ``observe_gains``, :class:`~mura_env.worklist.config.WorklistConfig`)."""

    scenarios: tuple[str, ...]
    n_shifts: int
    shift_size: int
    read_cost: float
    action: str = "weights"
    observe_gains: bool = False


@dataclass(frozen=True)
class WorklistJob:
    """One unit of work: ``method`` is :data:`CLASSICAL` (every classical method) or an RL
    agent trained for ``steps`` env steps with ``seed``, at reader capacity ``capacity``."""

    table: int
    method: str
    seed: int
    capacity: float
    steps: int = 0


@dataclass
class WorklistRun:
    """One run's answers on one scenario's valid shifts, flattened ``[S * N]`` in shift
    order: ``prediction`` (int64, the answer that counts), ``answered_by`` (int64, reader
    index or -1), ``study_index`` (int64, row in the table's valid selection); ``label``
    (int64) and ``body_part_index`` (int64); ``score`` float64 (the prediction: what AUROC
    would rank); ``fitted``: the fingerprint of what the run fitted
    (:func:`agents.core.fingerprint.fitted_fingerprint`)."""

    table: int
    seed: int
    method: str
    kind: str
    capacity: float
    scenario: str
    prediction: np.ndarray
    answered_by: np.ndarray
    study_index: np.ndarray
    label: np.ndarray
    body_part_index: np.ndarray
    train_time: float
    fitted: str = ""

    @property
    def score(self) -> np.ndarray:
        """float64 ``[S * N]``: the prediction."""
        return self.prediction.astype(np.float64)


def job_config(table: LogitsTable, capacity: float, settings: WorklistSettings,
               scenario: str = "random") -> WorklistConfig:
    """The env configuration of a job: ``table``'s tune split, ``scenario`` shifts, the
    agents' interface."""
    return WorklistConfig(logits=table, split="tune", scenario=scenario,
                          shift_size=settings.shift_size, capacity=capacity,
                          read_cost=settings.read_cost, action=settings.action,
                          observe_gains=settings.observe_gains)


def scenario_shifts(table: LogitsTable, capacity: float, settings: WorklistSettings
                    ) -> dict[str, tuple[WorklistProblem, np.ndarray]]:
    """Per scenario: the valid problem and its shifts (int64 ``[S, N]``)."""
    return {scenario: evaluation_shifts(job_config(table, capacity, settings, scenario),
                                        "valid", settings.n_shifts, SHIFT_SEED + i)
            for i, scenario in enumerate(settings.scenarios)}


def _run(job: WorklistJob, method: str, kind: str, scenario: str, problem: WorklistProblem,
         rows: np.ndarray, prediction: np.ndarray, answered_by: np.ndarray,
         seconds: float, fitted: str) -> WorklistRun:
    """A :class:`WorklistRun` of answers ``[S, N]`` on the shifts ``rows`` of ``problem``."""
    studies = problem.studies
    flat = rows.ravel()
    return WorklistRun(job.table, job.seed, method, kind, job.capacity, scenario,
                       np.asarray(prediction).ravel().astype(np.int64),
                       np.asarray(answered_by).ravel().astype(np.int64), flat,
                       studies.labels[flat].astype(np.int64),
                       studies.body_part_index[flat].astype(np.int64), seconds, fitted)


#: The tables this process has run jobs on, by content (:func:`same_table`).
_TABLES: dict[str, LogitsTable] = {}


def same_table(table: LogitsTable) -> LogitsTable:
    """The table object this process already holds with ``table``'s content (its studies,
    splits, labels, logits and reads), else ``table`` itself, kept. Jobs reach a worker process
    as pickled copies; handing each the one object lets what the envs fit once per table (the
    routing combiner, :class:`~mura_env.worklist.problem.WorklistProblem`) serve every job of
    that table in the process."""
    h = hashlib.sha256(table_digest(table).encode())
    studies = table.studies
    for column in ("split", "label"):
        h.update("\n".join(studies[column].astype(str)).encode())
    for reader in table.reader_ids:
        h.update(reads_digest(table, reader).encode())
    return _TABLES.setdefault(h.hexdigest(), table)


def run_worklist_job(job: WorklistJob, table: LogitsTable, settings: WorklistSettings
                     ) -> list[WorklistRun]:
    """Run ``job`` on ``table``: fit or train on tune, answer every scenario's valid shifts.
    An agent is scored on tune once, at the end of its training (nothing here reads it)."""
    table = same_table(table)
    shifts = scenario_shifts(table, job.capacity, settings)
    if job.method == CLASSICAL:
        any_problem = next(iter(shifts.values()))[0]
        readers, capacities = any_problem.readers, any_problem.capacities
        tune = WorklistData.from_table(table, "tune", readers)
        valid = WorklistData.from_table(table, "valid", readers)
        methods = fit_worklist_methods(tune, settings.read_cost, capacities,
                                       settings.shift_size)
        probabilities = methods[0].probabilities(valid)
        out = []
        for scenario, (problem, rows) in shifts.items():
            for method in methods:
                result = simulate(method, valid, rows, capacities, probabilities)
                out.append(_run(job, method.name, method.kind, scenario, problem, rows,
                                result["prediction"], result["answered_by"], method.fit_time,
                                fitted_fingerprint(method)))
        return out
    trained = train_agent(job.method, job_config(table, job.capacity, settings), None,
                          total_timesteps=job.steps, seed=job.seed, eval_every=job.steps,
                          tensorboard=False)
    out = []
    for scenario, (problem, rows) in shifts.items():
        answers = rollout(trained.model, problem, rows)
        out.append(_run(job, job.method, "agent", scenario, problem, rows,
                        answers["prediction"], answers["answered_by"], trained.wall_time,
                        fitted_fingerprint(trained.model)))
    return out


def run_worklist_jobs(jobs: Sequence[WorklistJob], tables: Sequence[LogitsTable],
                      settings: WorklistSettings, options: PooledRunOptions,
                      on_done: Callable[[WorklistJob], None] = lambda job: None
                      ) -> list[WorklistRun]:
    """Run every job where ``options`` say (:class:`experiments.common.job_pool.JobPool`);
    jobs are seeded, so results do not depend on the order or the pool. Returns every job's
    runs, in job order."""
    return JobPool.of(options).run(run_worklist_job, jobs,
                                   lambda job: (tables[job.table], settings), on_done)
