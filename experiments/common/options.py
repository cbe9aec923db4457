"""Command-line option groups that several experiments share, as config dataclasses to inherit
(:func:`mura_env.common.config_cli.parse_config` turns every field into an option)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mura_env.mapping import DEFAULT_ACTION_SCALE, DEFAULT_TEMPERATURE
from mura_env.rewards import REWARDS


@dataclass
class EnvOptions:
    """The env arguments an agent trains with (see :class:`mura_env.config.WeightingConfig`);
    :meth:`mura_env.config.WeightingConfig.from_options` reads them."""

    reward: str = field(default="correct", metadata={
        "help": "reward function", "choices": tuple(REWARDS)})
    action_scale: float = field(default=DEFAULT_ACTION_SCALE, metadata={
        "help": "env action scale"})
    temperature: float = field(default=DEFAULT_TEMPERATURE, metadata={
        "help": "env softmax temperature"})
    studies_per_episode: int = field(default=1, metadata={"help": "studies per episode"})
