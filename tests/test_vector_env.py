"""MuraWeightingVectorEnv: same-step autoreset, info conventions, agreement with the single env
study for study, sweep coverage, seeding, invalid actions."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from env_fixtures import REWARD_NAMES, hand_mapping, hand_reward, tiny_table
from gymnasium.vector import AutoresetMode

import mura_env  # noqa: F401  (registers MuraWeighting-v0)
from mura_env.weighting.env import MuraWeightingEnv
from mura_env.weighting.mapping import recheck_margin
from mura_env.weighting.vector_env import STEP_INFO_KEYS, MuraWeightingVectorEnv


@pytest.fixture(scope="module")
def table():
    return tiny_table(n_tune=23, k=4, seed=2)


def test_make_vec_builds_native_env(table) -> None:
    envs = gym.make_vec("MuraWeighting-v0", num_envs=6, logits=table)
    assert isinstance(envs, MuraWeightingVectorEnv)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert envs.num_envs == 6
    single = MuraWeightingEnv(logits=table)
    assert envs.single_observation_space == single.observation_space
    assert envs.single_action_space == single.action_space
    assert envs.observation_space.shape == (6, 15) and envs.action_space.shape == (6, 4)
    obs, info = envs.reset(seed=0)
    assert info == {} and obs.shape == (6, 15) and obs.dtype == np.float32
    assert obs in envs.observation_space
    envs.close()


@pytest.mark.parametrize("reward", REWARD_NAMES)
@pytest.mark.parametrize("num_envs", [1, 5, 23, 40])
def test_agrees_with_single_env_study_for_study(table, reward, num_envs) -> None:
    """Both envs sweep the tune split; each study gets the same action in both."""
    kwargs = dict(logits=table, reward=reward, sampling="sweep", miss_cost=3.0,
                  false_alarm_cost=0.25)
    n = 23
    rng = np.random.default_rng(num_envs)
    actions = rng.uniform(-1.2, 1.2, size=(n, 4)).astype(np.float32)  # some get clipped

    single = MuraWeightingEnv(**kwargs)
    single.reset(seed=0)
    ref = {}
    for _ in range(n):
        i = single._study
        _, r, _, _, info = single.step(actions[i])
        ref[i] = (r, info)
        single.reset()

    vec = MuraWeightingVectorEnv(num_envs, **kwargs)
    vec.reset(seed=0)
    got = {}
    while len(got) < n:
        obs_before = vec._study.copy()
        _, rewards, term, trunc, info = vec.step(actions[obs_before])
        assert term.all() and not trunc.any()
        fi = info["final_info"]
        for j, i in enumerate(fi["study_index"].tolist()):
            got.setdefault(i, (rewards[j], {k: fi[k][j] for k in STEP_INFO_KEYS}))
    assert sorted(got) == list(range(n))
    for i in range(n):
        r_single, info_single = ref[i]
        r_vec, info_vec = got[i]
        assert info_vec["prediction"] == info_single["prediction"]
        assert info_vec["correct"] == info_single["correct"]
        assert info_vec["label"] == info_single["label"]
        np.testing.assert_allclose(info_vec["weights"], info_single["weights"], rtol=1e-5,
                                   atol=1e-7)
        assert info_vec["probability"] == pytest.approx(info_single["probability"], abs=1e-5)
        if reward == "log_likelihood":
            assert r_vec == pytest.approx(r_single, rel=1e-5, abs=1e-5)
        else:
            assert r_vec == r_single  # exact: the prediction decides it


@pytest.mark.parametrize("reward", REWARD_NAMES)
def test_rewards_by_hand(table, reward) -> None:
    vec = MuraWeightingVectorEnv(8, logits=table, reward=reward, action_scale=2.0,
                                 temperature=0.5, threshold=0.45)
    vec.reset(seed=4)
    rng = np.random.default_rng(0)
    rows = np.flatnonzero(table.studies["split"].eq("tune").to_numpy())
    for _ in range(5):
        actions = rng.uniform(-1, 1, size=(8, 4)).astype(np.float32)
        _, rewards, _, _, info = vec.step(actions)
        fi = info["final_info"]
        for j in range(8):
            row = rows[fi["study_index"][j]]
            w, _, p = hand_mapping(table.logits[row], actions[j], 2.0, 0.5)
            label = int(table.studies["label"].iloc[row])
            np.testing.assert_allclose(fi["weights"][j], w, rtol=1e-5, atol=1e-7)
            assert fi["probability"][j] == pytest.approx(p, abs=1e-5)
            assert fi["prediction"][j] == int(p > 0.45)
            assert fi["label"][j] == label
            assert rewards[j] == pytest.approx(hand_reward(reward, p, label, 0.45), abs=1e-5)


@pytest.mark.parametrize("scale", [3.0, 30.0, 200.0])
def test_near_threshold_predictions_match_float64(table, scale) -> None:
    """Thresholds placed 1e-9 around the float64 probability: the float32 batch cannot resolve
    them, the float64 recheck must."""
    rng = np.random.default_rng(5)
    actions = rng.uniform(-1, 1, size=(8, 4)).astype(np.float32)
    probe = MuraWeightingEnv(logits=table, action_scale=scale)
    for j, a in enumerate(actions):
        probe.reset(options={"study_index": j})
        p = probe.step(a)[4]["probability"]
        for threshold in (p - 1e-9, p + 1e-9):
            single = MuraWeightingEnv(logits=table, action_scale=scale, threshold=threshold)
            single.reset(options={"study_index": j})
            expected = single.step(a)[4]["prediction"]
            vec = MuraWeightingVectorEnv(1, logits=table, action_scale=scale,
                                         threshold=threshold, sampling="sweep")
            vec.reset(seed=0)
            for _ in range(j):  # advance the sweep to study j
                vec.step(np.zeros((1, 4), np.float32))
            info = vec.step(a[None])[4]["final_info"]
            assert info["study_index"][0] == j
            assert info["prediction"][0] == expected
        assert expected in (0, 1)


def test_float32_batch_error_is_within_recheck_margin(table) -> None:
    for scale, temperature in ((3.0, 1.0), (30.0, 1.0), (5.0, 0.05)):
        vec = MuraWeightingVectorEnv(64, logits=table, action_scale=scale,
                                     temperature=temperature)
        problem = vec.problem
        rng = np.random.default_rng(1)
        idx = rng.integers(0, problem.n_studies, size=4096)
        actions = rng.uniform(-1, 1, size=(4096, 4)).astype(np.float32)
        out = problem.evaluate(idx, actions)
        # float64 reference of every entry
        z = scale / temperature * actions.astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        w = np.exp(z)
        w /= w.sum(axis=1, keepdims=True)
        p64 = (w * problem.studies.probabilities[idx]).sum(axis=1)
        margin = recheck_margin(scale / temperature)
        assert np.abs(out["probability"] - p64).max() < margin / 4


def test_same_step_autoreset_and_final_obs(table) -> None:
    vec = MuraWeightingVectorEnv(7, logits=table)
    obs, _ = vec.reset(seed=1)
    obs_copy = obs.copy()
    obs[:] = -5.0  # the caller owns the returned arrays
    rng = np.random.default_rng(0)
    for _ in range(6):
        new_obs, rewards, term, trunc, info = vec.step(
            rng.uniform(-1, 1, (7, 4)).astype(np.float32))
        assert term.dtype == np.bool_ and term.all() and not trunc.any()
        assert rewards.shape == (7,) and rewards.dtype == np.float64
        assert set(info) == {"final_obs", "_final_obs", "final_info", "_final_info"}
        assert info["_final_obs"].all() and info["_final_info"].all()
        np.testing.assert_array_equal(info["final_obs"], obs_copy)  # the answered studies
        fi = info["final_info"]
        for key in STEP_INFO_KEYS:
            assert fi[key].shape[0] == 7 and fi["_" + key].all()
        np.testing.assert_array_equal(vec.problem.studies.observations[fi["study_index"]], obs_copy)
        assert new_obs.dtype == np.float32 and new_obs in vec.observation_space
        obs_copy = new_obs.copy()


def test_longer_episodes_info_split(table) -> None:
    vec = MuraWeightingVectorEnv(4, logits=table, studies_per_episode=2)
    vec.reset(seed=0, options={"reset_mask": None})
    vec.reset(options={"reset_mask": np.array([True, False, True, False])})
    # envs 0 and 2 were just reset; all four are at step 0 of an episode
    a = np.zeros((4, 4), np.float32)
    _, _, term, _, info = vec.step(a)
    assert not term.any() and "final_info" not in info
    assert info["_probability"].all() and set(STEP_INFO_KEYS) <= set(info)
    _, _, term, _, info = vec.step(a)
    assert term.all() and "final_info" in info

    vec.reset(seed=0)
    vec.step(a)  # every env at step 1 of 2
    vec.reset(options={"reset_mask": np.array([True, True, False, False])})  # 0, 1 at step 0
    _, _, term, _, info = vec.step(a)
    np.testing.assert_array_equal(term, [False, False, True, True])
    np.testing.assert_array_equal(info["_final_info"], term)
    np.testing.assert_array_equal(info["final_info"]["_probability"], term)
    np.testing.assert_array_equal(info["_probability"], ~term)


def test_sweep_visits_every_study_exactly_once(table) -> None:
    for num_envs in (3, 5, 23, 30):
        vec = MuraWeightingVectorEnv(num_envs, logits=table, sampling="sweep",
                                     studies_per_episode=2)
        vec.reset(seed=0)
        answered = []
        while len(answered) < vec.n_studies:
            _, _, term, _, info = vec.step(np.zeros((num_envs, 4), np.float32))
            # the study each env answered, in env order: final_info where its episode
            # ended, the top-level info where it goes on
            step_rows = np.full(num_envs, -1)
            if "final_info" in info:
                fi = info["final_info"]
                step_rows[fi["_study_index"]] = fi["study_index"][fi["_study_index"]]
            if "study_index" in info:
                step_rows[info["_study_index"]] = info["study_index"][info["_study_index"]]
            assert (step_rows >= 0).all()
            answered.extend(step_rows.tolist())
        assert answered[: vec.n_studies] == list(range(vec.n_studies))  # each once, in order


def test_seeding_and_reset_mask(table) -> None:
    def run(seed: int) -> list:
        vec = gym.make_vec("MuraWeighting-v0", num_envs=5, logits=table)
        obs, _ = vec.reset(seed=seed)
        out = [obs.tobytes()]
        rng = np.random.default_rng(0)
        for _ in range(4):
            obs, r, *_ = vec.step(rng.uniform(-1, 1, (5, 4)).astype(np.float32))
            out += [obs.tobytes(), r.tobytes()]
        return out

    assert run(3) == run(3)
    assert run(3) != run(4)
    vec = MuraWeightingVectorEnv(5, logits=table)
    obs, _ = vec.reset(seed=0)
    mask = np.array([False, True, False, False, True])
    obs2, _ = vec.reset(options={"reset_mask": mask})
    np.testing.assert_array_equal(obs2[~mask], obs[~mask])
    with pytest.raises(ValueError, match="reset_mask"):
        vec.reset(options={"reset_mask": np.ones(4, bool)})
    with pytest.raises(TypeError, match="seed"):
        vec.reset(seed=[1, 2, 3, 4, 5])


@pytest.mark.parametrize(
    "actions",
    [np.zeros((3, 4), np.float32), np.zeros((4, 3), np.float32), np.zeros(4, np.float32),
     np.where(np.eye(4, dtype=bool), np.nan, 0.0).astype(np.float32),
     np.full((4, 4), np.inf), np.array([["a"] * 4] * 4)],
)
def test_invalid_actions_raise(table, actions) -> None:
    vec = MuraWeightingVectorEnv(4, logits=table)
    vec.reset(seed=0)
    before = vec._study.copy()
    with pytest.raises(ValueError, match="actions"):
        vec.step(actions)
    np.testing.assert_array_equal(vec._study, before)  # nothing was answered
    _, _, _, _, info = vec.step(np.zeros((4, 4), np.float32))
    np.testing.assert_array_equal(info["final_info"]["study_index"], before)


def test_nan_error_names_the_env(table) -> None:
    vec = MuraWeightingVectorEnv(4, logits=table)
    vec.reset(seed=0)
    a = np.zeros((4, 4), np.float32)
    a[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"env\(s\) \[2\]"):
        vec.step(a)


def test_step_before_reset_and_bad_num_envs(table) -> None:
    with pytest.raises(RuntimeError, match="reset"):
        MuraWeightingVectorEnv(2, logits=table).step(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="num_envs"):
        MuraWeightingVectorEnv(0, logits=table)


def test_study_ids_and_body_parts_map_the_info_study_index(table) -> None:
    vec = MuraWeightingVectorEnv(3, logits=table)
    vec.reset(seed=0)
    info = vec.step(np.zeros((3, 4), np.float32))[4]["final_info"]
    ids = vec.study_ids[info["study_index"]]
    tune = table.studies[table.studies["split"].eq("tune")].reset_index(drop=True)
    assert list(ids) == tune["study_id"].iloc[info["study_index"]].tolist()
    assert list(vec.body_parts[info["study_index"]]) == tune["body_part"].iloc[
        info["study_index"]].tolist()
