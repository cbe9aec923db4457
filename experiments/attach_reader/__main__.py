"""Add reader columns to logits tables: the three simulated radiologists, or reads from a CSV.

    python -m experiments.attach_reader --replace           # every shipped reference table
    python -m experiments.attach_reader --table runs/x/logits.parquet --csv reads.csv

Each table is rewritten in place (a temporary file, then a rename) with one ``reader_<id>``
column per reader; its provenance records which readers were added and how. The simulated
radiologists (``radiologist_1``, ``radiologist_2``, ``radiologist_3``: the MURA paper's
per-part kappas, :mod:`mura_env.readers`) share the studies' difficulty with weight
``--sharing``; a table of synthetic studies gets its ``difficulty`` column from the
generator's plan for the data seed its provenance records (no image is drawn). A read depends
only on (seed, reader, study id, difficulty), so running this again on a remade table gives
the same reads. ``MuraDeferral-v0`` hands deferred studies to one of them (default
radiologist 3). The columns and their provenance: :mod:`experiments.common.reader_columns`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from experiments.common.reader_columns import (
    with_csv_reads,
    with_simulated_readers,
    without_readers,
)
from mura_env.common.config_cli import parse_config
from mura_env.logits import LogitsTable
from mura_env.logits.reference import reference_indices, reference_table_path
from mura_env.readers import DEFAULT_SHARING, READER_PROFILES


@dataclass
class AttachReaderConfig:
    """Add reader columns to logits tables (default: every shipped reference table)."""

    table: tuple[Path, ...] | None = field(default=None, metadata={
        "help": "logits tables to change (default: the shipped reference tables)"})
    csv: Path | None = field(default=None, metadata={
        "help": "CSV of reads (columns study,reader,read); default: the simulated radiologists"})
    profiles: tuple[str, ...] = field(default=tuple(READER_PROFILES), metadata={
        "help": "simulated radiologists to add (mura_env.readers.READER_PROFILES)"})
    sharing: float = field(default=DEFAULT_SHARING, metadata={
        "help": "how much the simulated readers' errors follow the studies' difficulty, "
                "in [0, 1) (0: independent)"})
    seed: int = field(default=0, metadata={"help": "seed of the simulated readers"})
    replace: bool = field(default=False, metadata={
        "help": "replace reader columns of the same id already in the table"})
    drop: tuple[str, ...] = field(default=(), metadata={
        "help": "reader ids whose columns to remove first (e.g. an older reader)"})


def main(argv: list[str] | None = None) -> int:
    """Command line: add the reader to each table; prints one line per table. Returns 2 (and
    changes no further table) when a table or the CSV cannot be used."""
    config = parse_config(AttachReaderConfig, argv, __doc__)
    paths = list(config.table) if config.table else [reference_table_path(i)
                                                       for i in reference_indices()]
    for path in paths:
        try:
            table = without_readers(LogitsTable.load(path), config.drop)
            if config.csv is not None:
                table = with_csv_reads(table, config.csv, config.replace)
            else:
                table = with_simulated_readers(table, config.profiles, config.seed,
                                               config.sharing, config.replace)
        except (KeyError, ValueError, FileNotFoundError) as e:
            hint = " (pass --replace to replace it)" if "already" in str(e) else ""
            print(f"error: {path}: {e}{hint}", file=sys.stderr)
            return 2
        table.save(path)
        print(f"{path}: readers {list(table.reader_ids)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
