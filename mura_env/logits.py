"""The logits table: frozen ensemble outputs for every MURA study, the only input of the env.

A :class:`LogitsTable` holds, for ``n`` studies and ``K`` models:

* ``studies``: a DataFrame with the columns ``study_id, patient_id, body_part, label, split,
  n_images`` (see :data:`mura_env.constants.STUDY_COLUMNS`), one row per study;
* ``model_names``: the ``K`` model names, in the order of the logits' second axis;
* ``logits``: a read-only float32 array ``[n, K, 2]``; ``softmax(logits[i, k])[1]`` is model
  ``k``'s probability that study ``i`` is abnormal.

On disk it is one Parquet file (the study columns, then two float32 columns per model,
``<model>.logit_normal`` and ``<model>.logit_abnormal``) and a JSON manifest beside it,
``<stem>.manifest.json``, with the model names and configs, the data set fingerprint, the
creation time, the package version and the Parquet file's sha256. Loading checks both.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mura_env.common.atomic import atomic_write, file_sha256
from mura_env.constants import BODY_PARTS, SPLITS, STUDY_COLUMNS
from mura_env.mapping import member_probabilities

#: Format name and version written to (and required in) every manifest.
MANIFEST_FORMAT = "mura-rl/logits-table"
MANIFEST_VERSION = 1

#: Where the package's built-in default table lives (remade by
#: ``python -m experiments.pretrain_backbones --out runs/pretrain/default --export-default``).
DEFAULT_LOGITS_PATH = Path(__file__).resolve().parent / "assets" / "default_logits.parquet"

_LOGIT_SUFFIXES = (".logit_normal", ".logit_abnormal")
_STR_COLUMNS = ("study_id", "patient_id", "body_part", "split")
_INT_COLUMNS = ("label", "n_images")
_MANIFEST_KEYS = (
    "format", "format_version", "parquet", "parquet_sha256", "n_studies", "model_names",
    "model_configs", "data_fingerprint", "created_at", "package_version",
)


class LogitsTableError(ValueError):
    """A logits table (arrays, Parquet file or manifest) is malformed or inconsistent."""


class MissingLogitsError(FileNotFoundError):
    """No logits table at the given path (or no built-in default table)."""


def manifest_path(path: str | os.PathLike[str]) -> Path:
    """The manifest that goes with the Parquet file ``path``: ``<folder>/<stem>.manifest.json``."""
    path = Path(path)
    return path.with_name(path.stem + ".manifest.json")


def logit_columns(model_names: Sequence[str]) -> list[str]:
    """Parquet column names of the logits, model by model:
    ``<m>.logit_normal, <m>.logit_abnormal``."""
    return [f"{m}{s}" for m in model_names for s in _LOGIT_SUFFIXES]


def _package_version() -> str:
    from mura_env import __version__

    return __version__


def _normalize_studies(studies: pd.DataFrame, where: str) -> pd.DataFrame:
    """Validated copy of the study table: required columns only, in order, clean dtypes."""
    if not isinstance(studies, pd.DataFrame):
        raise LogitsTableError(f"{where}: studies must be a pandas DataFrame, got {type(studies)}.")
    missing = [c for c in STUDY_COLUMNS if c not in studies.columns]
    if missing:
        raise LogitsTableError(
            f"{where}: the studies table lacks the column(s) {missing}; expected the columns "
            f"{list(STUDY_COLUMNS)} (one row per study, e.g. MuraData.studies)."
        )
    df = studies.loc[:, list(STUDY_COLUMNS)].reset_index(drop=True)
    nulls = [c for c in STUDY_COLUMNS if df[c].isna().any()]
    if nulls:
        raise LogitsTableError(f"{where}: missing values in the column(s) {nulls}.")
    out = {}
    for c in _STR_COLUMNS:
        out[c] = df[c].astype(str)
    for c in _INT_COLUMNS:
        values = df[c].to_numpy()
        try:
            as_int = values.astype(np.int64)
            ok = np.array_equal(as_int, values.astype(np.float64))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise LogitsTableError(f"{where}: column {c!r} must hold integers, got {values[:5]!r}.")
        out[c] = pd.Series(as_int, dtype="int64")
    df = pd.DataFrame(out)[list(STUDY_COLUMNS)]

    bad_label = ~df["label"].isin([0, 1])
    if bad_label.any():
        raise LogitsTableError(
            f"{where}: labels must be 0 (normal) or 1 (abnormal); found "
            f"{sorted(set(df.loc[bad_label, 'label'].tolist()))} "
            f"(e.g. study {df.loc[bad_label, 'study_id'].iloc[0]!r})."
        )
    bad_part = ~df["body_part"].isin(BODY_PARTS)
    if bad_part.any():
        raise LogitsTableError(
            f"{where}: unknown body part(s) {sorted(set(df.loc[bad_part, 'body_part']))}; "
            f"expected one of {list(BODY_PARTS)}."
        )
    bad_split = ~df["split"].isin(SPLITS)
    if bad_split.any():
        raise LogitsTableError(
            f"{where}: unknown split(s) {sorted(set(df.loc[bad_split, 'split']))}; "
            f"expected one of {list(SPLITS)}."
        )
    if (df["n_images"] < 0).any():
        raise LogitsTableError(f"{where}: n_images must be >= 0.")
    dup = df["study_id"].duplicated()
    if dup.any():
        raise LogitsTableError(
            f"{where}: study_id must be unique; {int(dup.sum())} duplicate(s), e.g. "
            f"{df.loc[dup, 'study_id'].iloc[0]!r}."
        )
    return df


def _normalize_models(model_names: Iterable[str], where: str) -> tuple[str, ...]:
    if isinstance(model_names, str):
        raise LogitsTableError(f"{where}: model_names must be a list of names, not a string.")
    names = tuple(model_names)
    if not names:
        raise LogitsTableError(f"{where}: at least one model name is needed.")
    for n in names:
        if not isinstance(n, str) or not n:
            raise LogitsTableError(f"{where}: model names must be non-empty strings, got {n!r}.")
    if len(set(names)) != len(names):
        raise LogitsTableError(f"{where}: model names must be unique, got {list(names)}.")
    return names


def _normalize_logits(logits: Any, n: int, k: int, where: str) -> np.ndarray:
    try:
        arr = np.asarray(logits)
        with np.errstate(over="ignore", invalid="ignore"):
            arr32 = arr.astype(np.float32)
    except (TypeError, ValueError) as e:
        raise LogitsTableError(f"{where}: logits must be a numeric array, got {e}.") from e
    if arr32.shape != (n, k, 2):
        raise LogitsTableError(
            f"{where}: logits must have shape [n_studies, K, 2] = [{n}, {k}, 2], "
            f"got {list(arr32.shape)}."
        )
    finite = np.isfinite(arr32)
    if not finite.all():
        i = int(np.argwhere(~finite)[0][0])
        raise LogitsTableError(
            f"{where}: logits must be finite float32 values; found NaN/inf "
            f"({int((~finite).sum())} value(s), first in row {i})."
        )
    arr32 = np.ascontiguousarray(arr32)  # astype made a private copy
    arr32.flags.writeable = False
    return arr32


def _jsonable(value: Any, where: str) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as e:
        raise LogitsTableError(f"{where}: model_configs must be JSON-serializable ({e}).") from e


class LogitsTable:
    """Frozen ensemble outputs for every study: the only input of ``MuraWeighting-v0``.

    Attributes:
        studies: DataFrame, one row per study, the columns of
            :data:`~mura_env.constants.STUDY_COLUMNS` (``study_id``, ``patient_id``,
            ``body_part``, ``split`` as strings; ``label`` 0/1 and ``n_images`` as int64),
            index ``0..n-1``. Treat it as read-only.
        model_names: tuple of the ``K`` model names, in the order of ``logits``' second axis.
        logits: read-only float32 array ``[n, K, 2]``; index 1 of the last axis is "abnormal".
        model_configs: dict model name -> JSON-able config (may be empty dicts).
        data_fingerprint: identifier of the data set the logits came from (or None).
        created_at: ISO-8601 UTC creation time. package_version: mura-rl version that made it.

    Build one with :meth:`from_arrays`, persist with :meth:`save`, read with :meth:`load`.
    """

    def __init__(
        self,
        studies: pd.DataFrame,
        model_names: Sequence[str],
        logits: np.ndarray,
        *,
        model_configs: Mapping[str, Any] | None = None,
        data_fingerprint: str | None = None,
        created_at: str | None = None,
        package_version: str | None = None,
        _validated: bool = False,
    ) -> None:
        where = "LogitsTable"
        if _validated:
            self.studies = studies
            self.model_names = tuple(model_names)
            self.logits = logits
        else:
            self.studies = _normalize_studies(studies, where)
            self.model_names = _normalize_models(model_names, where)
            self.logits = _normalize_logits(logits, len(self.studies), len(self.model_names),
                                            where)
        configs = dict(model_configs or {})
        unknown = sorted(set(configs) - set(self.model_names))
        if unknown:
            raise LogitsTableError(f"{where}: model_configs names unknown model(s) {unknown}.")
        self.model_configs: dict[str, Any] = _jsonable(
            {m: configs.get(m, {}) for m in self.model_names}, where
        )
        self.data_fingerprint = data_fingerprint
        self.created_at = created_at or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        self.package_version = package_version or _package_version()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        studies: pd.DataFrame,
        model_names: Sequence[str],
        logits: np.ndarray,
        *,
        model_configs: Mapping[str, Any] | None = None,
        data_fingerprint: str | None = None,
    ) -> LogitsTable:
        """Build a table from a study DataFrame and a logits array.

        Args:
            studies: one row per study with the columns ``study_id, patient_id, body_part,
                label, split, n_images`` (other columns are dropped); row ``i`` goes with
                ``logits[i]``.
            model_names: the ``K`` model names (unique, non-empty strings).
            logits: float array ``[n_studies, K, 2]`` (cast to float32; must stay finite).
            model_configs: optional dict model name -> JSON-able config, saved in the manifest.
            data_fingerprint: optional identifier of the data set (e.g.
                :func:`mura_env.data.data_fingerprint`).

        Returns:
            A validated :class:`LogitsTable` (copies of the inputs).

        Raises:
            LogitsTableError: missing column, missing value, label not in {0, 1}, unknown body
                part or split, duplicate study_id, wrong logits shape, NaN/inf logits.
        """
        return cls(studies, model_names, logits, model_configs=model_configs,
                   data_fingerprint=data_fingerprint)

    # ------------------------------------------------------------------ properties
    def __len__(self) -> int:
        return len(self.studies)

    @property
    def n_models(self) -> int:
        """K, the number of models."""
        return len(self.model_names)

    def abnormal_probabilities(self) -> np.ndarray:
        """Each model's abnormality probability ``softmax(logits[i, k])[1]``: float64 ``[n, K]``."""
        return member_probabilities(self.logits)

    def __repr__(self) -> str:
        counts = self.studies["split"].value_counts().to_dict() if len(self) else {}
        return (f"LogitsTable(n_studies={len(self)}, models={list(self.model_names)}, "
                f"splits={counts})")

    # ------------------------------------------------------------------ selection
    def select(
        self,
        split: str | Sequence[str] | None = None,
        body_parts: str | Sequence[str] | None = None,
        models: str | Sequence[str] | None = None,
    ) -> LogitsTable:
        """The studies of ``split`` and ``body_parts`` and the logits of ``models``.

        Args:
            split: a split name or a list of them (from ``SPLITS``); None keeps all.
            body_parts: a body part or a list of them (from ``BODY_PARTS``); None keeps all.
            models: model names to keep, in the order wanted; None keeps all.

        Returns:
            A new :class:`LogitsTable` (rows in the original order, index reset); may be empty.

        Raises:
            ValueError: unknown split, body part or model name.
        """
        keep = np.ones(len(self), dtype=bool)
        for column, wanted, known in (("split", split, SPLITS), ("body_part", body_parts,
                                                                 BODY_PARTS)):
            if wanted is None:
                continue
            values = [wanted] if isinstance(wanted, str) else list(wanted)
            bad = [v for v in values if v not in known]
            if bad:
                raise ValueError(
                    f"Unknown {column} value(s) {bad}; expected some of {list(known)}."
                )
            keep &= self.studies[column].isin(values).to_numpy()
        if models is None:
            model_idx = list(range(self.n_models))
        else:
            names = [models] if isinstance(models, str) else list(models)
            bad = [m for m in names if m not in self.model_names]
            if bad or not names or len(set(names)) != len(names):
                raise ValueError(
                    f"models must be a non-empty list of distinct names from the table; got "
                    f"{names}, unknown {bad}; the table has {list(self.model_names)}."
                )
            model_idx = [self.model_names.index(m) for m in names]
        rows = np.flatnonzero(keep)
        logits = np.ascontiguousarray(self.logits[rows][:, model_idx])
        logits.flags.writeable = False
        names = tuple(self.model_names[i] for i in model_idx)
        return LogitsTable(
            self.studies.iloc[rows].reset_index(drop=True), names, logits,
            model_configs={m: self.model_configs[m] for m in names},
            data_fingerprint=self.data_fingerprint, created_at=self.created_at,
            package_version=self.package_version, _validated=True,
        )

    # ------------------------------------------------------------------ persistence
    def manifest(self, parquet_name: str, parquet_sha256: str) -> dict[str, Any]:
        """The manifest dict written beside a Parquet file of this table."""
        return {
            "format": MANIFEST_FORMAT,
            "format_version": MANIFEST_VERSION,
            "parquet": parquet_name,
            "parquet_sha256": parquet_sha256,
            "n_studies": len(self),
            "model_names": list(self.model_names),
            "model_configs": self.model_configs,
            "data_fingerprint": self.data_fingerprint,
            "created_at": self.created_at,
            "package_version": self.package_version,
            "split_counts": {s: int(c) for s, c in
                             self.studies["split"].value_counts().sort_index().items()},
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the table to ``path`` (Parquet) and its manifest beside it.

        Both files are written to temporary files in the same folder and renamed into place,
        so a crash never leaves a half-written file. The folder is created if needed.

        Args:
            path: the Parquet file, e.g. ``runs/logits/ensemble.parquet``; the manifest goes
                to :func:`manifest_path` (``ensemble.manifest.json``).

        Returns:
            The Parquet path.
        """
        path = Path(path)
        columns: dict[str, Any] = {c: pa.array(self.studies[c].to_numpy(dtype=object),
                                               type=pa.string()) for c in _STR_COLUMNS}
        for c in _INT_COLUMNS:
            columns[c] = pa.array(self.studies[c].to_numpy(dtype=np.int64), type=pa.int64())
        names = logit_columns(self.model_names)
        flat = self.logits.reshape(len(self), 2 * self.n_models)
        for j, name in enumerate(names):
            columns[name] = pa.array(np.ascontiguousarray(flat[:, j]), type=pa.float32())
        table = pa.table({c: columns[c] for c in (*STUDY_COLUMNS, *names)})

        digest: dict[str, str] = {}

        def write_parquet(tmp: str) -> None:
            pq.write_table(table, tmp)
            digest["sha"] = file_sha256(tmp)

        atomic_write(path, write_parquet)
        text = json.dumps(self.manifest(path.name, digest["sha"]), indent=2) + "\n"
        atomic_write(manifest_path(path), lambda tmp: Path(tmp).write_text(text))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LogitsTable:
        """Read a table written by :meth:`save` and check it.

        Args:
            path: the Parquet file (its manifest must sit beside it).

        Returns:
            The :class:`LogitsTable`.

        Raises:
            MissingLogitsError: no file at ``path`` (or no manifest beside it).
            LogitsTableError: unreadable Parquet or manifest, a manifest that does not match the
                file (sha256, study count, model columns), or invalid contents (missing column,
                NaN/inf logits, label not in {0, 1}, unknown body part or split).
        """
        path = Path(path)
        if not path.is_file():
            raise MissingLogitsError(
                f"No logits table at {path}. Build one with "
                "LogitsTable.from_arrays(studies, model_names, logits).save(path)."
            )
        mpath = manifest_path(path)
        if not mpath.is_file():
            raise MissingLogitsError(
                f"The logits table {path} has no manifest beside it (expected {mpath}); "
                "re-save the table with LogitsTable.save(path), which writes both."
            )
        try:
            manifest = json.loads(mpath.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise LogitsTableError(f"Manifest {mpath} is not valid JSON: {e}") from e
        where = f"Logits table {path}"
        if not isinstance(manifest, dict):
            raise LogitsTableError(f"{where}: the manifest {mpath} must hold a JSON object.")
        missing = [k for k in _MANIFEST_KEYS if k not in manifest]
        if missing:
            raise LogitsTableError(f"{where}: the manifest {mpath} lacks the key(s) {missing}.")
        if (manifest["format"] != MANIFEST_FORMAT
                or manifest["format_version"] != MANIFEST_VERSION):
            raise LogitsTableError(
                f"{where}: manifest format {manifest['format']!r} v{manifest['format_version']}"
                f" is not {MANIFEST_FORMAT!r} v{MANIFEST_VERSION}; re-save the table."
            )
        sha = file_sha256(path)
        if sha != manifest["parquet_sha256"]:
            raise LogitsTableError(
                f"{where}: the manifest {mpath} does not match the file (sha256 {sha[:12]}... "
                f"vs {str(manifest['parquet_sha256'])[:12]}... in the manifest); the Parquet "
                "file was changed or replaced without its manifest. Re-save both with "
                "LogitsTable.save(path)."
            )
        model_names = _normalize_models(manifest["model_names"], where)
        try:
            arrow = pq.read_table(path)
        except (OSError, pa.ArrowException) as e:
            raise LogitsTableError(f"{where}: not a readable Parquet file ({e}).") from e
        expected = [*STUDY_COLUMNS, *logit_columns(model_names)]
        if arrow.column_names != expected:
            missing_cols = [c for c in expected if c not in arrow.column_names]
            raise LogitsTableError(
                f"{where}: columns {arrow.column_names} do not match the manifest's models "
                f"{list(model_names)}; expected {expected} (missing {missing_cols})."
            )
        if arrow.num_rows != manifest["n_studies"]:
            raise LogitsTableError(
                f"{where}: {arrow.num_rows} rows but the manifest says {manifest['n_studies']}."
            )
        studies = pd.DataFrame({c: arrow.column(c).to_pandas() for c in STUDY_COLUMNS})
        flat = np.column_stack(
            [arrow.column(c).to_numpy().astype(np.float32) for c in expected[len(STUDY_COLUMNS):]]
        ) if arrow.num_rows else np.zeros((0, 2 * len(model_names)), np.float32)
        logits = flat.reshape(arrow.num_rows, len(model_names), 2)
        studies = _normalize_studies(studies, where)
        logits = _normalize_logits(logits, len(studies), len(model_names), where)
        configs = manifest["model_configs"] or {}
        if not isinstance(configs, dict):
            raise LogitsTableError(f"{where}: model_configs in the manifest must be an object.")
        return cls(studies, model_names, logits, model_configs=configs,
                   data_fingerprint=manifest["data_fingerprint"],
                   created_at=manifest["created_at"],
                   package_version=manifest["package_version"], _validated=True)


def resolve_logits(logits: LogitsTable | str | os.PathLike[str] | None) -> LogitsTable:
    """The table the env uses: ``logits`` itself, the table saved at the path ``logits``, or,
    when None, the package's built-in default table at :data:`DEFAULT_LOGITS_PATH`.

    Raises:
        MissingLogitsError: no table at the path, or no built-in default table yet.
        LogitsTableError: the file or its manifest is invalid.
        TypeError: ``logits`` is of another type.
    """
    if isinstance(logits, LogitsTable):
        return logits
    if logits is None:
        if not DEFAULT_LOGITS_PATH.is_file():
            raise MissingLogitsError(
                f"MuraWeighting-v0 was made without logits= and the built-in default table "
                f"{DEFAULT_LOGITS_PATH} does not exist yet. Produce it with "
                "`python -m experiments.pretrain_backbones --export-default` (it writes the "
                "default table and its manifest), or pass logits= a LogitsTable or the path "
                "of one saved with "
                "LogitsTable.from_arrays(studies, model_names, logits).save(path)."
            )
        return LogitsTable.load(DEFAULT_LOGITS_PATH)
    if isinstance(logits, (str, os.PathLike)):
        return LogitsTable.load(logits)
    raise TypeError(
        f"logits must be a LogitsTable, a path to a saved table, or None (built-in default); "
        f"got {type(logits).__name__}."
    )

