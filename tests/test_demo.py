"""The main job's command line (experiments/demo.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import experiments.demo.__main__ as demo


def test_demo_writes_config_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    argv = ["--data-dir", str(tmp_path / "data"), "--scale", "0.002", "--seed", "5",
            "--workers", "1", "--out", str(out), "--stages", "data"]
    assert demo.main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["scale"] == 0.002 and config["seed"] == 5 and config["out"] == str(out)
    summary = pd.read_csv(out / "summary.csv")
    studies = pd.read_csv(out / "studies.csv")
    totals = summary[summary["body_part"] == "total"]
    assert set(totals["split"]) == {"train", "tune", "valid"}
    assert totals["studies"].sum() == len(studies)
    assert (tmp_path / "data" / "preview.png").is_file()
    assert "SYNTHETIC" in capsys.readouterr().out
    # a second run keeps the data set as it is
    before = (tmp_path / "data" / "MURA-v1.1" / "train_image_paths.csv").stat().st_mtime_ns
    assert demo.main(argv) == 0
    after = (tmp_path / "data" / "MURA-v1.1" / "train_image_paths.csv").stat().st_mtime_ns
    assert before == after


def test_demo_chains_pretrain_into_compare(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[tuple[str, list[str]]] = []  # (stage, argv) of every stage run, in order

    stages = {"experiments.pretrain_backbones": "pretrain", "experiments.compare": "compare"}

    def fake_run_command(module: str, argv: list[str]) -> int:
        runs.append((stages[module], argv))
        return 0

    monkeypatch.setattr(demo, "run_command", fake_run_command)
    pre = tmp_path / "pre"
    argv = ["--data-dir", str(tmp_path / "data"), "--scale", "0.002", "--workers", "1",
            "--out", str(tmp_path / "run"), "--pretrain-out", str(pre), "--seeds", "2",
            "--compare-out", str(tmp_path / "cmp")]
    assert demo.main(argv) == 0
    assert [stage for stage, _ in runs] == ["pretrain", "compare"]
    calls = dict(runs)
    assert calls["pretrain"][calls["pretrain"].index("--out") + 1] == str(pre)
    assert calls["compare"] == ["--logits", str(pre / "logits.parquet"), "--seeds", "2",
                                "--total-timesteps", "8192", "--out", str(tmp_path / "cmp")]
    with pytest.raises(SystemExit, match="valid: data, pretrain, compare, headline"):
        demo.main(argv + ["--stages", "agents"])


def test_headline_stage_prints_the_committed_results_and_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results = tmp_path / "benchmark.md"
    results.write_text("| method | accuracy |\n| uniform | 0.5 |\n\n## More figures\n| x |\n")
    demo.print_headline(results)
    out = capsys.readouterr().out
    assert "| uniform | 0.5 |" in out and "More figures" not in out
    assert "committed results" in out and "not rerun" in out
    demo.print_headline(tmp_path / "absent.md")
    assert "python -m experiments.benchmark" in capsys.readouterr().out
