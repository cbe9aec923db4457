"""The worklist experiment's report: ``worklist.md`` and its plot, from the per-cell figures of
:func:`mura_env.evaluation.statistics.summarise` (one row per scenario, capacity and method) and the
readers' use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from experiments.common.benchmark.report import seed_ci
from experiments.common.report import ci, fmt, markdown_table, save_figure
from mura_env.constants import BODY_PARTS
from mura_env.evaluation.statistics import coverage_note

#: The method the RL agents are judged against.
PACED = "budget_paced"


def _label(row: pd.Series) -> str:
    return f"{row['method']} (reference)" if row["kind"] == "reference" else row["method"]


def headline_table(frame: pd.DataFrame) -> list[str]:
    """Every method's system accuracy and kappa per scenario and capacity, with its
    difference from the budget-paced rule (joint-bootstrap and seed-level intervals)."""
    rows = []
    key = f"accuracy_vs_{PACED}"
    for _, r in frame.iterrows():
        rows.append([r["scenario"], f"{r['capacity']:g}", _label(r), ci(r, "accuracy"),
                     seed_ci(r, "accuracy"), ci(r, "kappa"),
                     ci(r, key, 1, 100, "+") if key in r else "\u2014",
                     seed_ci(r, key, 1, 100, "+") if key in r else "\u2014"])
    return markdown_table(["scenario", "capacity", "method", "accuracy [95% CI]",
                           "accuracy, seed-level 95% CI", "kappa [95% CI]",
                           "vs budget-paced (points) [95% CI]", "seed-level 95% CI"], rows)


def verdict(frame: pd.DataFrame, agents: list[str]) -> str:
    """Whether any RL agent beats the budget-paced rule (paired 95% interval above zero),
    and where."""
    rows = frame[frame["method"].isin(agents)]
    key = f"accuracy_vs_{PACED}"
    if not len(rows) or key not in rows:
        return "No RL agent was run."
    better = rows[rows[f"{key}_ci_low"] > 0]
    worse = rows[rows[f"{key}_ci_high"] < 0]
    cells = lambda x: "; ".join(f"{r.method} on {r.scenario} at capacity {r.capacity:g} "  # noqa: E731
                                f"({100 * getattr(r, key):+.1f} points)"
                                for r in x.itertuples())
    text = ("Yes: " + cells(better) + "." if len(better) else
            "No: no RL agent beats the budget-paced rule with its interval above zero.")
    if len(worse):
        text += " Below it (interval under zero): " + cells(worse) + "."
    return text


def readers_table(reads: pd.DataFrame, methods: list[str]) -> list[str]:
    """Reads per shift and capacity used per reader, for ``methods``, every cell."""
    rows = []
    for _, r in reads[reads["method"].isin(methods)].iterrows():
        rows.append([r["scenario"], f"{r['capacity']:g}", r["method"], r["reader"],
                     f"{r['reads_per_shift']:.1f}", fmt(r["capacity_used"], 0, 100),
                     *(fmt(r[f"share_{p}"], 0, 100) for p in BODY_PARTS)])
    return markdown_table(["scenario", "capacity", "method", "reader", "reads per shift",
                           "capacity used %", *(f"{p} %" for p in BODY_PARTS)], rows)


def to_markdown(frame: pd.DataFrame, reads: pd.DataFrame, info: dict[str, Any]) -> str:
    """The report: setup, the verdict, every method per cell, and the readers' use."""
    agents = [a for a in info["agents"] if a in set(frame["method"])]
    shown = [PACED, "first_come_first_served", "myopic_threshold", *agents]
    lines = [
        "# A reading shift with radiologists of limited capacity", "",
        f"{len(info['tables'])} tables x {info['seeds']} seeds per RL agent; shifts of "
        f"{info['shift_size']} studies, {info['n_shifts']} valid shifts per scenario (the same "
        f"for every method); readers {', '.join(info['readers'])} (simulated radiologists with "
        "the MURA paper's per-part kappas), each with the capacity shown (reads per shift as a "
        f"share of the shift); read cost {info['read_cost']:g}. Classical methods are fitted "
        "on tune; RL agents train on tune shifts of random body-part mixes and never see the "
        f"scenario's name. Budgets: {info['budgets']}. Synthetic data: nothing here is "
        "clinical.", "",
        "**What bounds what.** `dp` is the exact optimal online policy for shifts whose "
        "studies are drawn independently from tune's estimated gains: no online method does "
        "better on such shifts in expectation (the scenarios' mixes differ from tune's, so on "
        "them it is a strong rule, not a bound). `hindsight` sees the whole shift's estimated "
        "gains before deciding (offline) and bounds every method deciding on estimated gains, "
        "`dp` included, shift by shift; `oracle` decides on the true gains and bounds "
        "everything.", "",
        "**Intervals.** A shift's positions are studies of the table's valid split, and "
        "tables of one data draw answer the same shifts: the bootstrap resamples the distinct "
        "studies of each draw. "
        + coverage_note(len(info["tables"]),
                        len(set(info.get("backbone_seeds") or range(len(info["tables"])))),
                        len(set(info.get("study_sets") or [0]))),
        "" if not info.get("quick") else "\n**--quick: a smoke test, not a result.**\n",
        "## Does any RL agent beat the budget-paced rule?", "", verdict(frame, agents), "",
        "## Every method", "", *headline_table(frame), "",
        "## The readers' use", "",
        "Reads per shift, the share of capacity used and, per body part, the share of that "
        "part's studies each reader answered.", "", *readers_table(reads, shown), "",
        "## Plot", "", "![system accuracy per method](worklist_accuracy.png)", ""]
    return "\n".join(lines)


def write_plots(frame: pd.DataFrame, out: Path) -> Path:
    """``worklist_accuracy.png``: system accuracy with 95% CIs per method, one panel per
    (scenario, capacity)."""
    cells = list(dict.fromkeys(zip(frame["scenario"], frame["capacity"], strict=True)))
    fig, axes = plt.subplots(1, len(cells), figsize=(3.2 * len(cells), 3.8), sharey=True,
                             squeeze=False)
    for ax, (scenario, capacity) in zip(axes[0], cells, strict=True):
        rows = frame[(frame["scenario"] == scenario) & (frame["capacity"] == capacity)]
        y = np.arange(len(rows))
        err = np.abs(np.vstack([rows["accuracy"] - rows["accuracy_ci_low"],
                                rows["accuracy_ci_high"] - rows["accuracy"]]))
        ax.errorbar(rows["accuracy"], y, xerr=err, fmt="o", ms=4, capsize=3)
        ax.set_yticks(y, rows["method"], fontsize=7)
        ax.set_title(f"{scenario}, capacity {capacity:g}", fontsize=8)
        ax.grid(alpha=0.3)
        ax.set_xlabel("system accuracy (valid)", fontsize=8)
    fig.suptitle("Worklist: system accuracy per method (95% CIs; synthetic data)", fontsize=9)
    return save_figure(fig, out / "worklist_accuracy.png")
