"""The one registry of weighting agents: the native softmax policy gradient and SB3's.

``ALGOS[name]`` is an :class:`AlgoSpec`; :func:`get_algo` looks one up with a clear error.
Training goes through :func:`agents.train.train_agent`, loading through
:func:`agents.saved.load_agent`, whatever the family.

Default budgets (``default_timesteps``) come from tune curves only, never from ``valid``: each
agent trained longer than needed on the three shipped reference tables (2,691 tune studies,
3 members; :mod:`mura_env.reference`) with seeds 0 and 1 (softmax-pg 400k env steps, PPO
41k, A2C 150k; SAC, the slowest, 100k with seed 0 on tables 0 and 2), its deterministic
policy scored on ``tune`` every 2,048 to 10,240 env steps. A run's plateau is
:func:`plateau_step` (the first evaluation within 0.5 accuracy points of the run's best tune
accuracy); the budget is the smallest multiple of 8,192 env steps above the largest plateau
over the runs. Plateaus found: softmax-pg 41k to 188k env steps (it creeps up slowly on table 0),
PPO 6k to 14k, A2C 20k to 113k, SAC 65k to 70k (about 2 minutes of training per run on 2 CPU
cores; ``experiments.benchmark`` caps it lower to fit its time budget).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class AlgoSpec:
    """A registry entry.

    Attributes:
        name: the ``--algo`` name.
        family: ``"native"`` (:mod:`agents.softmax_pg`) or ``"sb3"`` (:mod:`agents.sb3`).
        model_file: file name of the saved model inside an agent run folder.
        default_timesteps: env steps (answered studies) of a default training run (see the
            module docstring for how each was fixed on tune curves).
        sb3_class: the Stable-Baselines3 class name for the ``sb3`` family.
        description: one line for help texts and tables.
    """

    name: str
    family: str
    model_file: str
    default_timesteps: int
    sb3_class: str | None = None
    description: str = ""


ALGOS: dict[str, AlgoSpec] = {
    # tune plateau (largest 188,416), 48 updates of 4,096 studies
    "softmax-pg": AlgoSpec("softmax-pg", "native", "model.pt", 196_608, None,
                           "native REINFORCE over per-body-part softmax preferences"),
    # tune plateau (largest 14,336), 8 rollouts of 8 envs x 256 steps
    "ppo": AlgoSpec("ppo", "sb3", "model.zip", 16_384, "PPO", "Stable-Baselines3 PPO"),
    # tune plateau (largest 112,640)
    "a2c": AlgoSpec("a2c", "sb3", "model.zip", 114_688, "A2C", "Stable-Baselines3 A2C"),
    # tune plateau (largest 70,000)
    "sac": AlgoSpec("sac", "sb3", "model.zip", 73_728, "SAC", "Stable-Baselines3 SAC"),
}


class UnknownAlgoError(KeyError):
    """An ``--algo`` name that is not in :data:`ALGOS`."""

    def __str__(self) -> str:
        return str(self.args[0])


def get_algo(name: str) -> AlgoSpec:
    """The :class:`AlgoSpec` of ``name``; raises :class:`UnknownAlgoError` listing the valid
    names."""
    try:
        return ALGOS[name]
    except KeyError:
        raise UnknownAlgoError(
            f"Unknown algo {name!r}; valid: {', '.join(ALGOS)}.") from None


#: Accuracy below a run's best tune accuracy that still counts as its plateau.
PLATEAU_TOLERANCE = 0.005


def plateau_step(env_steps: Sequence[int], accuracy: Sequence[float],
                 tolerance: float = PLATEAU_TOLERANCE) -> int:
    """Where a training curve reaches its plateau: the env steps of the first evaluation whose
    accuracy is within ``tolerance`` of the curve's best.

    Args:
        env_steps: int ``[E]`` env steps of each evaluation, increasing.
        accuracy: float ``[E]`` the (tune) accuracy at each.
        tolerance: accuracy points below the best still on the plateau.

    Returns:
        The env steps of that evaluation; the last one's means the curve was still rising.

    Raises:
        ValueError: empty or mismatched curves.
    """
    if not len(env_steps) or len(env_steps) != len(accuracy):
        raise ValueError(f"a curve needs as many env steps as accuracies (at least one), got "
                         f"{len(env_steps)} and {len(accuracy)}.")
    best = max(accuracy)
    return int(next(s for s, a in zip(env_steps, accuracy, strict=True) if a >= best - tolerance))
