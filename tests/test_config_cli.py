"""Configuration dataclasses on the command line and on disk (mura_env.common.config_cli)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mura_env.common.config_cli import parse_config, save_config


@dataclass
class _Cfg:
    path: Path = field(metadata={"help": "a path"})
    rate: float = 0.5
    flag: bool = False
    names: tuple[str, ...] = ("a", "b")


def test_parse_config_converts_types_and_requires_fields_without_default() -> None:
    cfg = parse_config(_Cfg, ["--path", "x/y", "--rate", "2", "--flag", "--names", "c", "d"])
    assert cfg == _Cfg(path=Path("x/y"), rate=2.0, flag=True, names=("c", "d"))
    assert parse_config(_Cfg, ["--path", "p"]) == _Cfg(path=Path("p"))
    with pytest.raises(SystemExit):
        parse_config(_Cfg, [])  # --path is required


def test_save_config_writes_values_and_extra_keys_as_json(tmp_path: Path) -> None:
    cfg = _Cfg(path=Path("x/y"), flag=True)
    save_config(cfg, tmp_path / "config.json", extra={"device": "cpu"})
    assert json.loads((tmp_path / "config.json").read_text()) == {
        "path": "x/y", "rate": 0.5, "flag": True, "names": ["a", "b"], "device": "cpu"}
