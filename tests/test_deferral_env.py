"""MuraDeferral-v0: rewards of deferred and kept studies by hand for every reward, the API
checkers, the vector env against the single env, reader columns and the argument errors."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from env_fixtures import REWARD_NAMES, hand_mapping, hand_reward, tiny_table
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import mura_env  # noqa: F401  (registers MuraDeferral-v0)
from mura_env.deferral.env import MuraDeferralEnv, MuraDeferralVectorEnv
from mura_env.logits import LogitsTable
from mura_env.readers import SimulatedReader


def _with_reader(table: LogitsTable, seed: int = 3) -> LogitsTable:
    reader = SimulatedReader({p: 0.7 for p in mura_env.BODY_PARTS},
                             {p: 0.6 for p in mura_env.BODY_PARTS}, seed=seed, reader_id="r1")
    return table.with_simulated_reader(reader)


@pytest.fixture(scope="module")
def table() -> LogitsTable:
    return _with_reader(tiny_table(n_tune=14, k=3))


def _hand_deferred(name: str, read: int, label: int, cost: float) -> float:
    """A deferred study's reward from the docs: the reward of the read, minus the cost."""
    if name == "log_likelihood":
        return (0.0 if read == label else math.log(1e-6)) - cost
    return hand_reward(name, float(read), label) - cost


@pytest.mark.parametrize("reward", REWARD_NAMES)
def test_rewards_of_deferred_and_kept_studies_match_the_hand_computed_ones(table, reward) -> None:
    env = MuraDeferralEnv(logits=table, reward=reward, defer_cost=0.25)
    reads = table.select(split="tune").reads("r1")
    logits = table.select(split="tune").logits
    rng = np.random.default_rng(0)
    seen = set()
    for i in range(env.n_studies):
        label = int(env.problem.studies.labels[i])
        for defer in (-0.5, 0.5):
            action = np.append(rng.uniform(-1, 1, 3), defer).astype(np.float32)
            env.reset(options={"study_index": i})
            _, r, terminated, _, info = env.step(action)
            w, _, p = hand_mapping(logits[i], action[:3])
            if defer > 0:
                expected = _hand_deferred(reward, int(reads[i]), label, 0.25)
                assert info["prediction"] == reads[i]
            else:
                expected = hand_reward(reward, p, label)
                assert info["prediction"] == int(p > 0.5)
            assert r == pytest.approx(expected, abs=1e-9)
            assert info["deferred"] == (defer > 0) and terminated
            assert info["reader_correct"] == (reads[i] == label)
            assert info["ensemble_correct"] == (int(p > 0.5) == label)
            np.testing.assert_allclose(info["weights"], w, atol=1e-12)
            assert info["probability"] == pytest.approx(p, abs=1e-12)
            seen.add((defer > 0, bool(info["reader_correct"])))
    assert len(seen) == 4  # deferred and kept, reader right and wrong


def test_zero_defer_score_keeps_the_study_and_matches_the_weighting_env(table) -> None:
    deferral = MuraDeferralEnv(logits=table, reward="signed", defer_cost=0.3)
    weighting = gym.make("MuraWeighting-v0", logits=table, reward="signed").unwrapped
    action = np.array([0.2, -0.4, 0.9, 0.0], dtype=np.float32)
    for i in range(deferral.n_studies):
        deferral.reset(options={"study_index": i})
        weighting.reset(options={"study_index": i})
        _, r_d, _, _, info_d = deferral.step(action)
        _, r_w, _, _, info_w = weighting.step(action[:3])
        assert not info_d["deferred"] and r_d == r_w
        assert info_d["probability"] == info_w["probability"]


@pytest.mark.parametrize("kwargs", [{}, {"studies_per_episode": 3, "reward": "log_likelihood"},
                                    {"sampling": "sweep", "reward": "cost_sensitive"}])
def test_gymnasium_and_sb3_checkers_pass_without_warnings(table, kwargs) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(gym.make("MuraDeferral-v0", logits=table, **kwargs).unwrapped)
        sb3_check_env(MuraDeferralEnv(logits=table, **kwargs), warn=True)


@pytest.mark.parametrize("reward", REWARD_NAMES)
def test_vector_env_agrees_with_the_single_env_study_for_study(table, reward) -> None:
    kwargs = {"logits": table, "reward": reward, "defer_cost": 0.2, "sampling": "sweep"}
    single = MuraDeferralEnv(**kwargs)
    vec = gym.make_vec("MuraDeferral-v0", num_envs=5, **kwargs)
    assert isinstance(vec, MuraDeferralVectorEnv)
    rng = np.random.default_rng(1)
    vec.reset(seed=0)
    single.reset(seed=0)
    started = True
    for _ in range(6):
        actions = rng.uniform(-1, 1, (5, 4)).astype(np.float32)
        _, rewards, _, _, info = vec.step(actions)
        final = info["final_info"]
        for j in range(5):
            if not started:
                single.reset()  # the sweep's next study, as the vector env's autoreset
            started = False
            _, r, _, _, one = single.step(actions[j])
            assert final["study_index"][j] == one["study_index"]
            assert rewards[j] == pytest.approx(r, abs=2e-5)
            for key in ("deferred", "prediction", "correct", "ensemble_correct",
                        "reader_correct", "ensemble_prediction"):
                assert final[key][j] == one[key], key


def test_the_read_is_not_in_the_observation(table) -> None:
    flipped = table.studies.copy()
    flipped["reader_r1"] = 1 - flipped["reader_r1"]
    other = LogitsTable.from_arrays(flipped, list(table.model_names), table.logits)
    a, b = MuraDeferralEnv(logits=table), MuraDeferralEnv(logits=other)
    for i in range(a.n_studies):
        np.testing.assert_array_equal(a.reset(options={"study_index": i})[0],
                                      b.reset(options={"study_index": i})[0])


def test_reader_columns_survive_save_select_and_load(table, tmp_path) -> None:
    path = table.save(tmp_path / "t.parquet")
    back = LogitsTable.load(path)
    assert back.reader_ids == ("r1",)
    np.testing.assert_array_equal(back.reads("r1"), table.reads("r1"))
    valid = back.select(split="valid")
    np.testing.assert_array_equal(valid.reads("r1"),
                                  table.reads("r1")[table.studies["split"].eq("valid")])


def test_errors_name_the_fix(table) -> None:
    with pytest.raises(KeyError, match="with_reads.*with_simulated_reader"):
        MuraDeferralEnv(logits=tiny_table())
    with pytest.raises(KeyError, match="no reader 'r2'"):
        MuraDeferralEnv(logits=table, reader="r2")
    for cost in (-0.1, math.nan, math.inf):
        with pytest.raises(ValueError, match="defer_cost"):
            MuraDeferralEnv(logits=table, defer_cost=cost)
    env = MuraDeferralEnv(logits=table)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([0.0, 0.0, 0.0, np.nan], dtype=np.float32))
    with pytest.raises(ValueError, match="defer score"):
        env.step(np.zeros(3, dtype=np.float32))
    bad = table.studies.copy()
    bad["reader_r1"] = 2
    with pytest.raises(ValueError, match="reader column 'reader_r1'"):
        LogitsTable.from_arrays(bad, list(table.model_names), table.logits)
    vec = gym.make_vec("MuraDeferral-v0", num_envs=2, logits=table)
    vec.reset(seed=0)
    with pytest.raises(ValueError, match="finite"):
        vec.step(np.array([[0, 0, 0, 0], [0, 0, 0, np.nan]], dtype=np.float32))


def test_a_table_with_several_readers_needs_the_reader_named(table) -> None:
    second = SimulatedReader({p: 1.0 for p in mura_env.BODY_PARTS},
                             {p: 1.0 for p in mura_env.BODY_PARTS}, reader_id="perfect")
    both = table.with_simulated_reader(second)
    assert both.reader_ids == ("r1", "perfect")
    with pytest.raises(KeyError, match="several readers"):
        MuraDeferralEnv(logits=both)
    env = MuraDeferralEnv(logits=both, reader="perfect", defer_cost=0.0)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.array([0, 0, 0, 1], dtype=np.float32))
    assert info["reader_correct"] and reward == 1.0


def test_the_shipped_tables_default_to_radiologist_3_and_take_any_of_the_three() -> None:
    env = gym.make("MuraDeferral-v0", defer_cost=0.0, split="tune")
    problem = env.unwrapped.problem
    table = problem.table
    assert table.reader_ids == ("radiologist_1", "radiologist_2", "radiologist_3")
    assert problem.reader == "radiologist_3"
    tune = table.select(split="tune")
    np.testing.assert_array_equal(problem.reads, tune.reads("radiologist_3"))
    other = gym.make("MuraDeferral-v0", reader="radiologist_1", split="tune").unwrapped.problem
    np.testing.assert_array_equal(other.reads, tune.reads("radiologist_1"))
    assert (other.reads != problem.reads).any()


def test_a_saved_deferral_agent_loads_and_checks_its_reader(table, tmp_path) -> None:
    from agents.core.saved import AgentMismatchError, load_agent
    from agents.core.train import train_agent
    from mura_env.deferral.config import DeferralConfig

    train_agent("ppo", DeferralConfig(logits=table, defer_cost=0.1), tmp_path / "ppo",
                total_timesteps=256, n_envs=2, tensorboard=False)
    agent = load_agent(tmp_path / "ppo", table)
    assert agent.deferral and agent.manifest["env_id"] == "MuraDeferral-v0"
    obs = MuraDeferralEnv(logits=table).problem.studies.observations
    assert agent.predict(obs).shape == (len(obs), 4)
    assert agent.deferred(obs).dtype == bool and agent.weights(obs).shape == (len(obs), 3)
    flipped = table.studies.copy()
    flipped["reader_r1"] = 1 - flipped["reader_r1"]
    other = LogitsTable.from_arrays(flipped, list(table.model_names), table.logits)
    with pytest.raises(AgentMismatchError, match="reader 'r1'"):
        agent.check_table(other)
