"""Add a reader column to logits tables: the default simulated reader, or reads from a CSV.

    python -m experiments.attach_reader                      # every shipped reference table
    python -m experiments.attach_reader --table runs/x/logits.parquet --csv reads.csv

Each table is rewritten in place (a temporary file, then a rename) with one ``reader_<id>``
column per reader; its provenance records which reader was added and how. The simulated
reader's reads depend only on (its seed, the study id), so running this again on a remade
table gives the same reads. ``MuraDeferral-v0`` hands deferred studies to this reader.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mura_env.common.config_cli import parse_config
from mura_env.logits import LogitsTable
from mura_env.readers import SimulatedReader, load_reader_csv
from mura_env.reference import reference_indices, reference_table_path


@dataclass
class AttachReaderConfig:
    """Add a reader column to logits tables (default: every shipped reference table)."""

    table: tuple[Path, ...] | None = field(default=None, metadata={
        "help": "logits tables to change (default: the shipped reference tables)"})
    csv: Path | None = field(default=None, metadata={
        "help": "CSV of reads (columns study,reader,read); default: the simulated reader"})
    seed: int = field(default=0, metadata={"help": "seed of the simulated reader"})
    replace: bool = field(default=False, metadata={
        "help": "replace reader columns of the same id already in the table"})


def simulated_reader_provenance(reader: SimulatedReader) -> dict[str, Any]:
    """What the manifest records of a simulated reader: id, seed, rates per body part."""
    return {"reader_id": reader.reader_id, "kind": "simulated", "seed": reader.seed,
            "sensitivity": {p: round(float(v), 6) for p, v in reader.sensitivity.items()},
            "specificity": {p: round(float(v), 6) for p, v in reader.specificity.items()},
            "defaults": "mura_env.readers.READER_DEFAULTS (a stand-in kappa of 0.778 per part)"}


def with_simulated_reader(table: LogitsTable, seed: int = 0,
                          replace: bool = False) -> LogitsTable:
    """``table`` with the default simulated reader (``reader_simulated``) and its provenance."""
    reader = SimulatedReader.default(seed=seed)
    table = _without(table, [reader.reader_id]) if replace else table
    out = table.with_simulated_reader(reader)
    out.provenance = {**(table.provenance or {}),
                      "reader": simulated_reader_provenance(reader)}
    return out


def with_csv_reads(table: LogitsTable, csv: Path, replace: bool = False) -> LogitsTable:
    """``table`` with the reads of ``csv`` (:func:`mura_env.readers.load_reader_csv`)."""
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


def main(argv: list[str] | None = None) -> int:
    """Command line: add the reader to each table; prints one line per table. Returns 2 (and
    changes no further table) when a table or the CSV cannot be used."""
    config = parse_config(AttachReaderConfig, argv, __doc__)
    paths = list(config.table) if config.table else [reference_table_path(i)
                                                       for i in reference_indices()]
    for path in paths:
        try:
            table = LogitsTable.load(path)
            if config.csv is not None:
                table = with_csv_reads(table, config.csv, config.replace)
            else:
                table = with_simulated_reader(table, config.seed, config.replace)
        except (ValueError, FileNotFoundError) as e:
            hint = " (pass --replace to replace it)" if "already" in str(e) else ""
            print(f"error: {path}: {e}{hint}", file=sys.stderr)
            return 2
        table.save(path)
        print(f"{path}: readers {list(table.reader_ids)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
