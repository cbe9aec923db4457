"""Run independent, seeded jobs in this process or in a pool of worker processes, and the
command-line options every pooled, bootstrapped experiment shares."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

from mura_env.common.atomic import staged_folder

J = TypeVar("J")
R = TypeVar("R")


@dataclass
class PooledRunOptions:
    """Options of an experiment whose seeded jobs run in a worker pool and whose figures get
    bootstrap intervals (``experiments.benchmark``, ``experiments.defer``); their own config
    dataclasses add their fields after these."""

    n_bootstrap: int = field(default=1000, metadata={"help": "bootstrap draws"})
    bootstrap_seed: int = field(default=0, metadata={"help": "seed of the bootstrap"})
    workers: int = field(default=2, metadata={"help": "worker processes (1: this process)"})
    threads: int = field(default=1, metadata={"help": "torch threads per process"})
    quick: bool = field(default=False, metadata={
        "help": "tiny budgets (QUICK_SETTINGS): a smoke test of the pipeline, not a result"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_pool(fn: Callable[..., list[Any]], jobs: Sequence[J],
             arguments: Callable[[J], tuple[Any, ...]], workers: int, threads: int,
             on_done: Callable[[J], None] = lambda job: None) -> list[Any]:
    """``fn(job, *arguments(job))`` for every job, here (``workers`` <= 1) or in ``workers``
    processes (forkserver) with ``threads`` torch threads each.

    Args:
        fn: a module-level function (picklable) returning a list of results per job.
        jobs: the jobs; arguments: the extra arguments of each job's call.
        workers, threads: processes, and torch threads per process.
        on_done: called with each job as it finishes.

    Returns:
        The jobs' results, concatenated in job order. The first failure is raised once the
        running jobs end; jobs not started yet are cancelled.
    """
    if workers <= 1:
        results = []
        for job in jobs:
            results.append(fn(job, *arguments(job)))
            on_done(job)
        return [r for rs in results for r in rs]
    context = get_context("forkserver" if os.name == "posix" else "spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                             initargs=(threads,)) as pool:
        futures = {pool.submit(fn, job, *arguments(job)): job for job in jobs}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                if future.exception() is not None:
                    pool.shutdown(cancel_futures=True)
                    raise future.exception()
                on_done(futures[future])
        return [r for future in futures for r in future.result()]


def run_staged(out: Path, threads: int, work: Callable[[Path], R]) -> R:
    """``work(staging)`` with ``threads`` torch threads in this process (restored after): it
    writes its outputs into a hidden folder beside ``out``, renamed to ``out`` when it returns
    and removed when it raises (:func:`mura_env.common.atomic.staged_folder`)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with staged_folder(out) as staging:
            return work(staging)
    finally:
        torch.set_num_threads(previous)
