"""Reward functions of ``MuraWeighting-v0``: small pure functions of one answered study.

Every reward takes the ensemble's abnormality ``probability``, its ``prediction``
(``probability > threshold``, 0 or 1) and the study's true ``label`` (0 normal, 1 abnormal)
and returns the reward. They work on Python scalars (the single env) and, unchanged, on NumPy
arrays of shape ``[n]`` (the vector env), so both envs share one definition.

============== ========================================================== ==================
name           reward                                                     range
============== ========================================================== ==================
correct        1 if ``prediction == label`` else 0                        [0, 1]
signed         +1 if ``prediction == label`` else -1                      [-1, 1]
log_likelihood ``log(max(P(true label), probability_floor))`` where       [log floor, 0]
               ``P(true label) = probability`` if label 1 else ``1 - p``
cost_sensitive ``-miss_cost`` for a missed abnormality (label 1,           [-max cost, 0]
               prediction 0), ``-false_alarm_cost`` for a false alarm
               (label 0, prediction 1), 0 when correct
============== ========================================================== ==================
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

#: Default floor of the probability of the true label in ``log_likelihood`` (reward >= log floor).
DEFAULT_PROBABILITY_FLOOR = 1e-6
#: Default cost of a missed abnormality (false negative) in ``cost_sensitive``.
DEFAULT_MISS_COST = 2.0
#: Default cost of a false alarm (false positive) in ``cost_sensitive``.
DEFAULT_FALSE_ALARM_COST = 1.0

#: ``reward(probability, prediction, label)`` -> float (scalars) or float64 array ``[n]``.
RewardFn = Callable[[Any, Any, Any], Any]


def correct_reward(probability: Any, prediction: Any, label: Any) -> Any:
    """1.0 when the study prediction is right, else 0.0.

    Args:
        probability: ensemble abnormality probability (unused; kept for a common signature).
        prediction: 0/1 prediction, a Python int or an int array ``[n]``.
        label: 0/1 true label, same kind as ``prediction``.

    Returns:
        A float (scalars) or a float64 array ``[n]``.
    """
    return (prediction == label) * 1.0


def signed_reward(probability: Any, prediction: Any, label: Any) -> Any:
    """+1.0 when the study prediction is right, else -1.0 (same arguments as
    :func:`correct_reward`)."""
    return (prediction == label) * 2.0 - 1.0


def log_likelihood_reward(
    probability: Any,
    prediction: Any,
    label: Any,
    probability_floor: float = DEFAULT_PROBABILITY_FLOOR,
) -> Any:
    """Log of the ensemble probability of the true label, clipped below at ``probability_floor``.

    Args:
        probability: ensemble abnormality probability in [0, 1], float or float array ``[n]``.
        prediction: unused (common signature).
        label: 0/1 true label.
        probability_floor: lower clip of the probability of the true label, in (0, 1).

    Returns:
        ``log(max(p_true, probability_floor))`` in ``[log(probability_floor), 0]``: a float for
        scalars, a float64 array ``[n]`` for arrays.
    """
    p_true = label * probability + (1 - label) * (1.0 - probability)
    if isinstance(p_true, np.ndarray):
        return np.log(np.clip(p_true, probability_floor, 1.0))
    return math.log(min(max(float(p_true), probability_floor), 1.0))


def cost_sensitive_reward(
    probability: Any,
    prediction: Any,
    label: Any,
    miss_cost: float = DEFAULT_MISS_COST,
    false_alarm_cost: float = DEFAULT_FALSE_ALARM_COST,
) -> Any:
    """Minus the cost of the error: ``-miss_cost`` for a missed abnormality (label 1 predicted
    0), ``-false_alarm_cost`` for a false alarm (label 0 predicted 1), 0.0 when right.

    Returns:
        A float (scalars) or a float64 array ``[n]``.
    """
    missed = (label == 1) & (prediction == 0)
    false_alarm = (label == 0) & (prediction == 1)
    return 0.0 - (miss_cost * missed + false_alarm_cost * false_alarm)


#: The reward functions by name, in the order the docs list them.
REWARDS: dict[str, Callable[..., Any]] = {
    "correct": correct_reward,
    "signed": signed_reward,
    "log_likelihood": log_likelihood_reward,
    "cost_sensitive": cost_sensitive_reward,
}


def check_reward(
    name: str,
    *,
    miss_cost: float = DEFAULT_MISS_COST,
    false_alarm_cost: float = DEFAULT_FALSE_ALARM_COST,
    probability_floor: float = DEFAULT_PROBABILITY_FLOOR,
) -> None:
    """Raise ``ValueError`` unless ``name`` is a reward of :data:`REWARDS` and its parameters
    are in range (costs finite and >= 0, floor in (0, 1))."""
    if name not in REWARDS:
        raise ValueError(
            f"Unknown reward {name!r}; expected one of {sorted(REWARDS)} "
            "(e.g. reward='correct')."
        )
    for key, value in (("miss_cost", miss_cost), ("false_alarm_cost", false_alarm_cost)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{key} must be a finite number >= 0, got {value!r}.")
    if not (0.0 < probability_floor < 1.0):
        raise ValueError(f"probability_floor must be in (0, 1), got {probability_floor!r}.")


def make_reward(
    name: str,
    *,
    miss_cost: float = DEFAULT_MISS_COST,
    false_alarm_cost: float = DEFAULT_FALSE_ALARM_COST,
    probability_floor: float = DEFAULT_PROBABILITY_FLOOR,
) -> RewardFn:
    """The reward function ``name`` with its parameters bound.

    Args:
        name: one of ``REWARDS`` (``correct``, ``signed``, ``log_likelihood``,
            ``cost_sensitive``).
        miss_cost, false_alarm_cost: costs of ``cost_sensitive`` (ignored by the others).
        probability_floor: floor of ``log_likelihood`` (ignored by the others).

    Returns:
        A callable ``(probability, prediction, label) -> reward`` (scalars or arrays).

    Raises:
        ValueError: unknown name, negative or non-finite cost, floor outside (0, 1).
    """
    check_reward(name, miss_cost=miss_cost, false_alarm_cost=false_alarm_cost,
                 probability_floor=probability_floor)
    fn = REWARDS[name]
    if name == "log_likelihood":
        return functools.partial(fn, probability_floor=probability_floor)
    if name == "cost_sensitive":
        return functools.partial(fn, miss_cost=miss_cost, false_alarm_cost=false_alarm_cost)
    return fn


def reward_bounds(
    name: str,
    *,
    miss_cost: float = DEFAULT_MISS_COST,
    false_alarm_cost: float = DEFAULT_FALSE_ALARM_COST,
    probability_floor: float = DEFAULT_PROBABILITY_FLOOR,
) -> tuple[float, float]:
    """(lowest, highest) reward one study can give under reward ``name`` with these
    parameters (same arguments as :func:`make_reward`)."""
    check_reward(name, miss_cost=miss_cost, false_alarm_cost=false_alarm_cost,
                 probability_floor=probability_floor)
    if name == "correct":
        return 0.0, 1.0
    if name == "signed":
        return -1.0, 1.0
    if name == "log_likelihood":
        return math.log(probability_floor), 0.0
    return -max(miss_cost, false_alarm_cost), 0.0
