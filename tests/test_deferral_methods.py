"""Deferral methods and the deferral agent: thresholds by hand, the oracle, rate matching, and
softmax-pg learning the hand-built FINGER rule."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch
from env_fixtures import tiny_table

import mura_env  # noqa: F401  (registers MuraDeferral-v0)
from agents.deferral_methods import (
    AlwaysDefer,
    DeferralData,
    GainPredictor,
    GlobalThreshold,
    NeverDefer,
    OracleDeferral,
    PerPartThreshold,
    best_prefix_threshold,
    policy_decision,
)
from agents.deferral_pg import DeferralPGAgent, DeferralPGConfig
from agents.softmax_pg import train_softmax_pg
from agents.train import train_agent
from experiments.deferral.defer_runs import matched_threshold
from mura_env.constants import BODY_PARTS
from mura_env.deferral.config import DeferralConfig
from mura_env.logits import LogitsTable
from mura_env.readers import SimulatedReader


def finger_table(n: int = 700, seed: int = 0, with_valid: bool = False) -> LogitsTable:
    """Every member confidently wrong on FINGER and right elsewhere; the reader the reverse.
    All studies are ``tune``, or every second one ``valid`` with ``with_valid``."""
    rng = np.random.default_rng(seed)
    parts = [BODY_PARTS[i % 7] for i in range(n)]
    labels = rng.integers(0, 2, n)
    finger = np.array([p == "FINGER" for p in parts])
    sign = np.where(finger, -1, 1) * np.where(labels == 1, 1, -1)
    abnormal = sign[:, None] * rng.uniform(1, 3, (n, 3))
    logits = np.stack([np.zeros((n, 3)), abnormal], axis=-1).astype(np.float32)
    studies = pd.DataFrame({
        "study_id": [f"train/XR_{p}/patient{i}/study1_negative" for i, p in enumerate(parts)],
        "patient_id": [f"p{i}" for i in range(n)], "body_part": parts, "label": labels,
        "split": np.where((np.arange(n) % 2 == 1) & with_valid, "valid", "tune"),
        "n_images": 1, "reader_hand": np.where(finger, labels, 1 - labels)})
    return LogitsTable.from_arrays(studies, ["a", "b", "c"], logits)


def test_softmax_pg_learns_to_defer_the_studies_the_reader_gets_right() -> None:
    table = finger_table()
    env = gym.make_vec("MuraDeferral-v0", num_envs=256, logits=table, defer_cost=0.1)
    agent = DeferralPGAgent(3, DeferralPGConfig(num_envs=256))
    train_softmax_pg(agent, env, 256 * 150, seed=0)
    obs = torch.as_tensor(np.array(env.problem.studies.observations))
    with torch.no_grad():
        deferred = agent.mean_action(obs).numpy()[:, -1] > 0
    finger = env.problem.studies.body_parts == "FINGER"
    assert deferred[finger].mean() >= 0.95
    assert deferred[~finger].mean() <= 0.05


def test_best_prefix_threshold_by_hand() -> None:
    margin = np.array([0.05, 0.1, 0.2, 0.3, 0.4])
    # deferring the two least sure gains 0.5 + 0.3; the third loses 1.0
    assert best_prefix_threshold(margin, np.array([0.5, 0.3, -1.0, 0.9, -2.0])) \
        == pytest.approx(0.15)
    assert best_prefix_threshold(margin, -np.ones(5)) == 0.0
    assert best_prefix_threshold(margin, np.ones(5)) == np.inf
    # equal margins are deferred together or not at all
    assert best_prefix_threshold(np.array([0.1, 0.1, 0.3]), np.array([1.0, -3.0, 5.0])) \
        == np.inf


@pytest.fixture(scope="module")
def data() -> tuple[DeferralData, DeferralData]:
    reader = SimulatedReader({p: 0.9 for p in BODY_PARTS}, {p: 0.85 for p in BODY_PARTS},
                             seed=1)
    table = tiny_table(n_tune=140, n_valid=70, k=3, seed=2).with_simulated_reader(reader)
    return DeferralData.from_table(table, "tune"), DeferralData.from_table(table, "valid")


def test_classical_methods_decide_as_documented(data) -> None:
    tune, valid = data
    assert not NeverDefer().fit(tune, 0.1).decide(valid).deferred.any()
    assert AlwaysDefer().fit(tune, 0.1).decide(valid).deferred.all()
    oracle = OracleDeferral().fit(tune, 0.1)
    d = oracle.decide(valid)
    ensemble_right = (d.probability > 0.5) == valid.studies.labels
    np.testing.assert_array_equal(d.deferred, valid.reader_correct() & ~ensemble_right)
    assert (d.team_prediction(valid.reads) == valid.studies.labels).mean() >= max(
        ensemble_right.mean(), valid.reader_correct().mean())
    assert not OracleDeferral().fit(tune, 1.0).decide(valid).deferred.any()
    glob = GlobalThreshold().fit(tune, 0.05)
    d = glob.decide(valid)
    np.testing.assert_array_equal(d.deferred, np.abs(d.probability - 0.5) < glob.threshold)
    part = PerPartThreshold().fit(tune, 0.05)
    d = part.decide(valid)
    limit = part.thresholds[valid.studies.body_part_index]
    np.testing.assert_array_equal(d.deferred, np.abs(d.probability - 0.5) < limit)


def test_thresholds_defer_less_as_the_cost_rises(data) -> None:
    tune, _ = data
    rates = [GlobalThreshold().fit(tune, c).decide(tune).deferred.mean()
             for c in (0.0, 0.2, 0.5, 1.1)]
    assert rates == sorted(rates, reverse=True) and rates[-1] == 0.0 and rates[0] > 0


def test_learned_methods_find_the_hand_built_rule_on_tune() -> None:
    table = finger_table(n=1400, with_valid=True)
    tune, valid = (DeferralData.from_table(table, split) for split in ("tune", "valid"))
    finger = valid.studies.body_parts == "FINGER"
    # the gain (reader right - ensemble right) is +1 on FINGER and -1 elsewhere
    gain = GainPredictor().fit(tune, 0.1)
    predicted = gain.predicted_gain(valid, gain.decide(valid).probability)
    assert (predicted[finger] > 0.5).all() and (predicted[~finger] < -0.5).all()
    np.testing.assert_array_equal(gain.decide(valid).deferred, finger)
    # per body part, deferring every FINGER study gains and deferring any other loses
    np.testing.assert_array_equal(PerPartThreshold().fit(tune, 0.1).decide(valid).deferred,
                                  finger)


def test_matched_threshold_defers_the_rate_asked_on_tune(data) -> None:
    tune, _ = data
    for rate in (0.0, 0.25, 0.6, 1.0):
        got = matched_threshold(tune, rate).decide(tune).deferred.mean()
        assert abs(got - rate) <= 1.5 / tune.studies.n_studies


def test_agents_train_and_decide_on_the_tune_split() -> None:
    table = finger_table(n=140)
    config = DeferralConfig(logits=table, defer_cost=0.1)
    for algo in ("softmax-pg", "ppo"):
        policy = train_agent(algo, config, None, seed=0, total_timesteps=2048).model
        decision = policy_decision(policy, config, "tune")
        assert decision.deferred.shape == (140,) and decision.probability.shape == (140,)
        again = policy_decision(train_agent(algo, config, None, seed=0,
                                            total_timesteps=2048).model, config, "tune")
        np.testing.assert_array_equal(decision.deferred, again.deferred)  # seeded


def test_deferral_agent_saves_loads_and_scores_its_actions(tmp_path) -> None:
    agent = DeferralPGAgent(3, DeferralPGConfig(num_envs=8))
    with torch.no_grad():
        agent.defer_bias.fill_(0.7)
    agent.save(tmp_path / "a.pt")
    back, _ = DeferralPGAgent.load(tmp_path / "a.pt")
    obs = torch.as_tensor(np.array(finger_table(n=14).logits.reshape(14, 6)))
    obs = torch.cat([obs, torch.eye(7)[torch.arange(14) % 7]], dim=1)
    with torch.no_grad():
        loaded, original = back.mean_action(obs).numpy(), agent.mean_action(obs).numpy()
    np.testing.assert_array_equal(loaded, original)
    assert (original[:, -1] == 1.0).all()  # the saved bias defers every study
    action, logp, _, _ = agent.get_action_and_value(obs)
    assert set(action[:, -1].tolist()) <= {-1.0, 1.0}
    _, again, _, _ = agent.get_action_and_value(obs, action)
    torch.testing.assert_close(again, logp, rtol=1e-4, atol=1e-4)
