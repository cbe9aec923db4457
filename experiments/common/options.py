"""Command-line option groups that several experiments share, as config dataclasses to inherit
(:func:`mura_env.common.config_cli.parse_config` turns every field into an option)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agents.core.algos import budgets, parse_steps
from mura_env.rewards import REWARDS
from mura_env.weighting.mapping import DEFAULT_ACTION_SCALE, DEFAULT_TEMPERATURE


@dataclass
class EnvOptions:
    """The env arguments an agent trains with (see
    :class:`mura_env.weighting.config.WeightingConfig`);
    :meth:`mura_env.weighting.config.WeightingConfig.from_options` reads them."""

    reward: str = field(default="correct", metadata={
        "help": "reward function", "choices": tuple(REWARDS)})
    action_scale: float = field(default=DEFAULT_ACTION_SCALE, metadata={
        "help": "env action scale"})
    temperature: float = field(default=DEFAULT_TEMPERATURE, metadata={
        "help": "env softmax temperature"})
    studies_per_episode: int = field(default=1, metadata={"help": "studies per episode"})


@dataclass
class LogitsOptions:
    """The one logits table a command works on
    (:func:`experiments.common.logits_source.resolve_table` resolves it)."""

    logits: Path | None = field(default=None, metadata={
        "help": "logits table (default: newest runs/pretrain/*/logits.parquet, else "
                "reference table 0)"})


@dataclass
class BudgetOptions:
    """Agent budgets: the registry's (:mod:`agents.core.algos`) unless ``--steps`` overrides them;
    :func:`agents.core.algos.parse_steps` reads the entries."""

    steps: tuple[str, ...] = field(default=(), metadata={
        "help": "env steps per training run, as ALGO=N (e.g. ppo=32768; several allowed); "
                "default: the registry's budget of each agent on the env it trains on"})

    def budgets(self, algos: Sequence[str], env_id: str,
                defaults: Mapping[str, int] | None = None) -> dict[str, int]:
        """Env steps per run of each of ``algos`` on ``env_id``: ``--steps`` where it names
        the agent, else ``defaults`` (a command's own, e.g. a cap or its ``--quick``
        budgets), else the registry's.

        Raises:
            ValueError: a malformed entry, or one for an agent not in ``algos``.
            UnknownAlgoError: an unknown agent.
        """
        return budgets(algos, env_id, {**(defaults or {}), **parse_steps(self.steps, algos)})


@dataclass
class ReportOptions:
    """How results are reported: bootstrap draws for the intervals, progress bars."""

    n_bootstrap: int = field(default=1000, metadata={"help": "bootstrap draws for the CIs"})
    progress: bool = field(default=False, metadata={"help": "show progress bars"})
