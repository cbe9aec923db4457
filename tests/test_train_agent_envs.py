"""``python -m experiments.train_agent --env ID`` on every registered env: it trains, saves and
reloads an agent that answers valid as the run scored it; env options come as ``--env-kwargs``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_benchmark import standin_table

import experiments.attach_reader.__main__ as attach_reader
import experiments.train_agent.__main__ as train_agent
from agents.core.saved import load_agent
from agents.core.train import policy_scores
from mura_env import registered_env_ids
from mura_env.logits import LogitsTable

#: Env options per env of the tests (any env registered later trains with its defaults).
ENV_KWARGS = {"MuraDeferral-v0": ["defer_cost=0.05", "reader=radiologist_1"],
              "MuraWorklist-v0": ["scenario=emergency", "capacity=0.05", "shift_size=20"],
              "MuraTriage-v0": ["minutes=60.0", "masked_action=earliest"]}


@pytest.fixture(scope="module")
def table_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = standin_table(0).save(tmp_path_factory.mktemp("envs") / "table.parquet")
    assert attach_reader.main(["--table", str(path)]) == 0
    return path


@pytest.mark.parametrize("algo", ["ppo", "native-ppo"])
@pytest.mark.parametrize("env_id", registered_env_ids())
def test_trains_saves_and_reloads_on_every_env(env_id: str, algo: str, table_path: Path,
                                               tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["--env", env_id, "--algo", algo, "--steps", f"{algo}=512", "--logits",
            str(table_path), "--out", str(out), "--no-tensorboard", "--n-envs", "16"]
    if env_id in ENV_KWARGS:
        argv += ["--env-kwargs", *ENV_KWARGS[env_id]]
    assert train_agent.main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["env_id"] == env_id and config["algo"] == algo
    for entry in ENV_KWARGS.get(env_id, []):
        key, value = entry.split("=")
        assert str(config["env_config"][key]) == value
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["env_id"] == env_id and metrics["env_steps"] >= 512
    table = LogitsTable.load(table_path)
    agent = load_agent(out, table)
    assert agent.config.env_id == env_id
    again = policy_scores(agent.model, agent.config.replace(logits=table), "valid")
    assert again["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-12)
    assert (out / "baselines.csv").stat().st_size > 0


def test_defer_cost_is_a_shortcut_for_the_deferral_env(table_path: Path, tmp_path: Path) -> None:
    settings = train_agent.env_settings(train_agent.TrainAgentConfig(defer_cost=0.1))
    assert settings == ("MuraDeferral-v0", {"defer_cost": 0.1})
    assert train_agent.parse_env_kwargs(("capacity=0.05", "scenario=emergency",
                                         "readers=('a', 'b')", "observe_mix:True")) == {
        "capacity": 0.05, "scenario": "emergency", "readers": ("a", "b"), "observe_mix": True}


@pytest.mark.parametrize("extra", [
    ["--env", "MuraWorklist-v0", "--defer-cost", "0.1"],      # shortcut for another env
    ["--env-kwargs", "capacity"],                              # not key=value
    ["--env", "MuraWorklist-v0", "--env-kwargs", "bogus=1"],   # not an env argument
    ["--env", "MuraWorklist-v0", "--env-kwargs", "capacity=1.5"],  # out of range
    ["--defer-cost", "0.1", "--env-kwargs", "defer_cost=0.2"],  # given twice
])
def test_refuses_bad_env_settings(extra: list[str], table_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert train_agent.main(["--logits", str(table_path), "--out", str(out), *extra]) == 2
    assert not out.exists()
