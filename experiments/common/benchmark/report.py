"""The benchmark's report: ``benchmark.md`` and its PNG plots, from the figures of
:func:`mura_env.evaluation.statistics.summarise` (and
:func:`~mura_env.evaluation.statistics.summarise_tables`'
per-table figures)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
from mura_env.constants import BODY_PARTS

#: The heading of ``benchmark.md`` on the reference tables.
TITLE = "Benchmark: weighting agents vs. baselines over the reference tables"
KIND_COLOURS = {"agent": "tab:blue", "baseline": "tab:orange", "reference": "tab:gray"}
PLOTS = {"accuracy.png": "accuracy and kappa per method",
         "kappa_per_part.png": "kappa per body part",
         "improvement.png": "probability of improvement over uniform and stacking",
         "tune_curves.png": "agents' tune accuracy during training (tune only)"}


def excluding_zero(frame: pd.DataFrame, key: str) -> tuple[list[str], list[str]]:
    """The non-reference methods whose interval of ``key`` lies above zero, and below zero."""
    rows = frame[frame["kind"] != "reference"]
    above = rows.loc[rows[f"{key}_ci_low"] > 0, "method"].tolist()
    below = rows.loc[rows[f"{key}_ci_high"] < 0, "method"].tolist()
    return above, below


#: What a seed-level interval cell shows when it is not defined (one backbone seed).
UNDEFINED = "\u2014"


def seed_ci(row: Mapping[str, Any], key: str, digits: int = 3, scale: float = 1.0,
            sign: str = "") -> str:
    """``[low, high]`` of the seed-level interval of figure ``key`` of ``row`` (its columns
    ``key_seed_ci_low`` and ``key_seed_ci_high``), or :data:`UNDEFINED` when it is NaN (fewer
    than two backbone seeds)."""
    low, high = row[f"{key}_seed_ci_low"], row[f"{key}_seed_ci_high"]
    if not (np.isfinite(low) and np.isfinite(high)):
        return UNDEFINED
    return f"[{fmt(low, digits, scale, sign)}, {fmt(high, digits, scale, sign)}]"


def table_heading(row: Mapping[str, Any]) -> str:
    """A table's column heading in the per-table sections: ``t<i>``, with its backbone seed
    and data seed when known (``row``: a row of ``per_table.csv``)."""
    known = [f"{name} {int(row[key])}" for name, key in (("seed", "table_seed"),
                                                          ("data", "data_seed"))
             if row.get(key) is not None and pd.notna(row.get(key))]
    return f"t{int(row['table'])}" + (f" ({', '.join(known)})" if known else "")


def per_table_lines(per_table: pd.DataFrame, cell: Callable[[Mapping[str, Any]], str],
                    row_keys: Sequence[str] = ("method",),
                    row_label: Callable[[Mapping[str, Any]], list[str]] | None = None
                    ) -> list[str]:
    """A markdown table of one figure per table: one row per distinct ``row_keys`` (first-seen
    order), one column per table, ``cell(row)`` in each cell."""
    tables = per_table.drop_duplicates("table").sort_values("table")
    headings = [table_heading(r) for _, r in tables.iterrows()]
    rows = []
    for _, group in per_table.groupby(list(row_keys), sort=False):
        by_table = {int(r["table"]): r for _, r in group.iterrows()}
        first = group.iloc[0]
        rows.append([*(row_label(first) if row_label else [label(first)]),
                     *(cell(by_table[t]) if t in by_table else "" for t in tables["table"])])
    names = list(row_keys) if row_label else ["method"]
    return markdown_table([*names, *headings], rows)


def table_legend(per_table: pd.DataFrame) -> str:
    """One sentence naming each table column: ``t<i>`` = its label."""
    tables = per_table.drop_duplicates("table").sort_values("table")
    return "Tables: " + "; ".join(f"t{int(r['table'])} = `{r['table_label']}`"
                                  for _, r in tables.iterrows()) + "."


def _zero_sentence(frame: pd.DataFrame, references: Sequence[str]) -> str:
    parts = []
    for ref in references:
        above, below = excluding_zero(frame, f"accuracy_vs_{ref}")
        parts.append(f"against `{ref}`, above zero: {', '.join(above) or 'none'}; below zero: "
                     f"{', '.join(below) or 'none'}")
    return ("Accuracy-difference intervals that exclude zero (upper references left out) - "
            + "; ".join(parts) + ". Every other interval includes zero.")


def tune_gain_check(curves: pd.DataFrame) -> str:
    """One sentence from the agents' own tune curves (tune only): how much tune accuracy each
    agent gained over the last quarter of its runs (from its last evaluation at or before 3/4
    of the run to its final one), mean [min, max] over runs, in accuracy points. A clear gain
    means the budget stopped the agent below its tune plateau."""
    if not len(curves):
        return ""
    parts = []
    for algo, runs in curves.groupby("method", sort=False):
        gains = []
        for _, run in runs.groupby(["table", "seed"]):
            run = run.sort_values("env_steps")
            steps, acc = run["env_steps"].to_numpy(), run["accuracy"].to_numpy()
            earlier = np.flatnonzero(steps <= 0.75 * steps[-1])
            gains.append(100 * (acc[-1] - acc[earlier[-1] if len(earlier) else 0]))
        parts.append(f"{algo} {np.mean(gains):+.2f} [{min(gains):+.2f}, {max(gains):+.2f}]")
    return ("Tune accuracy gained over the last quarter of each run (tune only; mean [min, "
            "max] over runs, points): " + "; ".join(parts) + ".")


def _valid_sentence(info: dict[str, Any]) -> str:
    """The valid sizes: per table, its abnormal share, and which tables share their studies."""
    abnormal = info["n_valid_abnormal"]
    abnormal = (f"{abnormal:,}" if isinstance(abnormal, int)
                else " / ".join(f"{a:,}" for a in abnormal))
    sets = info.get("study_sets") or [0] * len(info["tables"])
    if len(info["tables"]) == 1:
        shared = ""
    elif len(set(sets)) == 1:
        shared = ", the same in every table"
    else:
        shared = (f" per table; {len(set(sets))} study sets (one per data draw; tables of a "
                  "set share their valid studies): " + study_set_groups(sets))
    return f"valid: {info['n_valid']:,} studies ({abnormal} abnormal){shared}."


def to_markdown(frame: pd.DataFrame, info: dict[str, Any], references: Sequence[str],
                title: str = TITLE, per_table: pd.DataFrame | None = None) -> str:
    """``benchmark.md``, headed ``title``.

    Args:
        frame: :func:`~mura_env.evaluation.statistics.summarise`'s table plus ``train_time`` and
            ``env_steps`` columns.
        info: ``tables`` (labels), ``seeds``, ``n_tune`` (list per table), ``n_valid``,
            ``n_valid_abnormal`` (a number, or one per study set), ``study_sets`` (per table,
            optional), ``budgets`` (algo -> env steps), ``budget_note``, ``tune_gain_check``
            (:func:`tune_gain_check`), ``n_bootstrap``, ``design`` (a paragraph),
            ``timings`` (phase -> seconds), ``machine``.
        references: the methods compared against (e.g. uniform, stacking); the first one's
            accuracy difference gets its seed-level interval in the main table.
        per_table: ``per_table.csv`` (:func:`~mura_env.evaluation.statistics.summarise_tables` with
            table labels and seeds), for the per-table section; None: no such section.
    """
    refs = [r for r in references if f"accuracy_vs_{r}" in frame]
    header = ["method", "kind", "accuracy [95% CI]", "accuracy, seed-level 95% CI",
              "kappa [95% CI]"]
    for i, ref in enumerate(refs):
        header += [f"accuracy vs {ref}, points [95% CI]"]
        header += [f"accuracy vs {ref}, seed-level 95% CI"] if i == 0 else []
        header += [f"P(improve over {ref}) [95% CI]"]
    rows = []
    for _, r in frame.iterrows():
        cells = [label(r), r["kind"], ci(r, "accuracy"), seed_ci(r, "accuracy"),
                 ci(r, "kappa")]
        for i, ref in enumerate(refs):
            cells += [ci(r, f"accuracy_vs_{ref}", 1, 100.0, "+")]
            cells += [seed_ci(r, f"accuracy_vs_{ref}", 1, 100.0, "+")] if i == 0 else []
            cells += [ci(r, f"poi_vs_{ref}", 2)]
        rows.append(cells)
    tables = ", ".join(f"`{t}`" for t in info["tables"])
    lines = [
        f"# {title}", "",
        f"**Sizes.** {len(info['tables'])} table{'s' * (len(info['tables']) != 1)} ({tables}) "
        f"x {info['seeds']} seeds; tune "
        f"studies per table: {', '.join(f'{n:,}' for n in info['n_tune'])}; "
        f"{_valid_sentence(info)} Agents train on `tune` (curves on `tune`), baselines fit "
        "on `tune`; "
        "`valid` is read only for these final scores. Upper references are not competitors: "
        "the oracle knows the label, the best fixed weights are searched on valid itself. "
        "Results on synthetic data say nothing about clinical performance.", "",
        *markdown_table(header, rows), "",
        _zero_sentence(frame, refs), "",
        f"**Statistics.** {info['design']}", "",
        "## More figures", "",
    ]
    more = ["method", "AUROC", "sensitivity", "specificity",
            *(f"accuracy vs {ref}, seed-level 95% CI" for ref in refs[1:]),
            *(f"kappa vs {ref}" for ref in refs), "train/fit time (s)", "env steps"]
    lines += markdown_table(more, [
        [label(r), ci(r, "auroc"), ci(r, "sensitivity"), ci(r, "specificity"),
         *(seed_ci(r, f"accuracy_vs_{ref}", 1, 100.0, "+") for ref in refs[1:]),
         *(ci(r, f"kappa_vs_{ref}", 3, 1.0, "+") for ref in refs), fmt(r["train_time"], 2),
         f"{int(r['env_steps']):,}"] for _, r in frame.iterrows()])
    parts = [p for p in BODY_PARTS if f"kappa_{p}" in frame]
    lines += ["", "Kappa per body part [95% CI]:", "",
              *markdown_table(["method", *parts],
                              [[label(r), *(ci(r, f"kappa_{p}") for p in parts)]
                               for _, r in frame.iterrows()])]
    if per_table is not None and len(per_table):
        lines += ["", *_per_table_section(per_table, refs[:1])]
    budgets = ", ".join(f"{a} {n:,}" for a, n in info["budgets"].items())
    timings = ", ".join(f"{k} {v:.0f} s" for k, v in info["timings"].items())
    lines += ["", f"**Agent budgets** (env steps per run): {budgets}. {info['budget_note']}",
              "", info["tune_gain_check"], "", f"**Wall time**: {timings} ({info['machine']}).", ""]
    lines += [f"![{text}]({name})" for name, text in PLOTS.items()] + [""]
    return "\n".join(lines)


def _per_table_section(per_table: pd.DataFrame, refs: Sequence[str]) -> list[str]:
    """``## Per table``: each method's accuracy per table and its accuracy difference from
    ``refs`` per table (points, with the bootstrap interval over that table's seeds and
    studies)."""
    lines = ["## Per table", "",
             table_legend(per_table) + " Mean over the table's seeds; differences in points "
             "with a 95% interval from the same bootstrap draws restricted to that table (its "
             "seeds and its valid studies). Every value is in `per_table.csv`.", "",
             "Accuracy:", "", *per_table_lines(per_table, lambda r: fmt(r["accuracy"]))]
    for ref in refs:
        lines += ["", f"Accuracy vs {ref}, points [95% CI]:", "",
                  *per_table_lines(per_table,
                                   lambda r, ref=ref: ci(r, f"accuracy_vs_{ref}", 1, 100.0,
                                                         "+"))]
    return lines + [""]


def _interval_panel(ax: plt.Axes, frame: pd.DataFrame, key: str, title: str,
                    names: bool) -> None:
    y = np.arange(len(frame))[::-1]
    for kind, colour in KIND_COLOURS.items():
        rows = (frame["kind"] == kind).to_numpy()
        if rows.any():
            part = frame[rows]
            err = np.vstack([part[key] - part[f"{key}_ci_low"],
                             part[f"{key}_ci_high"] - part[key]])
            ax.errorbar(part[key], y[rows], xerr=np.nan_to_num(np.abs(err)), fmt="o",
                        color=colour, ms=4, capsize=3, label=kind)
    ax.set_yticks(y, [label(r) for _, r in frame.iterrows()] if names else [], fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, axis="x")


def plot_intervals(frame: pd.DataFrame, keys: Sequence[tuple[str, str]], path: Path,
                   title: str, columns: int = 2) -> Path:
    """One panel per ``(column, title)`` of ``keys``: every method's value with its 95%
    interval, coloured by kind. Returns ``path``."""
    rows = -(-len(keys) // columns)
    size = (2 + 3 * columns, 0.3 * len(frame) * rows + 1.5)
    fig, axes = plt.subplots(rows, columns, figsize=size, squeeze=False)
    for ax in axes.ravel()[len(keys):]:
        ax.axis("off")
    for i, (ax, (key, panel_title)) in enumerate(zip(axes.ravel(), keys, strict=False)):
        _interval_panel(ax, frame, key, panel_title, names=i % columns == 0)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="upper center", ncol=3,
               fontsize=8, bbox_to_anchor=(0.5, 0.0))
    return save_figure(fig, path)


def plot_tune_curves(curves: pd.DataFrame, path: Path) -> Path:
    """Tune accuracy against env steps, one panel per agent, one line per (table, seed),
    coloured by table. Returns ``path``."""
    algos = list(dict.fromkeys(curves["method"])) if len(curves) else []
    fig, axes = plt.subplots(1, max(1, len(algos)), figsize=(3.6 * max(1, len(algos)), 3.2),
                             squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, algo in zip(axes[0], algos, strict=False):
        for (table, seed), run in curves[curves["method"] == algo].groupby(["table", "seed"]):
            ax.plot(run["env_steps"], run["accuracy"], color=colours[table % len(colours)],
                    alpha=0.8, lw=1.1, label=f"table {table}" if seed == 0 else None)
        ax.set_title(algo, fontsize=9)
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("tune accuracy")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Agents' tune accuracy during training (colour: table; tune split only)",
                 fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def write_plots(frame: pd.DataFrame, curves: pd.DataFrame, out: Path,
                references: Sequence[str]) -> None:
    """Write the :data:`PLOTS` into ``out``."""
    plot_intervals(frame, [("accuracy", "accuracy"), ("kappa", "Cohen's kappa")],
                   out / "accuracy.png", "Valid split, mean over tables x seeds, 95% CIs")
    parts = [p for p in BODY_PARTS if f"kappa_{p}" in frame]
    plot_intervals(frame, [(f"kappa_{p}", p) for p in parts], out / "kappa_per_part.png",
                   "Kappa per body part (valid), 95% CIs", columns=4)
    refs = [r for r in references if f"poi_vs_{r}" in frame]
    plot_intervals(frame, [(f"poi_vs_{r}", f"P(improve over {r})") for r in refs],
                   out / "improvement.png",
                   "Probability of improvement (accuracy per table x body part), 95% CIs")
    plot_tune_curves(curves, out / "tune_curves.png")
