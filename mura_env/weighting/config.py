"""The typed configuration of ``MuraWeighting-v0``: every env argument, its default and its check.

:class:`WeightingConfig` is what the single env, the vector env, :class:`WeightingProblem
<mura_env.weighting.problem.WeightingProblem>`, saved agents and the command lines share. Gymnasium
keyword arguments build one (``gymnasium.make("MuraWeighting-v0", reward="signed")``), and so
does ``config=WeightingConfig(...)``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium
from gymnasium.envs.registration import load_env_creator

from mura_env.common.checks import whole_number
from mura_env.constants import BODY_PARTS, SPLITS
from mura_env.logits import LogitsTable
from mura_env.logits.reference import check_reference_index, resolve_logits
from mura_env.rewards import (
    DEFAULT_FALSE_ALARM_COST,
    DEFAULT_MISS_COST,
    DEFAULT_PROBABILITY_FLOOR,
    check_reward,
)
from mura_env.weighting.mapping import (
    DEFAULT_ACTION_SCALE,
    DEFAULT_TEMPERATURE,
    DEFAULT_THRESHOLD,
    EnsembleMapping,
)

#: Sampling modes: ``random`` draws studies with ``np_random``; ``sweep`` visits them in order.
SAMPLING_MODES = ("random", "sweep")

LogitsSource = Any  # a LogitsTable, a path of a saved one, or None for a reference table


def _as_tuple(value: str | Sequence[str] | None) -> str | tuple[str, ...] | None:
    if value is None or isinstance(value, str):
        return value
    return tuple(value)


@dataclass(frozen=True)
class WeightingConfig:
    """The arguments of ``MuraWeighting-v0`` (see :class:`mura_env.weighting.env.MuraWeightingEnv`
    for what each one means), checked when made.

    Attributes:
        logits: a :class:`~mura_env.logits.LogitsTable`, the path of a saved one, or None for
            the shipped reference table ``reference_table``.
        reference_table: which shipped reference table (:mod:`mura_env.logits.reference`)
            ``logits=None`` loads (int >= 0, default 0); ignored when ``logits`` is given.
        split: ``"train"``, ``"tune"``, ``"valid"``, a sequence of them, or None (all).
        models: member names to use, in order (None: all); body_parts: likewise (None: all).
        reward: ``"correct"``, ``"signed"``, ``"log_likelihood"`` or ``"cost_sensitive"``.
        action_scale, temperature, threshold: the ensemble mapping
            (:mod:`mura_env.weighting.mapping`).
        studies_per_episode: answered studies per episode (int >= 1).
        sampling: ``"random"`` or ``"sweep"``.
        miss_cost, false_alarm_cost, probability_floor: reward parameters.

    Raises:
        ValueError: any argument outside its range (the message names it).
    """

    logits: LogitsSource = field(default=None, compare=False)
    reference_table: int = 0
    split: str | tuple[str, ...] | None = "tune"
    models: tuple[str, ...] | None = None
    body_parts: tuple[str, ...] | None = None
    reward: str = "correct"
    action_scale: float = DEFAULT_ACTION_SCALE
    temperature: float = DEFAULT_TEMPERATURE
    threshold: float = DEFAULT_THRESHOLD
    studies_per_episode: int = 1
    sampling: str = "random"
    miss_cost: float = DEFAULT_MISS_COST
    false_alarm_cost: float = DEFAULT_FALSE_ALARM_COST
    probability_floor: float = DEFAULT_PROBABILITY_FLOOR
    #: ``action_scale / temperature``, derived (not an argument).
    softmax_scale: float = field(init=False, repr=False, compare=False)
    #: The env id whose arguments these are (named in error messages).
    env_id: ClassVar[str] = "MuraWeighting-v0"

    def __post_init__(self) -> None:
        mapping = EnsembleMapping(self.action_scale, self.temperature, self.threshold)
        set_ = object.__setattr__
        set_(self, "action_scale", mapping.action_scale)
        set_(self, "temperature", mapping.temperature)
        set_(self, "threshold", mapping.threshold)
        set_(self, "softmax_scale", mapping.softmax_scale)
        if isinstance(self.logits, os.PathLike):
            set_(self, "logits", os.fspath(self.logits))
        set_(self, "reference_table", check_reference_index(self.reference_table))
        set_(self, "split", _as_tuple(self.split))
        set_(self, "models", _as_tuple(self.models))
        set_(self, "body_parts", _as_tuple(self.body_parts))
        if isinstance(self.split, str) and self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} (or None for all), "
                             f"got {self.split!r}.")
        if self.body_parts is not None:
            unknown = sorted(set(self.body_parts) - set(BODY_PARTS))
            if unknown:
                raise ValueError(f"unknown body part(s) {unknown}; expected some of "
                                 f"{list(BODY_PARTS)}.")
        set_(self, "studies_per_episode",
             whole_number("studies_per_episode", self.studies_per_episode))
        if self.sampling not in SAMPLING_MODES:
            raise ValueError(f"sampling must be one of {SAMPLING_MODES}, "
                             f"got {self.sampling!r}.")
        check_reward(self.reward, miss_cost=self.miss_cost,
                     false_alarm_cost=self.false_alarm_cost,
                     probability_floor=self.probability_floor)

    @classmethod
    def build(cls, config: WeightingConfig | None = None, **kwargs: Any) -> WeightingConfig:
        """``config`` with ``kwargs`` replaced, or a new config from ``kwargs`` alone.

        Raises:
            TypeError: a keyword that is not an env argument, in Python's own words
                (``MuraWeighting-v0.__init__() got an unexpected keyword argument 'x'``, the
                phrase repeated for each unknown keyword), then the valid arguments.
        """
        names = _argument_names(cls)
        unknown = [name for name in kwargs if name not in names]
        if unknown:
            raise TypeError(_unexpected_keywords_message(cls.env_id, unknown, names))
        if config is None:
            return cls(**kwargs)
        if not isinstance(config, cls):
            raise TypeError(f"config must be a {cls.__name__}, got {type(config).__name__}.")
        return dataclasses.replace(config, **kwargs) if kwargs else config

    @classmethod
    def env_class(cls) -> type[Any]:
        """The single env class registered for :attr:`env_id` (its Gymnasium entry point):
        :class:`~mura_env.weighting.env.MuraWeightingEnv` here; a subclass's env for its id."""
        return load_env_creator(gymnasium.spec(cls.env_id).entry_point)

    @classmethod
    def vector_env_class(cls) -> type[Any]:
        """The native vector env class registered for :attr:`env_id` (its
        ``vector_entry_point``)."""
        return load_env_creator(gymnasium.spec(cls.env_id).vector_entry_point)

    @classmethod
    def problem_class(cls) -> type[Any]:
        """The problem class both envs of :attr:`env_id` run (the env's ``problem_class``):
        the studies, spaces and reward of a config."""
        return cls.env_class().problem_class

    @property
    def training_sampling(self) -> str:
        """How an agent training on this env draws its studies: ``"random"`` (agents draw
        studies at random, whatever ``sampling`` says); an env whose episodes need their own
        order keeps its ``sampling``."""
        return "random"

    @property
    def mapping(self) -> EnsembleMapping:
        """The ensemble mapping's settings (``action_scale``, ``temperature``, ``threshold``)."""
        return EnsembleMapping(self.action_scale, self.temperature, self.threshold)

    def replace(self, **changes: Any) -> WeightingConfig:
        """A copy with ``changes`` applied (and checked)."""
        return type(self).build(self, **changes)

    def sweep(self, split: str | Sequence[str] | None) -> WeightingConfig:
        """The same mapping and selection on ``split``, visiting every study once in order
        (one study per episode): what an evaluation of a policy runs."""
        return self.replace(split=split, sampling="sweep", studies_per_episode=1)

    def load_table(self) -> LogitsTable:
        """The :class:`~mura_env.logits.LogitsTable` this config names: ``logits`` (a table or
        a path), or reference table ``reference_table`` when ``logits`` is None (see
        :func:`mura_env.logits.reference.resolve_logits`)."""
        return resolve_logits(self.logits, self.reference_table)

    def to_dict(self) -> dict[str, Any]:
        """Every argument but ``logits`` as plain JSON values (tuples as lists);
        ``reference_table`` is included."""
        out = {}
        for name in _argument_names(type(self)):
            if name == "logits":
                continue
            value = getattr(self, name)
            out[name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_options(cls, options: Any, **overrides: Any) -> WeightingConfig:
        """A config from the attributes of ``options`` named like its fields (e.g. a command
        line's config dataclass with ``reward``, ``action_scale`` ... fields), then
        ``overrides`` (e.g. ``logits=table``)."""
        picked = {name: getattr(options, name) for name in _argument_names(cls)
                  if hasattr(options, name)}
        return cls.build(None, **{**picked, **overrides})

    @classmethod
    def from_dict(cls, data: dict[str, Any], logits: LogitsSource = None) -> WeightingConfig:
        """The inverse of :meth:`to_dict` (keys missing from ``data`` take their defaults)."""
        return cls.build(None, logits=logits, **data)


def _argument_names(cls: type[WeightingConfig] = WeightingConfig) -> list[str]:
    """The names of the arguments of config class ``cls`` (its fields made by ``__init__``)."""
    return [f.name for f in dataclasses.fields(cls) if f.init]


def _unexpected_keywords_message(env_id: str, unknown: Sequence[str],
                                 valid: Sequence[str]) -> str:
    """The ``TypeError`` message for keywords ``unknown`` (in the order given) that are not
    arguments of ``env_id``: Python's wording for a bad keyword (``<env_id>.__init__() got an
    unexpected keyword argument 'x'``, the phrase repeated for each further one, which libraries
    that retry without an argument look for), then the ``valid`` argument names."""
    phrases = [f"unexpected keyword argument {name!r}" for name in unknown]
    return (f"{env_id}.__init__() got an {', '.join(phrases)}; "
            f"valid: {list(valid)}.")
