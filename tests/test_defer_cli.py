"""``experiments.defer`` and ``experiments.attach_reader`` end to end on small stand-in tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import t as t_dist
from test_benchmark import STANDIN, standin_table

from experiments.deferral import attach_reader, defer
from experiments.deferral.defer_report import coverage_area
from mura_env.constants import BODY_PARTS
from mura_env.logits import LogitsTable
from mura_env.readers import SimulatedReader


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("defer_tables")
    paths = [standin_table(t, draw=d).save(folder / f"reference_{t}.parquet")
             for t, d in STANDIN]  # tables 0 and 1 share their valid studies, 2 has others
    assert attach_reader.main(["--table", *map(str, paths)]) == 0
    return paths


def _args(tables: list[Path], out: Path, *extra: str) -> list[str]:
    return ["--tables", *map(str, tables), "--out", str(out), "--quick", "--workers", "1",
            "--no-progress", "--seeds", "2", *extra]


@pytest.fixture(scope="module")
def finished(tables: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("defer") / "run"
    assert defer.main(_args(tables, out)) == 0
    return out


def test_attach_reader_adds_the_deterministic_simulated_reads(tables: list[Path]) -> None:
    table = LogitsTable.load(tables[0])
    assert table.reader_ids == ("simulated",)
    expected = SimulatedReader.default().reads(table.studies)
    np.testing.assert_array_equal(table.reads("simulated"), expected)
    assert table.provenance["reader"]["kind"] == "simulated"
    assert attach_reader.main(["--table", str(tables[0])]) == 2  # already there: --replace
    assert attach_reader.main(["--table", str(tables[0]), "--replace"]) == 0
    np.testing.assert_array_equal(LogitsTable.load(tables[0]).reads("simulated"), expected)


def test_writes_every_file_with_every_method_and_cost(finished: Path) -> None:
    for name in ("defer.md", "defer.csv", "per_table.csv", "runs.csv", "config.json",
                 "coverage_accuracy.png",
                 "coverage_kappa.png"):
        assert (finished / name).stat().st_size > 0, name
    frame = pd.read_csv(finished / "defer.csv")
    methods = {"never_defer", "always_defer", "global_threshold", "per_part_threshold",
               "gain_predictor", "oracle_deferral", "softmax-pg", "ppo",
               "global_threshold@softmax-pg", "global_threshold@ppo"}
    assert set(frame["method"]) == methods
    assert sorted(frame["cost"].unique()) == [0.0, 0.2]
    runs = pd.read_csv(finished / "runs.csv")
    agent_runs = runs[runs["method"] == "ppo"]
    assert len(agent_runs) == 3 * 2 * 2  # tables x seeds x costs
    assert (runs.loc[runs["method"] == "always_defer", "deferral_rate"] == 1.0).all()
    per_part = runs.loc[runs["method"] == "always_defer",
                        [f"deferral_rate_{p}" for p in BODY_PARTS]]
    assert (per_part == 1.0).all().all()
    oracle = runs[runs["method"] == "oracle_deferral"]
    parts = oracle[[f"deferral_rate_{p}" for p in BODY_PARTS]].to_numpy()
    # the overall rate is the per-part rates weighted by each part's valid studies (20 each)
    np.testing.assert_allclose(oracle["deferral_rate"], parts.mean(1))
    assert (runs.loc[runs["method"] == "never_defer", "deferral_rate"] == 0.0).all()
    config = json.loads((finished / "config.json").read_text())
    assert config["resolved"]["split_use"]["scores"] == "valid"
    assert config["resolved"]["study_sets"] == [0, 0, 1]


def test_intervals_and_comparisons_are_consistent(finished: Path) -> None:
    frame = pd.read_csv(finished / "defer.csv")
    for key in ("accuracy", "kappa"):
        assert (frame[f"{key}_ci_low"] <= frame[key] + 1e-12).all()
        assert (frame[key] <= frame[f"{key}_ci_high"] + 1e-12).all()
    reader = frame[frame["method"] == "always_defer"]
    assert (reader["accuracy_vs_always_defer"] == 0).all()
    oracle = frame[frame["method"] == "oracle_deferral"]
    assert (oracle["accuracy_vs_never_defer"] >= 0).all()
    for _, rows in frame.groupby("cost"):
        area = coverage_area(rows, "oracle_deferral")
        assert 0 < area <= 1
    text = (finished / "defer.md").read_text()
    assert "## RL agents against confidence thresholding at equal deferral rate" in text
    assert "smoke test" in text


def test_per_table_rows_and_table_level_intervals(finished: Path) -> None:
    frame = pd.read_csv(finished / "defer.csv")
    per_table = pd.read_csv(finished / "per_table.csv")
    assert len(per_table) == len(frame) * 3  # one row per cost x method x table
    assert per_table.groupby(["cost", "method"]).size().eq(3).all()
    assert per_table.columns[:7].tolist() == ["cost", "method", "kind", "table", "table_label",
                                              "table_seed", "data_seed"]
    first = per_table.drop_duplicates("table").sort_values("table")
    assert first["table_seed"].tolist() == [t for t, _ in STANDIN]
    assert first["data_seed"].tolist() == [d for _, d in STANDIN]
    assert first["study_set"].tolist() == [0, 0, 1]
    runs = pd.read_csv(finished / "runs.csv")
    cells = ["cost", "method", "table"]
    means = runs.groupby(cells)[["accuracy", "deferral_rate"]].mean()
    got = per_table.set_index(cells)
    np.testing.assert_allclose(got.loc[means.index, "accuracy"], means["accuracy"])
    np.testing.assert_allclose(got.loc[means.index, "deferral_rate"], means["deferral_rate"])
    for key in ("accuracy", "accuracy_vs_never_defer", "accuracy_vs_global_threshold@ppo"):
        rows = per_table[per_table[key].notna()]
        assert ((rows[f"{key}_ci_low"] <= rows[key] + 1e-12)
                & (rows[key] <= rows[f"{key}_ci_high"] + 1e-12)).all(), key
    reader = per_table[per_table["method"] == "always_defer"]
    assert (reader[["accuracy_vs_always_defer", "accuracy_vs_always_defer_ci_low",
                    "accuracy_vs_always_defer_ci_high"]] == 0).all().all()
    for (cost, method), rows in per_table.groupby(["cost", "method"]):
        row = frame[(frame["cost"] == cost) & (frame["method"] == method)].iloc[0]
        values = rows.sort_values("table")["accuracy"].to_numpy()
        half = t_dist.ppf(0.975, 2) * values.std(ddof=1) / np.sqrt(3)
        assert row["accuracy_table_ci_low"] == pytest.approx(values.mean() - half)
        assert row["accuracy_table_ci_high"] == pytest.approx(values.mean() + half)
    text = (finished / "defer.md").read_text()
    assert "## Per table" in text and "table-level 95% CI" in text
    assert "t2 (seed 2, data 1)" in text and "Neither interval covers" in text


def test_refuses_tables_without_a_reader_and_an_existing_out(tmp_path: Path,
                                                             tables: list[Path]) -> None:
    bare = standin_table(0).save(tmp_path / "bare.parquet")
    assert defer.main(_args([bare], tmp_path / "x")) == 2
    assert not (tmp_path / "x").exists()
    taken = tmp_path / "taken"
    taken.mkdir()
    assert defer.main(_args(tables, taken)) == 2
    assert defer.main(_args(tables, tmp_path / "y", "--costs", "-1")) == 2
    assert defer.main(_args(tables, tmp_path / "z", "--reader", "nobody")) == 2
