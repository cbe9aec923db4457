"""The job pool: results in job order wherever jobs run (here, local processes, Ray), a failing
job stops the others, and a pooled command stopped by SIGINT or SIGTERM ends every process it
started and leaves no output."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.benchmark.__main__ import main as benchmark_main
from experiments.common.job_pool import JobPool, PooledRunOptions

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_0 = ROOT / "mura_env" / "assets" / "reference" / "reference_0.parquet"
#: The benchmark's output columns that are wall times (they differ from run to run).
TIMINGS = {"benchmark.csv": ["train_time"], "runs.csv": ["train_time"],
           "curves.csv": ["wall_time"]}
#: How long a stopped command and all its processes may take to end.
STOP_LIMIT_S = 10.0

POOLS = [JobPool(1), JobPool(2), JobPool(2, ray="local")]
POOL_IDS = ["here", "processes", "ray"]


def _scaled(job: int, weights: np.ndarray) -> list[object]:
    """A job that ends later the earlier it comes: ``[job * sum(weights), writable?]``."""
    time.sleep(0.3 * (3 - job))
    weights[0] += 0.0
    return [job * float(weights.sum()), bool(weights.flags.writeable)]


def _fail_or_wait(job: str) -> list[str]:
    """``fail``: raises ValueError after a moment; any other job: sleeps a minute."""
    if job == "fail":
        time.sleep(0.5)
        raise ValueError("job fail failed")
    time.sleep(60)
    return [job]


def _process_tree() -> dict[int, list[int]]:
    """Every live process's children, from /proc (parent pid -> child pids)."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        tree.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``."""
    tree, out, todo = _process_tree(), [], [pid]
    while todo:
        children = tree.get(todo.pop(), [])
        out += children
        todo += children
    return out


def _pool_workers(pid: int) -> list[int]:
    """The worker processes of ``pid``'s process pool: the forkserver's children."""
    tree = _process_tree()
    return [w for child in tree.get(pid, []) for w in tree.get(child, [])]


def _ray_tasks(pid: int) -> list[int]:
    """The processes below ``pid`` running a job pool's Ray task."""
    out = []
    for child in _descendants(pid):
        try:
            if Path(f"/proc/{child}/cmdline").read_bytes().startswith(b"ray::_call_pickled"):
                out.append(child)
        except OSError:
            pass
    return out


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _session_alive(sid: int) -> list[int]:
    """The live processes of session ``sid``."""
    out = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            out.append(int(entry.name))
    return out


def _wait_for(condition: Callable[[], bool], limit_s: float) -> bool:
    """Poll ``condition()`` every 0.1 s for up to ``limit_s``; returns its last value."""
    deadline = time.monotonic() + limit_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)
    return bool(condition())


@pytest.mark.parametrize("pool", POOLS, ids=POOL_IDS)
def test_results_come_in_job_order(pool: JobPool) -> None:
    weights = np.array([1.0, 2.0])
    finished: list[int] = []
    results = pool.run(_scaled, [0, 1, 2, 3], lambda job: (weights,), finished.append)
    assert results == [0.0, True, 3.0, True, 6.0, True, 9.0, True]
    assert sorted(finished) == [0, 1, 2, 3]


@pytest.mark.parametrize("pool", POOLS[:2], ids=POOL_IDS[:2])
def test_a_failing_job_raises_and_stops_the_others(pool: JobPool) -> None:
    jobs = ["fail", "wait"] if pool.workers == 1 else ["wait", "fail"]
    start = time.monotonic()
    with pytest.raises(ValueError, match="job fail failed"):
        pool.run(_fail_or_wait, jobs, lambda job: ())
    assert time.monotonic() - start < 30  # the minute-long job was not waited for
    assert not [w for w in _pool_workers(os.getpid()) if _alive(w)]


def test_ray_without_ray_installed_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else find_spec(name, *a))
    with pytest.raises(ValueError, match=re.escape("pip install -e '.[ray]'")):
        PooledRunOptions(ray="auto")
    assert benchmark_main(["--quick", "--ray", "auto", "--out", str(tmp_path / "out")]) == 2
    assert "pip install -e '.[ray]'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def _start_benchmark(out: Path, ray: bool = False) -> subprocess.Popen:
    """The quick benchmark into ``out`` with 2 worker processes, or as tasks of a local Ray
    instance of 2 CPUs (``ray``), in a session of its own, once its staged folder exists and
    its jobs run."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments.benchmark", "--quick", "--workers", "2",
         *(["--ray", "local"] if ray else []), "--no-progress", "--out", str(out)],
        cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True)
    running = (lambda: _ray_tasks(proc.pid)) if ray else (
        lambda: len(_pool_workers(proc.pid)) >= 2)
    started = _wait_for(lambda: running() and any(out.parent.glob(f".{out.name}.partial*")),
                        120)
    if not started:
        _kill_session(proc)
        pytest.fail(f"the benchmark's workers did not start: {proc.communicate()[1]}")
    time.sleep(1.0)  # into the first jobs
    return proc


def _kill_session(proc: subprocess.Popen) -> None:
    """End whatever is left of ``proc``'s session."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


@pytest.mark.parametrize(("signum", "ray"), [(signal.SIGINT, False), (signal.SIGTERM, False),
                                             (signal.SIGTERM, True)],
                         ids=["SIGINT", "SIGTERM", "SIGTERM-ray"])
def test_a_signal_stops_every_process_and_leaves_no_output(tmp_path: Path, signum: int,
                                                           ray: bool) -> None:
    out = tmp_path / "out"
    proc = _start_benchmark(out, ray)
    try:
        processes = [proc.pid, *_descendants(proc.pid)]
        assert len(processes) >= 4  # main, and its pool's processes (at least 2 workers)
        stopped = time.monotonic()
        os.kill(proc.pid, signum)
        _, stderr = proc.communicate(timeout=STOP_LIMIT_S)
        assert _wait_for(lambda: not any(map(_alive, processes))
                         and not _session_alive(proc.pid),
                         STOP_LIMIT_S - (time.monotonic() - stopped))
    finally:
        _kill_session(proc)
    assert proc.returncode == 128 + signum
    assert f"stopped by {signal.Signals(signum).name}" in stderr
    assert list(tmp_path.iterdir()) == []


def test_workers_end_when_the_command_is_killed(tmp_path: Path) -> None:
    proc = _start_benchmark(tmp_path / "out")
    try:
        processes = _descendants(proc.pid)
        assert len(processes) >= 4
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert _wait_for(lambda: not any(map(_alive, processes)), STOP_LIMIT_S)
    finally:
        _kill_session(proc)


def test_ray_gives_the_same_benchmark(tmp_path: Path) -> None:
    common = ["--quick", "--tables", str(REFERENCE_0), "--seeds", "1", "--algos", "softmax-pg",
              "--no-progress"]
    assert benchmark_main([*common, "--workers", "1", "--out", str(tmp_path / "here")]) == 0
    ray_run = subprocess.run(
        [sys.executable, "-m", "experiments.benchmark", *common, "--workers", "2",
         "--ray", "local", "--out", str(tmp_path / "ray")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert ray_run.returncode == 0, ray_run.stderr
    for name, timings in TIMINGS.items():
        here, on_ray = (pd.read_csv(tmp_path / run / name) for run in ("here", "ray"))
        assert list(here.columns) == list(on_ray.columns)
        assert set(timings) <= set(here.columns)
        assert len(here) > 0
        pd.testing.assert_frame_equal(here.drop(columns=timings),
                                      on_ray.drop(columns=timings), check_exact=True)
    assert (tmp_path / "ray" / "agents" / "table0_softmax-pg_seed0").is_dir()
