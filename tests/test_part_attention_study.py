"""``python -m experiments.part_attention`` on a tiny synthetic draw: runs, reuse, report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import experiments.part_attention.__main__ as study

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_study_compares_the_two_models_on_each_seed(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    argv = ["--seeds", "0", "1", "--epochs", "1", "--image-size", "32", "--train-studies",
            "16", "--scale", "0.003", "--synthetic-dir", str(tmp_path / "syn"),
            "--cache-dir", str(tmp_path / "cache"), "--runs", str(tmp_path / "runs"),
            "--out", str(tmp_path / "out"), "--n-bootstrap", "200"]
    assert study.main(argv) == 0
    out = tmp_path / "out"
    scores = pd.read_csv(out / "scores.csv")
    diffs = pd.read_csv(out / "differences.csv")
    assert set(scores["method"]) == {study.PLAIN, study.PARTS}
    assert set(diffs["figure"]) == set(study.FIGURES)
    for key in study.FIGURES:
        value = scores.set_index(["method", "figure"])["value"]
        row = diffs[diffs["figure"] == key].iloc[0]
        assert row["difference"] == pytest.approx(value[study.PARTS, key]
                                                  - value[study.PLAIN, key])
        assert len(row["per_table"].split(";")) == 2
    text = (out / "part_attention.md").read_text()
    assert "kappa_SHOULDER" in text and "2 backbone seeds" in text
    # a finished seed's run is reused, not trained again
    logits = tmp_path / "runs" / "seed0" / "logits.parquet"
    before = logits.stat().st_mtime_ns
    capsys.readouterr()
    assert study.main(argv) == 0
    assert "pretrain_backbones" not in capsys.readouterr().out
    assert logits.stat().st_mtime_ns == before
