"""The logits tables a pooled experiment compares (the shipped reference tables by default),
loaded and checked: every table needs tune and valid studies with known logits, and the same
valid studies, so that runs pair study by study across tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mura_env.logits import LogitsTable, LogitsTableError, MissingLogitsError
from mura_env.reference import load_reference_table, reference_indices, reference_table_path


class TableSetError(ValueError):
    """Tables the benchmark cannot compare (e.g. different valid studies)."""


@dataclass(frozen=True)
class TableSource:
    """A loaded table and where it came from (``label``: its path)."""

    label: str
    table: LogitsTable


def load_tables(paths: Sequence[Path] | None) -> list[TableSource]:
    """The tables of ``paths``, or every shipped reference table when None.

    Raises:
        MissingLogitsError, LogitsTableError: a table is missing or corrupt; for a shipped
            reference table the message names the file and the command that remakes it.
    """
    if paths:
        return [TableSource(_shown(p), LogitsTable.load(p)) for p in paths]
    indices = reference_indices() or [0]  # none present: table 0's error says how to make it
    return [TableSource(_shown(reference_table_path(i)), load_reference_table(i))
            for i in indices]


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when inside it (as reports show it)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def valid_orders(sources: Sequence[TableSource]) -> list[np.ndarray]:
    """Per table, the positions of its valid studies in the first table's valid order.

    Returns:
        int64 ``[n]`` per table: ``valid_rows_t[order_t]`` are the first table's valid studies.

    Raises:
        TableSetError: a table without tune or valid studies, with hidden (NaN) logits,
            or whose valid studies (ids, labels, body parts) differ from the first table's.
    """
    first = None
    orders = []
    for source in sources:
        studies = source.table.studies
        for split in ("tune", "valid"):
            rows = (studies["split"] == split).to_numpy()
            if not rows.any() or source.table.hidden_rows()[rows].any():
                raise TableSetError(
                    f"{source.label}: the benchmark needs {split} studies with every logit "
                    f"known (none, or hidden logits, found).")
        valid = studies[studies["split"] == "valid"].set_index("study_id")
        if first is None:
            first = valid
        order = valid.index.get_indexer(first.index)
        same = (len(valid) == len(first) and (order >= 0).all() and (
            valid.iloc[order][["label", "body_part"]].to_numpy()
            == first[["label", "body_part"]].to_numpy()).all())
        if not same:
            raise TableSetError(
                f"{source.label}: its valid studies differ from those of {sources[0].label}; "
                "the benchmark pairs runs study by study across tables, so every table needs "
                "the same valid studies (ids, labels, body parts).")
        orders.append(order.astype(np.int64))
    return orders


#: What a command catches to print ``error: ...`` and exit with status 2: bad settings, a
#: missing or corrupt table, tables that cannot be compared.
INPUT_ERRORS = (ValueError, KeyError, MissingLogitsError, LogitsTableError, TableSetError)

