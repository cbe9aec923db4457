"""The main job's command line and the config-as-dataclass helpers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from experiments import demo
from mura_env.common.config_cli import parse_config


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


@dataclass
class _Cfg:
    path: Path = field(metadata={"help": "a path"})
    rate: float = 0.5
    flag: bool = False
    names: tuple[str, ...] = ("a", "b")


def test_parse_config_types() -> None:
    cfg = parse_config(_Cfg, ["--path", "x/y", "--rate", "2", "--flag", "--names", "c", "d"])
    assert cfg == _Cfg(path=Path("x/y"), rate=2.0, flag=True, names=("c", "d"))
    assert parse_config(_Cfg, ["--path", "p"]) == _Cfg(path=Path("p"))
    with pytest.raises(SystemExit):
        parse_config(_Cfg, [])  # --path is required


def test_demo_chains_pretrain_into_compare(tmp_path: Path, monkeypatch) -> None:
    calls: dict[str, list[str]] = {}
    monkeypatch.setattr(demo.pretrain_backbones, "main",
                        lambda argv: calls.setdefault("pretrain", argv) and 0)
    monkeypatch.setattr(demo.compare, "main", lambda argv: calls.setdefault("compare", argv)
                        and 0)
    pre = tmp_path / "pre"
    argv = ["--data-dir", str(tmp_path / "data"), "--scale", "0.002", "--workers", "1",
            "--out", str(tmp_path / "run"), "--pretrain-out", str(pre), "--seeds", "2",
            "--compare-out", str(tmp_path / "cmp")]
    assert demo.main(argv) == 0
    assert calls["pretrain"][calls["pretrain"].index("--out") + 1] == str(pre)
    assert calls["compare"] == ["--logits", str(pre / "logits.parquet"), "--seeds", "2",
                                "--out", str(tmp_path / "cmp")]
    with pytest.raises(SystemExit, match="valid: data, pretrain, compare"):
        demo.main(argv + ["--stages", "agents"])
