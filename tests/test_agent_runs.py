"""Agent run folders: training both families, TensorBoard tags, save/load, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from agent_fixtures import specialist_table

from agents.core.algos import ALGOS, UnknownAlgoError, get_algo
from agents.core.evaluate import evaluate_policy
from agents.core.saved import AgentMismatchError, load_agent
from agents.core.train import train_agent
from experiments.common.tb_scalars import read_scalars
from mura_env.logits import LogitsTable
from mura_env.logits.study_set import StudySet
from mura_env.weighting.config import WeightingConfig

REPO = Path(__file__).resolve().parents[1]
TAGS = ("rollout/ep_rew_mean", "eval/accuracy", "eval/kappa")


@pytest.fixture(scope="module")
def table():
    return specialist_table(per_cell=3)


@pytest.fixture(scope="module")
def ppo_run(table, tmp_path_factory):
    run = tmp_path_factory.mktemp("ppo")
    trained = train_agent("ppo", WeightingConfig(logits=table),
                          run, total_timesteps=2048, seed=0, eval_every=1024,
                          n_envs=8)
    return run, trained


def test_tiny_ppo_run_writes_the_tensorboard_tags(ppo_run):
    run, trained = ppo_run
    for tag in TAGS:
        df = read_scalars(run / "tb", tag)
        assert len(df) >= 1, tag
        assert df["step"].max() <= trained.env_steps
    acc = read_scalars(run / "tb", "eval/accuracy")["value"]
    assert ((acc >= 0) & (acc <= 1)).all()
    manifest = json.loads((run / "agent.json").read_text())
    assert manifest["finished"] and manifest["env_steps"] == trained.env_steps == 2048


def test_softmax_pg_logs_the_same_tags(table, tmp_path):
    trained = train_agent("softmax-pg", WeightingConfig(logits=table),
                          tmp_path, total_timesteps=4096, n_envs=512,
                          eval_every=2048)
    for tag in TAGS:
        assert len(read_scalars(tmp_path / "tb", tag)) >= 2, tag
    assert [h["env_steps"] for h in trained.history] == [2048, 4096]


def test_ppo_save_load_round_trip_gives_identical_actions(ppo_run, table):
    run, trained = ppo_run
    obs = StudySet.select(table, "valid").observations
    direct, _ = trained.model.predict(obs, deterministic=True)  # the in-memory model
    again = load_agent(run)
    np.testing.assert_array_equal(again.predict(obs), direct.astype(np.float32))
    w = again.weights(obs)
    assert w.shape == (len(obs), 7)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)


def test_the_saved_ppo_model_is_the_final_one(ppo_run):
    run, trained = ppo_run
    saved = load_agent(run).model
    assert saved.num_timesteps == trained.model.num_timesteps == trained.env_steps
    final = trained.model.policy.state_dict()
    for key, value in saved.policy.state_dict().items():
        assert torch.equal(value, final[key]), key
    assert trained.history[-1]["env_steps"] == trained.env_steps


def test_sb3_evaluations_score_the_policy_after_its_update(table):
    """An evaluation at step N scores a policy already trained on the N steps collected."""
    from agents.core.sb3 import train_sb3
    snapshots = []

    def eval_fn(model):
        snapshots.append((model.num_timesteps, {k: v.clone() for k, v in
                                                model.policy.state_dict().items()}))
        return {"accuracy": 0.0}

    model, result = train_sb3(get_algo("ppo"), WeightingConfig(logits=table), 4096, 0,
                              None, n_envs=8, eval_fn=eval_fn, eval_every=2048)
    assert [steps for steps, _ in snapshots] == [2048, 4096]
    assert [h["env_steps"] for h in result["history"]] == [2048, 4096]
    initial = type(model)("MlpPolicy", model.env, seed=0, device="cpu",
                          n_steps=256, batch_size=256).policy.state_dict()
    first, last = snapshots[0][1], snapshots[1][1]
    assert any(not torch.equal(first[k], initial[k]) for k in initial)  # trained once
    assert any(not torch.equal(first[k], last[k]) for k in first)  # then trained again
    final = model.policy.state_dict()
    assert all(torch.equal(last[k], final[k]) for k in final)  # the last eval is the final


def test_softmax_pg_save_load_round_trip(table, tmp_path):
    trained = train_agent("softmax-pg", WeightingConfig(logits=table),
                          tmp_path, total_timesteps=1024, n_envs=512,
                          tensorboard=False)
    obs = np.random.default_rng(0).normal(size=(20, 21)).astype(np.float32)
    direct, _ = trained.model.predict(obs)  # the in-memory agent, not a reload
    np.testing.assert_array_equal(load_agent(tmp_path).predict(obs), direct)
    hyper = json.loads((tmp_path / "agent.json").read_text())["hyperparameters"]
    assert hyper["total_timesteps"] == 1024 and hyper["n_envs"] == 512


def test_an_agent_trained_on_a_model_subset_accepts_its_table(table, tmp_path):
    subset = list(table.model_names[2:5])
    train_agent("softmax-pg", WeightingConfig(logits=table, models=subset), tmp_path,
                total_timesteps=1024, n_envs=512, tensorboard=False)
    agent = load_agent(tmp_path, table=table)  # the whole table it was trained on
    assert agent.model_names == tuple(subset)
    agent.check_table(table.select(models=subset))  # or that table restricted to its models
    with pytest.raises(AgentMismatchError, match="missing"):
        agent.check_table(table.select(models=subset[:2]))
    shifted = LogitsTable.from_arrays(table.studies, table.model_names, table.logits + 0.5,
                                      data_fingerprint=table.data_fingerprint)
    with pytest.raises(AgentMismatchError, match="another logits table"):
        load_agent(tmp_path, table=shifted)


def test_bad_settings_leave_an_earlier_run_untouched(table, tmp_path):
    train_agent("softmax-pg", WeightingConfig(logits=table),
                tmp_path, total_timesteps=1024, n_envs=512)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(ValueError, match="at least 2 studies"):
        train_agent("softmax-pg", WeightingConfig(logits=table),
                    tmp_path, total_timesteps=1024, n_envs=1)
    with pytest.raises(ValueError, match="unknown"):
        train_agent("softmax-pg", WeightingConfig(logits=table, models=["no_such_model"]),
                    tmp_path)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert json.loads((tmp_path / "agent.json").read_text())["finished"] is True


def test_reusing_a_run_folder_leaves_no_stale_model_or_curves(table, tmp_path):
    train_agent("ppo", WeightingConfig(logits=table),
                tmp_path, total_timesteps=1024, n_envs=8, eval_every=512)
    (tmp_path / "tb" / "notes.txt").write_text("mine")  # not TensorBoard's: kept
    (tmp_path / "metrics.json").write_text("{}")  # the earlier run's metrics: removed
    train_agent("softmax-pg", WeightingConfig(logits=table),
                tmp_path, total_timesteps=2048, n_envs=512,
                eval_every=1024)
    assert not (tmp_path / "model.zip").exists() and not (tmp_path / "metrics.json").exists()
    assert not (tmp_path / "tb" / "progress.csv").exists()  # SB3's CSV log went too
    assert (tmp_path / "tb" / "notes.txt").read_text() == "mine"
    steps = read_scalars(tmp_path / "tb", "eval/accuracy")["step"].tolist()
    assert steps == [1024, 2048]  # the PPO run's curve is gone


def test_a_table_of_another_data_set_is_refused(ppo_run, table):
    run, _ = ppo_run
    agent = load_agent(run)
    agent.check_table(table)  # its own table is fine
    other = specialist_table(per_cell=3, fingerprint="another-data-set")
    with pytest.raises(AgentMismatchError, match="another data set"):
        agent.check_table(other)
    with pytest.raises(AgentMismatchError, match="weights the models"):
        agent.check_table(table.select(models=list(table.model_names[:2])))
    shifted = LogitsTable.from_arrays(table.studies, table.model_names, table.logits + 0.5,
                                      data_fingerprint=table.data_fingerprint)
    with pytest.raises(AgentMismatchError, match="another logits table"):
        agent.check_table(shifted)


def test_unknown_algo_lists_the_valid_ones(capsys):
    with pytest.raises(UnknownAlgoError) as e:
        get_algo("dqn")
    for name in ALGOS:
        assert name in str(e.value)
    import experiments.train_agent.__main__ as cli
    with pytest.raises(SystemExit):
        cli.main(["--algo", "dqn"])
    err = capsys.readouterr().err
    assert "dqn" in err and all(name in err for name in ALGOS)


def test_load_agent_names_a_missing_or_broken_manifest_or_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="agent.json"):
        load_agent(tmp_path)
    (tmp_path / "agent.json").write_text(json.dumps({"algo": "ppo"}))
    with pytest.raises(ValueError, match="not a valid agent manifest"):
        load_agent(tmp_path)
    for algo in ("ppo", "softmax-pg"):  # a manifest whose model file is corrupt
        spec = get_algo(algo)
        (tmp_path / "agent.json").write_text(json.dumps(
            {"algo": algo, "model_file": spec.model_file, "model_names": ["a", "b"],
             "table_digest": "x", "env_config": {}}))
        (tmp_path / spec.model_file).write_bytes(b"truncated")
        with pytest.raises(ValueError, match="cannot be read"):
            load_agent(tmp_path)


def test_a_killed_run_leaves_its_last_checkpoint_loadable(table, tmp_path):
    logits = table.save(tmp_path / "table.parquet")
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments.train_agent", "--algo", "ppo", "--logits",
         str(logits), "--total-timesteps", "10000000", "--eval-every", "512", "--n-envs", "2",
         "--out", str(run)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not (run / "model.zip").exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.time() < deadline, "no checkpoint within 120 s"
            time.sleep(0.2)
        first = os.stat(run / "model.zip").st_mtime_ns
        while os.stat(run / "model.zip").st_mtime_ns == first and time.time() < deadline:
            time.sleep(0.05)  # let it rewrite the checkpoint at least once, then kill it
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    manifest = json.loads((run / "agent.json").read_text())
    assert manifest["finished"] is False
    agent = load_agent(run)
    # the manifest follows the checkpoints (written right after each model file)
    assert 0 < manifest["env_steps"] <= agent.model.num_timesteps
    # and the run's config.json was resolved before training started
    config = json.loads((run / "config.json").read_text())
    assert config["total_timesteps"] == 10_000_000 and config["learning_rate"] == 3e-4
    assert config["hyperparameters"]["algorithm"]["n_steps"] == 256
    obs = np.zeros((3, 21), dtype=np.float32)
    assert agent.predict(obs).shape == (3, 7)


def test_training_curves_score_the_tune_split_not_valid(tmp_path):
    from env_fixtures import tiny_table

    config = WeightingConfig(logits=tiny_table(n_tune=40, n_valid=30, k=3, seed=4))
    trained = train_agent("softmax-pg", config, tmp_path, total_timesteps=2048, n_envs=512,
                          eval_every=2048, tensorboard=False)
    on_tune = evaluate_policy(trained.policy, config, "tune", n_bootstrap=0)
    on_valid = evaluate_policy(trained.policy, config, "valid", n_bootstrap=0)
    last = trained.history[-1]
    assert last["accuracy"] == on_tune.value("accuracy")
    assert last["kappa"] == on_tune.value("kappa")
    assert (on_tune.value("accuracy"), on_tune.value("kappa")) != (
        on_valid.value("accuracy"), on_valid.value("kappa"))  # the splits tell apart
