"""Reward functions shared by every task: small pure functions of one answered study, on scalars
and on arrays (:mod:`~mura_env.rewards.functions`)."""

from mura_env.rewards.functions import (
    DEFAULT_FALSE_ALARM_COST,
    DEFAULT_MISS_COST,
    DEFAULT_PROBABILITY_FLOOR,
    REWARDS,
    RewardFn,
    check_reward,
    correct_reward,
    cost_sensitive_reward,
    log_likelihood_reward,
    make_reward,
    reward_bounds,
    signed_reward,
)

__all__ = [
    "DEFAULT_FALSE_ALARM_COST", "DEFAULT_MISS_COST", "DEFAULT_PROBABILITY_FLOOR",
    "REWARDS", "RewardFn", "check_reward", "correct_reward", "cost_sensitive_reward",
    "log_likelihood_reward", "make_reward", "reward_bounds", "signed_reward",
]
