"""Rendering of MuraWeighting-v0 and the SB3 entry points that ask for it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from env_fixtures import tiny_table
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

import mura_env  # noqa: F401  (registers MuraWeighting-v0)
from mura_env.constants import BODY_PARTS
from mura_env.weighting.env import RENDER_MODES, MuraWeightingEnv
from mura_env.weighting.render import FRAME_HEIGHT, frame_width


@pytest.fixture(scope="module")
def table():
    return tiny_table(k=3)


def test_render_modes_and_fps_are_declared() -> None:
    env = gym.make("MuraWeighting-v0")
    assert set(env.metadata["render_modes"]) == {"ansi", "rgb_array"} == set(RENDER_MODES)
    assert env.metadata["render_fps"] > 0
    assert env.render_mode is None and env.unwrapped.render() is None


def test_rgb_frame_shows_part_bars_and_label(table) -> None:
    env = MuraWeightingEnv(logits=table, render_mode="rgb_array", sampling="sweep")
    env.reset(seed=0)
    before = env.render()
    assert before.shape == (FRAME_HEIGHT, frame_width(3), 3) and before.dtype == np.uint8
    info = env.step(np.array([1.0, -1.0, -1.0], np.float32))[4]
    after = env.render()
    assert after.shape == before.shape
    assert not np.array_equal(before, after)  # the weights and the verdict appear
    cell = after.shape[1] // len(BODY_PARTS)
    part = BODY_PARTS.index(info["body_part"])
    strip = after[5, :, :]
    lit = [c for c in range(len(BODY_PARTS)) if (strip[c * cell + cell // 2] != 255).any()]
    assert lit == [part]
    green, red = np.array([30, 150, 60]), np.array([200, 40, 40])
    colors = {tuple(c) for c in after.reshape(-1, 3)}
    assert (tuple(green) in colors) == bool(info["correct"])
    assert (tuple(red) in colors) == (not info["correct"])


def test_ansi_text_names_the_study_and_the_verdict(table) -> None:
    env = MuraWeightingEnv(logits=table, render_mode="ansi")
    env.reset(seed=3)
    assert "not answered" in env.render()
    info = env.step(np.zeros(3, np.float32))[4]
    text = env.render()
    assert info["study_id"] in text and info["body_part"] in text
    assert f"p={info['probability']:.3f}" in text
    assert ("right" if info["correct"] else "wrong") in text
    for name in env.model_names:
        assert name in text


def test_render_before_reset_is_an_error(table) -> None:
    env = MuraWeightingEnv(logits=table, render_mode="ansi")
    with pytest.raises(RuntimeError, match="reset"):
        env.render()


def test_vector_env_renders_its_first_sub_env(table) -> None:
    vec = gym.make_vec("MuraWeighting-v0", num_envs=3, logits=table, render_mode="ansi")
    vec.reset(seed=0)
    info = vec.step(np.zeros((3, 3), np.float32))[4]["final_info"]
    text = vec.render()
    assert str(vec.study_ids[info["study_index"][0]]) in text


def test_render_frames_follow_an_episode_with_record_wrappers(table) -> None:
    env = gym.wrappers.RenderCollection(
        gym.make("MuraWeighting-v0", logits=table, render_mode="rgb_array"))
    env.reset(seed=0)
    env.step(env.action_space.sample())
    frames = env.render()
    assert len(frames) == 2 and all(f.shape[0] == FRAME_HEIGHT for f in frames)


def test_make_vec_env_with_its_defaults_uses_rgb_array() -> None:
    vec = make_vec_env("MuraWeighting-v0", n_envs=2)
    assert isinstance(vec, DummyVecEnv)
    assert vec.render_mode == "rgb_array"
    vec.reset()
    frames = vec.get_images()
    assert len(frames) == 2 and frames[0].dtype == np.uint8
    vec.close()


def test_ppo_trains_on_subprocess_envs_made_without_env_kwargs() -> None:
    vec = make_vec_env("MuraWeighting-v0", n_envs=2, vec_env_cls=SubprocVecEnv)
    try:
        model = PPO("MlpPolicy", vec, n_steps=128, batch_size=64, n_epochs=1, seed=0,
                    device="cpu")
        model.learn(total_timesteps=256)
        assert model.num_timesteps >= 256
    finally:
        vec.close()
