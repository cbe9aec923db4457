"""``python -m experiments.retrain_study`` on two tiny pretraining runs: retraining, reuse,
the ensembles fitted on tune and the paired report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from valid_swap import swap_valid

import experiments.pretrain_backbones.__main__ as pretrain_backbones
import experiments.retrain_study.__main__ as study
from backbones.runs import RUN_LOGITS
from mura_env.logits import LogitsTable

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


def _argv(runs: list[Path], retrained: Path, out: Path) -> list[str]:
    return ["--runs", *map(str, runs), "--methods", "ce", "reinforce", "--epochs", "1",
            "--agent-seeds", "2", "--agent-steps", "4096", "--retrain-root", str(retrained),
            "--cache-dir", str(runs[0].parent / "cache"), "--out", str(out),
            "--n-bootstrap", "200"]


def test_study_compares_every_method_with_ce(runs: list[Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    argv = _argv(runs, tmp_path / "retrained", tmp_path / "out")
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
    # the ensembles fit nothing on valid: the same runs with other valid studies (labels
    # permuted; logits replaced) give the same fitted ensembles
    swapped = tmp_path / "swapped"
    for folder in [*runs, *(tmp_path / "retrained").iterdir()]:
        copy = swapped / folder.parent.name / folder.name
        shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("*.pth", "tb"))
        swap_valid(LogitsTable.load(folder / RUN_LOGITS)).save(copy / RUN_LOGITS)
    swapped_runs = [swapped / r.parent.name / r.name for r in runs]
    again = _argv(swapped_runs, swapped / "retrained", tmp_path / "out_swapped")
    assert study.main(again) == 0
    assert "python -m experiments.retrain " not in capsys.readouterr().out  # reused
    fitted = [pd.read_csv(folder / "fitted.csv") for folder in (out, tmp_path / "out_swapped")]
    assert len(fitted[0]) == 3 * 2 * len(study.ENSEMBLES)  # methods x tables x ensembles
    pd.testing.assert_frame_equal(*fitted)
    valid_scores = [pd.read_csv(f / "scores.csv")["value"] for f in (out, tmp_path / "out_swapped")]
    assert not valid_scores[0].equals(valid_scores[1])


def test_study_refuses_runs_it_cannot_use(runs: list[Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    argv = ["--runs", str(tmp_path / "missing"), "--retrain-root", str(tmp_path / "r"),
            "--out", str(tmp_path / "out")]
    assert study.main(argv) == 2
    assert "no such folder" in capsys.readouterr().err
    assert study.main(["--runs", str(runs[0]), "--methods", "dropout"]) == 2
    assert not (tmp_path / "out").exists()
