"""Shared fixtures: tiny synthetic MURA-format data sets, generated once per test session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from experiments.synthetic.__main__ import main
from mura_env.synthetic import generate


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's tests (much faster for tiny models on a busy machine);
    the previous count is restored after the module. Use it with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def synthetic_s002(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small synthetic reference data set (``--scale 0.02 --seed 7``), made through the
    command line."""
    out = tmp_path_factory.mktemp("synthetic_s002")
    assert main(["--out", str(out), "--scale", "0.02", "--seed", "7", "--workers", "2"]) == 0
    return out


@pytest.fixture(scope="session")
def _mini_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A very small synthetic data set (``scale=0.001, seed=3``), made once per session."""
    out = tmp_path_factory.mktemp("mini_source")
    generate(out, scale=0.001, seed=3, workers=1, progress=False)
    return out


@pytest.fixture()
def mini_mura(_mini_source: Path, tmp_path: Path) -> Path:
    """A private copy of a very small synthetic data set (one or two studies per cell) that a
    test may break; returns the folder holding ``MURA-v1.1``."""
    dst = tmp_path / "mini"
    shutil.copytree(_mini_source, dst)
    return dst
