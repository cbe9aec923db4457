"""``experiments.triage`` end to end on small stand-in tables (``--quick``): every rule and agent
of every cell, its figures as the rooms give them, valid read for the final figures only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_benchmark import STANDIN, standin_table
from valid_swap import swap_valid

import experiments.attach_reader.__main__ as attach_reader
import experiments.triage.__main__ as triage
from experiments.triage.runs import RULES
from mura_env.logits import LogitsTable

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("triage_tables")
    paths = [standin_table(t, draw=d).save(folder / f"t{t}.parquet") for t, d in STANDIN]
    assert attach_reader.main(["--table", *map(str, paths)]) == 0
    return paths


def run(paths: list[Path], out: Path, *extra: str) -> Path:
    assert triage.main(["--tables", *map(str, paths), "--out", str(out), "--quick",
                        "--no-progress", "--workers", "1", *extra]) == 0
    return out


def test_writes_every_rule_of_every_cell(paths: list[Path], tmp_path: Path) -> None:
    out = run(paths, tmp_path / "run", "--rules-only")
    for name in ("triage.md", "triage.csv", "runs.csv", "config.json", "waits_by_hour.csv",
                 "waits_by_hour.png"):
        assert (out / name).stat().st_size > 0, name
    hours = pd.read_csv(out / "waits_by_hour.csv")  # --quick: shifts of 120 minutes
    assert len(hours) == 4 * len(RULES) * 2 and set(hours["hour"]) == {0, 1}
    summary = pd.read_csv(out / "triage.csv")
    cells = {("steady", 0.8), ("steady", 0.9), ("surge", 0.8), ("surge", 0.9)}
    assert {(p, load) for p, load in zip(summary["profile"], summary["load"],
                                         strict=True)} == cells
    for _, cell in summary.groupby(["profile", "load"]):
        assert cell["rule"].tolist() == list(RULES)
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == len(STANDIN) * len(cells) * len(RULES)
    fifo = runs[runs["rule"] == "first_in_first_out"]
    assert (fifo["minutes_saved_abnormal"] == 0).all()
    mean = runs.groupby(["profile", "load", "rule"], sort=False)["cost_per_shift"].mean()
    np.testing.assert_allclose(summary["cost_per_shift"], mean.to_numpy())
    c_mu = summary[summary["rule"] == "c_mu"]
    assert (c_mu["cost_vs_c_mu"] == 0).all()
    # three backbone trainings among the stand-in tables: every cell has a seed-level interval
    others = summary[summary["rule"] != "first_in_first_out"]
    assert np.isfinite(others[["cost_vs_fifo_seed_ci_low", "cost_vs_fifo_seed_ci_high"]]).all(
        axis=None)
    config = json.loads((out / "config.json").read_text())["resolved"]
    assert config["split_use"]["scores"].startswith("valid")


def test_rules_are_fitted_on_tune_alone(paths: list[Path], tmp_path: Path) -> None:
    a = pd.read_csv(run(paths[:1], tmp_path / "a", "--profiles", "surge", "--loads", "0.9")
                    / "runs.csv")
    swapped = swap_valid(LogitsTable.load(paths[0])).save(tmp_path / "swapped.parquet")
    b = pd.read_csv(run([swapped], tmp_path / "b", "--profiles", "surge", "--loads", "0.9")
                    / "runs.csv")
    assert a["rule"].tolist() == ["native-ppo", *RULES]
    for column in ("threshold", "exponent", "fitted"):  # what was fitted or trained does not
        np.testing.assert_array_equal(a[column].to_numpy(), b[column].to_numpy())  # move
    assert not np.array_equal(a["cost_per_shift"], b["cost_per_shift"])  # valid did
    agent = a[a["kind"] == "agent"].iloc[0]
    assert agent["train_time"] > 0 and np.isfinite(agent["tune_cost_per_shift"])
    summary = pd.read_csv(tmp_path / "a" / "triage.csv")
    best = a[a["rule"].isin(["server_aware_c_mu", "tuned_index"])]["cost_per_shift"].min()
    np.testing.assert_allclose(summary["cost_vs_best_index"],
                               100 * (summary["cost_per_shift"] / best - 1))
    assert "native-ppo (agent, 1 seeds)" in (tmp_path / "a" / "triage.md").read_text()


def test_a_deadline_costs_the_late_minutes_of_abnormal_studies(paths: list[Path],
                                                               tmp_path: Path) -> None:
    plain = pd.read_csv(run(paths[:1], tmp_path / "plain", "--rules-only") / "runs.csv")
    late = pd.read_csv(run(paths[:1], tmp_path / "late", "--deadline", "0", "--rules-only")
                       / "runs.csv")
    fixed = plain["rule"].isin(["first_in_first_out", "flag_first", "by_probability", "c_mu",
                                "clairvoyant"])  # rules whose choices do not read the costs
    assert (late["cost_per_shift"][fixed] > plain["cost_per_shift"][fixed]).all()
    # the same shifts either way: the waits of first in, first out do not depend on costs
    fifo = [frame[frame["rule"] == "first_in_first_out"]["mean_wait_abnormal"].to_numpy()
            for frame in (plain, late)]
    np.testing.assert_array_equal(*fifo)
    config = json.loads((tmp_path / "late" / "config.json").read_text())["resolved"]
    assert config["deadline"] == 0 and config["late_cost"] == 10


def test_refuses_bad_settings(tmp_path: Path) -> None:
    assert triage.main(["--profiles", "night", "--out", str(tmp_path / "x")]) == 2
    assert triage.main(["--loads", "0", "--out", str(tmp_path / "y"), "--quick"]) == 2
    assert triage.main(["--deadline", "-5", "--out", str(tmp_path / "z"), "--quick"]) == 2
    assert triage.main(["--agents", "nope", "--out", str(tmp_path / "w"), "--quick"]) == 2
    assert not any((tmp_path / name).exists() for name in ("x", "y", "z", "w"))
