"""Tables that differ from another only on ``valid``, for the valid-blindness tests of the
commands (import as ``from valid_swap import swap_valid``)."""

from __future__ import annotations

import numpy as np

from mura_env.logits import LogitsTable
from mura_env.logits.format import READER_PREFIX


def swap_valid(table: LogitsTable, seed: int = 1) -> LogitsTable:
    """A copy of ``table``, identical on ``train`` and ``tune``, whose ``valid`` studies say
    something else: labels permuted, logits, reader reads and difficulty replaced by random
    draws (seeded by ``seed``). Anything a command fits or chooses without reading valid is
    the same on both tables; only valid scores may differ."""
    rng = np.random.default_rng(seed)
    valid = table.studies["split"].eq("valid").to_numpy()
    assert valid.any()
    studies = table.studies.copy()
    labels = studies.loc[valid, "label"].to_numpy()
    studies.loc[valid, "label"] = rng.permutation(labels).astype(studies["label"].dtype)
    for reader in table.reader_ids:
        column = READER_PREFIX + reader
        studies.loc[valid, column] = rng.integers(0, 2, int(valid.sum())).astype(
            studies[column].dtype)
    if "difficulty" in studies.columns:
        studies.loc[valid, "difficulty"] = rng.uniform(0, 1, int(valid.sum()))
    logits = np.array(table.logits)
    logits[valid] = rng.normal(0.0, 2.0, size=logits[valid].shape).astype(logits.dtype)
    return LogitsTable.from_arrays(studies, table.model_names, logits,
                                   model_configs=table.model_configs,
                                   data_fingerprint=table.data_fingerprint,
                                   provenance=table.provenance)
