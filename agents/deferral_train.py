"""Train RL deferral agents on ``MuraDeferral-v0`` and read their decisions.

Two agents, each trained on the ``tune`` split of a table for one ``defer_cost``:

* ``softmax-pg``: :class:`agents.deferral_pg.DeferralPGAgent` on the native vector env;
* ``ppo``: Stable-Baselines3 PPO with ``MlpPolicy`` on the single env
  (:func:`agents.sb3.train_sb3`).

:func:`policy_decision` runs a trained policy deterministically over a split and returns its
:class:`~agents.deferral_methods.Decision` (the ensemble probability its weights give, and
which studies it defers), so agents and classical methods are scored the same way.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from agents.algos import get_algo
from agents.deferral_methods import Decision
from agents.deferral_pg import DeferralPGAgent, DeferralPGConfig
from agents.sb3 import train_sb3
from agents.softmax_pg import train_softmax_pg
from mura_env.deferral.config import DeferralConfig
from mura_env.deferral.problem import DeferralProblem

#: The RL deferral agents and their default env steps on tune.
DEFERRAL_AGENT_STEPS: dict[str, int] = {"softmax-pg": 393_216, "ppo": 16_384}
#: Studies per update of the native agent.
PG_NUM_ENVS = 2048


def train_deferral_agent(algo: str, config: DeferralConfig, seed: int,
                         total_timesteps: int | None = None) -> Any:
    """Train deferral agent ``algo`` on ``config`` (its split, usually ``tune``).

    Args:
        algo: ``"softmax-pg"`` or ``"ppo"`` (:data:`DEFERRAL_AGENT_STEPS`).
        config: the env's configuration (``defer_cost``, reward, table...).
        seed: seeds the agent and the env's study draws.
        total_timesteps: env steps; None: :data:`DEFERRAL_AGENT_STEPS`.

    Returns:
        The trained policy: an object with SB3's ``predict(obs, deterministic=True)``.

    Raises:
        ValueError: an unknown ``algo``.
    """
    if algo not in DEFERRAL_AGENT_STEPS:
        raise ValueError(f"unknown deferral agent {algo!r}; expected one of "
                         f"{sorted(DEFERRAL_AGENT_STEPS)}.")
    steps = total_timesteps or DEFERRAL_AGENT_STEPS[algo]
    if algo == "softmax-pg":
        env = gym.make_vec("MuraDeferral-v0", num_envs=PG_NUM_ENVS, config=config)
        k = len(env.model_names)
        agent = DeferralPGAgent(k, DeferralPGConfig(num_envs=PG_NUM_ENVS,
                                                    softmax_scale=config.softmax_scale))
        train_softmax_pg(agent, env, steps, seed=seed)
        return agent
    model, _ = train_sb3(get_algo(algo), config, steps, seed, tb_dir=None)
    return model


def policy_decision(policy: Any, config: DeferralConfig, split: str) -> Decision:
    """A trained policy's decision on every study of ``split``, in table order.

    Args:
        policy: anything with ``predict(obs [n, 2K + 7], deterministic=True)`` returning
            actions ``[n, K + 1]``.
        config: the env configuration it was trained with (table, mapping, cost).
        split: the split to decide for (e.g. ``"valid"``: the final scores).

    Returns:
        :class:`~agents.deferral_methods.Decision`: the ensemble probability of the policy's
        weights and its defer decisions (float64 and bool ``[n]``).
    """
    return _decide(policy, DeferralProblem(config.sweep(split)))


def _decide(policy: Any, problem: DeferralProblem) -> Decision:
    """``policy``'s deterministic decision on every study of ``problem``."""
    n = problem.n_studies
    actions, _ = policy.predict(problem.studies.observations, deterministic=True)
    out = problem.evaluate(np.arange(n), problem.check_actions(np.asarray(actions), n))
    return Decision(out["probability"].astype(np.float64), out["deferred"].copy(),
                    out["ensemble_prediction"].astype(np.int64))


def team_scores(policy: Any, config: DeferralConfig, split: str) -> dict[str, float]:
    """The team's ``accuracy`` and ``kappa`` on ``split`` under the deterministic ``policy``
    (an object with SB3's ``predict``), and its ``deferral_rate``
    (:meth:`~agents.deferral_methods.Decision.scores`)."""
    problem = DeferralProblem(config.sweep(split))
    return _decide(policy, problem).scores(problem.studies.labels, problem.reads)
