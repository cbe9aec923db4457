"""The logits table: frozen ensemble outputs for every MURA study, the only input of the env.

:class:`LogitsTable` (:mod:`mura_env.logits.table`) holds the studies, the members' logits and
the optional reader columns; :mod:`mura_env.logits.format` checks a table's parts and its
manifest, :mod:`mura_env.logits.parquet` reads and writes the Parquet file. Import the public
names from here.
"""

from mura_env.logits.format import (
    MANIFEST_FORMAT,
    MANIFEST_VERSION,
    LogitsTableError,
    MissingLogitsError,
    logit_columns,
    manifest_path,
)
from mura_env.logits.table import LogitsTable

__all__ = ["MANIFEST_FORMAT", "MANIFEST_VERSION", "LogitsTable", "LogitsTableError",
           "MissingLogitsError", "logit_columns", "manifest_path"]
