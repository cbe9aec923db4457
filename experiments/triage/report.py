"""The triage experiment's summary and report: per (profile, load, method), the mean over tables
(and agent seeds) with the seed-level interval over backbone seeds, and ``triage.md``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from experiments.common.report import markdown_table, save_figure
from mura_env.evaluation.statistics import t_interval

#: Rules reported as references, not as schedulers to beat: the tuned index (its powers searched
#: on tune) and the clairvoyant rule (it knows the labels).
REFERENCES = ("tuned_index", "clairvoyant")
#: The figures summarised per cell (means over tables).
FIGURES = ("cost_per_shift", "mean_wait_abnormal", "p90_wait_abnormal", "mean_wait_normal",
           "p90_wait_normal", "minutes_saved_abnormal", "missed_abnormal_share",
           "mean_wait_missed_abnormal", "utilisation")
#: The rules whose better cost (per table and cell) a learned scheduler is measured against.
BEST_INDEX = ("server_aware_c_mu", "tuned_index")


#: The cost comparisons of the summary: column -> the method(s) whose cost is the base.
COMPARISONS = {"cost_vs_c_mu": ("c_mu",), "cost_vs_best_index": BEST_INDEX,
               "cost_vs_fifo": ("first_in_first_out",)}


def summary_frame(runs: pd.DataFrame, seed_unit: np.ndarray) -> pd.DataFrame:
    """Per (profile, load, method): the mean of each of :data:`FIGURES` over tables (and agent
    seeds), the cost in percent against c-mu (``cost_vs_c_mu``), against the better of
    :data:`BEST_INDEX` on the same table and cell (``cost_vs_best_index``) and against first
    in, first out; each cost difference and the minutes saved with the Student-t 95% interval
    over backbone seeds (each seed's tables and agent seeds averaged first; ``seed_unit`` int
    ``[T]``: each table's seed)."""
    runs = runs.copy()
    cell = ["profile", "load"]
    own = runs.set_index(cell + ["table"]).index
    for key, references in COMPARISONS.items():
        chosen = runs[runs["rule"].isin(references)]
        base = chosen.groupby(cell + ["table"])["cost_per_shift"].min()
        runs[key] = 100.0 * (runs["cost_per_shift"].to_numpy() / base.reindex(own).to_numpy()
                             - 1.0)
    runs["seed_unit"] = np.asarray(seed_unit)[runs["table"].to_numpy()]
    rows = []
    for (profile, load, rule), group in runs.groupby(cell + ["rule"], sort=False):
        row: dict[str, Any] = {"profile": profile, "load": load, "rule": rule,
                               "kind": group["kind"].iloc[0],
                               "n_tables": group["table"].nunique(), "n_runs": len(group)}
        for name in (*FIGURES, *COMPARISONS):
            row[name] = float(group[name].mean())
        for name in (*COMPARISONS, "minutes_saved_abnormal"):
            per_seed = group.groupby("seed_unit")[name].mean().to_numpy()
            row[f"{name}_seed_ci_low"], row[f"{name}_seed_ci_high"] = t_interval(per_seed)
        rows.append(row)
    return pd.DataFrame(rows)


def _interval(row: pd.Series, name: str, digits: int = 1) -> str:
    low, high = row[f"{name}_seed_ci_low"], row[f"{name}_seed_ci_high"]
    text = f"{row[name]:+.{digits}f}"
    return text if not np.isfinite(low) else f"{text} [{low:+.{digits}f}, {high:+.{digits}f}]"


def to_markdown(summary: pd.DataFrame, info: dict[str, Any]) -> str:
    """``triage.md``: the setting, then one table per (profile, load)."""
    lines = ["# The reading room: which study is read next", "",
             f"{len(info['tables'])} tables; shifts of {info['minutes']:g} minutes, "
             f"{info['n_shifts']} valid shifts per profile and load (the same for every rule), "
             f"readers {', '.join(info['readers'])} (mean reading minutes per body part: "
             "mura_env.triage.shifts.READ_MINUTES, an assumption), lognormal reading times "
             f"(cv {info['read_cv']:g}); an abnormal study's wait costs {info['urgency']:g} "
             "times a normal one's"
             + (f", and {info['late_cost']:g} more per minute past {info['deadline']:g} minutes"
                if info.get("deadline") is not None else "")
             + (f"; reads lengthen by {100 * info['fatigue']:g}% per hour of reading without "
                "rest" if info.get("fatigue") else "")
             + ". Rules are fitted on tune (the flag threshold on the tune "
             f"studies, the server-aware exponent and the tuned index on {info['tune_shifts']} "
             "tune shifts)"
             + ("; agents train on tune shifts (" + ", ".join(
                 f"{a}: {info['budgets'][a]:,} env steps, {info['seeds']} seeds, "
                 f"{info['train_seconds'].get(a, float('nan')):.0f} s per run"
                 for a in info["agents"]) + ")" if info["agents"] else "; no agent trained")
             + ". "
             "Intervals: Student-t 95% over the backbone seeds (each seed's tables and agent "
             "seeds averaged). "
             "Synthetic data: nothing here is clinical.", ""]
    for (profile, load), cell in summary.groupby(["profile", "load"], sort=False):
        lines += [f"## {profile}, load {load:g}", ""]
        rows = [[r["rule"] + (" (reference)" if r["rule"] in REFERENCES else "")
                 + (f" (agent, {r['n_runs'] // r['n_tables']} seeds)" if r["kind"] == "agent"
                    else ""),
                 f"{r['cost_per_shift']:,.0f}", _interval(r, "cost_vs_c_mu"),
                 _interval(r, "cost_vs_best_index"), _interval(r, "cost_vs_fifo"),
                 f"{r['mean_wait_abnormal']:.1f}",
                 f"{r['p90_wait_abnormal']:.1f}", _interval(r, "minutes_saved_abnormal"),
                 f"{r['mean_wait_normal']:.1f}",
                 f"{100 * r['missed_abnormal_share']:.0f}% / "
                 f"{r['mean_wait_missed_abnormal']:.1f}", f"{100 * r['utilisation']:.0f}%"]
                for _, r in cell.iterrows()]
        lines += markdown_table(
            ["method", "cost per shift", "vs c-mu (%)",
             "vs best of server-aware c-mu, tuned index (%)", "vs first in, first out (%)",
             "abnormal: mean wait (min)", "abnormal: 90th percentile",
             "minutes saved (abnormal) vs FIFO", "normal: mean wait",
             "missed abnormal: share / mean wait", "utilisation"], rows)
        lines.append("")
    return "\n".join(lines)


def plot_waits_by_hour(by_hour: pd.DataFrame, path: Path) -> Path:
    """One panel per (profile, load): each rule's mean abnormal wait by the hour of arrival
    (``by_hour``: columns profile, load, rule, hour, mean_wait_abnormal); returns ``path``."""
    cells = list(dict.fromkeys(zip(by_hour["profile"], by_hour["load"], strict=True)))
    fig, axes = plt.subplots(1, len(cells), figsize=(4.2 * len(cells), 3.4), squeeze=False,
                             sharey=True)
    for ax, (profile, load) in zip(axes[0], cells, strict=True):
        cell = by_hour[(by_hour["profile"] == profile) & (by_hour["load"] == load)]
        for rule, lines in cell.groupby("rule", sort=False):
            ax.plot(lines["hour"] + 0.5, lines["mean_wait_abnormal"], marker="o", ms=3,
                    label=rule)
        ax.set_title(f"{profile}, load {load:g}")
        ax.set_xlabel("hour of the shift (arrival)")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("abnormal studies: mean wait (min)")
    axes[0, -1].legend(fontsize=7)
    fig.suptitle("Waiting by time of day (synthetic data)", y=1.03)
    return save_figure(fig, path)
