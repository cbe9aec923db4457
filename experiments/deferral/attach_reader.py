"""Add a reader column to logits tables: the default simulated reader, or reads from a CSV.

    python -m experiments.attach_reader                      # every shipped reference table
    python -m experiments.attach_reader --table runs/x/logits.parquet --csv reads.csv

Each table is rewritten in place (a temporary file, then a rename) with one ``reader_<id>``
column per reader; its provenance records which reader was added and how. The simulated
reader's reads depend only on (its seed, the study id), so running this again on a remade
table gives the same reads. ``MuraDeferral-v0`` hands deferred studies to this reader. The
columns and their provenance: :mod:`experiments.deferral.reader_columns`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from experiments.deferral.reader_columns import with_csv_reads, with_simulated_reader
from mura_env.common.config_cli import parse_config
from mura_env.logits import LogitsTable
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
