"""WeightingConfig: the env arguments, their defaults and checks, in one place."""

from __future__ import annotations

import re

import gymnasium as gym
import pytest
from env_fixtures import tiny_table
from gymnasium.envs.registration import load_env_creator

import mura_env
from mura_env.weighting.config import WeightingConfig
from mura_env.weighting.env import MuraWeightingEnv
from mura_env.weighting.mapping import DEFAULT_ACTION_SCALE, DEFAULT_THRESHOLD
from mura_env.weighting.vector_env import MuraWeightingVectorEnv


def test_defaults_come_from_the_mapping_module() -> None:
    cfg = WeightingConfig()
    assert cfg.action_scale == DEFAULT_ACTION_SCALE and cfg.threshold == DEFAULT_THRESHOLD
    assert cfg.split == "tune" and cfg.sampling == "random" and cfg.reward == "correct"
    assert cfg.mapping.softmax_scale == cfg.softmax_scale == DEFAULT_ACTION_SCALE


def test_lists_become_tuples_and_the_dict_round_trips() -> None:
    cfg = WeightingConfig(models=["m1", "m0"], split=["tune", "valid"], reward="signed")
    assert cfg.models == ("m1", "m0") and cfg.split == ("tune", "valid")
    data = cfg.to_dict()
    assert "logits" not in data and data["models"] == ["m1", "m0"]
    assert WeightingConfig.from_dict(data) == cfg


def test_unknown_arguments_are_named() -> None:
    with pytest.raises(TypeError, match="rewards"):
        WeightingConfig.build(rewards="signed")
    with pytest.raises(ValueError, match="body part"):
        WeightingConfig(body_parts=["KNEE"])


@pytest.mark.parametrize("env_id", mura_env.registered_env_ids())
def test_unknown_keywords_raise_in_python_words(env_id: str) -> None:
    """Libraries that retry without an argument (TorchRL drops ``frameskip`` this way) look for
    Python's own wording of the TypeError, from make, make_vec and the env classes alike."""
    expected = "unexpected keyword argument 'bogus_kw'"
    spec = gym.spec(env_id)
    with pytest.raises(TypeError, match=re.escape(f"{env_id}.__init__() got an {expected}")):
        gym.make(env_id, bogus_kw=1)
    with pytest.raises(TypeError, match=expected):
        load_env_creator(spec.entry_point)(bogus_kw=1)
    if spec.vector_entry_point is not None:
        with pytest.raises(TypeError, match=expected):
            gym.make_vec(env_id, num_envs=2, bogus_kw=1)
        with pytest.raises(TypeError, match=expected):
            load_env_creator(spec.vector_entry_point)(num_envs=2, bogus_kw=1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'frameskip', "
                                        "unexpected keyword argument 'bogus_kw'; valid: "):
        load_env_creator(spec.entry_point)(frameskip=4, bogus_kw=1)


def test_sweep_keeps_the_mapping_and_visits_every_study() -> None:
    cfg = WeightingConfig(action_scale=2.0, studies_per_episode=3, models=("m0",))
    sweep = cfg.sweep("valid")
    assert (sweep.split, sweep.sampling, sweep.studies_per_episode) == ("valid", "sweep", 1)
    assert sweep.mapping == cfg.mapping and sweep.models == cfg.models


def test_from_options_reads_fields_of_the_same_name() -> None:
    class Options:
        reward, action_scale, seed = "signed", 5.0, 3

    cfg = WeightingConfig.from_options(Options(), temperature=2.0)
    assert (cfg.reward, cfg.action_scale, cfg.temperature) == ("signed", 5.0, 2.0)


def test_envs_accept_a_config_or_keywords_alike() -> None:
    table = tiny_table(k=2)
    cfg = WeightingConfig(logits=table, reward="signed", split="valid")
    single = MuraWeightingEnv(config=cfg)
    assert single.config == cfg and single.n_studies == 5
    assert MuraWeightingEnv(logits=table, reward="signed", split="valid").config == cfg
    assert MuraWeightingEnv(config=cfg, split="tune").n_studies == 9  # keywords replace fields
    made = gym.make("MuraWeighting-v0", config=cfg).unwrapped
    assert made.config == cfg
    vec = MuraWeightingVectorEnv(4, config=cfg)
    assert vec.config == cfg and vec.n_studies == 5


def test_reference_table_is_an_argument_recorded_and_checked() -> None:
    cfg = WeightingConfig(reference_table=2)
    assert WeightingConfig().reference_table == 0
    data = cfg.to_dict()
    assert data["reference_table"] == 2
    assert WeightingConfig.from_dict(data) == cfg != WeightingConfig()
    legacy = {k: v for k, v in data.items() if k != "reference_table"}
    assert WeightingConfig.from_dict(legacy).reference_table == 0
    for bad in (-1, 1.5, "1", True, None):
        with pytest.raises(ValueError, match="reference_table"):
            WeightingConfig(reference_table=bad)


def test_load_table_prefers_the_given_logits() -> None:
    table = tiny_table(k=2)
    assert WeightingConfig(logits=table, reference_table=7).load_table() is table
