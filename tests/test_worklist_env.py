"""MuraWorklist-v0 on small hand-built tables: the routing rule, rewards, info and observations
by hand, capacities never exceeded, the vector env against the single env, seeded shifts, the
scenarios' mixes, the API checkers, the argument errors and the shipped tables."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from env_fixtures import REWARD_NAMES, hand_mapping, hand_reward, tiny_table, with_known_reads
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import mura_env
from mura_env.constants import BODY_PARTS
from mura_env.logits import LogitsTable
from mura_env.worklist.env import STEP_INFO_KEYS, MuraWorklistEnv, MuraWorklistVectorEnv
from mura_env.worklist.problem import ENSEMBLE, ShiftState, WorklistProblem, route
from mura_env.worklist.shifts import EMERGENCY_MIX, ORTHOPAEDIC_MIX, ShiftSampler

K = 3  # members of the tiny tables
READERS = ("right", "wrong", "half")  # always right, always wrong, right on even tune rows


def _readers_table(n_tune: int = 21) -> LogitsTable:
    """``tiny_table`` with three readers whose reads are known by construction."""
    return with_known_reads(tiny_table(n_tune=n_tune, k=K), READERS)


@pytest.fixture(scope="module")
def table() -> LogitsTable:
    return _readers_table()


def _action(prefs: np.ndarray, scores: tuple[float, ...]) -> np.ndarray:
    return np.concatenate([prefs, scores]).astype(np.float32)


def _hand_read_reward(name: str, read: int, label: int, cost: float) -> float:
    """A read's reward from the docs: the reward function on the read, minus ``read_cost``."""
    if name == "log_likelihood":
        return (0.0 if read == label else math.log(1e-6)) - cost
    return hand_reward(name, float(read), label) - cost


# ------------------------------------------------------------------ every case by hand
@pytest.mark.parametrize("reward", REWARD_NAMES)
def test_every_routing_case_matches_the_hand_computed_reward_info_and_observation(
        table, reward) -> None:
    size, cost = 10, 0.25
    env = MuraWorklistEnv(logits=table, reward=reward, read_cost=cost, shift_size=size,
                          capacity=(0.2, 0.1, 0.2))  # 2, 1 and 2 reads
    problem = env.problem
    tune = table.select(split="tune")
    logits, labels = tune.logits, tune.studies["label"].to_numpy()
    reads = {r: tune.reads(r) for r in READERS}
    rows = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 1])
    obs, info = env.reset(options={"shift": rows})
    np.testing.assert_array_equal(info["shift"], rows)
    rng = np.random.default_rng(0)
    # (scores, who answers): no positive score, each reader, a tie (first wins), full readers
    plan = [((-0.5, 0.0, -1.0), None), ((0.9, 0.1, 0.3), "right"),
            ((0.2, 0.8, 0.8), "wrong"),  # tie between wrong and half: the first
            ((0.1, 0.7, 0.2), None),  # wrong is full (capacity 1): the ensemble, not half
            ((0.3, 0.2, 0.6), "half"), ((0.6, 0.6, 0.6), "right"),
            ((0.9, 0.1, 0.8), None),  # right is full: the ensemble
            ((-0.1, -0.2, 0.05), "half"), ((0.0, 0.0, 0.99), None), ((0.0, 0.0, 0.0), None)]
    left = {"right": 2, "wrong": 1, "half": 2}
    capacity = {"right": 2, "wrong": 1, "half": 2}
    seen = set()
    for position, (scores, who) in enumerate(plan):
        i = int(rows[position])
        # the observation of the study about to be answered
        np.testing.assert_array_equal(obs[:2 * K + 7], problem.studies.observations[i])
        np.testing.assert_allclose(obs[2 * K + 7:2 * K + 10],
                                   [left[r] / capacity[r] for r in READERS], rtol=1e-6)
        assert obs[2 * K + 10] == pytest.approx((size - position) / size, rel=1e-6)
        assert obs.shape == (2 * K + 7 + 3 + 1,) and obs.dtype == np.float32
        action = _action(rng.uniform(-1, 1, K), scores)
        obs, r, terminated, truncated, info = env.step(action)
        w, _, p = hand_mapping(logits[i], action[:K])
        label = int(labels[i])
        assert info["study_index"] == i and info["position"] == position
        assert info["label"] == label and info["body_part"] == tune.studies["body_part"].iloc[i]
        # the ensemble as the vector env computes it: float32, predictions made exact
        np.testing.assert_allclose(info["weights"], w, rtol=0, atol=1e-6)
        assert info["probability"] == pytest.approx(p, abs=1e-6)
        assert info["ensemble_prediction"] == int(p > 0.5)
        assert info["ensemble_correct"] == (int(p > 0.5) == label)
        np.testing.assert_array_equal(info["reader_correct"],
                                      [reads[x][i] == label for x in READERS])
        if who is None:
            assert info["answered_by"] == "ensemble" and info["answered_by_index"] == ENSEMBLE
            assert info["prediction"] == int(p > 0.5)
            assert r == pytest.approx(hand_reward(reward, p, label), abs=2e-5)
        else:
            left[who] -= 1
            read = int(reads[who][i])
            assert info["answered_by"] == who
            assert info["answered_by_index"] == READERS.index(who)
            assert info["prediction"] == read
            assert r == pytest.approx(_hand_read_reward(reward, read, label, cost), abs=1e-9)
            seen.add((who, read == label))
        assert info["correct"] == (info["prediction"] == label)
        np.testing.assert_array_equal(info["capacity_left"], [left[x] for x in READERS])
        assert terminated == (position == size - 1) and not truncated
    # the final observation: the last study, capacity after it, 1/N of the shift left
    np.testing.assert_array_equal(obs[:2 * K + 7], problem.studies.observations[rows[-1]])
    np.testing.assert_allclose(obs[2 * K + 7:], [0.0, 0.0, 0.0, 1 / size], rtol=1e-6)
    assert {("right", True), ("wrong", False)} <= seen and {"half"} <= {w for w, _ in seen}
    with pytest.raises(RuntimeError, match="reset"):
        env.step(_action(np.zeros(K), (0.0, 0.0, 0.0)))


@pytest.mark.parametrize("observe_mix", [False, True])
def test_the_observation_holds_capacity_shares_shift_left_and_optionally_the_mix(
        table, observe_mix) -> None:
    size = 8
    env = MuraWorklistEnv(logits=table, shift_size=size, capacity=(0.25, 0.5, 0.0),
                          observe_mix=observe_mix)  # 2, 4 and 0 reads
    assert env.observation_space.shape == (2 * K + 7 + 3 + 1 + (7 if observe_mix else 0),)
    parts = env.problem.studies.body_part_index
    rows = np.array([3, 3, 10, 0, 7, 14, 5, 20])
    obs, _ = env.reset(options={"shift": rows})
    left = np.array([2, 4, 0])
    for position in range(size):
        assert env.observation_space.contains(obs)
        np.testing.assert_allclose(obs[2 * K + 7:2 * K + 10],
                                   left / np.maximum([2, 4, 0], 1), rtol=1e-6)
        assert obs[2 * K + 10] == pytest.approx((size - position) / size, rel=1e-6)
        if observe_mix:
            mix = np.bincount(parts[rows[:position + 1]], minlength=7) / (position + 1)
            np.testing.assert_allclose(obs[2 * K + 11:], mix, rtol=1e-6)
            assert obs[2 * K + 11:].sum() == pytest.approx(1.0, rel=1e-6)
        # reader 2 has no capacity: a study it scores best goes to the ensemble
        scores, who = [((0.9, 0.1, 1.0), ENSEMBLE), ((0.5, 0.9, 0.0), 1),
                       ((0.9, 0.2, 0.0), 0)][position % 3]
        obs, _, _, _, info = env.step(_action(np.zeros(K), scores))
        assert info["answered_by_index"] == who
        if who >= 0:
            left[who] -= 1
        np.testing.assert_array_equal(info["capacity_left"], left)
    assert left.tolist() == [0, 1, 0]


# ------------------------------------------------------------------ capacity
def _best_free(scores: np.ndarray, capacity_left: np.ndarray) -> int:
    """The routing rule written out for one study."""
    best = int(np.argmax(scores))
    return best if scores[best] > 0 and capacity_left[best] > 0 else ENSEMBLE


def test_capacity_is_never_exceeded_and_a_full_best_reader_leaves_it_to_the_ensemble(
        table) -> None:
    env = MuraWorklistEnv(logits=table, shift_size=12, capacity=(0.25, 0.1, 0.5),
                          reward="signed", scenario="emergency")
    capacities = env.problem.capacities
    assert capacities.tolist() == [3, 1, 6]
    rng = np.random.default_rng(1)
    full_best = 0
    for shift in range(60):
        env.reset(seed=shift)
        left = capacities.copy()
        reads = np.zeros(3, dtype=np.int64)
        done = False
        while not done:
            action = rng.uniform(-0.5, 1.0, K + 3).astype(np.float32)
            _, r, done, _, info = env.step(action)
            expected = _best_free(action[K:], left)
            assert info["answered_by_index"] == expected
            if expected == ENSEMBLE:
                assert info["answered_by"] == "ensemble"
                assert info["prediction"] == info["ensemble_prediction"]
                assert r == (1.0 if info["ensemble_correct"] else -1.0)
                full_best += int(action[K:].max() > 0)
            else:
                left[expected] -= 1
                reads[expected] += 1
                assert r == (1.0 if info["reader_correct"][expected] else -1.0)
            np.testing.assert_array_equal(info["capacity_left"], left)
        assert (reads <= capacities).all() and (left >= 0).all()
    assert full_best > 50  # the full-reader case came up often


def test_the_vector_env_never_exceeds_a_capacity(table) -> None:
    n, size = 16, 10
    vec = gym.make_vec("MuraWorklist-v0", num_envs=n, logits=table, shift_size=size,
                       capacity=(0.2, 0.3, 0.1), reward="correct")
    capacities = np.array([2, 3, 1])
    vec.reset(seed=0)
    rng = np.random.default_rng(2)
    reads = np.zeros((n, 3), dtype=np.int64)
    left = np.tile(capacities, (n, 1))
    shifts_done = 0
    for _ in range(5 * size):
        actions = rng.uniform(-0.3, 1.0, (n, K + 3)).astype(np.float32)
        _, rewards, terminated, _, info = vec.step(actions)
        step = info["final_info"] if terminated.all() else info
        expected = np.array([_best_free(actions[j, K:], left[j]) for j in range(n)])
        np.testing.assert_array_equal(step["answered_by"], expected)
        ensemble = expected == ENSEMBLE
        np.testing.assert_array_equal(rewards[ensemble], step["ensemble_correct"][ensemble])
        for j in np.flatnonzero(~ensemble):
            left[j, expected[j]] -= 1
            reads[j, expected[j]] += 1
        np.testing.assert_array_equal(step["capacity_left"], left)
        assert (reads <= capacities).all()
        if terminated.all():
            shifts_done += 1
            reads[:] = 0
            left[:] = capacities
    assert shifts_done == 5


def test_route_is_the_rule_written_out() -> None:
    rng = np.random.default_rng(3)
    scores = np.round(rng.uniform(-1, 1, (500, 4)), 1)  # many ties, zeros and negatives
    capacity_left = rng.integers(0, 3, (500, 4))
    expected = [_best_free(s, c) for s, c in zip(scores, capacity_left, strict=True)]
    np.testing.assert_array_equal(route(scores, capacity_left), expected)
    np.testing.assert_array_equal(route(scores.astype(np.float32), capacity_left), expected)
    assert route(np.zeros((3, 0)), np.zeros((3, 0), dtype=np.int64)).tolist() == [-1] * 3


# ------------------------------------------------------------------ vector env = single env
def _assert_same_step(vec_step: dict, j: int, one: dict, readers: tuple[str, ...]) -> None:
    assert vec_step["study_index"][j] == one["study_index"]
    who = vec_step["answered_by"][j]
    assert (readers[who] if who >= 0 else "ensemble") == one["answered_by"]
    np.testing.assert_array_equal(vec_step["capacity_left"][j], one["capacity_left"])
    np.testing.assert_array_equal(vec_step["reader_correct"][j], one["reader_correct"])
    for key in ("prediction", "label", "correct", "ensemble_prediction", "ensemble_correct"):
        assert vec_step[key][j] == one[key], key
    assert vec_step["probability"][j] == pytest.approx(one["probability"], abs=2e-5)
    np.testing.assert_allclose(vec_step["weights"][j], one["weights"], atol=2e-5)


@pytest.mark.parametrize("kwargs", [{"reward": "correct"},
                                    {"reward": "log_likelihood", "observe_mix": True,
                                     "read_cost": 0.1}])
def test_the_vector_env_equals_the_single_env_study_for_study(table, kwargs) -> None:
    n, size, rounds = 3, 5, 3
    kwargs = {"logits": table, "sampling": "sweep", "shift_size": size,
              "capacity": (0.4, 0.2, 0.2), **kwargs}
    vec = gym.make_vec("MuraWorklist-v0", num_envs=n, **kwargs)
    assert isinstance(vec, MuraWorklistVectorEnv)
    rng = np.random.default_rng(4)
    actions = rng.uniform(-1, 1, (rounds * size, n, K + 3)).astype(np.float32)
    first, _ = vec.reset(seed=0)
    steps = [vec.step(a) for a in actions]
    single = MuraWorklistEnv(**kwargs)
    for shift in range(rounds * n):  # the sweep hands shifts out to sub-env 0, 1, 2, 0, ...
        rnd, j = divmod(shift, n)
        obs, info = single.reset(seed=0) if shift == 0 else single.reset()
        np.testing.assert_array_equal(info["shift"], (np.arange(size) + shift * size)
                                      % single.problem.n_studies)
        if rnd == 0:
            np.testing.assert_array_equal(obs, first[j])
        else:  # the autoreset's first observation came with the previous shift's last step
            np.testing.assert_array_equal(obs, steps[rnd * size - 1][0][j])
        for position in range(size):
            t = rnd * size + position
            obs, r, terminated, _, one = single.step(actions[t, j])
            v_obs, v_rewards, v_term, v_trunc, v_info = steps[t]
            assert v_rewards[j] == pytest.approx(r, abs=2e-5)
            assert v_term[j] == terminated and not v_trunc[j]
            if terminated:
                assert v_info["_final_obs"][j] and v_info["_final_info"][j]
                np.testing.assert_array_equal(v_info["final_obs"][j], obs)
                _assert_same_step(v_info["final_info"], j, one, READERS)
                assert "answered_by" not in v_info  # every shift ended together
            else:
                assert "final_obs" not in v_info and v_info["_answered_by"][j]
                np.testing.assert_array_equal(v_obs[j], obs)
                _assert_same_step(v_info, j, one, READERS)


def test_autoreset_masks_when_shifts_end_apart(table) -> None:
    n, size = 4, 4
    vec = MuraWorklistVectorEnv(n, logits=table, shift_size=size, capacity=0.5)
    vec.reset(seed=0)
    rng = np.random.default_rng(5)
    vec.step(rng.uniform(-1, 1, (n, K + 3)).astype(np.float32))
    mask = np.array([True, False, True, False])
    obs, _ = vec.reset(options={"reset_mask": mask})  # sub-envs 0 and 2 start over
    np.testing.assert_allclose(obs[mask, 2 * K + 10], 1.0)
    np.testing.assert_allclose(obs[~mask, 2 * K + 10], 0.75)
    for t in range(2 * size):
        _, _, terminated, _, info = vec.step(rng.uniform(-1, 1, (n, K + 3)).astype(np.float32))
        # sub-envs 1 and 3 end at t = 2, 6; sub-envs 0 and 2 one step later
        expected = ~mask if (t + 2) % size == 0 else (mask if (t + 1) % size == 0 else None)
        if expected is None:
            assert not terminated.any() and "final_info" not in info
            assert info["_study_index"].all()
            continue
        np.testing.assert_array_equal(terminated, expected)
        np.testing.assert_array_equal(info["_final_obs"], expected)
        assert set(info["final_info"]) == set(STEP_INFO_KEYS) | {"_" + k for k in STEP_INFO_KEYS}
        for key in STEP_INFO_KEYS:
            np.testing.assert_array_equal(info["final_info"]["_" + key], expected)
            np.testing.assert_array_equal(info["_" + key], ~expected)
        # the ended shifts' last observation: 1/N of the shift left; the others go on
        np.testing.assert_allclose(info["final_obs"][expected, 2 * K + 10], 1 / size)


def test_lazy_part_counts_equal_the_counts_of_the_studies_shown(table) -> None:
    problem = WorklistProblem(logits=table, shift_size=6, capacity=0.5)
    parts = problem.studies.body_part_index
    rng = np.random.default_rng(6)
    rows, _ = problem.new_shifts(5, rng)
    state = ShiftState.start(rows, problem.capacities, parts)

    def expected() -> np.ndarray:
        return np.array([np.bincount(parts[state.rows[e, :p + 1]], minlength=7)
                         for e, p in enumerate(state.position)])

    for t in range(9):
        actions = rng.uniform(-1, 1, (5, K + 3))
        out = problem.answer(state, actions)
        if t in (1, 3):  # read some steps, skip others
            np.testing.assert_array_equal(state.part_counts, expected())
        if out["done"].any() or t == 4:
            mask = out["done"] | (np.arange(5) == 2 if t == 4 else False)
            new, _ = problem.new_shifts(int(mask.sum()), rng)
            state.restart(mask, new, problem.capacities, parts)
    np.testing.assert_array_equal(state.part_counts, expected())
    assert (state.part_counts.sum(axis=1) == state.position + 1).all()


# ------------------------------------------------------------------ shifts
def test_shifts_are_deterministic_per_seed(table) -> None:
    env = MuraWorklistEnv(logits=table, shift_size=30)
    a = env.reset(seed=11)[1]["shift"]
    b = env.reset(seed=11)[1]["shift"]
    c = env.reset(seed=12)[1]["shift"]
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    vec = MuraWorklistVectorEnv(3, logits=table, shift_size=30)
    actions = np.zeros((3, K + 3), dtype=np.float32)

    def studies(seed: int) -> np.ndarray:
        vec.reset(seed=seed)
        return np.array([vec.step(actions)[4]["study_index"] for _ in range(10)])

    np.testing.assert_array_equal(studies(5), studies(5))
    assert (studies(5) != studies(6)).any()


def _draw_written_out(sampler: ShiftSampler, part_index: np.ndarray, n_shifts: int, size: int,
                      seed: int) -> np.ndarray:
    """The documented draw in plain loops: mixes, then every part's uniform, then every
    study's uniform, shift after shift."""
    rng = np.random.default_rng(seed)
    mixes = sampler.mixes(n_shifts, rng)
    u, v = rng.random((n_shifts, size)), rng.random((n_shifts, size))
    pools = [np.flatnonzero(part_index == j) for j in range(len(BODY_PARTS))]  # table order
    out = np.empty((n_shifts, size), dtype=np.int64)
    for s in range(n_shifts):
        cdf = np.cumsum(mixes[s])
        cdf[-1] = 1.0
        for t in range(size):
            pool = pools[min(int((u[s, t] >= cdf).sum()), len(BODY_PARTS) - 1)]
            out[s, t] = pool[int(math.floor(v[s, t] * len(pool)))]
    return out


@pytest.mark.parametrize(("scenario", "n_shifts", "size"), [
    ("random", 40, 7), ("split", 40, 7), ("emergency", 40, 7), ("orthopaedic", 40, 7),
    ("random", 400, 100)])  # several blocks of shifts
def test_the_draw_is_the_documented_one(table, scenario, n_shifts, size) -> None:
    parts = WorklistProblem(logits=table).studies.body_part_index
    sampler = ShiftSampler(parts, scenario, 2.0)
    drawn = sampler.draw(n_shifts, size, np.random.default_rng(8))
    np.testing.assert_array_equal(drawn, _draw_written_out(sampler, parts, n_shifts, size, 8))


def _mix(env_parts: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return np.bincount(env_parts[rows.ravel()], minlength=7) / rows.size


def _named(mix: dict[str, float], present: np.ndarray) -> np.ndarray:
    shares = np.array([mix[p] for p in BODY_PARTS]) * present
    return shares / shares.sum()


@pytest.mark.parametrize("body_parts", [None, ("FINGER", "HAND", "SHOULDER", "ELBOW")])
def test_the_scenarios_mixes_are_what_they_claim(table, body_parts) -> None:
    rng = np.random.default_rng(9)
    split_mix = None
    for scenario in ("split", "random", "emergency", "orthopaedic"):
        problem = WorklistProblem(logits=table, scenario=scenario, shift_size=100,
                                  body_parts=body_parts)
        parts = problem.studies.body_part_index
        counts = np.bincount(parts, minlength=7)
        present = counts > 0
        rows, _ = problem.new_shifts(1000, rng)
        assert rows.shape == (1000, 100)
        mix = _mix(parts, rows)
        assert (mix[~present] == 0).all()
        if scenario == "split":
            split_mix = counts / counts.sum()
            np.testing.assert_allclose(mix, split_mix, atol=0.005)
        elif scenario == "random":
            np.testing.assert_allclose(mix, split_mix, atol=0.01)  # the mean mix
            per_shift = np.array([_mix(parts, r) for r in rows[:200]])
            assert per_shift.std(axis=0)[present].min() > 0.02  # shifts differ
        else:
            named = EMERGENCY_MIX if scenario == "emergency" else ORTHOPAEDIC_MIX
            np.testing.assert_allclose(mix, _named(named, present), atol=0.005)
        # the studies of a part come up alike
        drawn = np.bincount(rows.ravel(), minlength=problem.n_studies)
        for j in np.flatnonzero(mix > 0.02):
            of_part = drawn[parts == j]
            assert of_part.min() > 0.8 * of_part.mean()


# ------------------------------------------------------------------ API, errors, shipped table
@pytest.mark.parametrize("kwargs", [{}, {"observe_mix": True, "sampling": "sweep"},
                                    {"reward": "log_likelihood", "scenario": "emergency",
                                     "shift_size": 7, "read_cost": 0.3}])
def test_gymnasium_and_sb3_checkers_pass_without_warnings(table, kwargs) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(gym.make("MuraWorklist-v0", logits=table, **kwargs).unwrapped)
        sb3_check_env(MuraWorklistEnv(logits=table, **kwargs), warn=True)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"capacity": -0.1}, ValueError, "capacity"),
    ({"capacity": 1.5}, ValueError, r"capacity must be a share in \[0, 1\]"),
    ({"capacity": math.nan}, ValueError, "capacity"),
    ({"capacity": "half"}, ValueError, "capacity"),
    ({"capacity": (0.1, 0.2)}, ValueError, "capacity gives 2 shares for 3 readers"),
    ({"scenario": "night"}, ValueError, "scenario must be one of"),
    ({"shift_size": 0}, ValueError, "shift_size must be an integer >= 1"),
    ({"shift_size": 2.5}, ValueError, "shift_size"),
    ({"shift_size": True}, ValueError, "shift_size"),
    ({"concentration": 0.0}, ValueError, "concentration"),
    ({"read_cost": -1.0}, ValueError, "read_cost"),
    ({"observe_mix": "yes"}, ValueError, "observe_mix"),
    ({"readers": ("right", "nobody")}, KeyError, "nobody"),
    ({"readers": ("right", "right")}, ValueError, "distinct"),
])
def test_argument_errors_are_clear(table, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        MuraWorklistEnv(logits=table, **kwargs)


def test_action_and_reset_errors(table) -> None:
    with pytest.raises(KeyError, match="with_reads.*with_simulated_reader"):
        MuraWorklistEnv(logits=tiny_table())
    env = MuraWorklistEnv(logits=table, shift_size=4)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(K + 3, dtype=np.float32))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([0, 0, 0, 0, np.nan, 0], dtype=np.float32))
    with pytest.raises(ValueError, match="one score per reader"):
        env.step(np.zeros(K, dtype=np.float32))
    for bad in ([0, 1, 2], [0, 1, 2, 99], [0.0, 1.0, 2.0, 3.0], [-1, 0, 1, 2]):
        with pytest.raises(ValueError, match="options\\['shift'\\]"):
            env.reset(options={"shift": np.array(bad)})
    vec = MuraWorklistVectorEnv(2, logits=table, shift_size=4)
    with pytest.raises(RuntimeError, match="reset"):
        vec.step(np.zeros((2, K + 3), dtype=np.float32))
    vec.reset(seed=0)
    with pytest.raises(ValueError, match="finite"):
        vec.step(np.array([[0] * 6, [0, 0, 0, 0, 0, np.inf]], dtype=np.float32))
    with pytest.raises(ValueError, match="reset_mask"):
        vec.reset(options={"reset_mask": np.array([1, 0])})
    with pytest.raises(ValueError, match="num_envs"):
        MuraWorklistVectorEnv(0, logits=table)


def test_a_single_reader_and_a_reader_without_capacity(table) -> None:
    env = MuraWorklistEnv(logits=table, readers=("half",), capacity=0.0, shift_size=3)
    assert env.readers == ("half",) and env.action_space.shape == (K + 1,)
    env.reset(seed=0)
    for _ in range(3):
        obs, _, _, _, info = env.step(np.ones(K + 1, dtype=np.float32))
        assert info["answered_by"] == "ensemble" and obs[2 * K + 7] == 0.0


def test_the_shipped_table_works_with_its_three_radiologists() -> None:
    env = gym.make("MuraWorklist-v0")
    problem = env.unwrapped.problem
    assert problem.readers == ("radiologist_1", "radiologist_2", "radiologist_3")
    k = problem.n_models
    assert env.observation_space.shape == (2 * k + 7 + 3 + 1,)
    assert env.action_space.shape == (k + 3,)
    np.testing.assert_array_equal(problem.capacities, [10, 10, 10])
    tune = problem.table.select(split="tune")
    np.testing.assert_array_equal(problem.reads[:, 2], tune.reads("radiologist_3"))
    obs, info = env.reset(seed=0)
    assert info["shift"].shape == (100,)
    total = 0.0
    for _ in range(100):
        obs, r, terminated, _, info = env.step(env.action_space.sample())
        total += r
    assert terminated and env.observation_space.contains(obs)
    vec = gym.make_vec("MuraWorklist-v0", num_envs=4, scenario="orthopaedic")
    obs, _ = vec.reset(seed=0)
    assert obs.shape == (4, 2 * k + 11) and mura_env.WORKLIST_ENV_ID == "MuraWorklist-v0"
