"""The typed configuration of ``MuraWorklist-v0``: ``MuraWeighting-v0``'s arguments plus the
shift's (its size, scenario, readers, their capacity, the cost of a read)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from mura_env.common.checks import whole_number
from mura_env.weighting.config import WeightingConfig
from mura_env.worklist.shifts import SCENARIOS

#: Default number of studies in a shift.
DEFAULT_SHIFT_SIZE = 100
#: Default capacity of each reader, as a share of the shift's studies.
DEFAULT_CAPACITY = 0.1
#: Default Dirichlet concentration of the ``random`` scenario around the split's mix.
DEFAULT_CONCENTRATION = 20.0
#: The env's action interfaces: ``weights`` (member preferences and one score per reader, a
#: ``Box``) and ``routing`` (who answers, a ``Discrete(R + 1)`` with an action mask).
ACTIONS = ("weights", "routing")
#: The combiner the routing action and the gain observations use by default: stacking and the
#: readers' skill fitted on tune, as the classical worklist methods fit them.
DEFAULT_COMBINER = "agents.worklist.methods:routing_inputs"


def _finite_at_least(name: str, value: object, low: float) -> float:
    """``value`` as a float; ``ValueError`` unless it is a finite number >= ``low``."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not (math.isfinite(number) and number >= low):
        raise ValueError(f"{name} must be a finite number >= {low:g}, got {value!r}.")
    return number


def check_capacity_share(value: object) -> float:
    """A reader's capacity as a share of the shift, as a float; ``ValueError`` unless it is a
    finite number in [0, 1]."""
    share = _finite_at_least("capacity", value, 0.0)
    if share > 1.0:
        raise ValueError(f"capacity must be a share in [0, 1], got {value!r}.")
    return share


def reads_per_shift(share: float | np.ndarray, shift_size: int) -> np.ndarray:
    """int64 (the shape of ``share``): the reads per shift a reader of capacity ``share``
    (share of a shift of ``shift_size`` studies) is granted: ``share * shift_size`` rounded to
    the nearest whole read, halves up (``floor(share * shift_size + 0.5)``)."""
    return np.floor(np.asarray(share, dtype=np.float64) * shift_size + 0.5).astype(np.int64)


@dataclass(frozen=True)
class WorklistConfig(WeightingConfig):
    """The arguments of ``MuraWorklist-v0`` (see :class:`mura_env.worklist.env.
    MuraWorklistEnv`), checked when made: every :class:`~mura_env.weighting.config.WeightingConfig`
    field (``studies_per_episode`` is set to ``shift_size``; ``sampling="sweep"`` makes each
    shift the next ``shift_size`` studies in table order, ``"random"`` draws it by
    ``scenario``), plus:

    Attributes:
        shift_size: studies in a shift, one per step (int >= 1).
        scenario: the body-part mix of a shift, one of
            :data:`mura_env.worklist.shifts.SCENARIOS` (``random``: a Dirichlet draw around the
            split's mix per shift; ``split``: the split's mix; ``emergency``; ``orthopaedic``).
        concentration: the ``random`` scenario's Dirichlet concentration (> 0; larger: closer
            to the split's mix).
        readers: ids of the table's readers (columns ``reader_<id>``) who read in the shift;
            None: every reader of the table.
        capacity: each reader's reads per shift as a share of ``shift_size`` (one number for
            every reader, or one per reader, each in [0, 1]; rounded to whole reads, halves
            up: :meth:`capacities`).
        read_cost: subtracted from the reward of every study a reader answers (>= 0).
        observe_mix: add the body-part mix of the shift so far to the observation.
        action: ``"weights"`` (``Box``: member preferences, then one score per reader) or
            ``"routing"`` (``Discrete(R + 1)``: 0 the ensemble answers, ``r + 1`` reader
            ``r`` reads; the ensemble is the stacking combiner fitted on tune), one of
            :data:`ACTIONS`.
        observe_gains: add each reader's estimated gain for the current study (its tune skill
            on the body part minus the stacking ensemble's confidence minus ``read_cost``) to
            the observation.
        combiner: ``"module:function"``, the fit behind the routing action's ensemble and the
            gains: ``function(table, splits, readers, read_cost) -> (study_ids object [n],
            probabilities float64 [n], gains float64 [n, R])`` for the studies of ``splits``
            (every split of ``table`` whose logits are not hidden: one fit serves the env on
            any of them) of ``table`` (its members as the env selects them), fitted on tune only
            (default :data:`DEFAULT_COMBINER`, :func:`agents.worklist.methods.routing_inputs`).

    Raises:
        ValueError: any argument outside its range (the message names it).
    """

    shift_size: int = DEFAULT_SHIFT_SIZE
    scenario: str = "random"
    concentration: float = DEFAULT_CONCENTRATION
    readers: tuple[str, ...] | None = None
    capacity: float | tuple[float, ...] = DEFAULT_CAPACITY
    read_cost: float = 0.0
    observe_mix: bool = False
    action: str = "weights"
    observe_gains: bool = False
    combiner: str = DEFAULT_COMBINER
    env_id: ClassVar[str] = "MuraWorklist-v0"

    def __post_init__(self) -> None:
        size = whole_number("shift_size", self.shift_size)
        set_ = object.__setattr__
        set_(self, "shift_size", size)
        set_(self, "studies_per_episode", size)
        super().__post_init__()
        if self.scenario not in SCENARIOS:
            raise ValueError(f"scenario must be one of {list(SCENARIOS)}, got {self.scenario!r}.")
        concentration = _finite_at_least("concentration", self.concentration, 0.0)
        if concentration <= 0:
            raise ValueError(f"concentration must be > 0, got {self.concentration!r}.")
        set_(self, "concentration", concentration)
        if self.readers is not None:
            readers = (self.readers,) if isinstance(self.readers, str) else tuple(self.readers)
            if not readers or not all(isinstance(r, str) and r for r in readers) \
                    or len(set(readers)) != len(readers):
                raise ValueError(f"readers must be distinct reader ids (or None: every reader "
                                 f"of the table), got {self.readers!r}.")
            set_(self, "readers", readers)
        shares = (self.capacity if isinstance(self.capacity, (tuple, list, np.ndarray))
                  else (self.capacity,))
        if not len(shares):
            raise ValueError(f"capacity must be a share in [0, 1] (one, or one per reader), "
                             f"got {self.capacity!r}.")
        checked = tuple(check_capacity_share(c) for c in shares)
        set_(self, "capacity", checked[0] if len(checked) == 1 and not isinstance(
            self.capacity, (tuple, list, np.ndarray)) else checked)
        set_(self, "read_cost", _finite_at_least("read_cost", self.read_cost, 0.0))
        for flag in ("observe_mix", "observe_gains"):
            value = getattr(self, flag)
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"{flag} must be True or False, got {value!r}.")
            set_(self, flag, bool(value))
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {list(ACTIONS)}, got {self.action!r}.")
        module, _, function = str(self.combiner).partition(":")
        if not (isinstance(self.combiner, str) and module and function):
            raise ValueError(f"combiner must name a function as 'module:function', got "
                             f"{self.combiner!r}.")

    @property
    def uses_combiner(self) -> bool:
        """Whether the env needs the stacking combiner fitted on tune (the routing action's
        ensemble, or the observed gains)."""
        return self.action == "routing" or self.observe_gains

    @property
    def training_sampling(self) -> str:
        """A worklist agent trains on shifts made as ``sampling`` says (``sweep``: the next
        ``shift_size`` studies in table order; ``random``: drawn by ``scenario``)."""
        return self.sampling

    def capacities(self, n_readers: int) -> np.ndarray:
        """int64 ``[n_readers]``: each reader's reads per shift (:func:`reads_per_shift` of
        its share).

        Raises:
            ValueError: one share per reader was given, but not ``n_readers`` of them.
        """
        shares = np.atleast_1d(np.asarray(self.capacity, dtype=np.float64))
        if len(shares) == 1:
            shares = np.repeat(shares, n_readers)
        if len(shares) != n_readers:
            raise ValueError(f"capacity gives {len(shares)} shares for {n_readers} readers.")
        return reads_per_shift(shares, self.shift_size)
