"""Reward functions: values from their definitions, scalars and arrays alike."""

from __future__ import annotations

import math

import numpy as np
import pytest
from env_fixtures import REWARD_NAMES, hand_reward

from mura_env.rewards import (
    REWARDS,
    correct_reward,
    cost_sensitive_reward,
    log_likelihood_reward,
    make_reward,
    reward_bounds,
    signed_reward,
)

CASES = [  # (probability, label)
    (0.9, 1), (0.2, 1), (0.7, 0), (0.1, 0), (0.5, 1), (0.5, 0), (1.0, 0), (0.0, 1),
]


def test_registry_names() -> None:
    assert tuple(REWARDS) == REWARD_NAMES


def test_correct_and_signed_scalars() -> None:
    assert correct_reward(0.9, 1, 1) == 1.0 and correct_reward(0.9, 1, 0) == 0.0
    assert signed_reward(0.1, 0, 0) == 1.0 and signed_reward(0.1, 0, 1) == -1.0
    assert isinstance(correct_reward(0.9, 1, 1), float)


def test_log_likelihood_scalars() -> None:
    assert log_likelihood_reward(0.8, 1, 1) == pytest.approx(math.log(0.8))
    assert log_likelihood_reward(0.8, 1, 0) == pytest.approx(math.log(0.2))
    # clipped at the floor: probability 1 of "abnormal" for a normal study
    assert log_likelihood_reward(1.0, 1, 0) == pytest.approx(math.log(1e-6))
    assert log_likelihood_reward(1.0, 1, 0, probability_floor=0.01) == pytest.approx(
        math.log(0.01))


def test_cost_sensitive_scalars() -> None:
    assert cost_sensitive_reward(0.2, 0, 1, miss_cost=5.0, false_alarm_cost=1.5) == -5.0
    assert cost_sensitive_reward(0.8, 1, 0, miss_cost=5.0, false_alarm_cost=1.5) == -1.5
    assert cost_sensitive_reward(0.8, 1, 1) == 0.0
    assert cost_sensitive_reward(0.2, 0, 0) == 0.0
    assert math.copysign(1.0, cost_sensitive_reward(0.2, 0, 0)) == 1.0  # +0.0, not -0.0


@pytest.mark.parametrize("name", REWARD_NAMES)
def test_make_reward_matches_definition_scalars_and_arrays(name: str) -> None:
    fn = make_reward(name, miss_cost=3.0, false_alarm_cost=0.5, probability_floor=1e-3)
    expected = [hand_reward(name, p, y, miss_cost=3.0, false_alarm_cost=0.5, floor=1e-3)
                for p, y in CASES]
    got_scalar = [fn(p, int(p > 0.5), y) for p, y in CASES]
    np.testing.assert_allclose(got_scalar, expected, rtol=1e-12)
    probs = np.array([p for p, _ in CASES])
    labels = np.array([y for _, y in CASES], dtype=np.int8)
    preds = (probs > 0.5).astype(np.int8)
    got_array = fn(probs, preds, labels)
    assert isinstance(got_array, np.ndarray) and got_array.shape == (len(CASES),)
    np.testing.assert_allclose(got_array, expected, rtol=1e-12)


@pytest.mark.parametrize("name", REWARD_NAMES)
def test_bounds_hold(name: str) -> None:
    rng = np.random.default_rng(1)
    p = np.concatenate([rng.random(500), [0.0, 1.0, 0.5]])
    y = rng.integers(0, 2, size=len(p))
    r = make_reward(name)(p, (p > 0.5).astype(np.int64), y)
    lo, hi = reward_bounds(name)
    assert lo <= r.min() and r.max() <= hi
    assert lo < hi


def test_bad_names_and_params() -> None:
    with pytest.raises(ValueError, match="Unknown reward 'accuracy'"):
        make_reward("accuracy")
    with pytest.raises(ValueError, match="miss_cost"):
        make_reward("cost_sensitive", miss_cost=-1.0)
    with pytest.raises(ValueError, match="false_alarm_cost"):
        make_reward("cost_sensitive", false_alarm_cost=float("nan"))
    with pytest.raises(ValueError, match="probability_floor"):
        make_reward("log_likelihood", probability_floor=0.0)
    with pytest.raises(ValueError, match="Unknown reward"):
        reward_bounds("nope")
