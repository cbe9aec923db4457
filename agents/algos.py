"""The one registry of weighting agents: the native softmax policy gradient and SB3's.

``ALGOS[name]`` is an :class:`AlgoSpec`; :func:`get_algo` looks one up with a clear error.
Training goes through :func:`agents.train.train_agent`, loading through
:func:`agents.saved.load_agent`, whatever the family.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AlgoSpec:
    """A registry entry.

    Attributes:
        name: the ``--algo`` name.
        family: ``"native"`` (:mod:`agents.softmax_pg`) or ``"sb3"`` (:mod:`agents.sb3`).
        model_file: file name of the saved model inside an agent run folder.
        default_timesteps: env steps (answered studies) of a default training run.
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
    "softmax-pg": AlgoSpec("softmax-pg", "native", "model.pt", 400_000, None,
                           "native REINFORCE over per-body-part softmax preferences"),
    "ppo": AlgoSpec("ppo", "sb3", "model.zip", 60_000, "PPO", "Stable-Baselines3 PPO"),
    "a2c": AlgoSpec("a2c", "sb3", "model.zip", 60_000, "A2C", "Stable-Baselines3 A2C"),
    "sac": AlgoSpec("sac", "sb3", "model.zip", 20_000, "SAC", "Stable-Baselines3 SAC"),
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
