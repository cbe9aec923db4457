"""The shifts of ``MuraWorklist-v0``: which body parts a shift holds, and its studies.

A shift's *mix* is a share per body part (``BODY_PARTS`` order). The scenarios
(:data:`SCENARIOS`):

* ``split``: the split's own mix (its share of studies per body part);
* ``random``: a fresh Dirichlet draw per shift with mean the split's mix and concentration
  ``c`` (``Dirichlet(c * split mix)``), so shifts differ as days do;
* ``emergency``: an emergency department's night, heavy in fingers, hands and wrists
  (:data:`EMERGENCY_MIX`);
* ``orthopaedic``: an orthopaedic clinic, heavy in shoulders and elbows
  (:data:`ORTHOPAEDIC_MIX`).

The two named mixes are illustrations, not measured case mixes. A mix is restricted to the
body parts the env's selection holds and renormalised. Each study of a shift draws its body
part from the mix, then a study of that part uniformly from the selection (with replacement:
a study may come twice in a shift when its part has few studies), all vectorised over shifts.
"""

from __future__ import annotations

import numpy as np

from mura_env.constants import BODY_PARTS

#: An emergency department's night: fingers, hands and wrists (shares in ``BODY_PARTS`` order).
EMERGENCY_MIX: dict[str, float] = {
    "ELBOW": 0.06, "FINGER": 0.25, "FOREARM": 0.08, "HAND": 0.25, "HUMERUS": 0.03,
    "SHOULDER": 0.03, "WRIST": 0.30,
}
#: An orthopaedic clinic: shoulders and elbows first.
ORTHOPAEDIC_MIX: dict[str, float] = {
    "ELBOW": 0.25, "FINGER": 0.03, "FOREARM": 0.10, "HAND": 0.05, "HUMERUS": 0.15,
    "SHOULDER": 0.35, "WRIST": 0.07,
}
#: The scenario names.
SCENARIOS: tuple[str, ...] = ("random", "split", "emergency", "orthopaedic")
#: Studies drawn per block in :meth:`ShiftSampler.draw` (a block's arrays fit in cache).
_BLOCK = 16_384


class ShiftSampler:
    """Draws the study rows of shifts from one selection of studies.

    Args:
        part_index: int ``[n]``, each selected study's body part (index into ``BODY_PARTS``).
        scenario: one of :data:`SCENARIOS`.
        concentration: the ``random`` scenario's Dirichlet concentration (> 0).

    Attributes:
        base_mix: float64 ``[7]``, the scenario's mix (for ``random``: the mean of its draws),
            zero for parts the selection lacks, summing to 1.
    """

    def __init__(self, part_index: np.ndarray, scenario: str, concentration: float) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"scenario must be one of {list(SCENARIOS)}, got {scenario!r}.")
        part_index = np.asarray(part_index, dtype=np.int64)
        counts = np.bincount(part_index, minlength=len(BODY_PARTS)).astype(np.float64)
        if counts.sum() == 0:
            raise ValueError("no study to draw shifts from.")
        present = counts > 0
        if scenario in ("split", "random"):
            mix = counts / counts.sum()
        else:
            named = EMERGENCY_MIX if scenario == "emergency" else ORTHOPAEDIC_MIX
            mix = np.array([named[p] for p in BODY_PARTS]) * present
            if mix.sum() == 0:
                mix = counts / counts.sum()
        self.base_mix = mix / mix.sum()
        self.scenario = scenario
        self.concentration = float(concentration)
        order = np.argsort(part_index, kind="stable")
        self._rows_by_part = order  # study rows grouped by part
        self._starts = np.concatenate([[0], np.cumsum(counts.astype(np.int64))[:-1]])
        self._sizes = counts.astype(np.int64)
        # per part, as float64: the pool size a uniform draw is scaled by (>= 1, a guard
        # against empty pools, whose mix is 0) and the pool's first position in the grouping
        self._scale = np.maximum(self._sizes, 1).astype(np.float64)
        self._start_f = self._starts.astype(np.float64)

    def mixes(self, n_shifts: int, rng: np.random.Generator) -> np.ndarray:
        """float64 ``[n_shifts, 7]``: each shift's mix (Dirichlet draws for ``random``, the
        base mix otherwise)."""
        if self.scenario != "random":
            return np.broadcast_to(self.base_mix, (n_shifts, len(BODY_PARTS))).copy()
        alpha = self.concentration * self.base_mix
        draws = np.zeros((n_shifts, len(BODY_PARTS)))
        present = alpha > 0
        draws[:, present] = rng.gamma(alpha[present], size=(n_shifts, int(present.sum())))
        total = draws.sum(axis=1, keepdims=True)
        empty = total[:, 0] <= 0  # every gamma draw underflowed: use the mean
        draws[empty] = self.base_mix
        total[empty] = 1.0
        return draws / total

    def draw(self, n_shifts: int, shift_size: int, rng: np.random.Generator) -> np.ndarray:
        """int64 ``[n_shifts, shift_size]`` (Fortran-ordered: a shift position's studies are
        contiguous): the study rows of ``n_shifts`` new shifts, in arrival order (each study's
        part from its shift's mix, then a study of that part).

        Per study, a uniform ``u`` picks the part (the number of the mix's cumulative shares
        ``<= u``) and a second uniform ``v`` the study (the ``floor(v * pool size)``-th of the
        part's studies in table order). ``rng`` draws the mixes, then every ``u``, then every
        ``v``, each shift after the other; blocks of shifts at a time keep the work in cache.
        """
        mixes = self.mixes(n_shifts, rng)
        cdf = np.cumsum(mixes, axis=1)
        cdf[:, -1] = 1.0
        block = max(1, _BLOCK // max(shift_size, 1))
        parts = np.empty((n_shifts, shift_size), dtype=np.uint8)
        for a in range(0, n_shifts, block):
            b = min(a + block, n_shifts)
            u = rng.random((b - a, shift_size))
            above = np.empty(u.shape, dtype=np.bool_)
            count = parts[a:b]
            count[...] = 0
            for j in range(len(BODY_PARTS) - 1):  # u < cdf[:, -1] = 1: the last never counts
                np.greater_equal(u, cdf[a:b, j, None], out=above)
                count += above.view(np.uint8)
        out = np.empty((n_shifts, shift_size), dtype=np.int64, order="F")
        for a in range(0, n_shifts, block):
            b = min(a + block, n_shifts)
            v = rng.random((b - a, shift_size))
            part = parts[a:b].astype(np.intp)
            v *= self._scale.take(part)
            np.floor(v, out=v)
            v += self._start_f.take(part)  # exact: integers far below 2**53
            out[a:b] = self._rows_by_part.take(v.astype(np.int64))
        return out
