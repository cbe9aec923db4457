"""Pretraining run folders: which one is the default, and unusable folders named clearly."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from backbones.runs import PRETRAIN_RUNS, RunInputError, default_run, load_run_table
from mura_env.logits import manifest_path
from mura_env.logits.reference import reference_table_path


def _reference_0_run() -> Path:
    """The run folder the shipped reference table 0 records its checkpoints in."""
    configs = json.loads(manifest_path(reference_table_path(0)).read_text())["model_configs"]
    return Path(next(iter(configs.values()))["checkpoint"]).parent.parent


def _run_with_table(name: str, mtime: float) -> Path:
    """``runs/pretrain/<name>/`` (relative to the working directory) with a stand-in logits
    file last written at ``mtime``."""
    run = PRETRAIN_RUNS / name
    run.mkdir(parents=True)
    (run / "logits.parquet").write_bytes(b"")
    os.utime(run / "logits.parquet", (mtime, mtime))
    return run


def test_default_run_is_the_newest_then_reference_table_0s_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RunInputError, match="no pretraining run found under runs/pretrain"):
        default_run()
    _run_with_table("old", 1_000_000)
    newest = _run_with_table("new", 2_000_000)
    (PRETRAIN_RUNS / "unfinished").mkdir()
    assert default_run() == newest
    reference = _reference_0_run()
    assert reference.parent == PRETRAIN_RUNS
    assert default_run() == newest
    assert _run_with_table(reference.name, 500_000) == reference
    assert default_run() == reference


def test_a_missing_or_unfinished_run_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RunInputError, match="no such folder"):
        load_run_table(tmp_path / "nowhere")
    with pytest.raises(RunInputError, match="has no logits.parquet.*--resume"):
        load_run_table(tmp_path)
