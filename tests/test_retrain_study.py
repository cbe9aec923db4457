"""``python -m experiments.retrain_study`` on two tiny pretraining runs: retraining, reuse,
the ensembles fitted on tune and the paired report."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import experiments.pretrain_backbones.__main__ as pretrain_backbones
import experiments.retrain_study.__main__ as study

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two backbone seeds' tiny pretraining runs on one synthetic draw."""
    root = tmp_path_factory.mktemp("retrain_study")
    out = []
    for seed in (0, 1):
        run = root / f"run{seed}"
        argv = ["--synthetic-dir", str(root / "syn"), "--scale", "0.003", "--data-seed", "3",
                "--seed", str(seed), "--out", str(run), "--models", "attention_resnet",
                "attention_resnet_small", "--image-size", "32", "--epochs", "1",
                "--batch-size", "16", "--train-studies", "16", "--focus", "WRIST,HAND", "",
                "--focus-share", "0.5", "--cache-dir", str(root / "cache"), "--no-progress"]
        assert pretrain_backbones.main(argv) == 0
        out.append(run)
    return out


def test_study_compares_every_method_with_ce(runs: list[Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    argv = ["--runs", *map(str, runs), "--methods", "ce", "reinforce", "--epochs", "1",
            "--agent-seeds", "2", "--agent-steps", "4096",
            "--retrain-root", str(tmp_path / "retrained"),
            "--cache-dir", str(runs[0].parent / "cache"), "--out", str(tmp_path / "out"),
            "--n-bootstrap", "200"]
    assert study.main(argv) == 0
    out = tmp_path / "out"
    scores = pd.read_csv(out / "scores.csv")
    diffs = pd.read_csv(out / "differences.csv")
    answerers = ["member attention_resnet", "member attention_resnet_small", *study.ENSEMBLES]
    assert set(scores["method"]) == {f"{m}: {a}" for m in ("none", "ce", "reinforce")
                                     for a in answerers}
    assert set(diffs["reference"]) == {f"ce: {a}" for a in answerers}
    value = scores.set_index(["method", "figure"])["value"]
    for row in diffs.itertuples():
        assert row.difference == pytest.approx(value[row.method, row.figure]
                                               - value[row.reference, row.figure])
        assert len(row.per_table.split(";")) == 2  # paired per backbone seed
    runs_csv = pd.read_csv(out / "runs.csv")
    assert sorted(runs_csv["backbone_seed"]) == [0, 0, 1, 1]
    assert (runs_csv["seconds"] > 0).all()
    config = json.loads((out / "config.json").read_text())
    assert len(config["retrain_commands"]) == 4
    text = (out / "retrain.md").read_text()
    assert "reinforce - ce" in text and "Members' kappa" in text
    # the retrained runs are reused by a second call
    capsys.readouterr()
    assert study.main(argv) == 0
    assert "python -m experiments.retrain " not in capsys.readouterr().out


def test_study_refuses_runs_it_cannot_use(runs: list[Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    argv = ["--runs", str(tmp_path / "missing"), "--retrain-root", str(tmp_path / "r"),
            "--out", str(tmp_path / "out")]
    assert study.main(argv) == 2
    assert "no such folder" in capsys.readouterr().err
    assert study.main(["--runs", str(runs[0]), "--methods", "dropout"]) == 2
    assert not (tmp_path / "out").exists()
