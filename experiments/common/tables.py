"""The logits tables a pooled experiment compares (the shipped reference tables by default),
loaded and checked: every table needs tune and valid studies with known logits and the same
number of valid studies. Tables of one synthetic data draw share their valid studies (a study
set: runs on them pair study by study); tables of different draws have their own. Tables made
by one backbone training (the same member checkpoints) share its backbone seed: the two
factors the statistics cross (:class:`mura_env.evaluation.statistics.ValidSets`)."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mura_env.evaluation.statistics import ValidSets
from mura_env.logits import LogitsTable, LogitsTableError, MissingLogitsError
from mura_env.logits.reference import load_reference_table, reference_indices, reference_table_path


class TableSetError(ValueError):
    """Tables the benchmark cannot compare (e.g. different numbers of valid studies)."""


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


@dataclass(frozen=True)
class AlignedValid:
    """The valid studies of a list of tables, grouped into study sets (:func:`valid_sets`).

    Attributes:
        sets: per table, its valid labels and body parts (in the order of the first table of
            its study set) and its study set (:class:`mura_env.evaluation.statistics.ValidSets`).
        orders: per table ``t``, int64 ``[n]``: ``valid_rows_t[orders[t]]`` are the valid
            studies of the first table of its set, in that table's order (what
            :func:`mura_env.evaluation.statistics.method_runs` aligns run answers with).
    """

    sets: ValidSets
    orders: tuple[np.ndarray, ...]

    @property
    def n_studies(self) -> int:
        """Valid studies per table."""
        return self.sets.n_studies


def backbone_key(table: LogitsTable) -> str:
    """Which backbone training made ``table``: the sha256 digests of its members' checkpoints
    (the ``checkpoint_sha256`` of each model config, as pretraining writes them), so the
    tables one training scores on several data draws share the key; for a table without
    them, the sha256 of its model names and logits (an exact copy shares it, another
    training does not)."""
    digests = [table.model_configs.get(m, {}).get("checkpoint_sha256")
               for m in table.model_names]
    if all(isinstance(d, str) and d for d in digests):
        return "checkpoints " + " ".join(digests)
    content = hashlib.sha256("\n".join(table.model_names).encode())
    content.update(np.ascontiguousarray(table.logits, dtype=np.float64).tobytes())
    return "logits " + content.hexdigest()


def valid_sets(sources: Sequence[TableSource]) -> AlignedValid:
    """Check the tables and group them by their valid studies and their backbone training.

    A study set is identified by the set of ``(study_id, label, body_part)`` of a table's valid
    rows: tables of one synthetic data draw share theirs (their runs pair study by study),
    tables of different draws have their own (set numbers in first-seen order). A table's
    backbone seed is :func:`backbone_key`.

    Raises:
        TableSetError: a table without tune or valid studies, with hidden (NaN) logits, with a
            repeated valid study id, with another number of valid studies than the first
            table, or with the same valid study ids as an earlier table but other labels or
            body parts.
    """
    firsts: list[tuple[TableSource, pd.DataFrame]] = []  # per set: its first table, valid rows
    study_set: list[int] = []
    orders: list[np.ndarray] = []
    for source in sources:
        studies = source.table.studies
        for split in ("tune", "valid"):
            rows = (studies["split"] == split).to_numpy()
            if not rows.any() or source.table.hidden_rows()[rows].any():
                raise TableSetError(
                    f"{source.label}: the benchmark needs {split} studies with every logit "
                    f"known (none, or hidden logits, found).")
        valid = studies[studies["split"] == "valid"].set_index("study_id")
        if not valid.index.is_unique:
            raise TableSetError(f"{source.label}: a valid study id appears twice.")
        if firsts and len(valid) != len(firsts[0][1]):
            raise TableSetError(
                f"{source.label}: {len(valid):,} valid studies, {firsts[0][0].label}: "
                f"{len(firsts[0][1]):,}; every table needs the same number of valid studies "
                "(tables of one data draw share them, other draws have as many).")
        match = _same_studies(source, valid, firsts)
        if match is None:
            match = len(firsts), np.arange(len(valid))
            firsts.append((source, valid))
        g, order = match
        study_set.append(g)
        orders.append(order.astype(np.int64))
    aligned = [firsts[g][1] for g in study_set]
    sets = ValidSets(np.stack([v["label"].to_numpy(np.int64) for v in aligned]),
                     np.stack([v["body_part"].to_numpy(object) for v in aligned]),
                     np.asarray(study_set, dtype=np.int64),
                     backbone_seed=np.array([backbone_key(s.table) for s in sources],
                                            dtype=object))
    return AlignedValid(sets, tuple(orders))


def _same_studies(source: TableSource, valid: pd.DataFrame,
                  firsts: Sequence[tuple[TableSource, pd.DataFrame]]
                  ) -> tuple[int, np.ndarray] | None:
    """The study set whose first table has the valid study ids of ``valid`` (indexed by id),
    and the order aligning ``valid`` with it; None for a new set. Raises TableSetError for
    the same ids with other labels or body parts."""
    columns = ["label", "body_part"]
    for g, (first_source, first) in enumerate(firsts):
        order = valid.index.get_indexer(first.index)
        if not (order >= 0).all():
            continue
        if not (valid.iloc[order][columns].to_numpy() == first[columns].to_numpy()).all():
            raise TableSetError(
                f"{source.label}: the same valid study ids as {first_source.label}, but "
                "other labels or body parts; tables that share their valid studies need the "
                "same ids, labels and body parts.")
        return g, order
    return None


def table_info(sources: Sequence[TableSource]) -> pd.DataFrame:
    """One row per table: ``table`` (index), ``table_label`` (its source label),
    ``table_seed`` and ``data_seed`` (its provenance's ``seed`` and ``data_seed``; None when
    absent, an empty cell in a CSV)."""
    provenance = [s.table.provenance or {} for s in sources]
    return pd.DataFrame({
        "table": range(len(sources)), "table_label": [s.label for s in sources],
        "table_seed": pd.Series([p.get("seed") for p in provenance], dtype=object),
        "data_seed": pd.Series([p.get("data_seed") for p in provenance], dtype=object)})


def with_table_info(frame: pd.DataFrame, sources: Sequence[TableSource]) -> pd.DataFrame:
    """``frame`` (with a ``table`` index column) with :func:`table_info`'s ``table_label``,
    ``table_seed`` and ``data_seed`` inserted after its ``table`` column."""
    info = table_info(sources)
    added = [c for c in info.columns if c != "table"]
    columns = [c for c in frame.columns if c not in added]
    at = columns.index("table") + 1
    out = frame.merge(info, on="table", how="left")
    return out[[*columns[:at], *added, *columns[at:]]]


#: What a command catches to print ``error: ...`` and exit with status 2: bad settings, a
#: missing or corrupt table, tables that cannot be compared.
INPUT_ERRORS = (ValueError, KeyError, MissingLogitsError, LogitsTableError, TableSetError)


def input_error_status(error: Exception) -> int:
    """Print ``error`` (one of :data:`INPUT_ERRORS`) to stderr for a command line, with how to
    add reads when it is a missing reader (``KeyError``); returns the exit status, 2."""
    if isinstance(error, KeyError):
        print(f"error: {error.args[0]} (for a table file: `python -m experiments.attach_reader "
              "--table PATH`)", file=sys.stderr)
    else:
        print(f"error: {error}", file=sys.stderr)
    return 2
