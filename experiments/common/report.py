"""Markdown and PNG formatting shared by the experiments' reports (``benchmark.md``,
``defer.md``): numbers, ``value [low, high]`` cells, tables, method labels and saved figures.
Importing it selects matplotlib's Agg backend (files only, no display), before any figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def fmt(value: Any, digits: int = 3, scale: float = 1.0, sign: str = "") -> str:
    """``scale * value`` with ``digits`` decimals (``sign="+"``: always signed); ``"n/a"`` for
    None, NaN or inf."""
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{scale * value:{sign}.{digits}f}"


def ci(row: Mapping[str, Any], key: str, digits: int = 3, scale: float = 1.0,
       sign: str = "") -> str:
    """``value [low, high]`` of figure ``key`` of ``row`` (its columns ``key``,
    ``key_ci_low``, ``key_ci_high``), each formatted by :func:`fmt`."""
    low, value, high = (fmt(row[k], digits, scale, sign)
                        for k in (f"{key}_ci_low", key, f"{key}_ci_high"))
    return f"{value} [{low}, {high}]"


def label(row: Mapping[str, Any]) -> str:
    """A method's name as the tables show it (``row``: its ``method`` and ``kind``): upper
    references say so."""
    return f"{row['method']} (upper reference)" if row["kind"] == "reference" else row["method"]


def study_set_groups(study_sets: Sequence[int]) -> str:
    """The tables of each study set, ``"t0, t2; t1, t3"`` (sets in first-seen order), from
    each table's study set number (``study_sets[t]``)."""
    groups: dict[int, list[str]] = {}
    for t, g in enumerate(study_sets):
        groups.setdefault(g, []).append(f"t{t}")
    return "; ".join(", ".join(ts) for ts in groups.values())


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A markdown table, one string per line: the header, the rule, one line per row."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows)]


def save_figure(fig: plt.Figure, path: Path) -> Path:
    """Write ``fig`` to ``path`` as PNG (110 dpi, tight) and close it; returns ``path``."""
    fig.savefig(path, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
