"""The format of a logits table: validation of its parts, its Parquet columns and its manifest.

:class:`mura_env.logits.LogitsTable` is built from three parts, each checked here:

* the study table (:func:`normalize_studies`): the columns of
  :data:`~mura_env.constants.STUDY_COLUMNS`, clean dtypes, known labels, body parts and splits,
  unique study ids;
* the model names (:func:`normalize_models`): unique, non-empty strings;
* the logits (:func:`normalize_logits`): a read-only float32 array ``[n, K, 2]``, finite or
  NaN (a *hidden* logit; see :meth:`mura_env.logits.study_set.StudySet.from_table`);
* the optional provenance (:func:`normalize_provenance`): a JSON object.

* reader columns (:func:`normalize_reader_columns`): optional ``reader_<id>`` study columns,
  one radiologist's 0/1 read of every study (see :mod:`mura_env.readers`);
* the optional ``difficulty`` study column (:func:`normalize_difficulty`): how hard each study
  is to read, in [0, 1] (synthetic data only; simulated readers share it).

On disk a table is one Parquet file and a JSON manifest beside it (:func:`manifest_path`),
written and read back by :mod:`mura_env.logits.parquet`, which checks each against the other.
The names are re-exported by :mod:`mura_env.logits`, the module to import them from.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mura_env.common.atomic import file_sha256
from mura_env.constants import BODY_PARTS, DIFFICULTY_COLUMN, SPLITS, STUDY_COLUMNS

#: Format name and version written to (and required in) every manifest.
MANIFEST_FORMAT = "mura-rl/logits-table"
MANIFEST_VERSION = 1

LOGIT_SUFFIXES = (".logit_normal", ".logit_abnormal")
#: Prefix of a reader column: ``reader_<id>`` holds reader ``<id>``'s 0/1 read of each study.
READER_PREFIX = "reader_"
STR_COLUMNS = ("study_id", "patient_id", "body_part", "split")
INT_COLUMNS = ("label", "n_images")
MANIFEST_KEYS = (
    "format", "format_version", "parquet", "parquet_sha256", "n_studies", "model_names",
    "model_configs", "data_fingerprint", "created_at", "package_version",
)


class LogitsTableError(ValueError):
    """A logits table (arrays, Parquet file or manifest) is malformed or inconsistent."""


class MissingLogitsError(FileNotFoundError):
    """No logits table at the given path (or no shipped reference table)."""


def manifest_path(path: str | os.PathLike[str]) -> Path:
    """The manifest that goes with the Parquet file ``path``: ``<folder>/<stem>.manifest.json``."""
    path = Path(path)
    return path.with_name(path.stem + ".manifest.json")


def logit_columns(model_names: Sequence[str]) -> list[str]:
    """Parquet column names of the logits, model by model:
    ``<m>.logit_normal, <m>.logit_abnormal``."""
    return [f"{model}{suffix}" for model in model_names for suffix in LOGIT_SUFFIXES]


# ---------------------------------------------------------------------- validation


def normalize_studies(studies: pd.DataFrame, where: str) -> pd.DataFrame:
    """Validated copy of a study table.

    Args:
        studies: one row per study with (at least) the columns of ``STUDY_COLUMNS``.
        where: what is being checked, the start of every error message.

    Returns:
        A new DataFrame with the ``STUDY_COLUMNS``, in that order, index ``0..n-1``: str
        ``study_id``, ``patient_id``, ``body_part``, ``split``; int64 ``label``, ``n_images``;
        then float64 ``difficulty`` when ``studies`` has it (:func:`normalize_difficulty`),
        then the reader columns of ``studies`` (:func:`normalize_reader_columns`). Other
        columns are dropped.

    Raises:
        LogitsTableError: not a DataFrame, a missing column, a missing value, non-integer
            label or n_images, label not in {0, 1}, unknown body part or split, negative
            n_images, duplicate study_id, a reader column with a value other than 0 or 1, a
            difficulty outside [0, 1].
    """
    selected = _select_study_columns(studies, where)
    cleaned = _cast_study_columns(selected, where)
    _check_study_values(cleaned, where)
    difficulty = normalize_difficulty(studies, where)
    if difficulty is not None:
        cleaned[DIFFICULTY_COLUMN] = difficulty
    reads = normalize_reader_columns(studies, where)
    for column, values in reads.items():
        cleaned[column] = values
    return cleaned


def normalize_difficulty(studies: pd.DataFrame, where: str) -> np.ndarray | None:
    """The ``difficulty`` column of ``studies`` as float64 ``[n]``, or None without one.

    Raises:
        LogitsTableError: a missing value or a value outside [0, 1].
    """
    if DIFFICULTY_COLUMN not in studies.columns:
        return None
    try:
        values = studies[DIFFICULTY_COLUMN].to_numpy(dtype=np.float64)
        ok = bool(np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all())
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise LogitsTableError(
            f"{where}: column {DIFFICULTY_COLUMN!r} must hold one number in [0, 1] per study "
            "(the share of studies of its body part and label that are easier), none missing.")
    return values


def reader_column_names(columns: Iterable[str]) -> list[str]:
    """The reader columns (``reader_<id>``, non-empty id) among ``columns``, in their order."""
    return [c for c in columns if isinstance(c, str) and c.startswith(READER_PREFIX)
            and len(c) > len(READER_PREFIX)]


def normalize_reader_columns(studies: pd.DataFrame, where: str) -> dict[str, np.ndarray]:
    """The reader columns of ``studies`` as int8 arrays ``[n]`` (0 normal, 1 abnormal).

    Raises:
        LogitsTableError: a reader column with a missing value or a value other than 0 or 1
            (the message names the column and says how to add reads properly).
    """
    out = {}
    for column in reader_column_names(studies.columns):
        values = studies[column].to_numpy()
        try:
            ok = bool(np.isin(values.astype(np.float64), (0.0, 1.0)).all())
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise LogitsTableError(
                f"{where}: reader column {column!r} must hold one 0/1 read (1 = abnormal) per "
                "study, with none missing; add reads with LogitsTable.with_reads(reads) or "
                "LogitsTable.with_simulated_reader().")
        out[column] = values.astype(np.int8)
    return out


def _select_study_columns(studies: pd.DataFrame, where: str) -> pd.DataFrame:
    """The ``STUDY_COLUMNS`` of ``studies``, index reset; none missing and no missing value."""
    if not isinstance(studies, pd.DataFrame):
        raise LogitsTableError(f"{where}: studies must be a pandas DataFrame, got {type(studies)}.")
    missing = [column for column in STUDY_COLUMNS if column not in studies.columns]
    if missing:
        raise LogitsTableError(
            f"{where}: the studies table lacks the column(s) {missing}; expected the columns "
            f"{list(STUDY_COLUMNS)} (one row per study, e.g. MuraData.studies)."
        )
    selected = studies.loc[:, list(STUDY_COLUMNS)].reset_index(drop=True)
    with_nulls = [column for column in STUDY_COLUMNS if selected[column].isna().any()]
    if with_nulls:
        raise LogitsTableError(f"{where}: missing values in the column(s) {with_nulls}.")
    return selected


def _cast_study_columns(studies: pd.DataFrame, where: str) -> pd.DataFrame:
    """``studies`` with str text columns and int64 integer columns (which must hold integers)."""
    columns: dict[str, pd.Series] = {}
    for column in STR_COLUMNS:
        columns[column] = studies[column].astype(str)
    for column in INT_COLUMNS:
        values = studies[column].to_numpy()
        try:
            as_int = values.astype(np.int64)
            exact = np.array_equal(as_int, values.astype(np.float64))
        except (TypeError, ValueError):
            exact = False
        if not exact:
            raise LogitsTableError(
                f"{where}: column {column!r} must hold integers, got {values[:5]!r}.")
        columns[column] = pd.Series(as_int, dtype="int64")
    return pd.DataFrame(columns)[list(STUDY_COLUMNS)]


def _check_study_values(studies: pd.DataFrame, where: str) -> None:
    """Raise :class:`LogitsTableError` unless labels, body parts, splits, image counts and
    study ids of the cast table ``studies`` are valid."""
    bad_label = ~studies["label"].isin([0, 1])
    if bad_label.any():
        raise LogitsTableError(
            f"{where}: labels must be 0 (normal) or 1 (abnormal); found "
            f"{sorted(set(studies.loc[bad_label, 'label'].tolist()))} "
            f"(e.g. study {studies.loc[bad_label, 'study_id'].iloc[0]!r})."
        )
    bad_part = ~studies["body_part"].isin(BODY_PARTS)
    if bad_part.any():
        raise LogitsTableError(
            f"{where}: unknown body part(s) {sorted(set(studies.loc[bad_part, 'body_part']))}; "
            f"expected one of {list(BODY_PARTS)}."
        )
    bad_split = ~studies["split"].isin(SPLITS)
    if bad_split.any():
        raise LogitsTableError(
            f"{where}: unknown split(s) {sorted(set(studies.loc[bad_split, 'split']))}; "
            f"expected one of {list(SPLITS)}."
        )
    if (studies["n_images"] < 0).any():
        raise LogitsTableError(f"{where}: n_images must be >= 0.")
    duplicated = studies["study_id"].duplicated()
    if duplicated.any():
        raise LogitsTableError(
            f"{where}: study_id must be unique; {int(duplicated.sum())} duplicate(s), e.g. "
            f"{studies.loc[duplicated, 'study_id'].iloc[0]!r}."
        )


def normalize_models(model_names: Iterable[str], where: str) -> tuple[str, ...]:
    """The model names as a tuple, checked: a non-empty list of unique non-empty strings.

    Raises:
        LogitsTableError: a single string, no name, a name that is not a non-empty string, or
            a repeated name.
    """
    if isinstance(model_names, str):
        raise LogitsTableError(f"{where}: model_names must be a list of names, not a string.")
    names = tuple(model_names)
    if not names:
        raise LogitsTableError(f"{where}: at least one model name is needed.")
    for name in names:
        if not isinstance(name, str) or not name:
            raise LogitsTableError(
                f"{where}: model names must be non-empty strings, got {name!r}.")
    if len(set(names)) != len(names):
        raise LogitsTableError(f"{where}: model names must be unique, got {list(names)}.")
    return names


def normalize_logits(logits: Any, n_studies: int, n_models: int, where: str) -> np.ndarray:
    """A private read-only float32 copy of ``logits``, checked.

    Args:
        logits: array-like ``[n_studies, n_models, 2]`` of numbers.
        n_studies, n_models: the expected first two dimensions.
        where: what is being checked, the start of every error message.

    Returns:
        A C-contiguous, non-writeable float32 array ``[n_studies, n_models, 2]``. NaN values
        are kept: they mark hidden logits.

    Raises:
        LogitsTableError: not numeric, another shape, or infinite values (also after the cast
            to float32, so values beyond float32's range are rejected).
    """
    try:
        as_array = np.asarray(logits)
        with np.errstate(over="ignore", invalid="ignore"):
            as_float32 = as_array.astype(np.float32)
    except (TypeError, ValueError) as e:
        raise LogitsTableError(f"{where}: logits must be a numeric array, got {e}.") from e
    if as_float32.shape != (n_studies, n_models, 2):
        raise LogitsTableError(
            f"{where}: logits must have shape [n_studies, K, 2] = [{n_studies}, {n_models}, 2], "
            f"got {list(as_float32.shape)}."
        )
    infinite = np.isinf(as_float32)
    if infinite.any():
        first_row = int(np.argwhere(infinite)[0][0])
        raise LogitsTableError(
            f"{where}: logits must be finite float32 values (or NaN for a hidden logit); "
            f"found +/-inf ({int(infinite.sum())} value(s), first in row {first_row})."
        )
    as_float32 = np.ascontiguousarray(as_float32)  # astype made a private copy
    as_float32.flags.writeable = False
    return as_float32


def normalize_configs(model_configs: Mapping[str, Any] | None, model_names: Sequence[str],
                      where: str) -> dict[str, Any]:
    """Model name -> JSON-able config for every model of ``model_names`` (``{}`` when not
    given), as a JSON round trip of the input.

    Raises:
        LogitsTableError: a config for an unknown model, or a config that is not
            JSON-serializable.
    """
    configs = dict(model_configs or {})
    unknown = sorted(set(configs) - set(model_names))
    if unknown:
        raise LogitsTableError(f"{where}: model_configs names unknown model(s) {unknown}.")
    complete = {model: configs.get(model, {}) for model in model_names}
    try:
        return json.loads(json.dumps(complete))
    except (TypeError, ValueError) as e:
        raise LogitsTableError(f"{where}: model_configs must be JSON-serializable ({e}).") from e


def normalize_provenance(provenance: Mapping[str, Any] | None,
                         where: str) -> dict[str, Any] | None:
    """A JSON round trip of ``provenance`` (None stays None).

    Args:
        provenance: None, or a JSON-serializable mapping saying how the table was made.
        where: what is being checked, the start of every error message.

    Raises:
        LogitsTableError: not a mapping, or not JSON-serializable.
    """
    if provenance is None:
        return None
    if not isinstance(provenance, Mapping):
        raise LogitsTableError(
            f"{where}: provenance must be a JSON object (a dict) or None, got "
            f"{type(provenance).__name__}.")
    try:
        return json.loads(json.dumps(dict(provenance)))
    except (TypeError, ValueError) as e:
        raise LogitsTableError(f"{where}: provenance must be JSON-serializable ({e}).") from e


# ---------------------------------------------------------------------- Parquet and manifest


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the Parquet file ``path``, checked against the file.

    Args:
        path: the Parquet file; its manifest is :func:`manifest_path` of it.

    Returns:
        The manifest dict: it has every key of ``MANIFEST_KEYS``, this format and version, and
        the sha256 of the file at ``path``.

    Raises:
        MissingLogitsError: no file at ``path`` or no manifest beside it.
        LogitsTableError: the manifest is not a JSON object, lacks a key, has another format
            or version, or names another sha256.
    """
    if not path.is_file():
        raise MissingLogitsError(
            f"No logits table at {path}. Build one with "
            "LogitsTable.from_arrays(studies, model_names, logits).save(path)."
        )
    manifest_file = manifest_path(path)
    if not manifest_file.is_file():
        raise MissingLogitsError(
            f"The logits table {path} has no manifest beside it (expected {manifest_file}); "
            "re-save the table with LogitsTable.save(path), which writes both."
        )
    try:
        manifest = json.loads(manifest_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LogitsTableError(f"Manifest {manifest_file} is not valid JSON: {e}") from e
    where = f"Logits table {path}"
    _check_manifest_keys(manifest, manifest_file, where)
    _check_parquet_digest(path, manifest, manifest_file, where)
    return manifest


def _check_manifest_keys(manifest: Any, manifest_file: Path, where: str) -> None:
    """Raise :class:`LogitsTableError` unless ``manifest`` is an object with every key of
    ``MANIFEST_KEYS`` and this format and version."""
    if not isinstance(manifest, dict):
        raise LogitsTableError(f"{where}: the manifest {manifest_file} must hold a JSON object.")
    missing = [key for key in MANIFEST_KEYS if key not in manifest]
    if missing:
        raise LogitsTableError(
            f"{where}: the manifest {manifest_file} lacks the key(s) {missing}.")
    if (manifest["format"] != MANIFEST_FORMAT
            or manifest["format_version"] != MANIFEST_VERSION):
        raise LogitsTableError(
            f"{where}: manifest format {manifest['format']!r} v{manifest['format_version']}"
            f" is not {MANIFEST_FORMAT!r} v{MANIFEST_VERSION}; re-save the table."
        )


def _check_parquet_digest(path: Path, manifest: dict[str, Any], manifest_file: Path,
                          where: str) -> None:
    """Raise :class:`LogitsTableError` unless the file's sha256 is the manifest's."""
    digest = file_sha256(path)
    if digest != manifest["parquet_sha256"]:
        raise LogitsTableError(
            f"{where}: the manifest {manifest_file} does not match the file (sha256 "
            f"{digest[:12]}... vs {str(manifest['parquet_sha256'])[:12]}... in the manifest); "
            "the Parquet file was changed or replaced without its manifest. Re-save both with "
            "LogitsTable.save(path)."
        )
