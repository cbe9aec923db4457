"""``experiments.worklist`` end to end on small stand-in tables (``--quick``)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from test_benchmark import STANDIN, standin_table

import experiments.attach_reader.__main__ as attach_reader
import experiments.worklist.__main__ as worklist
from mura_env.logits import LogitsTable
from mura_env.readers import READER_PROFILES
from mura_env.worklist.config import WorklistConfig

METHODS = {"ensemble_alone", "first_come_first_served", "myopic_threshold", "budget_paced", "dp",
           "part_skill_greedy", "hindsight", "oracle", "ppo", "native-ppo"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("worklist_tables")
    paths = [standin_table(t, draw=d).save(folder / f"reference_{t}.parquet")
             for t, d in STANDIN]
    assert attach_reader.main(["--table", *map(str, paths)]) == 0
    out = tmp_path_factory.mktemp("worklist") / "run"
    args = ["--tables", *map(str, paths), "--out", str(out), "--quick", "--workers", "1",
            "--no-progress", "--shift-size", "20", "--n-shifts", "4", "--steps", "ppo=512",
            "native-ppo=1024"]  # default agents and interface: native PPO and PPO, routing
    assert worklist.main(args) == 0
    return out


def test_writes_every_method_cell_and_file(finished: Path) -> None:
    for name in ("worklist.md", "worklist.csv", "readers.csv", "runs.csv", "config.json",
                 "worklist_accuracy.png"):
        assert (finished / name).stat().st_size > 0, name
    frame = pd.read_csv(finished / "worklist.csv")
    assert set(frame["method"]) == METHODS
    cells = frame.groupby(["scenario", "capacity"]).size()
    assert set(cells.index) == {(s, c) for s in ("emergency", "orthopaedic")
                                for c in (0.05, 0.1)}
    assert cells.eq(len(METHODS)).all()
    paced = frame[frame["method"] == "budget_paced"]
    assert (paced["accuracy_vs_budget_paced"] == 0).all()
    oracle = frame[frame["method"] == "oracle"]
    for _, row in oracle.iterrows():
        same = frame[(frame["scenario"] == row["scenario"])
                     & (frame["capacity"] == row["capacity"])]
        assert row["accuracy"] >= same["accuracy"].max() - 1e-12
    runs = pd.read_csv(finished / "runs.csv")
    for agent in ("ppo", "native-ppo"):  # tables x capacities x seeds x scenarios
        assert len(runs[runs["method"] == agent]) == 3 * 2 * 2 * 2
    config = json.loads((finished / "config.json").read_text())["resolved"]
    assert config["split_use"]["scores"].startswith("valid")
    assert config["readers"] == list(READER_PROFILES)
    assert config["agent_interface"] == {"action": "routing", "observe_gains": True}


def test_readers_never_exceed_capacity(finished: Path) -> None:
    reads = pd.read_csv(finished / "readers.csv")
    assert set(reads["reader"]) == set(READER_PROFILES)
    assert (reads["capacity_used"] <= 1.0 + 1e-12).all()
    text = (finished / "worklist.md").read_text()
    assert "## Does any RL agent beat the budget-paced rule?" in text and "smoke test" in text


def test_refuses_bad_settings(tmp_path: Path) -> None:
    bare = standin_table(0).save(tmp_path / "bare.parquet")  # no reader column
    assert worklist.main(["--tables", str(bare), "--out", str(tmp_path / "x"), "--quick"]) == 2
    assert worklist.main(["--scenarios", "night", "--out", str(tmp_path / "y")]) == 2
    assert worklist.main(["--capacities", "1.5", "--out", str(tmp_path / "z")]) == 2
    assert not any((tmp_path / name).exists() for name in ("x", "y", "z"))


def test_capacity_used_counts_the_reads_the_env_grants() -> None:
    # capacity 0.05 of a 50-study shift: the env grants floor(2.5 + 0.5) = 3 reads
    shift_size, capacity = 50, 0.05
    config = WorklistConfig(shift_size=shift_size, capacity=capacity)
    assert config.capacities(1).tolist() == [3]
    who = np.full((2, shift_size), -1)
    who[:, :3] = 0  # the reader spends all 3 reads in each of 2 shifts
    run = SimpleNamespace(scenario="emergency", capacity=capacity, method="budget_paced",
                          answered_by=who.ravel(), body_part_index=np.zeros(who.size, int))
    frame = worklist.reader_frame([run], ("radiologist_1",), shift_size)
    assert frame["reads_per_shift"].tolist() == [3.0]
    assert frame["capacity_used"].tolist() == [1.0]


def test_shift_positions_are_resampled_as_the_studies_of_each_data_draw(tmp_path: Path) -> None:
    paths = [standin_table(t, draw=d).save(tmp_path / f"t{t}.parquet") for t, d in STANDIN]
    sources = worklist.load_tables(paths)
    design = worklist.WorklistDesign.of(sources)
    assert design.study_set.tolist() == [0, 0, 1]  # tables 0 and 1 share their draw
    rng = np.random.default_rng(0)

    def run(table: int, rows: np.ndarray) -> SimpleNamespace:
        valid = sources[table].table.select(split="valid").studies
        parts = valid["body_part"].map(
            {p: i for i, p in enumerate(worklist.BODY_PARTS)}).to_numpy()
        return SimpleNamespace(table=table, study_index=rows,
                               label=valid["label"].to_numpy()[rows], body_part_index=parts[rows])

    n_valid = len(design.study_ids[0])
    shown = rng.integers(0, n_valid, 60)  # a shift draws studies with repeats
    # table 1 lists the same studies in another order: its rows point at the same studies
    order = {s: i for i, s in enumerate(design.study_ids[1])}
    runs = [run(0, shown), run(1, np.array([order[s] for s in design.study_ids[0][shown]])),
            run(2, shown)]
    valid = worklist.cell_valid(runs, design)
    assert valid.n_sets == 2
    np.testing.assert_array_equal(valid.study_index[0], valid.study_index[1])
    assert len(valid.set_parts[0]) == len(np.unique(shown))  # distinct studies, not positions


def test_a_worker_holds_one_object_per_table_content(tmp_path: Path) -> None:
    import pickle

    from experiments.worklist.runs import same_table

    path = standin_table(5, draw=0).save(tmp_path / "t.parquet")
    assert attach_reader.main(["--table", str(path)]) == 0
    table = worklist.load_tables([path])[0].table
    held = same_table(table)
    assert same_table(pickle.loads(pickle.dumps(table))) is held  # a job's pickled copy
    studies = table.studies.copy()
    column = f"reader_{table.reader_ids[0]}"
    studies[column] = 1 - studies[column]
    other = LogitsTable(studies, table.model_names, table.logits)  # the same logits, other reads
    assert same_table(other) is other
