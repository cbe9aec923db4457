"""Deferral methods and the deferral agent: thresholds by hand, the oracle, cross-fitted
stacking, the agents' threshold twins, and softmax-pg learning the hand-built FINGER rule."""

from __future__ import annotations

from dataclasses import replace

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch
from env_fixtures import tiny_table
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mura_env  # noqa: F401  (registers MuraDeferral-v0)
from agents.core.train import train_agent
from agents.deferral.methods import (
    AlwaysDefer,
    DeferralData,
    GainPredictor,
    GlobalThreshold,
    NeverDefer,
    OracleDeferral,
    PerPartThreshold,
    assign_folds,
    best_prefix_threshold,
    count_threshold,
    deferral_gain,
    fit_deferral_methods,
    fold_strata,
    out_of_fold_probabilities,
    policy_decision,
)
from agents.deferral.softmax_pg import DeferralPGAgent, DeferralPGConfig
from agents.weighting.baselines import Stacking
from agents.weighting.softmax_pg import train_softmax_pg
from experiments.defer.runs import (
    DeferJob,
    agent_runs,
    run_defer_job,
    threshold_twin,
    train_job_agent,
)
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
def reader_table() -> LogitsTable:
    """A random table (140 tune, 70 valid studies, 3 members) with one simulated reader."""
    reader = SimulatedReader({p: 0.9 for p in BODY_PARTS}, {p: 0.85 for p in BODY_PARTS},
                             seed=1)
    return tiny_table(n_tune=140, n_valid=70, k=3, seed=2).with_simulated_reader(reader)


@pytest.fixture(scope="module")
def data(reader_table: LogitsTable) -> tuple[DeferralData, DeferralData]:
    return (DeferralData.from_table(reader_table, "tune"),
            DeferralData.from_table(reader_table, "valid"))


@pytest.fixture(scope="module")
def patients(data) -> DeferralData:
    """The tune studies of ``data`` with patients holding 1 to 4 studies each."""
    tune, _ = data
    n = tune.studies.n_studies
    sizes = np.random.default_rng(5).integers(1, 5, n)
    ids = np.repeat([f"p{i}" for i in range(n)], sizes)[:n].astype(object)
    assert len(set(ids)) < n
    return replace(tune, patient_ids=ids)


def test_deferral_data_carries_the_patients(reader_table: LogitsTable, data) -> None:
    tune, _ = data
    rows = reader_table.studies["split"] == "tune"
    np.testing.assert_array_equal(tune.patient_ids,
                                  reader_table.studies.loc[rows, "patient_id"].to_numpy())
    bare = DeferralData(tune.studies, tune.reads)
    np.testing.assert_array_equal(bare.groups(), np.arange(tune.studies.n_studies))


def test_out_of_fold_stacking_never_scores_a_study_with_a_model_fitted_on_it(patients) -> None:
    studies, groups = patients.studies, patients.groups()
    oof = out_of_fold_probabilities(studies, groups, n_folds=5, seed=0)
    n = studies.n_studies
    assert oof.probabilities.shape == (n,) and oof.probabilities.dtype == np.float64
    assert oof.fold.dtype == np.int64 and oof.n_folds == 5
    scored = [np.flatnonzero(oof.fold == k) for k in range(5)]
    # every study is scored in exactly one fold, and trained on in every other one
    np.testing.assert_array_equal(np.sort(np.concatenate(scored)), np.arange(n))
    in_training = np.zeros(n, dtype=int)
    for k in range(5):
        train = oof.train_index[k]
        in_training[train] += 1
        assert len(scored[k]) > 0
        assert not np.intersect1d(train, scored[k]).size
        assert not set(groups[train]) & set(groups[scored[k]]), k  # no patient on both sides
        fold_model = Stacking().fit(studies.rows(train))
        np.testing.assert_array_equal(oof.probabilities[scored[k]],
                                      fold_model.predict(studies.rows(scored[k]))[0])
        # stratified: every body part is scored in every fold
        assert set(studies.body_part_index[scored[k]]) == set(range(7))
    np.testing.assert_array_equal(in_training, np.full(n, 4))
    in_sample = Stacking().fit(studies).predict(studies)[0]
    assert not np.allclose(oof.probabilities, in_sample)
    again = out_of_fold_probabilities(studies, groups, n_folds=5, seed=0)  # seeded
    np.testing.assert_array_equal(again.fold, oof.fold)
    other = out_of_fold_probabilities(studies, groups, n_folds=5, seed=1)
    assert not np.array_equal(other.fold, oof.fold)


def test_folds_stratify_as_finely_as_the_studies_allow() -> None:
    labels, parts = np.arange(70) % 2, np.arange(70) % 7  # 14 strata of 5 studies
    np.testing.assert_array_equal(fold_strata(labels, parts, 5), 2 * parts + labels)
    np.testing.assert_array_equal(fold_strata(labels, parts, 6), labels)  # too few per part
    few = (np.arange(70) < 4).astype(int)  # four abnormal studies: no stratum
    np.testing.assert_array_equal(fold_strata(few, parts, 5), np.zeros(70))
    fold = assign_folds(labels[:42], parts[:42], np.arange(42) // 2, n_folds=5)
    for k in range(5):  # label-stratified: both labels in every fold
        assert set(labels[:42][fold == k]) == {0, 1}
        assert not set(np.flatnonzero(fold == k) // 2) & set(np.flatnonzero(fold != k) // 2)
    with pytest.raises(ValueError, match="n_folds"):
        assign_folds(labels[:8], parts[:8], np.arange(8) // 2, n_folds=5)


def test_rules_are_fitted_on_out_of_fold_probabilities(patients, data) -> None:
    tune, (_, valid) = patients, data
    oof = out_of_fold_probabilities(tune.studies, tune.groups())
    margin = np.abs(oof.probabilities - 0.5)
    full = Stacking().fit(tune.studies)
    in_sample = full.predict(tune.studies)[0]
    differs = []
    for cost in (0.02, 0.1, 0.3):
        methods = {m.name: m for m in fit_deferral_methods(tune, cost)}
        assert len({id(m.out_of_fold) for m in methods.values()}) == 1  # shared
        assert len({id(m.ensemble) for m in methods.values()}) == 1
        np.testing.assert_array_equal(methods["never_defer"].out_of_fold.probabilities,
                                      oof.probabilities)
        gain = deferral_gain(tune, oof.probabilities, cost)
        glob = methods["global_threshold"]
        assert glob.threshold == best_prefix_threshold(margin, gain)
        differs.append(glob.threshold != best_prefix_threshold(
            np.abs(in_sample - 0.5), deferral_gain(tune, in_sample, cost)))
        parts = tune.studies.body_part_index
        expected = [best_prefix_threshold(margin[parts == b], gain[parts == b])
                    for b in range(7)]
        np.testing.assert_array_equal(methods["per_part_threshold"].thresholds, expected)
        expected_model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(
            GainPredictor._features(tune.studies, oof.probabilities),
            np.rint(gain + cost).astype(int))
        np.testing.assert_array_equal(methods["gain_predictor"].model[-1].coef_,
                                      expected_model[-1].coef_)
        d = glob.decide_out_of_fold(tune)
        np.testing.assert_array_equal(d.probability, oof.probabilities)
        np.testing.assert_array_equal(d.deferred, margin < glob.threshold)
        # decisions on new studies use the stacking fitted on all of tune
        expected_p = full.predict(valid.studies)[0]
        for method in methods.values():
            np.testing.assert_array_equal(method.decide(valid).probability, expected_p)
        np.testing.assert_array_equal(glob.decide(valid).deferred,
                                      np.abs(expected_p - 0.5) < glob.threshold)
    assert any(differs)  # in-sample probabilities would have given other thresholds


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


def test_count_threshold_defers_the_count_asked() -> None:
    margin = np.array([0.3, 0.05, 0.2, 0.4, 0.1])
    for k in range(6):
        assert (margin < count_threshold(margin, k)).sum() == k
    assert count_threshold(margin, 0) == 0.0 and count_threshold(margin, 5) == np.inf
    assert count_threshold(margin, 2) == pytest.approx(0.15)
    # tied margins go together, to the nearest cut (the smaller on a tie)
    tied = np.array([0.1, 0.2, 0.2, 0.2, 0.3])
    assert [(tied < count_threshold(tied, k)).sum() for k in range(6)] == [0, 1, 1, 4, 4, 5]


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


class StubDeferralPolicy:
    """A fixed deferral policy on ``K`` members: leans on member 0 (preferences ``[1, -1,
    ...]``) and defers when member 1's logit margin is under 1 in size."""

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]:
        """Actions float32 ``[n, K + 1]`` for observations ``[n, 2K + 7]``."""
        k = (obs.shape[1] - 7) // 2
        actions = -np.ones((len(obs), k + 1), dtype=np.float32)
        actions[:, 0] = 1.0
        actions[:, k] = np.where(np.abs(obs[:, 3] - obs[:, 2]) < 1.0, 1.0, -1.0)
        return actions, None


def test_threshold_twin_uses_the_agents_own_ensemble(reader_table: LogitsTable, data) -> None:
    tune, valid = data
    config = DeferralConfig(logits=reader_table, defer_cost=0.1)
    policy = StubDeferralPolicy()
    agent_tune, agent_valid = (policy_decision(policy, config, s) for s in ("tune", "valid"))
    assert 0.1 < agent_tune.deferred.mean() < 0.6
    twin_tune, twin_valid = threshold_twin(agent_tune, agent_valid)
    for twin, agent in ((twin_tune, agent_tune), (twin_valid, agent_valid)):
        np.testing.assert_array_equal(twin.probability, agent.probability)
        np.testing.assert_array_equal(twin.ensemble_prediction, agent.ensemble_prediction)
    assert abs(int(twin_tune.deferred.sum()) - int(agent_tune.deferred.sum())) <= 1
    margin = np.abs(agent_tune.probability - 0.5)  # the twin defers the least sure
    assert margin[twin_tune.deferred].max() < margin[~twin_tune.deferred].min()
    stacking = Stacking().fit(tune.studies).predict(valid.studies)[0]
    assert np.abs(agent_valid.probability - stacking).max() > 0.05  # not stacking's ensemble

    agent_run, twin_run = agent_runs(DeferJob(0, "stub", 0, 0.1), policy, config, tune, valid,
                                     0.0)
    assert (agent_run.method, twin_run.method) == ("stub", "global_threshold@stub")
    assert agent_run.tune_deferral_rate == agent_tune.deferred.mean()
    assert twin_run.tune_deferral_rate == twin_tune.deferred.mean()
    labels = tune.studies.labels
    assert agent_run.tune_accuracy == (agent_tune.team_prediction(tune.reads) == labels).mean()
    assert twin_run.tune_accuracy == (twin_tune.team_prediction(tune.reads) == labels).mean()
    np.testing.assert_array_equal(agent_run.deferred, agent_valid.deferred)
    np.testing.assert_array_equal(twin_run.deferred, twin_valid.deferred)
    kept = ~twin_valid.deferred
    np.testing.assert_array_equal(twin_run.score[kept], agent_valid.probability[kept])
    np.testing.assert_array_equal(twin_run.prediction[kept],
                                  agent_valid.ensemble_prediction[kept])
    np.testing.assert_array_equal(twin_run.prediction[~kept], valid.reads[~kept])


def test_a_trained_agents_twin_answers_with_the_agents_weights() -> None:
    table = finger_table(n=280, with_valid=True)
    job = DeferJob(0, "softmax-pg", 0, 0.1, steps=2048)
    agent_run, twin_run = run_defer_job(job, table)
    trained = train_job_agent(job, table)  # seeded: the same agent again
    config = trained.agent.config.replace(logits=table)
    agent_tune, agent_valid = (policy_decision(trained.model, config, s)
                               for s in ("tune", "valid"))
    np.testing.assert_array_equal(agent_run.deferred, agent_valid.deferred)
    kept = ~twin_run.deferred
    np.testing.assert_array_equal(twin_run.score[kept], agent_valid.probability[kept])
    n_tune = len(agent_tune.deferred)
    assert 0 < agent_run.tune_deferral_rate < 1
    assert abs(twin_run.tune_deferral_rate - agent_run.tune_deferral_rate) <= 1 / n_tune + 1e-12
    assert agent_run.tune_deferral_rate == agent_tune.deferred.mean()
