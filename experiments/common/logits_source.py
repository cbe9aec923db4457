"""Which logits table an agent experiment uses when ``--logits`` is not given."""

from __future__ import annotations

import os
from pathlib import Path

from backbones.runs import PRETRAIN_RUNS, newest_pretrain_logits
from mura_env.logits import LogitsTable
from mura_env.logits.reference import reference_table_path, resolve_logits


def resolve_table(logits: str | os.PathLike[str] | None,
                  root: str | os.PathLike[str] = PRETRAIN_RUNS) -> tuple[LogitsTable, Path]:
    """Load ``--logits``; when None, the newest pretraining run's table, else the shipped
    reference table 0. Returns ``(table, path it came from)``.

    Raises:
        MissingLogitsError / LogitsTableError: from
        :func:`mura_env.logits.reference.resolve_logits`.
    """
    path = Path(logits) if logits is not None else (newest_pretrain_logits(root)
                                                    or reference_table_path(0))
    return resolve_logits(path), path
