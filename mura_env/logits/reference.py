"""The reference logits tables shipped with the package: what ``MuraWeighting-v0`` uses when it
is given no ``logits=``.

Each reference table is a :class:`~mura_env.logits.LogitsTable` (Parquet file and manifest)
of the ``tune`` and ``valid`` studies of one synthetic data draw, scored by the members of one
backbone seed, stored as ``mura_env/assets/reference/reference_{i}.parquet`` (``i`` = 0, 1,
...). A backbone seed's members train once, on the ``train`` split of the first draw
(generator seed ``REFERENCE_DATA_SEEDS[0]``), and score the ``tune`` and ``valid`` studies of
every draw of :data:`REFERENCE_DATA_SEEDS` by inference only: table ``i`` is backbone seed
``i // len(REFERENCE_DATA_SEEDS)`` on draw ``REFERENCE_DATA_SEEDS[i % len(REFERENCE_DATA_SEEDS)]``
(:func:`reference_origin`). Tables of one draw share their studies; tables of different draws
do not. Its manifest's ``provenance`` says how it was made; :func:`remake_command` gives the
command that makes it again (with the other tables of its backbone seed).
``gymnasium.make("MuraWeighting-v0", reference_table=i)`` picks one (default 0).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from mura_env.logits import LogitsTable, LogitsTableError, MissingLogitsError, manifest_path

__all__ = ["REFERENCE_DATA_SEEDS", "REFERENCE_DIR", "check_reference_index",
           "load_reference_table", "reference_index", "reference_indices", "reference_origin",
           "reference_table_path", "remake_command", "resolve_logits"]

#: The folder of the shipped reference tables.
REFERENCE_DIR = Path(__file__).resolve().parents[1] / "assets" / "reference"

_NAME = re.compile(r"reference_(\d+)\.parquet")

#: The synthetic generator seeds of the data draws every backbone seed is scored on; its
#: members train on the ``train`` split of the first.
REFERENCE_DATA_SEEDS: tuple[int, ...] = (0, 1)


def reference_index(backbone_seed: int, draw: int) -> int:
    """The number of the reference table of ``backbone_seed`` scored on draw ``draw`` (the
    position in :data:`REFERENCE_DATA_SEEDS`, not the generator seed).

    Raises:
        ValueError: a negative seed, or a draw outside ``range(len(REFERENCE_DATA_SEEDS))``.
    """
    if backbone_seed < 0 or not 0 <= draw < len(REFERENCE_DATA_SEEDS):
        raise ValueError(f"no reference table for backbone seed {backbone_seed}, draw {draw} "
                         f"(seeds >= 0, draws 0..{len(REFERENCE_DATA_SEEDS) - 1})")
    return backbone_seed * len(REFERENCE_DATA_SEEDS) + draw


def reference_origin(index: int) -> tuple[int, int]:
    """``(backbone seed, data seed)`` of reference table ``index``: the training seed of its
    members and the generator seed of the draw whose studies it holds.

    Raises:
        ValueError: ``index`` is not an integer >= 0.
    """
    backbone_seed, draw = divmod(check_reference_index(index), len(REFERENCE_DATA_SEEDS))
    return backbone_seed, REFERENCE_DATA_SEEDS[draw]


def reference_table_path(index: int) -> Path:
    """The Parquet file of reference table ``index``: ``REFERENCE_DIR/reference_{index}.parquet``
    (it may not exist; see :func:`reference_indices`).

    Raises:
        ValueError: ``index`` is not an integer >= 0.
    """
    return REFERENCE_DIR / f"reference_{check_reference_index(index)}.parquet"


def reference_indices() -> list[int]:
    """The numbers of the reference tables present in :data:`REFERENCE_DIR` (their Parquet
    files), sorted; ``[]`` when there is none."""
    if not REFERENCE_DIR.is_dir():
        return []
    found = (_NAME.fullmatch(p.name) for p in REFERENCE_DIR.iterdir() if p.is_file())
    return sorted(int(m.group(1)) for m in found if m)


def remake_command(index: int) -> str:
    """The shell command that (re)makes reference table ``index`` from the repository root
    (it makes every table of the table's backbone seed, one per data draw).

    Raises:
        ValueError: ``index`` is not an integer >= 0.
    """
    backbone_seed, _ = reference_origin(index)
    return (f"python -m experiments.pretrain_backbones --profile reference --seed "
            f"{backbone_seed} --export-reference")


def load_reference_table(index: int = 0) -> LogitsTable:
    """Load and check reference table ``index``.

    Args:
        index: the table's number (0, 1, ...; see :func:`reference_indices`).

    Returns:
        The :class:`~mura_env.logits.LogitsTable` (``tune`` and ``valid`` studies of its
        data draw).

    Raises:
        ValueError: ``index`` is not an integer >= 0.
        MissingLogitsError: the table (or its manifest) is not there; the message names the
            file and the command that makes it.
        LogitsTableError: the table is corrupt (unreadable Parquet or manifest, a file that
            does not match its manifest, invalid contents); the message names the file and
            the command that makes it again.
    """
    path = reference_table_path(index)
    remake = (f"Make it with `{remake_command(index)}` (from the repository root), or pass "
              "logits= a LogitsTable or the path of a saved one.")
    try:
        return LogitsTable.load(path)
    except MissingLogitsError as e:
        what = (f"no manifest {manifest_path(path)} beside {path}" if path.is_file()
                else f"no file {path}")
        raise MissingLogitsError(
            f"Reference table {index} is missing ({what}); the reference tables present in "
            f"{REFERENCE_DIR} are {reference_indices() or 'none'}. {remake}") from e
    except LogitsTableError as e:
        raise LogitsTableError(
            f"Reference table {index} ({path}) is corrupt: {e} {remake}") from e


def check_reference_index(index: object) -> int:
    """``index`` as an int; ``ValueError`` unless it is an integer >= 0 (not a bool): the
    number of a shipped reference table (:mod:`mura_env.logits.reference`)."""
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ValueError(
            f"reference_table must be an integer >= 0 (the number of a shipped reference "
            f"table, e.g. 0), got {index!r}.")
    return int(index)


def resolve_logits(logits: LogitsTable | str | os.PathLike[str] | None,
                   reference_table: int = 0) -> LogitsTable:
    """The table the env uses: ``logits`` itself, the table saved at the path ``logits``, or,
    when None, the shipped reference table number ``reference_table``
    (:func:`load_reference_table`).

    Args:
        logits: a :class:`LogitsTable`, the path of one saved with :meth:`LogitsTable.save`,
            or None.
        reference_table: which reference table None stands for (0, 1, ...); ignored when
            ``logits`` is given.

    Raises:
        MissingLogitsError: no table at the path, or no such reference table (the message
            gives the command that makes it).
        LogitsTableError: the file or its manifest is invalid.
        TypeError: ``logits`` is of another type. ValueError: a bad ``reference_table``.
    """
    if isinstance(logits, LogitsTable):
        return logits
    if logits is None:
        return load_reference_table(reference_table)
    if isinstance(logits, (str, os.PathLike)):
        return LogitsTable.load(logits)
    raise TypeError(
        f"logits must be a LogitsTable, a path to a saved table, or None (a shipped reference "
        f"table); got {type(logits).__name__}."
    )
