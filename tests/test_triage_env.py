"""``MuraTriage-v0`` on hand-built tables: every study read once, masks enforced, rewards that
add up to the room's cost, the vector env equal to the single env, shifts fixed by their seed,
the checkers of Gymnasium and SB3."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from env_fixtures import tiny_table, with_known_reads
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import mura_env  # noqa: F401
from agents.triage.rollout import evaluation_episodes, play_policy, play_rule, triage_scores
from agents.triage.rules import CMu, FirstInFirstOut
from mura_env.logits import LogitsTable
from mura_env.triage.config import COST_PER_REWARD
from mura_env.triage.env import STEP_INFO_KEYS, MuraTriageEnv, MuraTriageVectorEnv
from mura_env.triage.problem import MINUTES_SCALE
from mura_env.triage.shifts import READ_MINUTES

READERS = tuple(READ_MINUTES)  # right, wrong, right on even rows
SHORT = {"minutes": 60.0, "queue_slots": 8}


def _readers_table() -> LogitsTable:
    """``tiny_table`` with the room's three radiologists, whose reads are known by
    construction."""
    return with_known_reads(tiny_table(n_tune=21, n_valid=9), READERS)


@pytest.fixture(scope="module")
def table() -> LogitsTable:
    return _readers_table()


def _last_open(mask: np.ndarray) -> int:
    """The latest open slot (a choice that differs from first in, first out)."""
    return int(np.flatnonzero(mask)[-1])


def _play(env: MuraTriageEnv, seed: int, choose=_last_open) -> tuple[list[float], list[dict]]:
    """Play one shift; returns the rewards and infos of its steps."""
    _, info = env.reset(seed=seed)
    rewards, infos, done = [], [], False
    while not done:
        _, reward, done, truncated, info = env.step(choose(info["action_mask"]))
        assert not truncated
        rewards.append(reward)
        infos.append(info)
    return rewards, infos


@pytest.mark.parametrize("kwargs", [{}, {"profile": "surge", "fatigue": 0.5},
                                    {"deadline": 5.0, "late_cost": 3.0, "read_cv": 1.0}])
def test_every_study_is_read_once_and_the_rewards_add_up_to_the_cost(table, kwargs) -> None:
    env = MuraTriageEnv(logits=table, wrong_read_cost=7.0, **SHORT, **kwargs)
    rewards, infos = _play(env, seed=3)
    shift = env.episode.shift
    room = shift.room
    n = len(shift.labels)
    assert n > 10 and len(infos) == n  # one decision per arrival
    assert sorted(i["study"] for i in infos) == list(range(n))  # none twice, none lost
    assert (room.reader >= 0).all() and np.isfinite(room.start).all()
    assert all(i["wait"] >= 0 for i in infos)
    cost = env.problem.shift_cost(shift)
    assert cost["wrong_reads"] == sum(not i["correct"] for i in infos)
    assert cost["total"] == pytest.approx(room.cost + 7.0 * cost["wrong_reads"])
    assert sum(rewards) == pytest.approx(-cost["total"] / COST_PER_REWARD, rel=1e-9)
    for i in infos:  # the reads are those the table holds
        reader = READERS.index(i["reader_id"])
        assert i["correct"] == (reader == 0 or (reader == 2 and i["correct"]))
    readers = room.reader
    for r in range(3):  # one read at a time per radiologist
        mine = np.flatnonzero(readers == r)
        order = mine[np.argsort(room.start[mine])]
        ends = room.start[order] + room.taken[order]
        assert (room.start[order][1:] >= ends[:-1] - 1e-9).all()


def test_a_masked_action_is_refused_with_a_clear_error(table) -> None:
    env = MuraTriageEnv(logits=table, **SHORT)
    _, info = env.reset(seed=0)
    waiting = int(info["action_mask"].sum())
    assert waiting == 1 and (env.action_masks() == info["action_mask"]).all()
    with pytest.raises(ValueError, match="names an empty slot: 1 study waits"):
        env.step(waiting)
    with pytest.raises(ValueError, match=r"whole number|integer in \[0, 7\]"):
        env.step(8)
    with pytest.raises(ValueError, match=r"integer in \[0, 7\]"):
        env.step(0.5)
    env.step(0)  # the refused actions changed nothing
    earliest = MuraTriageEnv(logits=table, masked_action="earliest", **SHORT)
    _, info = earliest.reset(seed=0)
    _, _, _, _, info = earliest.step(7)
    assert info["study"] == 0


def test_the_observation_shows_the_room(table) -> None:
    env = MuraTriageEnv(logits=table, **SHORT)
    obs, info = env.reset(seed=1)
    for _ in range(15):
        obs, _, done, _, info = env.step(0)
    room, problem = env.episode.shift.room, env.problem
    assert obs.shape == env.observation_space.shape and env.observation_space.contains(obs)
    assert obs[:3].sum() == 1 and obs[env.episode.reader] == 1
    assert obs[9] == pytest.approx(room.now / 60.0)
    slots = obs[problem.head_size:].reshape(8, problem.slot_size)
    m = min(len(room.queue), 8)
    assert (slots[:m, 0] == 1).all() and (slots[m:] == 0).all()
    first = room.queue[0]
    assert slots[0, 1] == pytest.approx(env.episode.shift.probability[first])
    assert slots[0, 2] == pytest.approx((room.now - room.arrivals[first]) / MINUTES_SCALE)
    assert info["queue_length"] == len(room.queue) and info["time"] == room.now


def test_the_vector_env_equals_the_single_env_step_for_step(table) -> None:
    vec = gym.make_vec("MuraTriage-v0", num_envs=3, vectorization_mode="vector_entry_point",
                       logits=table, **SHORT)
    assert isinstance(vec, MuraTriageVectorEnv)
    obs, info = vec.reset(seed=11)
    singles = [MuraTriageEnv(logits=table, **SHORT) for _ in range(3)]
    firsts = [s.reset(options={"shift_seed": int(seed)}) for s, seed in
              zip(singles, info["shift_seed"], strict=True)]
    for j, (o, _) in enumerate(firsts):
        np.testing.assert_array_equal(obs[j], o)
    going = np.ones(3, dtype=bool)
    while going.any():
        masks = vec.action_masks()
        actions = np.array([_last_open(m) for m in masks])
        obs, rewards, done, truncated, info = vec.step(actions)
        assert not truncated.any()
        for j in np.flatnonzero(going):
            o, r, d, _, one = singles[j].step(actions[j])
            assert r == rewards[j] and d == done[j]
            step = info["final_info"] if d else info
            for key in STEP_INFO_KEYS:
                assert step[key][j] == one[key]
            np.testing.assert_array_equal(info["final_obs"][j] if d else obs[j], o)
            going[j] = not d


def test_shifts_are_deterministic_per_seed(table) -> None:
    def played(seed: int) -> list[float]:
        return _play(MuraTriageEnv(logits=table, **SHORT), seed)[0]

    assert played(5) == played(5)
    assert played(5) != played(6)


def test_fatigue_lengthens_reads_and_rest_undoes_it(table) -> None:
    rested = MuraTriageEnv(logits=table, **SHORT)
    tired = MuraTriageEnv(logits=table, fatigue=1.0, **SHORT)
    _play(rested, seed=4, choose=lambda m: 0)
    _play(tired, seed=4, choose=lambda m: 0)
    a, b = rested.episode.shift.room, tired.episode.shift.room
    base = b.read_minutes[np.arange(len(b.reader)), b.reader]
    assert (b.taken >= base - 1e-12).all() and (b.taken > base).any()
    first = np.argmin(b.start)
    assert b.taken[first] == base[first]  # nobody has read yet: no strain
    assert a.taken[first] == b.taken[first]


def test_policies_and_rules_are_scored_on_the_same_shifts(table) -> None:
    class Earliest:
        def predict(self, obs, deterministic=True):
            return np.zeros(len(obs), dtype=np.int64), None

    config = MuraTriageEnv(logits=table, **SHORT).config
    problem, episodes = evaluation_episodes(config, "valid", 4, 0)
    by_policy = triage_scores(problem, play_policy(Earliest(), problem, episodes))
    by_rule = triage_scores(problem, play_rule(FirstInFirstOut(),
                                               evaluation_episodes(config, "valid", 4, 0)[1]))
    assert by_policy == by_rule
    played = play_rule(CMu(), evaluation_episodes(config, "valid", 4, 0)[1])
    c_mu = triage_scores(problem, played)
    assert c_mu["cost_per_shift"] != by_rule["cost_per_shift"]  # another order, same shifts
    assert c_mu["cost_per_shift"] == pytest.approx(
        np.mean([problem.shift_cost(e.shift)["total"] for e in played]))
    assert c_mu["reward"] == pytest.approx(-c_mu["cost_per_shift"] / COST_PER_REWARD)
    assert 0 < c_mu["utilisation"] <= 1


@pytest.mark.parametrize("kwargs", [{}, {"profile": "surge", "deadline": 10.0, "fatigue": 0.2}])
def test_gymnasium_and_sb3_checkers_pass(table, kwargs) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make("MuraTriage-v0", logits=table, masked_action="earliest", **SHORT,
                       **kwargs)
        gym_check_env(env.unwrapped)
        sb3_check_env(MuraTriageEnv(logits=table, masked_action="earliest", **SHORT, **kwargs),
                      warn=True)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"load": 0.0}, ValueError, "load"),
    ({"profile": "night"}, ValueError, "profile"),
    ({"urgency": 0.5}, ValueError, "urgency"),
    ({"readers": ("radiologist_1", "nobody")}, ValueError, "readers"),
    ({"queue_slots": 0}, ValueError, "queue_slots"),
    ({"masked_action": "skip"}, ValueError, "masked_action"),
    ({"wrong_read_cost": -1.0}, ValueError, "wrong_read_cost"),
    ({"fatigue": -0.1}, ValueError, "fatigue"),
    ({"read_shape": "gamma"}, ValueError, "read_shape"),
])
def test_argument_errors_are_clear(table, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        MuraTriageEnv(logits=table, **kwargs)


def test_a_table_without_the_readers_is_named() -> None:
    with pytest.raises(KeyError, match="no reader 'radiologist_1'"):
        MuraTriageEnv(logits=tiny_table(n_tune=21))
