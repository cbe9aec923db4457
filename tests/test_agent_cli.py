"""The command lines: ``experiments.train_agent`` and ``experiments.compare`` on tiny tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from agent_fixtures import specialist_table

import experiments.compare.__main__ as compare
import experiments.train_agent.__main__ as train_agent
from agents.weighting.baselines import all_baselines
from experiments.common.logits_source import newest_pretrain_logits
from mura_env.constants import BODY_PARTS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def table_path(tmp_path_factory):
    return specialist_table(per_cell=3).save(tmp_path_factory.mktemp("t") / "table.parquet")


def test_train_agent_writes_its_run_folder(table_path, tmp_path, capsys):
    out = tmp_path / "run"
    rc = train_agent.main(["--algo", "softmax-pg", "--logits", str(table_path),
                           "--total-timesteps", "40960", "--n-envs", "2048", "--seed", "1",
                           "--per-study",
                           "--n-bootstrap", "50", "--out", str(out)])
    assert rc == 0
    for name in ("agent.json", "model.pt", "config.json", "metrics.json", "metrics.csv",
                 "baselines.csv"):
        assert (out / name).is_file(), name
    assert list((out / "tb").glob("events.out.tfevents.*"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "valid"
    for key in ("accuracy", "kappa", "auroc"):
        assert isinstance(metrics[key], float)
    assert set(metrics["per_body_part"]) == set(BODY_PARTS)
    assert metrics["accuracy"] >= 0.9  # the specialists table is easy for per-part weights
    config = json.loads((out / "config.json").read_text())
    assert config["algo"] == "softmax-pg" and config["seed"] == 1 and config["per_study"]
    # the resolved settings, not the command line's None defaults
    assert config["total_timesteps"] == 40960 and config["n_envs"] == 2048
    assert config["eval_every"] == 4096 and config["learning_rate"] == 0.05
    assert config["out"] == str(out)
    assert config["hyperparameters"]["algorithm"]["per_study"] is True
    assert config["hyperparameters"]["algorithm"]["num_envs"] == 2048
    from agents.core.saved import load_agent
    assert load_agent(out).model.net is not None  # --per-study reached the agent
    assert config["logits"] == str(table_path)
    printed = capsys.readouterr().out
    assert "stacking" in printed and "softmax-pg" in printed
    frame = pd.read_csv(out / "baselines.csv")
    assert len(frame) == 1 + len(all_baselines())


def test_train_agent_config_is_resolved_before_training(table_path, tmp_path):
    """Settings are resolved (SB3's own defaults included) and checked before any output."""
    from agents.core.algos import get_algo
    from agents.core.sb3 import sb3_settings
    out = tmp_path / "run"
    assert train_agent.main(["--algo", "ppo", "--logits", str(table_path), "--total-timesteps",
                             "0", "--out", str(out)]) == 2  # rejected: nothing written
    assert not out.exists()
    hyper = train_agent.resolve_hyperparameters("ppo")
    assert hyper["learning_rate"] == 3e-4 and hyper["n_envs"] == 8
    assert hyper["algorithm"] == sb3_settings(get_algo("ppo"))
    assert hyper["algorithm"]["n_steps"] == 256 and hyper["algorithm"]["gamma"] == 0.99


def test_one_env_softmax_pg_is_a_clear_error(table_path, tmp_path, capsys):
    rc = train_agent.main(["--algo", "softmax-pg", "--logits", str(table_path), "--n-envs", "1",
                           "--out", str(tmp_path / "run")])
    assert rc == 2
    assert "--n-envs" in capsys.readouterr().err


def test_train_agent_reports_a_missing_table(tmp_path, capsys):
    rc = train_agent.main(["--logits", str(tmp_path / "nope.parquet"), "--out",
                           str(tmp_path / "o")])
    assert rc == 2
    assert "nope.parquet" in capsys.readouterr().err


def test_compare_is_the_benchmark_on_one_table(table_path, tmp_path, capsys):
    out = tmp_path / "cmp"
    rc = compare.main(["--logits", str(table_path), "--seeds", "2", "--algos", "softmax-pg",
                       "ppo", "--total-timesteps", "2048", "--n-bootstrap", "50",
                       "--workers", "1", "--no-progress", "--out", str(out)])
    assert rc == 0
    frame = pd.read_csv(out / "benchmark.csv")
    names = [b.name for b in all_baselines()]
    assert frame["method"].tolist() == ["softmax-pg", "ppo", *names]
    agents = frame[frame.kind == "agent"]
    assert (agents["n_runs"] == 2).all()  # one table x 2 seeds
    assert agents.set_index("method").loc["ppo", "env_steps"] == 2048
    for key in ("accuracy", "kappa", "accuracy_vs_stacking", "poi_vs_stacking"):
        assert ((frame[f"{key}_ci_low"] <= frame[key] + 1e-12)
                & (frame[key] <= frame[f"{key}_ci_high"] + 1e-12)).all(), key
    assert {f"kappa_{p}" for p in BODY_PARTS} <= set(frame.columns)
    methods = frame.set_index("method")
    uniform, stacking = methods.loc["uniform"], methods.loc["stacking"]
    assert uniform[["accuracy_vs_uniform", "accuracy_vs_uniform_ci_low",
                    "accuracy_vs_uniform_ci_high"]].tolist() == [0.0, 0.0, 0.0]
    assert stacking["accuracy_vs_uniform"] == pytest.approx(stacking["accuracy"]
                                                            - uniform["accuracy"])
    assert methods.loc["oracle", "kind"] == "reference"
    runs = pd.read_csv(out / "runs.csv")
    assert (runs["table"] == 0).all() and (runs["method"] == "ppo").sum() == 2
    assert runs.groupby("method")["accuracy"].mean().loc["ppo"] == pytest.approx(
        methods.loc["ppo", "accuracy"])
    md = (out / "benchmark.md").read_text()
    assert md.startswith(f"# {compare.TITLE}") and "1 table (" in md
    assert "| oracle (upper reference) | reference |" in md and "synthetic data" in md
    for png in ("accuracy.png", "kappa_per_part.png", "improvement.png", "tune_curves.png"):
        assert (out / png).read_bytes()[:8] == PNG_MAGIC
    assert (out / "agents" / "table0_ppo_seed1" / "agent.json").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["seeds"] == 2 and config["logits"] == str(table_path)
    assert config["steps"] == ["softmax-pg=2048", "ppo=2048"]
    assert "SYNTHETIC" in capsys.readouterr().out


def test_compare_takes_its_env_options_to_the_runs(table_path, tmp_path):
    out = tmp_path / "cmp"
    assert compare.main(["--logits", str(table_path), "--seeds", "1", "--algos", "softmax-pg",
                         "--total-timesteps", "1024", "--n-bootstrap", "10", "--workers",
                         "1", "--no-progress", "--reward", "signed", "--temperature", "2.0",
                         "--out", str(out)]) == 0
    saved = json.loads((out / "agents" / "table0_softmax-pg_seed0" / "agent.json").read_text())
    env = json.dumps(saved)
    assert '"reward": "signed"' in env and '"temperature": 2.0' in env


def test_compare_refuses_an_unknown_algo_a_second_table_and_a_double_budget(tmp_path, capsys,
                                                                            table_path):
    assert compare.main(["--algos", "dqn", "--out", str(tmp_path / "a")]) == 2
    assert "valid: softmax-pg" in capsys.readouterr().err
    assert compare.main(["--tables", str(table_path), "--out", str(tmp_path / "b")]) == 2
    assert "--logits" in capsys.readouterr().err
    assert compare.main(["--total-timesteps", "10", "--steps", "ppo=10",
                         "--out", str(tmp_path / "c")]) == 2
    assert "once" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in "abc")


def test_newest_pretrain_logits_is_the_newest(tmp_path):
    assert newest_pretrain_logits(tmp_path) is None
    table = specialist_table(per_cell=1)
    old = table.save(tmp_path / "a" / "logits.parquet")
    new = table.save(tmp_path / "b" / "logits.parquet")
    import os
    os.utime(old, (1e9, 1e9))
    assert newest_pretrain_logits(tmp_path) == new


def test_without_runs_reference_table_0_is_used(tmp_path):
    from experiments.common.logits_source import resolve_table
    from mura_env.logits import LogitsTable
    from mura_env.logits.reference import reference_table_path
    from mura_env.logits.study_set import StudySet

    table, path = resolve_table(None, root=tmp_path)
    assert path == reference_table_path(0)
    builtin = LogitsTable.load(reference_table_path(0))
    assert table.model_names == builtin.model_names
    np.testing.assert_array_equal(table.logits, builtin.logits)
    assert StudySet.select(table, "valid").n_studies == int(
        (builtin.studies["split"] == "valid").sum())


def test_train_agent_with_a_defer_cost_scores_the_team_beside_the_deferral_methods(
        table_path, tmp_path):
    from agents.deferral.methods import all_deferral_methods
    from mura_env.logits import LogitsTable

    bare = tmp_path / "bare"
    assert train_agent.main(["--logits", str(table_path), "--defer-cost", "0.1",
                             "--out", str(bare)]) == 2  # no reader column: refused, named
    assert not bare.exists()
    with_reader = LogitsTable.load(table_path).with_simulated_reader()
    path = with_reader.save(tmp_path / "with_reader.parquet")
    out = tmp_path / "run"
    assert train_agent.main(["--algo", "softmax-pg", "--logits", str(path), "--defer-cost",
                             "0.1", "--total-timesteps", "4096", "--n-envs", "512",
                             "--no-tensorboard", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "valid" and metrics["defer_cost"] == 0.1
    assert 0.0 <= metrics["deferral_rate"] <= 1.0
    frame = pd.read_csv(out / "baselines.csv").set_index("method")
    assert list(frame.index) == ["softmax-pg", *(m.name for m in all_deferral_methods())]
    assert frame.loc["never_defer", "deferral_rate"] == 0.0
    assert frame.loc["always_defer", "deferral_rate"] == 1.0
    assert frame.loc["oracle_deferral", "kind"] == "reference"
    classical = frame[frame["kind"] == "baseline"]  # they share the oracle's stacking ensemble
    assert frame.loc["oracle_deferral", "accuracy"] >= classical["accuracy"].max()
