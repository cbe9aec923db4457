"""Scalars read back from the TensorBoard event files of an agent run (``<run>/tb``)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def read_scalars(tb_dir: str | os.PathLike[str], tag: str) -> pd.DataFrame:
    """All values of one scalar ``tag`` in the TensorBoard event files of ``tb_dir``.

    Returns:
        DataFrame with int ``step`` and float ``value`` columns, sorted by step (empty when
        the tag is absent); NaN values are dropped.
    """
    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    acc.Reload()
    if tag not in acc.Tags().get("scalars", []):
        return pd.DataFrame({"step": pd.Series(dtype=np.int64),
                             "value": pd.Series(dtype=np.float64)})
    events = acc.Scalars(tag)
    df = pd.DataFrame({"step": [e.step for e in events], "value": [e.value for e in events]})
    return df[np.isfinite(df["value"])].sort_values("step").reset_index(drop=True)
