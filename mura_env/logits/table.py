"""The logits table: frozen ensemble outputs for every MURA study, the only input of the env.

A :class:`LogitsTable` holds, for ``n`` studies and ``K`` models:

* ``studies``: a DataFrame with the columns ``study_id, patient_id, body_part, label, split,
  n_images`` (see :data:`mura_env.constants.STUDY_COLUMNS`), one row per study;
* ``model_names``: the ``K`` model names, in the order of the logits' second axis;
* ``logits``: a read-only float32 array ``[n, K, 2]``; ``softmax(logits[i, k])[1]`` is model
  ``k``'s probability that study ``i`` is abnormal. NaN marks a hidden logit (e.g. a copy of a
  table with its ``valid`` logits withheld); a split with hidden logits cannot be used
  (:meth:`mura_env.logits.study_set.StudySet.from_table` refuses it), the other splits can;
* optional reader columns ``reader_<id>`` in ``studies``: a radiologist's 0/1 read of every
  study (:meth:`LogitsTable.with_reads`), what ``MuraDeferral-v0`` defers to.

On disk it is one Parquet file (the study columns, then two float32 columns per model,
``<model>.logit_normal`` and ``<model>.logit_abnormal``, then the int8 reader columns) and a
JSON manifest beside it, ``<stem>.manifest.json``, with the model names and configs, the data set
fingerprint, the creation time, the package version, the optional provenance and the Parquet file's
sha256. Loading checks both.
The checks and the file format are in :mod:`mura_env.logits.format` and
:mod:`mura_env.logits.parquet`; import the public names from :mod:`mura_env.logits`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from mura_env.common.atomic import atomic_write, file_sha256
from mura_env.constants import BODY_PARTS, DIFFICULTY_COLUMN, SPLITS
from mura_env.logits.format import (
    MANIFEST_FORMAT,
    MANIFEST_VERSION,
    READER_PREFIX,
    LogitsTableError,
    MissingLogitsError,
    logit_columns,
    manifest_path,
    normalize_configs,
    normalize_logits,
    normalize_models,
    normalize_provenance,
    normalize_studies,
    read_manifest,
    reader_column_names,
)
from mura_env.logits.parquet import read_arrays, to_arrow
from mura_env.readers import SimulatedReader, attach_reads, missing_reader_message
from mura_env.version import __version__
from mura_env.weighting.mapping import member_probabilities

__all__ = [
    "MANIFEST_FORMAT", "MANIFEST_VERSION", "LogitsTable", "LogitsTableError",
    "MissingLogitsError", "logit_columns", "manifest_path",
]


def _package_version() -> str:
    """The installed mura-rl version, ``mura_env.__version__``."""

    return __version__


class LogitsTable:
    """Frozen ensemble outputs for every study: the only input of ``MuraWeighting-v0``.

    Attributes:
        studies: DataFrame, one row per study, the columns of
            :data:`~mura_env.constants.STUDY_COLUMNS` (``study_id``, ``patient_id``,
            ``body_part``, ``split`` as strings; ``label`` 0/1 and ``n_images`` as int64),
            then ``difficulty`` (float64 in [0, 1]) when the table has it, then any reader
            columns ``reader_<id>`` (int8 0/1), index ``0..n-1``. Treat it as read-only.
        model_names: tuple of the ``K`` model names, in the order of ``logits``' second axis.
        logits: read-only float32 array ``[n, K, 2]``; index 1 of the last axis is "abnormal".
        model_configs: dict model name -> JSON-able config (may be empty dicts).
        data_fingerprint: identifier of the data set the logits came from (or None).
        created_at: ISO-8601 UTC creation time. package_version: mura-rl version that made it.
        provenance: JSON-able dict saying how the table was made (e.g. commit, profile, seed,
            member metrics, remake command), or None; saved in the manifest.

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
        provenance: Mapping[str, Any] | None = None,
        _validated: bool = False,
    ) -> None:
        where = "LogitsTable"
        if _validated:
            self.studies = studies
            self.model_names = tuple(model_names)
            self.logits = logits
        else:
            self.studies = normalize_studies(studies, where)
            self.model_names = normalize_models(model_names, where)
            self.logits = normalize_logits(logits, len(self.studies), len(self.model_names),
                                           where)
        self.model_configs: dict[str, Any] = normalize_configs(model_configs, self.model_names,
                                                               where)
        self.data_fingerprint = data_fingerprint
        self.created_at = created_at or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        self.package_version = package_version or _package_version()
        self.provenance = normalize_provenance(provenance, where)

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
        provenance: Mapping[str, Any] | None = None,
    ) -> LogitsTable:
        """Build a table from a study DataFrame and a logits array.

        Args:
            studies: one row per study with the columns ``study_id, patient_id, body_part,
                label, split, n_images`` and optionally reader columns ``reader_<id>`` (0/1
                reads; other columns are dropped); row ``i`` goes with ``logits[i]``.
            model_names: the ``K`` model names (unique, non-empty strings).
            logits: float array ``[n_studies, K, 2]`` (cast to float32; finite, or NaN for a
                hidden logit).
            model_configs: optional dict model name -> JSON-able config, saved in the manifest.
            data_fingerprint: optional identifier of the data set (e.g.
                :func:`mura_env.data.data_fingerprint`).
            provenance: optional JSON-able dict saying how the table was made, saved in the
                manifest.

        Returns:
            A validated :class:`LogitsTable` (copies of the inputs).

        Raises:
            LogitsTableError: missing column, missing value, label not in {0, 1}, unknown body
                part or split, duplicate study_id, a reader column not 0/1, wrong logits
                shape, infinite logits, provenance that is not a JSON object.
        """
        return cls(studies, model_names, logits, model_configs=model_configs,
                   data_fingerprint=data_fingerprint, provenance=provenance)

    # ------------------------------------------------------------------ properties
    def __len__(self) -> int:
        return len(self.studies)

    @property
    def n_models(self) -> int:
        """K, the number of models."""
        return len(self.model_names)

    def abnormal_probabilities(self) -> np.ndarray:
        """Each model's abnormality probability ``softmax(logits[i, k])[1]``: float64 ``[n, K]``
        (NaN where a logit is hidden)."""
        with np.errstate(invalid="ignore"):  # hidden (NaN) logits give NaN, silently
            return member_probabilities(self.logits)

    def hidden_rows(self) -> np.ndarray:
        """bool ``[n]``: study ``i`` has at least one hidden (NaN) logit."""
        return np.isnan(self.logits).any(axis=(1, 2))

    @property
    def reader_ids(self) -> tuple[str, ...]:
        """The ids of the table's readers (its ``reader_<id>`` columns), in column order."""
        return tuple(c[len(READER_PREFIX):] for c in reader_column_names(self.studies.columns))

    def reads(self, reader_id: str) -> np.ndarray:
        """Reader ``reader_id``'s read of every study: int8 ``[n]`` (1 = abnormal).

        Raises:
            KeyError: the table has no such reader (the message says how to add one).
        """
        if reader_id not in self.reader_ids:

            raise KeyError(missing_reader_message(self.reader_ids, reader_id))
        return self.studies[READER_PREFIX + reader_id].to_numpy(dtype=np.int8)

    def with_reads(self, reads: pd.DataFrame) -> LogitsTable:
        """A copy with one reader column per reader of ``reads`` (columns ``study_id``,
        ``reader_id``, ``read``; e.g. :func:`mura_env.readers.load_reader_csv`), which must
        read every study of the table (:func:`mura_env.readers.attach_reads`)."""

        return LogitsTable(attach_reads(self.studies, reads), self.model_names, self.logits,
                           model_configs=self.model_configs,
                           data_fingerprint=self.data_fingerprint, created_at=self.created_at,
                           package_version=self.package_version, provenance=self.provenance)

    @property
    def difficulty(self) -> np.ndarray | None:
        """float64 ``[n]``: how hard each study is to read (share of studies of its body part
        and label that are easier; :mod:`mura_env.synthetic.difficulty`), or None when the
        table has no ``difficulty`` column (e.g. real MURA)."""
        if DIFFICULTY_COLUMN not in self.studies.columns:
            return None
        return self.studies[DIFFICULTY_COLUMN].to_numpy(dtype=np.float64)

    def with_difficulty(self, difficulty: pd.DataFrame) -> LogitsTable:
        """A copy whose ``difficulty`` column comes from ``difficulty`` (columns ``study_id``
        and ``difficulty``, e.g. :func:`mura_env.synthetic.difficulty.plan_difficulty`), which
        must hold every study of the table; an existing column is replaced.

        Raises:
            ValueError: a study of the table has no difficulty (the message names some).
        """
        by_study = difficulty.drop_duplicates("study_id").set_index("study_id")[DIFFICULTY_COLUMN]
        values = self.studies["study_id"].map(by_study)
        if values.isna().any():
            absent = self.studies.loc[values.isna(), "study_id"].tolist()
            raise ValueError(f"no difficulty for {len(absent)} study(ies) of the table, e.g. "
                             f"{absent[:3]}; was it made from another data set?")
        studies = self.studies.copy()
        studies[DIFFICULTY_COLUMN] = values.to_numpy(dtype=np.float64)
        return LogitsTable(studies, self.model_names, self.logits,
                           model_configs=self.model_configs,
                           data_fingerprint=self.data_fingerprint, created_at=self.created_at,
                           package_version=self.package_version, provenance=self.provenance)

    def with_simulated_reader(self, reader: Any = None) -> LogitsTable:
        """A copy with the reads of a :class:`mura_env.readers.SimulatedReader` (default:
        ``SimulatedReader.default()``, radiologist 3, column ``reader_radiologist_3``) as a
        reader column; its errors share the table's ``difficulty`` when it has one."""

        reader = SimulatedReader.default() if reader is None else reader
        return self.with_reads(pd.DataFrame({"study_id": self.studies["study_id"],
                                             "reader_id": reader.reader_id,
                                             "read": reader.reads(self.studies)}))

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
        keep = self._row_mask(split, body_parts)
        model_idx = self._model_indices(models)
        rows = np.flatnonzero(keep)
        logits = np.ascontiguousarray(self.logits[rows][:, model_idx])
        logits.flags.writeable = False
        names = tuple(self.model_names[i] for i in model_idx)
        return LogitsTable(
            self.studies.iloc[rows].reset_index(drop=True), names, logits,
            model_configs={model: self.model_configs[model] for model in names},
            data_fingerprint=self.data_fingerprint, created_at=self.created_at,
            package_version=self.package_version, provenance=self.provenance, _validated=True,
        )

    def _row_mask(self, split: str | Sequence[str] | None,
                  body_parts: str | Sequence[str] | None) -> np.ndarray:
        """Boolean ``[n]``: the studies of ``split`` and ``body_parts`` (None keeps all).

        Raises:
            ValueError: unknown split or body part.
        """
        keep = np.ones(len(self), dtype=bool)
        for column, wanted, known in (("split", split, SPLITS),
                                      ("body_part", body_parts, BODY_PARTS)):
            if wanted is None:
                continue
            values = [wanted] if isinstance(wanted, str) else list(wanted)
            unknown = [value for value in values if value not in known]
            if unknown:
                raise ValueError(
                    f"Unknown {column} value(s) {unknown}; expected some of {list(known)}."
                )
            keep &= self.studies[column].isin(values).to_numpy()
        return keep

    def _model_indices(self, models: str | Sequence[str] | None) -> list[int]:
        """Positions in ``model_names`` of ``models``, in the order given (None: all).

        Raises:
            ValueError: an unknown or repeated name, or an empty list.
        """
        if models is None:
            return list(range(self.n_models))
        names = [models] if isinstance(models, str) else list(models)
        unknown = [name for name in names if name not in self.model_names]
        if unknown or not names or len(set(names)) != len(names):
            raise ValueError(
                f"models must be a non-empty list of distinct names from the table; got "
                f"{names}, unknown {unknown}; the table has {list(self.model_names)}."
            )
        return [self.model_names.index(name) for name in names]

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
            "provenance": self.provenance,
            "readers": list(self.reader_ids),
            DIFFICULTY_COLUMN: self.difficulty is not None,
            "split_counts": {split: int(count) for split, count in
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
        table = to_arrow(self.studies, self.model_names, self.logits)
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
                infinite logits, label not in {0, 1}, unknown body part or split, provenance
                that is not a JSON object).
        """
        path = Path(path)
        manifest = read_manifest(path)
        where = f"Logits table {path}"
        model_names = normalize_models(manifest["model_names"], where)
        studies, logits = read_arrays(path, manifest, model_names)
        configs = manifest["model_configs"] or {}
        if not isinstance(configs, dict):
            raise LogitsTableError(f"{where}: model_configs in the manifest must be an object.")
        return cls(studies, model_names, logits, model_configs=configs,
                   data_fingerprint=manifest["data_fingerprint"],
                   created_at=manifest["created_at"],
                   package_version=manifest["package_version"],
                   provenance=manifest.get("provenance"), _validated=True)
