"""``MuraWorklist-v0`` with ``action="routing"`` and ``observe_gains=True``: the stacking
ensemble and the gains fitted on tune alone (cross-fitted on tune itself), the reward and
answer of each action by hand, masks, capacity never exceeded, the single env against the
vector env, the API checkers and the errors."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from test_worklist_env import READERS, _readers_table
from valid_swap import swap_valid

from agents.deferral.methods import out_of_fold_probabilities
from agents.weighting.baselines import Stacking
from agents.worklist.methods import PRIOR_STUDIES, WorklistData, routing_inputs
from mura_env.constants import BODY_PARTS
from mura_env.logits import LogitsTable
from mura_env.logits.study_set import StudySet
from mura_env.worklist.env import MuraWorklistEnv, MuraWorklistVectorEnv
from mura_env.worklist.problem import ENSEMBLE, ShiftState, WorklistProblem

K, R = 3, len(READERS)


@pytest.fixture(scope="module")
def table():
    return _readers_table(n_tune=84)


def _hand_skill(table) -> np.ndarray:
    """float ``[R, 7]``: each reader's tune accuracy per part, shrunk toward its overall."""
    tune = table.select(split="tune")
    labels = tune.studies["label"].to_numpy()
    parts = tune.studies["body_part"].to_numpy()
    skill = np.zeros((R, len(BODY_PARTS)))
    for r, reader in enumerate(READERS):
        right = tune.reads(reader) == labels
        for j, part in enumerate(BODY_PARTS):
            on = parts == part
            skill[r, j] = (right[on].sum() + PRIOR_STUDIES * right.mean()) / (
                on.sum() + PRIOR_STUDIES)
    return skill


@pytest.mark.parametrize("split", ["tune", "valid"])
def test_gains_and_ensemble_come_from_tune_and_match_the_hand_computation(table, split) -> None:
    cost = 0.05
    problem = WorklistProblem(logits=table, split=split, action="routing", observe_gains=True,
                              read_cost=cost)
    tune = WorklistData.from_table(table, "tune")
    if split == "tune":  # each tune study by the stacking that did not see it
        expected_p = out_of_fold_probabilities(tune.studies, tune.groups()).probabilities
        in_sample = Stacking().fit(tune.studies).predict(tune.studies)[0]
        assert not np.allclose(expected_p, in_sample)
    else:
        expected_p = Stacking().fit(tune.studies).predict(StudySet.select(table, "valid"))[0]
    np.testing.assert_allclose(problem.ensemble_probability, expected_p, atol=1e-12)
    parts = problem.studies.body_part_index
    expected = (_hand_skill(table)[:, parts].T - np.maximum(expected_p, 1 - expected_p)[:, None]
                - cost)
    np.testing.assert_allclose(problem.gains, expected, atol=1e-12)
    # the observation ends with the gains; the action is one of R + 1 answers
    assert problem.observation_space.shape == (2 * K + 7 + R + 1 + R,)
    assert problem.action_space == gym.spaces.Discrete(R + 1)
    state = ShiftState.start(np.arange(10)[None], problem.capacities, parts)
    obs = problem.observe(state)
    np.testing.assert_allclose(obs[0, -R:], problem.gains[0], rtol=1e-6)
    assert problem.observation_space.contains(obs[0])


def test_the_combiner_reads_no_valid_study(table) -> None:
    other = swap_valid(table)
    a = WorklistProblem(logits=table, split="tune", action="routing", observe_gains=True)
    b = WorklistProblem(logits=other, split="tune", action="routing", observe_gains=True)
    np.testing.assert_array_equal(a.gains, b.gains)
    np.testing.assert_array_equal(a.ensemble_probability, b.ensemble_probability)


def test_a_table_with_hidden_valid_logits_routes_its_tune_studies_as_before(table) -> None:
    logits = np.array(table.logits)
    logits[table.studies["split"].eq("valid").to_numpy()] = np.nan
    hidden = LogitsTable.from_arrays(table.studies, table.model_names, logits)
    a = WorklistProblem(logits=table, split="tune", action="routing", observe_gains=True)
    b = WorklistProblem(logits=hidden, split="tune", action="routing", observe_gains=True)
    np.testing.assert_array_equal(a.ensemble_probability, b.ensemble_probability)
    np.testing.assert_array_equal(a.gains, b.gains)


CALLS: list[object] = []


def counting_combiner(table, split, readers, read_cost):
    """The default combiner, counting its calls (for the test below)."""
    CALLS.append(split)
    return routing_inputs(table, split, readers, read_cost)


def test_one_combiner_fit_serves_every_split_of_a_table(table) -> None:
    CALLS.clear()
    name = "test_worklist_routing:counting_combiner"
    problems = {split: WorklistProblem(logits=table, split=split, action="routing",
                                       combiner=name) for split in ("tune", "valid")}
    assert len(CALLS) == 1  # the valid problem reused the tune problem's fit
    for split, problem in problems.items():  # each gets what a fit for its own split gives
        ids, probability, gains = routing_inputs(table, split, problem.readers, 0.0)
        np.testing.assert_array_equal(ids, problem.studies.study_ids)
        np.testing.assert_array_equal(probability, problem.ensemble_probability)
        np.testing.assert_array_equal(gains, problem.gains)


def test_every_action_answers_and_rewards_as_documented(table) -> None:
    cost, size = 0.25, 8
    env = MuraWorklistEnv(logits=table, action="routing", read_cost=cost, shift_size=size,
                          capacity=(0.25, 0.125, 0.0))  # 2, 1 and 0 reads
    problem = env.problem
    labels = problem.studies.labels
    reads = {r: table.select(split="tune").reads(r) for r in READERS}
    rows = np.arange(size) * 3
    env.reset(options={"shift": rows})
    plan = [(0, None), (1, "right"), (2, "wrong"), (2, None),  # wrong is full: the ensemble
            (3, None),  # half has no capacity at all
            (1, "right"), (1, None), (0, None)]
    left = {"right": 2, "wrong": 1, "half": 0}
    for position, (action, who) in enumerate(plan):
        i = int(rows[position])
        np.testing.assert_array_equal(env.action_masks(),
                                      [True] + [left[r] > 0 for r in READERS])
        _, reward, terminated, _, info = env.step(action)
        p = problem.ensemble_probability[i]
        assert info["probability"] == pytest.approx(p, abs=1e-6)
        assert info["ensemble_prediction"] == int(p > 0.5)
        assert not info["weights"].any()  # the stacking is not a weighting
        if who is None:
            assert info["answered_by_index"] == ENSEMBLE
            assert reward == float(int(p > 0.5) == labels[i])
        else:
            left[who] -= 1
            read = int(reads[who][i])
            assert info["answered_by"] == who and info["prediction"] == read
            assert reward == pytest.approx(float(read == labels[i]) - cost)
        np.testing.assert_array_equal(info["capacity_left"], [left[r] for r in READERS])
        assert terminated == (position == size - 1)
    for bad in (-1, R + 1, 1.5, np.array([1, 2])):
        env.reset()
        with pytest.raises(ValueError, match="actions must"):
            env.step(bad)
    assert isinstance(env.render(), type(None))


def test_routing_never_exceeds_capacity_and_the_vector_env_agrees_with_the_single(
        table) -> None:
    kwargs = {"logits": table, "action": "routing", "observe_gains": True, "shift_size": 12,
              "capacity": (0.25, 0.1, 0.4), "scenario": "emergency"}
    n = 16
    vec = MuraWorklistVectorEnv(n, **kwargs)
    capacities = vec.problem.capacities
    rng = np.random.default_rng(0)
    obs, _ = vec.reset(seed=5)
    singles = [MuraWorklistEnv(**kwargs) for _ in range(n)]
    starts = [s.reset(options={"shift": vec._state.rows[e].copy()})[0]
              for e, s in enumerate(singles)]
    np.testing.assert_array_equal(obs, np.stack(starts))
    used = np.zeros((n, R), dtype=np.int64)
    for _ in range(12):
        actions = rng.integers(0, R + 1, n)  # often a full reader: the ensemble answers
        obs, reward, terminated, _, info = vec.step(actions)
        step_info = info["final_info"] if terminated.any() else info
        who = step_info["answered_by"]
        for e in range(n):
            _, r_single, _, _, info_single = singles[e].step(int(actions[e]))
            assert info_single["answered_by_index"] == who[e]
            assert r_single == reward[e]
            if who[e] >= 0:
                used[e, who[e]] += 1
        assert (step_info["capacity_left"] >= 0).all()
    assert terminated.all()
    assert (used <= capacities).all() and (used == capacities).any()


@pytest.mark.parametrize("kwargs", [{"action": "routing"},
                                    {"action": "routing", "observe_gains": True},
                                    {"observe_gains": True, "observe_mix": True}])
def test_passes_the_gymnasium_and_sb3_env_checkers(table, kwargs) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gym_check_env(gym.make("MuraWorklist-v0", logits=table, **kwargs).unwrapped)
        sb3_check_env(MuraWorklistEnv(logits=table, **kwargs), warn=True)


def test_the_weights_action_has_no_mask_and_bad_interfaces_are_refused(table) -> None:
    env = MuraWorklistEnv(logits=table)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="only action='routing'"):
        env.action_masks()
    with pytest.raises(ValueError, match="action must be one of"):
        MuraWorklistEnv(logits=table, action="route")
    with pytest.raises(ValueError, match="observe_gains must be True or False"):
        MuraWorklistEnv(logits=table, observe_gains="yes")


def constant_combiner(table, split, readers, read_cost):
    """A combiner for the test below: P(abnormal) 0.9 and gain 0.1 for every study."""
    ids = table.select(split=split).studies["study_id"].to_numpy(dtype=object)
    return ids, np.full(len(ids), 0.9), np.full((len(ids), len(readers)), 0.1)


def test_the_combiner_is_any_function_named_by_entry_point(table) -> None:
    problem = WorklistProblem(logits=table, action="routing", observe_gains=True,
                              combiner="test_worklist_routing:constant_combiner")
    assert (problem.ensemble_probability == 0.9).all() and (problem.gains == 0.1).all()
    with pytest.raises(ValueError, match="cannot be loaded"):
        WorklistProblem(logits=table, action="routing", combiner="no_such_module:fit")
    with pytest.raises(ValueError, match="'module:function'"):
        WorklistProblem(logits=table, action="routing", combiner="stacking")
