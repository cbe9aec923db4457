"""One training route for every agent and env: the registry's budgets, ``--steps`` overrides,
deferral agents trained alike by ``train_agent --defer-cost`` and by the deferral experiment,
and the defer decision at a score of exactly 0."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from env_fixtures import tiny_table
from stable_baselines3 import PPO

import experiments.train_agent.__main__ as train_agent_cli
import mura_env  # noqa: F401  (registers the envs)
from agents.core.algos import ALGOS, DEFERRAL, WEIGHTING, budgets, parse_steps
from agents.core.saved import load_agent
from agents.core.train import resolve_hyperparameters
from agents.deferral.softmax_pg import DeferralPGAgent
from experiments.defer.runs import DeferJob, train_job_agent
from mura_env.deferral.config import DeferralConfig
from mura_env.logits import LogitsTable
from mura_env.weighting.config import WeightingConfig

AGENTS = Path(__file__).resolve().parent.parent / "agents"


@pytest.fixture(scope="module")
def reader_table(tmp_path_factory: pytest.TempPathFactory) -> tuple[LogitsTable, Path]:
    table = tiny_table(n_tune=84, n_valid=28).with_simulated_reader()
    path = table.save(tmp_path_factory.mktemp("families") / "table.parquet")
    return LogitsTable.load(path), path


def test_parse_steps_reads_overrides_and_refuses_bad_entries() -> None:
    assert parse_steps(["ppo=32768", "sac=1_000", "ppo=10"]) == {"ppo": 10, "sac": 1000}
    for bad in ("ppo", "ppo=0", "ppo=x", "nope=5"):
        with pytest.raises((ValueError, KeyError)):
            parse_steps([bad])
    with pytest.raises(ValueError, match="does not train"):
        parse_steps(["sac=5"], ["ppo"])


def test_budgets_come_from_one_table_per_agent_and_env() -> None:
    assert budgets(["softmax-pg", "ppo"], WEIGHTING) == {
        "softmax-pg": ALGOS["softmax-pg"].default_timesteps(WEIGHTING),
        "ppo": ALGOS["ppo"].default_timesteps(WEIGHTING)}
    deferral = budgets(["softmax-pg", "ppo"], DEFERRAL, {"ppo": 7})
    assert deferral["ppo"] == 7
    assert deferral["softmax-pg"] == ALGOS["softmax-pg"].default_timesteps(DEFERRAL)
    table = tiny_table().with_simulated_reader()
    for config in (WeightingConfig(logits=table), DeferralConfig(logits=table)):
        settings = resolve_hyperparameters("softmax-pg", config)
        spec = ALGOS["softmax-pg"]
        assert settings["total_timesteps"] == spec.default_timesteps(config.env_id)
        assert settings["n_envs"] == settings["algorithm"]["num_envs"] == spec.default_n_envs(
            config.env_id)
    deferral_settings = resolve_hyperparameters(
        "softmax-pg", DeferralConfig(logits=table, action_scale=2.0, temperature=0.5))
    assert deferral_settings["algorithm"]["softmax_scale"] == 4.0  # the env's, not a literal


def test_agents_never_test_the_env_variant_or_the_family() -> None:
    for path in AGENTS.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "isinstance":
                assert "DeferralConfig" not in ast.unparse(node), path
            if isinstance(node, ast.Compare) and path.name != "families.py":
                assert ".family" not in ast.unparse(node.left), (path, ast.unparse(node))


@pytest.mark.parametrize("algo", ["softmax-pg", "ppo"])
def test_deferral_agents_of_train_agent_and_of_the_experiment_are_identical(
        algo: str, reader_table: tuple[LogitsTable, Path], tmp_path: Path) -> None:
    table, path = reader_table
    steps = 2048 if algo == "softmax-pg" else 512
    out = tmp_path / "run"
    assert train_agent_cli.main([
        "--algo", algo, "--logits", str(path), "--defer-cost", "0.1", "--steps",
        f"{algo}={steps}", "--seed", "3", "--out", str(out), "--n-bootstrap", "10",
        "--no-tensorboard"]) == 0
    saved = load_agent(out, table)
    assert saved.deferral and json.loads((out / "agent.json").read_text())["env_id"] == DEFERRAL
    trained = train_job_agent(DeferJob(0, algo, 3, 0.1, steps), table)
    assert trained.hyperparameters == saved.manifest["hyperparameters"]
    if algo == "softmax-pg":
        assert isinstance(saved.model, DeferralPGAgent)
        ours, theirs = saved.model.state_dict(), trained.model.state_dict()
    else:
        assert isinstance(saved.model, PPO)
        ours, theirs = saved.model.policy.state_dict(), trained.model.policy.state_dict()
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), name


@pytest.mark.parametrize("vector", [False, True])
def test_a_defer_score_of_exactly_zero_keeps_the_study(vector: bool) -> None:
    table = tiny_table().with_simulated_reader()
    if vector:
        env = gym.make_vec("MuraDeferral-v0", num_envs=4, logits=table, defer_cost=0.1)
        env.reset(seed=0)
        actions = np.zeros((4, env.single_action_space.shape[0]), dtype=np.float32)
        _, _, _, _, info = env.step(actions)
        info = info["final_info"]  # one study per episode: every sub-env ended
        assert not info["deferred"].any()
        np.testing.assert_array_equal(info["prediction"], info["ensemble_prediction"])
        env.close()
        return
    env = gym.make("MuraDeferral-v0", logits=table, defer_cost=0.1)
    env.reset(seed=0)
    for _ in range(5):
        _, _, _, _, info = env.step(np.zeros(env.action_space.shape, dtype=np.float32))
        assert not info["deferred"] and info["prediction"] == info["ensemble_prediction"]
        env.reset()


def test_a_registry_entry_alone_makes_an_sb3_algorithm_trainable(
        reader_table: tuple[LogitsTable, Path], tmp_path: Path) -> None:
    table, path = reader_table
    assert ALGOS["td3"].family is ALGOS["sac"].family
    out = tmp_path / "td3"
    assert train_agent_cli.main([
        "--algo", "td3", "--logits", str(path), "--steps", "td3=600", "--out", str(out),
        "--n-bootstrap", "10", "--no-tensorboard"]) == 0
    saved = load_agent(out, table)
    assert type(saved.model).__name__ == "TD3" and saved.manifest["env_steps"] >= 600
    observations = np.zeros((4, 2 * len(saved.model_names) + 7), dtype=np.float32)
    assert saved.predict(observations).shape == (4, len(saved.model_names))
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["split"] == "valid"
