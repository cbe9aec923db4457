"""Run independent, seeded jobs in this process, in local worker processes or as Ray tasks,
stop them all on Ctrl-C or SIGTERM, and the command-line options every pooled, bootstrapped
experiment shares."""

from __future__ import annotations

import importlib.util
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context, parent_process
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, TypeVar

from mura_env.common.atomic import staged_folder

J = TypeVar("J")
R = TypeVar("R")

#: The signals that stop a pooled command (Ctrl-C, and ``kill``'s default).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: Seconds a worker process gets to end after SIGTERM before it is killed.
TERMINATE_GRACE_S = 3.0
#: What ``--ray`` takes to start a Ray instance in this process instead of joining a cluster.
RAY_LOCAL = "local"


@dataclass
class PooledRunOptions:
    """Options of an experiment whose seeded jobs run in a worker pool and whose figures get
    bootstrap intervals (``experiments.benchmark``, ``experiments.defer``); their own config
    dataclasses add their fields after these.

    Raises:
        ValueError: ``ray`` is set and Ray is not installed.
    """

    n_bootstrap: int = field(default=1000, metadata={"help": "bootstrap draws"})
    bootstrap_seed: int = field(default=0, metadata={"help": "seed of the bootstrap"})
    workers: int = field(default=2, metadata={"help": "worker processes (1: this process)"})
    threads: int = field(default=1, metadata={"help": "torch threads per process"})
    ray: str | None = field(default=None, metadata={
        "help": "address of a Ray cluster to run the jobs on (e.g. auto or ray://host:10001; "
                f"{RAY_LOCAL}: a Ray instance started here with WORKERS x THREADS CPUs); "
                "default: local processes"})
    quick: bool = field(default=False, metadata={
        "help": "tiny budgets (QUICK_SETTINGS): a smoke test of the pipeline, not a result"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self) -> None:
        if self.ray and importlib.util.find_spec("ray") is None:
            raise ValueError(f"--ray {self.ray} needs Ray, which is not installed: "
                             "pip install -e '.[ray]'")


class Interrupted(KeyboardInterrupt):
    """A stop asked by a signal; ``signum`` is the signal (SIGINT or SIGTERM)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def stop_on_signals() -> Iterator[list[int]]:
    """Within the block, the first SIGINT or SIGTERM raises :class:`Interrupted` in the main
    thread and later ones are ignored, so that the cleanup it starts runs to its end; the
    previous handlers come back when the block ends. Yields the list the signal received is
    added to (code that turns any interruption into a plain KeyboardInterrupt, as Ray's
    waits do, loses which signal it was). Outside the main thread it does nothing (Python
    runs signal handlers in the main thread only)."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}

    def stop(signum: int, frame: Any) -> None:
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        received.append(signum)
        raise Interrupted(signum)

    for s in STOP_SIGNALS:
        signal.signal(s, stop)
    try:
        yield received
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)


@dataclass(frozen=True)
class JobPool:
    """Where a command's jobs run: in this process (``workers`` <= 1 and no ``ray``), in
    ``workers`` local processes (forkserver), or as Ray tasks (``ray``: a cluster address such
    as ``auto`` or ``ray://host:10001``, or ``local`` for a Ray instance started here with
    ``workers * threads`` CPUs; on a cluster, folders the jobs write to must be shared). Every
    process or task runs with ``threads`` torch threads. To processes and Ray tasks,
    arguments and results travel pickled (ordinary, writable objects on both sides), so a
    seeded job gives the same results wherever it runs."""

    workers: int = 1
    threads: int = 1
    ray: str | None = None

    @classmethod
    def of(cls, options: PooledRunOptions) -> JobPool:
        """The pool ``options`` ask for (``workers``, ``threads``, ``ray``)."""
        return cls(options.workers, options.threads, options.ray)

    def run(self, fn: Callable[..., list[Any]], jobs: Sequence[J],
            arguments: Callable[[J], tuple[Any, ...]],
            on_done: Callable[[J], None] = lambda job: None) -> list[Any]:
        """``fn(job, *arguments(job))`` for every job.

        Args:
            fn: a module-level function (picklable) returning a list of results per job.
            jobs: the jobs; arguments: the extra arguments of each job's call (an argument
                object shared by several jobs is sent to Ray once).
            on_done: called here with each job as it finishes.

        Returns:
            The jobs' results, concatenated in job order. The first failure (or a
            KeyboardInterrupt, e.g. :class:`Interrupted`) stops every job still running or
            waiting (worker processes are terminated, Ray tasks cancelled) and is raised.
        """
        if self.ray:
            results = _run_ray(self, fn, jobs, arguments, on_done)
        elif self.workers <= 1:
            results = []
            for job in jobs:
                results.append(fn(job, *arguments(job)))
                on_done(job)
        else:
            results = _run_processes(self, fn, jobs, arguments, on_done)
        return [r for rs in results for r in rs]


def _init_worker(threads: int) -> None:
    """Set up a worker process: ``threads`` torch threads, SIGINT ignored (the parent
    stops its workers), and a watch that ends the worker if the parent dies without stopping
    it (e.g. SIGKILL)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = parent_process()
    if parent is not None:
        threading.Thread(target=_end_with, args=(parent,), daemon=True).start()
    import torch

    torch.set_num_threads(threads)


def _end_with(parent: BaseProcess) -> None:
    """Wait for ``parent`` to end, then end this process at once (status 143)."""
    parent.join()
    os._exit(128 + signal.SIGTERM)


def _run_processes(pool: JobPool, fn: Callable[..., list[Any]], jobs: Sequence[J],
                   arguments: Callable[[J], tuple[Any, ...]],
                   on_done: Callable[[J], None]) -> list[list[Any]]:
    """Every job's result list (job order), from ``pool.workers`` forkserver processes."""
    context = get_context("forkserver" if os.name == "posix" else "spawn")
    executor = ProcessPoolExecutor(pool.workers, mp_context=context, initializer=_init_worker,
                                   initargs=(pool.threads,))
    try:
        futures = [executor.submit(fn, job, *arguments(job)) for job in jobs]
        position = {future: i for i, future in enumerate(futures)}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=position.__getitem__):
                future.result()
                on_done(jobs[position[future]])
        return [future.result() for future in futures]
    except BaseException:
        _stop_processes(executor)
        raise
    finally:
        executor.shutdown()


def _stop_processes(executor: ProcessPoolExecutor) -> None:
    """Cancel ``executor``'s waiting jobs and end its worker processes: SIGTERM, then SIGKILL
    for those still alive after :data:`TERMINATE_GRACE_S`."""
    processes = list((executor._processes or {}).values())
    manager = executor._executor_manager_thread
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + TERMINATE_GRACE_S
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join(1.0)
    if manager is not None:
        manager.join(TERMINATE_GRACE_S)


def _call_pickled(fn: Callable[..., list[Any]], threads: int, job: Any,
                  *pickled: bytes) -> bytes:
    """A Ray task: ``fn(job, *arguments)`` with ``threads`` torch threads, the arguments and the
    result pickled (so both are ordinary, writable objects on either side)."""
    import torch

    torch.set_num_threads(threads)
    result = fn(job, *(pickle.loads(p) for p in pickled))
    return pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)


def _run_ray(pool: JobPool, fn: Callable[..., list[Any]], jobs: Sequence[J],
             arguments: Callable[[J], tuple[Any, ...]],
             on_done: Callable[[J], None]) -> list[list[Any]]:
    """Every job's result list (job order), from Ray tasks of ``pool.threads`` CPUs each."""
    import ray

    connected_here = _connect_ray(ray, pool)
    refs: list[Any] = []
    try:
        task = ray.remote(num_cpus=pool.threads, max_retries=0)(_call_pickled)
        stored: dict[int, tuple[Any, Any]] = {}

        def put(value: Any) -> Any:
            if id(value) not in stored:
                stored[id(value)] = (value, ray.put(pickle.dumps(value, pickle.HIGHEST_PROTOCOL)))
            return stored[id(value)][1]

        refs = [task.remote(fn, pool.threads, job, *map(put, arguments(job))) for job in jobs]
        position = {ref: i for i, ref in enumerate(refs)}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                ray.get(ref)
                on_done(jobs[position[ref]])
        return [pickle.loads(blob) for blob in ray.get(refs)]
    except BaseException:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise
    finally:
        if connected_here:
            ray.shutdown()


def _connect_ray(ray: Any, pool: JobPool) -> bool:
    """Connect to ``pool.ray`` unless Ray is connected already (``local``: start a Ray
    instance whose workers import from this process's ``sys.path``); the SIGINT and SIGTERM
    handlers stay as they were. Returns whether this call connected."""
    if ray.is_initialized():
        return False
    main = threading.current_thread() is threading.main_thread()
    handlers = {s: signal.getsignal(s) for s in STOP_SIGNALS} if main else {}
    try:
        if pool.ray == RAY_LOCAL:
            path = os.pathsep.join(p for p in sys.path if p)
            ray.init(address=RAY_LOCAL, num_cpus=pool.workers * pool.threads,
                     include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": path}})
        else:
            ray.init(address=pool.ray)
    finally:
        for s, handler in handlers.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
    return True


def new_output_folder(out: Path | None, default_root: str) -> Path:
    """Where a command writes its outputs: ``out``, or ``<default_root>/<local time>``.

    Raises:
        ValueError: the folder exists already (a command never writes into an old one).
    """
    out = out or Path(default_root) / time.strftime("%Y%m%d-%H%M%S")
    if out.exists():
        raise ValueError(f"{out} exists already; pass a new --out.")
    return out


def run_staged(out: Path, threads: int, work: Callable[[Path], R]) -> R:
    """``work(staging)`` with ``threads`` torch threads in this process (restored after): it
    writes its outputs into a hidden folder beside ``out``, renamed to ``out`` when it returns
    and removed when it raises (:func:`mura_env.common.atomic.staged_folder`).

    Raises:
        SystemExit: a SIGINT or SIGTERM came (:func:`stop_on_signals`), or another
            KeyboardInterrupt: the jobs were stopped, the hidden folder removed, nothing
            written; the status is 128 + the signal's number (130, 143; 130 without one).
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    received: list[int] = []
    try:
        with stop_on_signals() as received, staged_folder(out) as staging:
            return work(staging)
    except KeyboardInterrupt:
        signum = received[0] if received else signal.SIGINT
        print(f"\nstopped by {signal.Signals(signum).name}: every job ended, {out} not "
              "written", file=sys.stderr)
        raise SystemExit(128 + signum) from None
    finally:
        torch.set_num_threads(previous)
