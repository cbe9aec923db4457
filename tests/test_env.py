"""MuraWeightingEnv: API checkers, the documented mapping computed by hand, episodes,
sampling, seeding and invalid actions."""

from __future__ import annotations

import doctest
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from env_fixtures import REWARD_NAMES, hand_mapping, hand_reward, tiny_table
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import mura_env  # noqa: F401  (registers MuraWeighting-v0)
import mura_env.logits as logits_mod
import mura_env.logits.reference as reference_mod
import mura_env.weighting.env as env_mod
from mura_env.constants import BODY_PARTS
from mura_env.logits import MissingLogitsError
from mura_env.logits.study_set import LOGIT_BOUND
from mura_env.weighting.env import MuraWeightingEnv


@pytest.fixture(scope="module")
def table():
    return tiny_table(k=3)


def _tune_rows(table) -> np.ndarray:
    return np.flatnonzero(table.studies["split"].eq("tune").to_numpy())


@pytest.mark.parametrize("kwargs", [{}, {"studies_per_episode": 3, "reward": "log_likelihood"},
                                    {"sampling": "sweep", "reward": "cost_sensitive"}])
def test_gymnasium_and_sb3_checkers_pass_without_warnings(table, kwargs) -> None:
    env = gym.make("MuraWeighting-v0", logits=table, **kwargs).unwrapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        gym_check_env(env)
        sb3_check_env(env, warn=True, skip_render_check=True)
        sb3_check_env(MuraWeightingEnv(logits=table, **kwargs), warn=True)


def test_spaces_have_the_documented_shapes_bounds_and_split(table) -> None:
    env = MuraWeightingEnv(logits=table)
    k = 3
    assert env.observation_space.shape == (2 * k + 7,)
    assert env.observation_space.dtype == np.float32
    assert np.isfinite(env.observation_space.low).all()
    assert np.isfinite(env.observation_space.high).all()
    assert env.action_space.shape == (k,) and env.action_space.dtype == np.float32
    assert (env.action_space.low == -1).all() and (env.action_space.high == 1).all()
    assert env.n_studies == 9  # the tune split by default
    assert MuraWeightingEnv(logits=table, split=None).n_studies == len(table)
    assert MuraWeightingEnv(logits=table, split="valid").n_studies == 5


def test_observation_layout_by_hand(table) -> None:
    env = MuraWeightingEnv(logits=table)
    rows = _tune_rows(table)
    for i, row in enumerate(rows):
        obs, info = env.reset(options={"study_index": i})
        assert info == {}
        expected = np.zeros(13, dtype=np.float32)
        expected[:6] = table.logits[row].reshape(-1)
        expected[6 + BODY_PARTS.index(table.studies["body_part"].iloc[row])] = 1.0
        np.testing.assert_array_equal(obs, expected)
        assert obs.dtype == np.float32 and obs in env.observation_space


def test_logits_clipped_in_observation_only() -> None:
    table = tiny_table(n_tune=2, n_train=0, n_valid=0, k=2)
    big = np.array(table.logits)
    big[0, 0] = [-500.0, 300.0]
    t2 = logits_mod.LogitsTable.from_arrays(table.studies, table.model_names, big)
    env = MuraWeightingEnv(logits=t2)
    obs, _ = env.reset(options={"study_index": 0})
    assert obs[0] == -LOGIT_BOUND and obs[1] == LOGIT_BOUND
    _, _, _, _, info = env.step(np.array([1.0, -1.0], dtype=np.float32))
    w, q, p = hand_mapping(big[0], [1.0, -1.0])
    assert q[0] == 1.0
    assert info["probability"] == pytest.approx(p, rel=1e-12)


@pytest.mark.parametrize("reward", REWARD_NAMES)
@pytest.mark.parametrize(("scale", "temperature", "threshold"),
                         [(3.0, 1.0, 0.5), (1.0, 0.25, 0.4), (80.0, 1.0, 0.6)])
def test_mapping_and_rewards_by_hand(table, reward, scale, temperature, threshold) -> None:
    env = MuraWeightingEnv(logits=table, reward=reward, action_scale=scale,
                           temperature=temperature, threshold=threshold, miss_cost=4.0,
                           false_alarm_cost=0.5, probability_floor=1e-3)
    rng = np.random.default_rng(7)
    rows = _tune_rows(table)
    for i, row in enumerate(rows):
        for action in (rng.uniform(-1, 1, 3).astype(np.float32), np.zeros(3, np.float32),
                       np.array([1.0, -1.0, 0.3], np.float32)):
            env.reset(options={"study_index": i})
            _, r, terminated, truncated, info = env.step(action)
            w, _, p = hand_mapping(table.logits[row], action, scale, temperature)
            label = int(table.studies["label"].iloc[row])
            pred = int(p > threshold)
            np.testing.assert_allclose(info["weights"], w, rtol=1e-12)
            assert info["weights"].sum() == pytest.approx(1.0)
            assert info["probability"] == pytest.approx(p, rel=1e-12)
            assert info["prediction"] == pred
            assert info["correct"] == (pred == label)
            assert info["label"] == label
            assert info["study_id"] == table.studies["study_id"].iloc[row]
            assert info["body_part"] == table.studies["body_part"].iloc[row]
            assert info["study_index"] == i
            assert r == pytest.approx(hand_reward(reward, p, label, threshold, 4.0, 0.5, 1e-3),
                                      rel=1e-12)
            assert isinstance(r, float)
            assert terminated is True and truncated is False


def test_zero_action_is_plain_average_and_clipping(table) -> None:
    env = MuraWeightingEnv(logits=table)
    env.reset(options={"study_index": 0})
    _, _, _, _, info = env.step(np.zeros(3, np.float32))
    q = table.abnormal_probabilities()[_tune_rows(table)[0]]
    assert info["probability"] == pytest.approx(q.mean(), rel=1e-12)
    env.reset(options={"study_index": 0})
    _, _, _, _, clipped = env.step(np.array([5.0, -7.0, 1.0]))
    env.reset(options={"study_index": 0})
    _, _, _, _, edge = env.step(np.array([1.0, -1.0, 1.0]))
    np.testing.assert_array_equal(clipped["weights"], edge["weights"])


def test_models_and_body_parts_kwargs(table) -> None:
    env = MuraWeightingEnv(logits=table, models=["m2", "m0"], body_parts=["ELBOW", "WRIST"],
                           split=None)
    keep = table.studies["body_part"].isin(["ELBOW", "WRIST"]).to_numpy()
    rows = np.flatnonzero(keep)
    assert env.n_studies == len(rows) and env.action_space.shape == (2,)
    assert env.model_names == ("m2", "m0")
    obs, _ = env.reset(options={"study_index": 0})
    np.testing.assert_array_equal(obs[:4], table.logits[rows[0]][[2, 0]].reshape(-1))
    _, _, _, _, info = env.step(np.array([0.5, -0.5], np.float32))
    _, _, p = hand_mapping(table.logits[rows[0]][[2, 0]], [0.5, -0.5])
    assert info["probability"] == pytest.approx(p, rel=1e-12)


@pytest.mark.parametrize(
    "action",
    [np.zeros(2, np.float32), np.zeros(4, np.float32), np.zeros((1, 3), np.float32),
     np.array([0.0, np.nan, 0.0], np.float32), np.array([np.inf, 0.0, 0.0]),
     np.array([-np.inf, np.inf, 0.0]), [0.0, 0.0], ["a", "b", "c"], 0.5],
)
def test_invalid_actions_raise_and_give_no_reward(table, action) -> None:
    env = gym.make("MuraWeighting-v0", logits=table)
    env.reset(seed=0, options={"study_index": 2})
    with pytest.raises(ValueError, match="action"):
        env.step(action)
    # the episode is untouched: a valid action still answers the same study
    _, _, terminated, _, info = env.step(np.zeros(3, np.float32))
    assert terminated and info["study_index"] == 2


def test_list_action_accepted(table) -> None:
    env = MuraWeightingEnv(logits=table)
    env.reset(options={"study_index": 1})
    _, r1, _, _, i1 = env.step([0.2, -0.4, 0.9])
    env.reset(options={"study_index": 1})
    _, r2, _, _, i2 = env.step(np.array([0.2, -0.4, 0.9]))
    assert r1 == r2 and i1["probability"] == i2["probability"]


def test_step_order_errors(table) -> None:
    env = MuraWeightingEnv(logits=table)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(3, np.float32))
    env.reset(seed=1)
    env.step(np.zeros(3, np.float32))
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(3, np.float32))


def _trajectory(env, seed: int, episodes: int = 40) -> list:
    out = []
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(123)
    for _ in range(episodes):
        done = False
        while not done:
            obs2, r, term, trunc, info = env.step(rng.uniform(-1, 1, 3).astype(np.float32))
            out.append((obs.tobytes(), r, info["study_id"], info["probability"]))
            obs = obs2
            done = term or trunc
        obs, _ = env.reset()
    return out


@pytest.mark.parametrize("spe", [1, 3])
def test_same_seed_same_trajectory(table, spe) -> None:
    a = _trajectory(gym.make("MuraWeighting-v0", logits=table, studies_per_episode=spe), 5)
    b = _trajectory(gym.make("MuraWeighting-v0", logits=table, studies_per_episode=spe), 5)
    c = _trajectory(gym.make("MuraWeighting-v0", logits=table, studies_per_episode=spe), 6)
    assert a == b
    assert a != c
    # reseeding the same env replays it
    env = MuraWeightingEnv(logits=table, studies_per_episode=spe)
    assert _trajectory(env, 5) == _trajectory(env, 5) == a


def test_random_sampling_uses_np_random_and_covers_split(table) -> None:
    env = MuraWeightingEnv(logits=table)
    env.reset(seed=3)
    seen = []
    for _ in range(900):
        _, _, _, _, info = env.step(np.zeros(3, np.float32))
        seen.append(info["study_index"])
        env.reset()
    counts = np.bincount(seen, minlength=9)
    assert (counts > 50).all()  # uniform over the 9 tune studies (expected 100 each)
    assert set(table.studies["study_id"].iloc[_tune_rows(table)]) >= {
        env.problem.studies.study_ids[i] for i in seen}
    # replacing np_random (as gymnasium allows) changes the draws
    env.np_random = np.random.default_rng(99)
    first = [env.reset()[0].tobytes() for _ in range(20)]
    env.np_random = np.random.default_rng(99)
    assert [env.reset()[0].tobytes() for _ in range(20)] == first


def test_sweep_visits_every_study_once_in_order(table) -> None:
    env = MuraWeightingEnv(logits=table, sampling="sweep", split="valid")
    env.reset(seed=0)
    visited = []
    for _ in range(env.n_studies):
        _, _, _, _, info = env.step(np.zeros(3, np.float32))
        visited.append(info["study_id"])
        env.reset()
    valid_ids = table.studies.loc[table.studies["split"].eq("valid"), "study_id"].tolist()
    assert visited == valid_ids
    # the sweep then starts over; a seeded reset restarts it
    _, _, _, _, info = env.step(np.zeros(3, np.float32))
    assert info["study_id"] == valid_ids[0]
    env.reset()
    _, _, _, _, info = env.step(np.zeros(3, np.float32))
    assert info["study_id"] == valid_ids[1]
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.zeros(3, np.float32))
    assert info["study_id"] == valid_ids[0]


def test_sweep_with_longer_episodes(table) -> None:
    env = MuraWeightingEnv(logits=table, sampling="sweep", studies_per_episode=4)
    obs, _ = env.reset(seed=0)
    visited, terms = [], []
    for _ in range(env.n_studies):
        obs_next, _, term, trunc, info = env.step(np.zeros(3, np.float32))
        np.testing.assert_array_equal(obs, env.problem.studies.observations[info["study_index"]])
        visited.append(info["study_index"])
        terms.append(term)
        assert not trunc
        obs = env.reset()[0] if term else obs_next
    assert visited == list(range(9))
    assert terms == [False, False, False, True] * 2 + [False]


def test_terminal_observation_is_answered_study(table) -> None:
    env = MuraWeightingEnv(logits=table)
    obs, _ = env.reset(seed=0)
    obs_end, *_ = env.step(np.zeros(3, np.float32))
    np.testing.assert_array_equal(obs, obs_end)
    assert obs is not obs_end


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"reward": "accuracy"}, "Unknown reward"), ({"temperature": 0.0}, "temperature"),
     ({"action_scale": float("inf")}, "action_scale"), ({"threshold": 1.5}, "threshold"),
     ({"studies_per_episode": 0}, "studies_per_episode"), ({"sampling": "all"}, "sampling"),
     ({"split": "test"}, "split"), ({"models": ["zz"]}, "models"),
     ({"split": "train", "body_parts": ["HUMERUS", "SHOULDER"]}, "No studies left"),
     ({"render_mode": "human"}, "render_mode")],
)
def test_out_of_range_kwargs_raise_a_value_error_naming_them(table, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        MuraWeightingEnv(logits=table, **kwargs)


def test_reset_refuses_a_study_index_outside_the_split(table) -> None:
    env = MuraWeightingEnv(logits=table)
    with pytest.raises(ValueError, match="study_index"):
        env.reset(options={"study_index": 9})


def test_logits_path_and_missing_reference_table(table, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = table.save(tmp_path / "t.parquet")
    env = gym.make("MuraWeighting-v0", logits=str(path))
    assert env.unwrapped.n_studies == 9
    monkeypatch.setattr(reference_mod, "REFERENCE_DIR", tmp_path / "no_reference")
    with pytest.raises(MissingLogitsError, match="experiments.pretrain_backbones"):
        gym.make("MuraWeighting-v0")
    # a given table wins over the (missing) reference table
    assert gym.make("MuraWeighting-v0", logits=table, reference_table=3).unwrapped.n_studies == 9


def test_a_split_with_hidden_logits_is_refused_and_the_others_work(table) -> None:
    logits = np.array(table.logits)
    valid = table.studies["split"].eq("valid").to_numpy()
    logits[valid] = np.nan
    hidden = logits_mod.LogitsTable.from_arrays(table.studies, table.model_names, logits)
    with pytest.raises(ValueError, match=f"valid logits are NaN in {int(valid.sum())} of"):
        MuraWeightingEnv(logits=hidden, split="valid")
    with pytest.raises(ValueError, match="hidden"):
        MuraWeightingEnv(logits=hidden, split=None)
    env = MuraWeightingEnv(logits=hidden, split="tune")
    obs, _ = env.reset(seed=0)
    assert np.isfinite(obs).all() and env.n_studies == 9


def test_docstring_example_runs() -> None:
    result = doctest.testmod(env_mod, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8 and result.failed == 0
