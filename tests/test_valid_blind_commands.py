"""Valid-blindness at the command level: every command that fits, trains or chooses anything
does so identically on two tables that are the same on ``train`` and ``tune`` and differ on
``valid`` (:func:`valid_swap.swap_valid`: labels permuted; logits, reads and difficulty
replaced). What each run fitted is compared through the fingerprints the commands write
(``runs.csv``'s ``fitted`` column, ``train_agent``'s ``fitted.json``) and the agents' tune
curves; only valid scores may differ. Upper references (the oracle, weights searched on valid)
read valid by design and are left out."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_benchmark import STANDIN, standin_table
from valid_swap import swap_valid

import experiments.attach_reader.__main__ as attach_reader
import experiments.benchmark.__main__ as benchmark
import experiments.compare.__main__ as compare
import experiments.defer.__main__ as defer
import experiments.reference_report.__main__ as reference_report
import experiments.train_agent.__main__ as train_agent
import experiments.worklist.__main__ as worklist
from mura_env import registered_env_ids
from mura_env.logits import LogitsTable

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: Env options of the train_agent runs (any env registered later runs with its defaults).
ENV_KWARGS = {"MuraDeferral-v0": ["defer_cost=0.05", "reader=radiologist_1"],
              "MuraWorklist-v0": ["scenario=emergency", "capacity=0.1", "shift_size=20"],
              "MuraTriage-v0": ["minutes=60.0", "masked_action=earliest"]}


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """``original``: three stand-in tables with the simulated radiologists; ``swapped``: the
    same tables with :func:`swap_valid` applied (one swap per data draw, so tables of a draw
    still share their valid studies), saved under the same names."""
    folders = {name: tmp_path_factory.mktemp(name) for name in ("original", "swapped")}
    original = [standin_table(t, draw=d).save(folders["original"] / f"reference_{t}.parquet")
                for t, d in STANDIN]
    assert attach_reader.main(["--table", *map(str, original)]) == 0
    swapped = []
    for path, (_, draw) in zip(original, STANDIN, strict=True):
        table = swap_valid(LogitsTable.load(path), seed=draw + 1)
        swapped.append(table.save(folders["swapped"] / path.name))
    return {"original": original, "swapped": swapped}


def _both(tmp_path: Path, tables: dict[str, list[Path]], run) -> dict[str, Path]:
    """Run ``run(table paths, out folder)`` on the original and the swapped tables."""
    outs = {}
    for name, paths in tables.items():
        outs[name] = tmp_path / name
        assert run(paths, outs[name]) == 0
    return outs


def _fitted(folder: Path, keys: list[str]) -> pd.DataFrame:
    """``runs.csv``'s ``keys`` and ``fitted`` columns of every run but the upper references,
    sorted."""
    runs = pd.read_csv(folder / "runs.csv")
    assert runs["fitted"].str.len().eq(64).all()
    runs = runs[runs["kind"] != "reference"]
    return runs[[*keys, "fitted"]].sort_values(keys).reset_index(drop=True)


def _valid_differs(folders: dict[str, Path], column: str = "accuracy") -> bool:
    """Whether some valid score differs between the two runs (the swap reached valid)."""
    a, b = (pd.read_csv(f / "runs.csv")[column] for f in folders.values())
    return not a.equals(b)


def test_benchmark_fits_and_trains_nothing_on_valid(tables, tmp_path: Path) -> None:
    outs = _both(tmp_path, tables, lambda paths, out: benchmark.main([
        "--tables", *map(str, paths), "--out", str(out), "--quick", "--workers", "1",
        "--no-progress", "--seeds", "1", "--algos", "softmax-pg", "ppo",
        "--steps", "softmax-pg=1024", "ppo=512"]))
    keys = ["table", "seed", "method"]
    pd.testing.assert_frame_equal(_fitted(outs["original"], keys), _fitted(outs["swapped"], keys))
    curves = [pd.read_csv(f / "curves.csv").drop(columns="wall_time") for f in outs.values()]
    assert len(curves[0]) > 0
    pd.testing.assert_frame_equal(*curves)
    assert _valid_differs(outs)


def test_compare_fits_and_trains_nothing_on_valid(tables, tmp_path: Path) -> None:
    pair = {name: paths[:1] for name, paths in tables.items()}
    outs = _both(tmp_path, pair, lambda paths, out: compare.main([
        "--logits", str(paths[0]), "--seeds", "1", "--algos", "softmax-pg",
        "--total-timesteps", "1024", "--n-bootstrap", "10", "--workers", "1", "--no-progress",
        "--out", str(out)]))
    keys = ["table", "seed", "method"]
    pd.testing.assert_frame_equal(_fitted(outs["original"], keys), _fitted(outs["swapped"], keys))
    assert _valid_differs(outs)


@pytest.mark.parametrize("env_id", registered_env_ids())
def test_train_agent_fits_and_trains_nothing_on_valid(env_id: str, tables,
                                                      tmp_path: Path) -> None:
    pair = {name: paths[:1] for name, paths in tables.items()}
    extra = ["--env-kwargs", *ENV_KWARGS[env_id]] if env_id in ENV_KWARGS else []
    outs = _both(tmp_path, pair, lambda paths, out: train_agent.main([
        "--env", env_id, "--algo", "ppo", "--steps", "ppo=512", "--logits", str(paths[0]),
        "--out", str(out), "--no-tensorboard", *extra]))
    fitted = [json.loads((f / "fitted.json").read_text()) for f in outs.values()]
    assert fitted[0]["agent"] == fitted[1]["agent"]
    methods = [{name: m["fitted"] for name, m in f["methods"].items() if m["kind"] != "reference"}
               for f in fitted]
    assert methods[0] == methods[1]
    if env_id in (*ENV_KWARGS, "MuraWeighting-v0"):  # the envs with classical methods
        assert len(methods[0]) >= 3
    scores = [json.loads((f / "metrics.json").read_text())["accuracy"] for f in outs.values()]
    assert scores[0] != scores[1]


def test_defer_fits_and_trains_nothing_on_valid(tables, tmp_path: Path) -> None:
    pair = {name: paths[:2] for name, paths in tables.items()}
    outs = _both(tmp_path, pair, lambda paths, out: defer.main([
        "--tables", *map(str, paths), "--out", str(out), "--quick", "--workers", "1",
        "--no-progress", "--seeds", "1", "--no-sensitivity", "--costs", "0", "0.1",
        "--readers", "radiologist_1", "--steps", "softmax-pg=1024"]))
    keys = ["table", "seed", "method", "cost", "reader"]
    original, swapped = (_fitted(f, keys) for f in outs.values())
    assert set(original["method"]) >= {"global_threshold", "softmax-pg",
                                       "global_threshold@softmax-pg"}
    pd.testing.assert_frame_equal(original, swapped)
    assert _valid_differs(outs)


def test_worklist_fits_and_trains_nothing_on_valid(tables, tmp_path: Path) -> None:
    pair = {name: paths[:2] for name, paths in tables.items()}
    outs = _both(tmp_path, pair, lambda paths, out: worklist.main([
        "--tables", *map(str, paths), "--out", str(out), "--quick", "--workers", "1",
        "--no-progress", "--shift-size", "20", "--n-shifts", "4", "--seeds", "1",
        "--capacities", "0.1", "--steps", "ppo=512", "native-ppo=1024", "--agents", "ppo",
        "native-ppo", "--action", "routing", "--observe-gains"]))
    keys = ["table", "seed", "method", "scenario", "capacity"]
    original, swapped = (_fitted(f, keys) for f in outs.values())
    assert set(original["method"]) >= {"budget_paced", "myopic_threshold", "ppo", "native-ppo"}
    pd.testing.assert_frame_equal(original, swapped)
    assert _valid_differs(outs)


def test_reference_report_judges_the_design_on_tune_alone(tables, tmp_path: Path) -> None:
    codes, rows = [], []
    for name, paths in tables.items():
        out = tmp_path / name
        codes.append(reference_report.main(["--logits", *map(str, paths), "--valid-check",
                                            "--n-bootstrap", "200", "--out", str(out)]))
        frame = pd.read_csv(out / "structure.csv")
        frame["table"] = frame["table"].map(lambda p: Path(p).name)
        rows.append(frame)
    assert codes[0] == codes[1]  # the bars are judged on tune
    tune = [r[r["split"] == "tune"].reset_index(drop=True) for r in rows]
    assert len(tune[0]) == len(tables["original"])
    pd.testing.assert_frame_equal(*tune)
    valid = [r[r["split"] == "valid"].reset_index(drop=True) for r in rows]
    assert not valid[0].equals(valid[1])
