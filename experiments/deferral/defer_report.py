"""The deferral experiment's report: ``defer.md`` and its PNG plots, from the per-cost figures
of :func:`mura_env.statistics.summarise` (one row per method and cost) and the per-table ones
of :func:`mura_env.statistics.summarise_tables`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from experiments.common.report import (
    ci,
    fmt,
    label,
    markdown_table,
    save_figure,
    study_set_groups,
)
from experiments.weighting.benchmark_report import per_table_lines, table_ci, table_legend
from mura_env.constants import BODY_PARTS
from mura_env.statistics import coverage_note

PLOTS = {"coverage_accuracy.png": "team accuracy against deferral rate",
         "coverage_kappa.png": "team kappa against deferral rate"}
#: Methods drawn as single points (their decision does not depend on the cost).
ALONE_LABELS = {"always_defer": "reader alone", "never_defer": "ensemble alone"}


def is_twin(method: str) -> bool:
    """A matched-rate threshold (``global_threshold@<agent>``), shown in its own table."""
    return "@" in method


def coverage_area(frame: pd.DataFrame, method: str) -> float:
    """Area under a method's accuracy-coverage curve (coverage = 1 - deferral rate): the
    trapezoid over its cost points (mean deferral rate, mean accuracy), anchored at coverage 0
    by the reader alone and at coverage 1 by the ensemble alone (points sharing a coverage are
    averaged); in [0, 1]."""
    mean = frame.groupby("method")[["deferral_rate", "accuracy"]].mean()
    rows = frame[frame["method"] == method]
    points = pd.DataFrame({"coverage": [0.0, 1.0, *(1 - rows["deferral_rate"])],
                           "accuracy": [mean.loc["always_defer", "accuracy"],
                                        mean.loc["never_defer", "accuracy"], *rows["accuracy"]]})
    curve = points.groupby("coverage")["accuracy"].mean()  # one accuracy per coverage
    x, y = curve.index.to_numpy(), curve.to_numpy()
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def team_beats_both(frame: pd.DataFrame) -> list[str]:
    """Operating points (method, cost) of deployable methods whose accuracy is above both the
    reader alone and the ensemble alone, each with a paired 95% CI above zero."""
    rows = frame[(frame["kind"] != "reference") & ~frame["method"].map(is_twin)
                 & ~frame["method"].isin(list(ALONE_LABELS))]
    good = rows[(rows["accuracy_vs_always_defer_ci_low"] > 0)
                & (rows["accuracy_vs_never_defer_ci_low"] > 0)]
    return [f"{r.method} at cost {r.cost:g} (defers {100 * r.deferral_rate:.1f}%: "
            f"{ci(r._asdict(), 'accuracy_vs_always_defer', 1, 100, '+')} points over the "
            f"reader, {ci(r._asdict(), 'accuracy_vs_never_defer', 1, 100, '+')} over the "
            "ensemble)" for r in good.itertuples()]


def _coverage_table(frame: pd.DataFrame) -> list[str]:
    rows = []
    for _, r in frame[~frame["method"].map(is_twin)].iterrows():
        rows.append([f"{r['cost']:g}", label(r), fmt(r["deferral_rate"], 1, 100),
                     ci(r, "accuracy"), table_ci(r, "accuracy"), ci(r, "kappa"),
                     ci(r, "accuracy_vs_always_defer", 1, 100, "+"),
                     table_ci(r, "accuracy_vs_always_defer", 1, 100, "+"),
                     ci(r, "accuracy_vs_never_defer", 1, 100, "+"),
                     table_ci(r, "accuracy_vs_never_defer", 1, 100, "+")])
    return markdown_table(["cost", "method", "deferred %", "accuracy [95% CI]",
                           "accuracy, table-level 95% CI", "kappa [95% CI]",
                           "vs reader alone (points) [95% CI]", "table-level 95% CI",
                           "vs ensemble alone (points) [95% CI]", "table-level 95% CI"], rows)


def _matched_table(frame: pd.DataFrame, agents: list[str]) -> list[str]:
    rows = []
    for agent in agents:
        twin = f"global_threshold@{agent}"
        for _, r in frame[frame["method"] == agent].iterrows():
            t = frame[(frame["method"] == twin) & (frame["cost"] == r["cost"])].iloc[0]
            rows.append([agent, f"{r['cost']:g}", fmt(r["deferral_rate"], 1, 100),
                         fmt(t["deferral_rate"], 1, 100),
                         ci(r, f"accuracy_vs_{twin}", 1, 100, "+"),
                         table_ci(r, f"accuracy_vs_{twin}", 1, 100, "+"),
                         ci(r, f"kappa_vs_{twin}", 3, 1, "+"),
                         ci(r, f"poi_vs_{twin}", 2)])
    return markdown_table(["agent", "cost", "agent deferred %", "threshold deferred %",
                           "accuracy difference (points) [95% CI]", "table-level 95% CI",
                           "kappa difference", "P(agent better)"], rows)


def _part_table(frame: pd.DataFrame) -> list[str]:
    rows = [[f"{r['cost']:g}", label(r), *(fmt(r[f"deferral_rate_{p}"], 0, 100)
                                          for p in BODY_PARTS)]
            for _, r in frame[~frame["method"].map(is_twin)].iterrows()
            if r["method"] not in ALONE_LABELS]
    return markdown_table(["cost", "method", *BODY_PARTS], rows)


def _per_table_section(per_table: pd.DataFrame, agents: list[str]) -> list[str]:
    """``## Per table``: the team accuracy of every method at every cost per table, and each
    RL agent's accuracy difference from its matched-rate threshold per table."""
    shown = per_table[~per_table["method"].map(is_twin)]
    lines = ["## Per table", "",
             table_legend(per_table) + " Mean over the table's seeds; differences in points "
             "with a 95% interval from the same bootstrap draws restricted to that table (its "
             "seeds and its valid studies). Every value is in `per_table.csv`.", "",
             "Team accuracy:", "",
             *per_table_lines(shown, lambda r: fmt(r["accuracy"]), ("cost", "method"),
                              lambda r: [f"{r['cost']:g}", label(r)])]
    mine = per_table[per_table["method"].isin(agents)]
    if len(mine):
        lines += ["", "RL agent vs its matched-rate threshold, accuracy points [95% CI]:", "",
                  *per_table_lines(
                      mine, lambda r: ci(r, f"accuracy_vs_global_threshold@{r['method']}",
                                         1, 100, "+"),
                      ("method", "cost"), lambda r: [r["method"], f"{r['cost']:g}"])]
    return lines + [""]


def _valid_sentence(info: dict[str, Any]) -> str:
    """The valid size and which tables share their valid studies."""
    sets = info.get("study_sets") or [0] * len(info["tables"])
    text = f"valid {info['n_valid']:,} studies per table (final scores only"
    if len(set(sets)) > 1:
        text += (f"; {len(set(sets))} study sets, one per data draw, shared by the tables "
                 "of a set: " + study_set_groups(sets))
    return text + ")"


def reader_sentence(info: dict[str, Any]) -> str:
    """Who the reader is: the simulated one (and its stand-in defaults) or the reads given."""
    source = info.get("reader_provenance") or {}
    if source.get("kind") == "simulated":
        return (f"The reader is `reader_{info['reader']}`, the tables' simulated reader "
                "(mura_env.readers; a stand-in kappa of 0.778 per body part, not the MURA "
                "paper's per-part radiologists).")
    return f"The reader is the tables' column `reader_{info['reader']}`."


def to_markdown(frame: pd.DataFrame, info: dict[str, Any],
                per_table: pd.DataFrame | None = None) -> str:
    """The report: sizes, the coverage-accuracy table, where the team beats both alone, the
    agents against thresholding at equal deferral rate, areas, per-part deferral rates and
    (with ``per_table``, ``per_table.csv``'s rows) the per-table figures."""
    agents = [a for a in info["agents"] if a in set(frame["method"])]
    methods = [m for m in dict.fromkeys(frame["method"]) if not is_twin(m)
               and m not in ALONE_LABELS]
    both = team_beats_both(frame)
    lines = [
        "# When to hand a study to the reader: deferral on the reference tables", "",
        f"{len(info['tables'])} tables x {info['seeds']} seeds per RL agent; tune "
        f"{info['n_tune']:,} studies (fitting and training), {_valid_sentence(info)}. "
        f"{reader_sentence(info)} A study scores 1 when the answer that counts is right; "
        "deferring costs `cost`. Synthetic data: nothing here is clinical.", "",
        "**Intervals.** "
        + coverage_note(len(info["tables"]),
                        len(set(info.get("study_sets") or [0]))),
        "" if not info.get("quick") else "\n**--quick: a smoke test, not a result.**\n",
        "## Coverage and accuracy", "", *_coverage_table(frame), "",
        "## Does the team beat both the reader alone and the ensemble alone?", "",
        ("Yes, at: " + "; ".join(both) + ".") if both else
        "No operating point beats both with both intervals above zero.", "",
        "## RL agents against confidence thresholding at equal deferral rate", "",
        "Each agent run is paired with the global threshold (stacking ensemble) fitted on "
        "tune to defer the same share of tune studies as the agent.", "",
        *_matched_table(frame, agents), "",
        "## Area under the accuracy-coverage curve", "",
        *markdown_table(["method", "area"],
                        [[m, fmt(coverage_area(frame, m))] for m in methods]),
        "", "Trapezoids over each method's cost points (mean deferral rate, mean accuracy), "
        "anchored by the reader alone at coverage 0 and the ensemble alone at coverage 1.", "",
        "## Deferral rate per body part (%)", "", *_part_table(frame), "",
        *(_per_table_section(per_table, agents) if per_table is not None and len(per_table)
          else []),
        "## Plots", "", *(f"![{text}]({name})" for name, text in PLOTS.items()), ""]
    return "\n".join(lines)


def plot_coverage(frame: pd.DataFrame, key: str, path: Path) -> Path:
    """``key`` (accuracy or kappa) against deferral rate: a line with 95% CI bars per method
    over the costs, the reader alone and the ensemble alone as single points."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for method in dict.fromkeys(frame["method"]):
        if is_twin(method):
            continue
        rows = frame[frame["method"] == method].sort_values("deferral_rate")
        err = np.abs(np.vstack([rows[key] - rows[f"{key}_ci_low"],
                                rows[f"{key}_ci_high"] - rows[key]]))
        if method in ALONE_LABELS:
            ax.errorbar(rows[key].iloc[:1] * 0 + rows["deferral_rate"].iloc[0],
                        rows[key].iloc[:1], yerr=err[:, :1], fmt="s", ms=7, capsize=3,
                        label=ALONE_LABELS[method])
            continue
        ax.errorbar(rows["deferral_rate"], rows[key], yerr=err, fmt="o", ms=3, capsize=2,
                    lw=1, label=method, ls="--" if method.startswith("oracle") else "-")
    ax.set_xlabel("deferral rate (valid)")
    ax.set_ylabel(f"team {key} (valid)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(f"Team {key} against deferral rate (one point per cost; 95% CIs)", fontsize=9)
    return save_figure(fig, path)


def write_plots(frame: pd.DataFrame, out: Path) -> None:
    """Write the :data:`PLOTS` into ``out``."""
    plot_coverage(frame, "accuracy", out / "coverage_accuracy.png")
    plot_coverage(frame, "kappa", out / "coverage_kappa.png")
