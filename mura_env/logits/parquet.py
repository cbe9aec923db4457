"""A logits table's Parquet file: its columns, written and read back against the manifest.

Columns, in order: the :data:`~mura_env.constants.STUDY_COLUMNS` (string and int64), one
float32 column per :func:`~mura_env.logits.format.logit_columns` name, then the table's reader
columns (``reader_<id>``, int8 0/1; the manifest lists their ids under ``readers``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mura_env.constants import DIFFICULTY_COLUMN, STUDY_COLUMNS
from mura_env.logits.format import (
    INT_COLUMNS,
    READER_PREFIX,
    STR_COLUMNS,
    LogitsTableError,
    logit_columns,
    normalize_logits,
    normalize_studies,
    reader_column_names,
)


def to_arrow(studies: pd.DataFrame, model_names: Sequence[str], logits: np.ndarray) -> pa.Table:
    """The Parquet table of a validated table's parts.

    Args:
        studies: a study table as :func:`~mura_env.logits.format.normalize_studies` returns it.
        model_names: the ``K`` model names.
        logits: float32 ``[n, K, 2]``.

    Returns:
        The study columns, the logit columns, ``difficulty`` (float64, when the table has it)
        and the reader columns, in that order.
    """
    columns: dict[str, Any] = {
        column: pa.array(studies[column].to_numpy(dtype=object), type=pa.string())
        for column in STR_COLUMNS
    }
    for column in INT_COLUMNS:
        columns[column] = pa.array(studies[column].to_numpy(dtype=np.int64), type=pa.int64())
    names = logit_columns(model_names)
    flat = logits.reshape(len(studies), 2 * len(model_names))
    for position, name in enumerate(names):
        columns[name] = pa.array(np.ascontiguousarray(flat[:, position]), type=pa.float32())
    latent = [DIFFICULTY_COLUMN] if DIFFICULTY_COLUMN in studies.columns else []
    for column in latent:
        columns[column] = pa.array(studies[column].to_numpy(dtype=np.float64), type=pa.float64())
    readers = reader_column_names(studies.columns)
    for column in readers:
        columns[column] = pa.array(studies[column].to_numpy(dtype=np.int8), type=pa.int8())
    return pa.table({column: columns[column]
                     for column in (*STUDY_COLUMNS, *names, *latent, *readers)})


def manifest_readers(manifest: dict[str, Any]) -> list[str]:
    """The reader ids a manifest lists (``[]`` for a manifest without a ``readers`` key)."""
    readers = manifest.get("readers") or []
    if not isinstance(readers, list) or not all(isinstance(r, str) and r for r in readers):
        raise LogitsTableError(f"the manifest's readers must be a list of names, got {readers!r}.")
    return readers


def read_arrays(path: Path, manifest: dict[str, Any],
                model_names: tuple[str, ...]) -> tuple[pd.DataFrame, np.ndarray]:
    """The study table (with its reader columns) and the logits stored in the Parquet file
    ``path``, validated.

    Args:
        path: the Parquet file.
        manifest: its manifest, as :func:`~mura_env.logits.format.read_manifest` returns it.
        model_names: the manifest's model names, checked by
            :func:`~mura_env.logits.format.normalize_models`.

    Returns:
        ``(studies, logits)`` as :func:`~mura_env.logits.format.normalize_studies` and
        :func:`~mura_env.logits.format.normalize_logits` return them.

    Raises:
        LogitsTableError: an unreadable file, columns other than the study columns, the models'
            logit columns and the manifest's reader columns, another row count than the
            manifest's, or invalid contents.
    """
    where = f"Logits table {path}"
    try:
        arrow = pq.read_table(path)
    except (OSError, pa.ArrowException) as e:
        raise LogitsTableError(f"{where}: not a readable Parquet file ({e}).") from e
    latent = [DIFFICULTY_COLUMN] if manifest.get(DIFFICULTY_COLUMN) else []
    readers = [READER_PREFIX + r for r in manifest_readers(manifest)]
    _check_arrow_shape(arrow, manifest, model_names, [*latent, *readers], where)
    studies = pd.DataFrame({column: arrow.column(column).to_pandas()
                            for column in (*STUDY_COLUMNS, *latent, *readers)})
    if arrow.num_rows:
        flat = np.column_stack([arrow.column(column).to_numpy().astype(np.float32)
                                for column in logit_columns(model_names)])
    else:
        flat = np.zeros((0, 2 * len(model_names)), np.float32)
    logits = flat.reshape(arrow.num_rows, len(model_names), 2)
    studies = normalize_studies(studies, where)
    logits = normalize_logits(logits, len(studies), len(model_names), where)
    return studies, logits


def _check_arrow_shape(arrow: pa.Table, manifest: dict[str, Any], model_names: tuple[str, ...],
                       extra_columns: list[str], where: str) -> None:
    """Raise :class:`LogitsTableError` unless ``arrow`` has the study columns, the models'
    logit columns and the ``extra_columns`` (``difficulty`` when the manifest lists it, then
    the reader columns), in order, and as many rows as the manifest says."""
    expected = [*STUDY_COLUMNS, *logit_columns(model_names), *extra_columns]
    if arrow.column_names != expected:
        missing = [column for column in expected if column not in arrow.column_names]
        raise LogitsTableError(
            f"{where}: columns {arrow.column_names} do not match the manifest's models "
            f"{list(model_names)} and readers; expected {expected} (missing {missing})."
        )
    if arrow.num_rows != manifest["n_studies"]:
        raise LogitsTableError(
            f"{where}: {arrow.num_rows} rows but the manifest says {manifest['n_studies']}."
        )
