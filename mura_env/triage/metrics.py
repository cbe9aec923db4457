"""What a clinic reads off a reading room's shifts: how long abnormal and normal studies waited,
what the waiting cost, and what the classifier's misses cost."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mura_env.triage.shifts import TriageShift


def wait_summary(shifts: Sequence[TriageShift], threshold: float = 0.5) -> dict[str, float]:
    """Figures over played shifts (every study started).

    Args:
        shifts: the shifts; threshold: the probability above which the classifier calls a study
            abnormal (for the missed abnormal studies).

    Returns:
        ``mean_wait_abnormal``, ``p90_wait_abnormal``, ``mean_wait_normal``,
        ``p90_wait_normal`` (minutes, over all studies of all shifts), ``cost_per_shift`` (the
        rooms' weighted waiting, mean), ``missed_abnormal_share`` (abnormal studies with
        ``p <= threshold``) and ``mean_wait_missed_abnormal`` (NaN without any).

    Raises:
        ValueError: no shift, or a shift with a study not started.
    """
    if not shifts:
        raise ValueError("wait_summary needs at least one shift.")
    waits = np.concatenate([s.room.waits for s in shifts])
    if not np.isfinite(waits).all():
        raise ValueError("every study of every shift must have started (play the shifts first).")
    labels = np.concatenate([s.labels for s in shifts])
    missed = (labels == 1) & (np.concatenate([s.probability for s in shifts]) <= threshold)
    out = {"cost_per_shift": float(np.mean([s.room.cost for s in shifts]))}
    for name, chosen in (("abnormal", labels == 1), ("normal", labels == 0)):
        some = waits[chosen]
        out[f"mean_wait_{name}"] = float(some.mean()) if some.size else float("nan")
        out[f"p90_wait_{name}"] = float(np.quantile(some, 0.9)) if some.size else float("nan")
    abnormal = int((labels == 1).sum())
    out["missed_abnormal_share"] = float(missed.sum() / abnormal) if abnormal else float("nan")
    out["mean_wait_missed_abnormal"] = float(waits[missed].mean()) if missed.any() \
        else float("nan")
    return out
