"""The typed configuration of ``MuraDeferral-v0``: ``MuraWeighting-v0``'s arguments plus the
deferral's own (the reader, the cost of a deferral)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from mura_env.weighting.config import WeightingConfig

#: Default cost of handing one study to the reader, in reward units (a right answer is 1 under
#: the default ``correct`` reward).
DEFAULT_DEFER_COST = 0.1


def check_defer_cost(value: object) -> float:
    """``value`` as a float; ``ValueError`` unless it is a finite number >= 0."""
    try:
        cost = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        cost = math.nan
    if isinstance(value, bool) or not (math.isfinite(cost) and cost >= 0.0):
        raise ValueError(f"defer_cost must be a finite number >= 0 (the reward given up by "
                         f"deferring a study), got {value!r}.")
    return cost


@dataclass(frozen=True)
class DeferralConfig(WeightingConfig):
    """The arguments of ``MuraDeferral-v0`` (see :class:`mura_env.deferral.env.MuraDeferralEnv`),
    checked when made: every :class:`~mura_env.weighting.config.WeightingConfig` field, plus:

    Attributes:
        defer_cost: subtracted from the reward of every deferred study (finite, >= 0).
        reader: id of the reader a deferred study goes to (the table's column
            ``reader_<id>``); None: ``radiologist_3`` (:data:`mura_env.readers.
            DEFAULT_READER`) when the table has it, else the table's only reader.

    Raises:
        ValueError: any argument outside its range (the message names it).
    """

    defer_cost: float = DEFAULT_DEFER_COST
    reader: str | None = None
    env_id: ClassVar[str] = "MuraDeferral-v0"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "defer_cost", check_defer_cost(self.defer_cost))
        if self.reader is not None and (not isinstance(self.reader, str) or not self.reader):
            raise ValueError(f"reader must be a reader id (str) or None, got {self.reader!r}.")
