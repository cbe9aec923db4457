"""Reader columns of a logits table: the default simulated reader's, or reads from a CSV, each
with the provenance the table's manifest records of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mura_env.logits import LogitsTable
from mura_env.readers import SimulatedReader, load_reader_csv


def simulated_reader_provenance(reader: SimulatedReader) -> dict[str, Any]:
    """What the manifest records of a simulated reader: id, seed, rates per body part."""
    return {"reader_id": reader.reader_id, "kind": "simulated", "seed": reader.seed,
            "sensitivity": {p: round(float(v), 6) for p, v in reader.sensitivity.items()},
            "specificity": {p: round(float(v), 6) for p, v in reader.specificity.items()},
            "defaults": "mura_env.readers.READER_DEFAULTS (a stand-in kappa of 0.778 per part)"}


def with_simulated_reader(table: LogitsTable, seed: int = 0,
                          replace: bool = False) -> LogitsTable:
    """``table`` with the default simulated reader (``reader_simulated``) and its provenance;
    ``replace`` drops a column of that reader already there (else adding it again raises)."""
    reader = SimulatedReader.default(seed=seed)
    table = _without(table, [reader.reader_id]) if replace else table
    out = table.with_simulated_reader(reader)
    out.provenance = {**(table.provenance or {}),
                      "reader": simulated_reader_provenance(reader)}
    return out


def with_csv_reads(table: LogitsTable, csv: Path, replace: bool = False) -> LogitsTable:
    """``table`` with the reads of ``csv`` (:func:`mura_env.readers.load_reader_csv`) and
    their provenance; ``replace`` drops columns of the CSV's readers already there."""
    reads = load_reader_csv(csv)
    if replace:
        table = _without(table, list(reads["reader_id"].unique()))
    out = table.with_reads(reads)
    out.provenance = {**(table.provenance or {}),
                      "reader": {"kind": "csv", "file": str(csv),
                                 "reader_ids": sorted(reads["reader_id"].unique())}}
    return out


def _without(table: LogitsTable, reader_ids: list[str]) -> LogitsTable:
    """``table`` without the reader columns of ``reader_ids``."""
    drop = [f"reader_{r}" for r in reader_ids if r in table.reader_ids]
    return LogitsTable(table.studies.drop(columns=drop), table.model_names, table.logits,
                       model_configs=table.model_configs,
                       data_fingerprint=table.data_fingerprint, created_at=table.created_at,
                       package_version=table.package_version, provenance=table.provenance)
