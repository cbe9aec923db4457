"""``experiments.defer`` and ``experiments.attach_reader`` end to end on small stand-in tables."""

from __future__ import annotations

import json
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import t as t_dist
from test_benchmark import STANDIN, standin_table

import experiments.attach_reader.__main__ as attach_reader
import experiments.defer.__main__ as defer
from experiments.defer.report import COST_ZERO_NOTE, coverage_area, headline_cost
from mura_env.constants import BODY_PARTS
from mura_env.logits import LogitsTable
from mura_env.readers import DEFAULT_SHARING, READER_PROFILES, SimulatedReader

READERS = tuple(READER_PROFILES)


def with_difficulty(table: LogitsTable) -> LogitsTable:
    """``table`` with a ``difficulty`` column: a uniform draw fixed by each study's id."""
    ids = table.studies["study_id"]
    values = [np.random.default_rng(zlib.crc32(s.encode())).random() for s in ids]
    return table.with_difficulty(pd.DataFrame({"study_id": ids, "difficulty": values}))


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("defer_tables")
    paths = [with_difficulty(standin_table(t, draw=d)).save(folder / f"reference_{t}.parquet")
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


def test_attach_reader_adds_the_three_deterministic_radiologists(tables: list[Path]) -> None:
    table = LogitsTable.load(tables[0])
    assert table.reader_ids == READERS
    for reader in READERS:
        expected = SimulatedReader.profile(reader).reads(table.studies)
        np.testing.assert_array_equal(table.reads(reader), expected)
        record = table.provenance["readers"][reader]
        assert record["kind"] == "simulated" and record["sharing"] == DEFAULT_SHARING
        assert "arXiv:1712.06957" in record["source"]
    assert attach_reader.main(["--table", str(tables[0])]) == 2  # already there: --replace
    assert attach_reader.main(["--table", str(tables[0]), "--replace"]) == 0
    again = LogitsTable.load(tables[0])
    np.testing.assert_array_equal(again.reads("radiologist_3"), table.reads("radiologist_3"))


def test_attach_reader_without_difficulty_records_the_fallback(tmp_path: Path) -> None:
    path = standin_table(0).save(tmp_path / "plain.parquet")
    assert attach_reader.main(["--table", str(path), "--profiles", "radiologist_1"]) == 0
    table = LogitsTable.load(path)
    record = table.provenance["readers"]["radiologist_1"]
    assert record["sharing"] == 0.0 and "no difficulty column" in record["fallback"]
    np.testing.assert_array_equal(
        table.reads("radiologist_1"),
        SimulatedReader.profile("radiologist_1", sharing=0.0).reads(table.studies))


def test_writes_every_file_with_every_method_and_cost(finished: Path) -> None:
    for name in ("defer.md", "defer.csv", "per_table.csv", "runs.csv", "readers.csv",
                 "sensitivity.csv", "config.json", "coverage_accuracy.png",
                 "coverage_kappa.png", "sensitivity.png"):
        assert (finished / name).stat().st_size > 0, name
    frame = pd.read_csv(finished / "defer.csv")
    methods = {"never_defer", "always_defer", "global_threshold", "per_part_threshold",
               "gain_predictor", "oracle_deferral", "softmax-pg", "global_threshold@softmax-pg"}
    assert set(frame["method"]) == methods
    assert sorted(frame["cost"].unique()) == [0.0, 0.2]
    assert tuple(frame["reader"].unique()) == READERS
    runs = pd.read_csv(finished / "runs.csv")
    own = runs[runs["sharing"] == DEFAULT_SHARING]
    agent_runs = own[own["method"] == "softmax-pg"]
    assert len(agent_runs) == 3 * 3 * 2 * 2  # readers x tables x seeds x costs
    # the sensitivity study: radiologist_3 at cost 0 on reads made at each other sharing
    other = runs[runs["sharing"] != DEFAULT_SHARING]
    assert set(other["sharing"]) == {0.0, 0.9} and set(other["reader"]) == {"radiologist_3"}
    assert set(other["cost"]) == {0.0}
    assert len(other[other["method"] == "softmax-pg"]) == 2 * 3 * 2  # sharing x tables x seeds
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
    assert config["resolved"]["sensitivity"]["sharing"] == [DEFAULT_SHARING, 0.0, 0.9]


def test_reader_figures_and_the_sensitivity_study(finished: Path) -> None:
    readers = pd.read_csv(finished / "readers.csv")
    own = readers[readers["sharing"] == DEFAULT_SHARING]
    assert tuple(own["reader"]) == READERS
    assert readers[["members_tune", "stacking_valid"]].abs().le(1).all().all()
    sensitivity = pd.read_csv(finished / "sensitivity.csv")
    config = json.loads((finished / "config.json").read_text())["resolved"]["sensitivity"]
    assert set(sensitivity["method"]) == {config["method"], "softmax-pg", "oracle_deferral",
                                          "always_defer", "never_defer"}
    assert sorted(sensitivity["sharing"].unique()) == [0.0, DEFAULT_SHARING, 0.9]
    # the classical method was picked on tune: the best out-of-fold tune team accuracy at the
    # tables' own sharing
    frame = pd.read_csv(finished / "defer.csv")
    own_rows = frame[(frame["reader"] == "radiologist_3") & (frame["cost"] == config["cost"])
                     & (frame["sharing"] == DEFAULT_SHARING) & (frame["kind"] == "baseline")
                     & ~frame["method"].str.contains("@")
                     & ~frame["method"].isin(["always_defer", "never_defer"])]
    assert config["method"] == own_rows.sort_values("tune_accuracy")["method"].iloc[-1]
    # the reader alone keeps its accuracy level across sharing (same kappas, other studies)
    alone = sensitivity[sensitivity["method"] == "always_defer"]["accuracy"]
    assert alone.max() - alone.min() < 0.1
    text = (finished / "defer.md").read_text()
    for heading in ("## The readers", "## Every reader at cost 0.2",
                    "## Sensitivity to shared difficulty", "## Reader `radiologist_1`"):
        assert heading in text, heading
    assert COST_ZERO_NOTE in text  # the quick grid has cost 0: its rates are not findings


def test_the_sensitivity_study_runs_the_tables_own_reads_at_its_cost(tables: list[Path]) -> None:
    loaded = [LogitsTable.load(p) for p in tables]
    cfg = defer.resolve(defer.DeferConfig(costs=(0.1, 0.2), sharing=(0.0, 0.9), seeds=1,
                                          readers=READERS))
    variants, extended = defer.sensitivity_variants(cfg, loaded)
    assert variants.sharing == (DEFAULT_SHARING, 0.0, 0.9) and len(extended) == 9
    assert variants.own == {r: DEFAULT_SHARING for r in READERS}
    np.testing.assert_array_equal(  # a variant: the same reader made again at another sharing
        extended[3].reads("radiologist_3"),
        SimulatedReader.profile("radiologist_3", sharing=0.0).reads(loaded[0].studies))
    np.testing.assert_array_equal(extended[3].reads("radiologist_1"),
                                  loaded[0].reads("radiologist_1"))
    jobs = defer.make_jobs(cfg, 3, list(READERS), variants)
    at_study_cost = {(j.table, j.reader) for j in jobs if j.cost == cfg.sensitivity_cost}
    assert {(t, "radiologist_3") for t in range(9)} == at_study_cost  # own reads included
    skipped, same = defer.sensitivity_variants(replace(cfg, readers=("radiologist_1",)), loaded)
    assert "not among the readers" in skipped.skipped and len(same) == 3
    bare = [standin_table(0)]
    none, _ = defer.sensitivity_variants(cfg, bare)
    assert none.skipped


def test_the_headline_quotes_the_smallest_positive_cost() -> None:
    assert headline_cost([0.0, 0.005, 0.01, 0.3]) == 0.005
    assert headline_cost([0.2, 0.1]) == 0.1
    assert headline_cost([0.0]) == 0.0
    assert {0.005, 0.01} <= set(defer.DeferConfig().costs) and 0.0 in defer.DeferConfig().costs


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
    assert len(per_table) == len(frame) * 3  # one row per scenario x cost x method x table
    scenario = ["reader", "sharing", "cost", "method"]
    assert per_table.groupby(scenario).size().eq(3).all()
    assert per_table.columns[:9].tolist() == [*scenario, "kind", "table", "table_label",
                                              "table_seed", "data_seed"]
    first = per_table.drop_duplicates("table").sort_values("table")
    assert first["table_seed"].tolist() == [t for t, _ in STANDIN]
    assert first["data_seed"].tolist() == [d for _, d in STANDIN]
    assert first["study_set"].tolist() == [0, 0, 1]
    runs = pd.read_csv(finished / "runs.csv")
    cells = [*scenario, "table"]
    means = runs.groupby(cells)[["accuracy", "deferral_rate"]].mean()
    got = per_table.set_index(cells)
    np.testing.assert_allclose(got.loc[means.index, "accuracy"], means["accuracy"])
    np.testing.assert_allclose(got.loc[means.index, "deferral_rate"], means["deferral_rate"])
    for key in ("accuracy", "accuracy_vs_never_defer",
                "accuracy_vs_global_threshold@softmax-pg"):
        rows = per_table[per_table[key].notna()]
        assert ((rows[f"{key}_ci_low"] <= rows[key] + 1e-12)
                & (rows[key] <= rows[f"{key}_ci_high"] + 1e-12)).all(), key
    reader = per_table[per_table["method"] == "always_defer"]
    assert (reader[["accuracy_vs_always_defer", "accuracy_vs_always_defer_ci_low",
                    "accuracy_vs_always_defer_ci_high"]] == 0).all().all()
    for key, rows in per_table.groupby(scenario):
        row = frame.set_index(scenario).loc[key]
        values = rows.sort_values("table")["accuracy"].to_numpy()
        half = t_dist.ppf(0.975, 2) * values.std(ddof=1) / np.sqrt(3)
        assert row["accuracy_seed_ci_low"] == pytest.approx(values.mean() - half)
        assert row["accuracy_seed_ci_high"] == pytest.approx(values.mean() + half)
    text = (finished / "defer.md").read_text()
    assert "## Per table" in text and "seed-level 95% CI" in text
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
    assert defer.main(_args(tables, tmp_path / "z", "--readers", "nobody")) == 2
