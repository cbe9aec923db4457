"""The deferral experiment's report: ``defer.md`` and its PNG plots, from the per-cost figures
of :func:`mura_env.evaluation.statistics.summarise` (one row per reader, sharing, cost and method),
the per-table ones of :func:`mura_env.evaluation.statistics.summarise_tables`, the readers' error
correlations and the sensitivity study's rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from experiments.common.benchmark.report import per_table_lines, seed_ci, table_legend
from experiments.common.report import (
    ci,
    fmt,
    label,
    markdown_table,
    save_figure,
    study_set_groups,
)
from mura_env.constants import BODY_PARTS
from mura_env.evaluation.statistics import coverage_note
from mura_env.readers import RADIOLOGIST_KAPPAS

PLOTS = {"coverage_accuracy.png": "team accuracy against deferral rate",
         "coverage_kappa.png": "team kappa against deferral rate",
         "sensitivity.png": "team accuracy against difficulty sharing"}
#: Methods drawn as single points (their decision does not depend on the cost).
ALONE_LABELS = {"always_defer": "reader alone", "never_defer": "ensemble alone"}


def is_twin(method: str) -> bool:
    """An agent's threshold twin (``global_threshold@<agent>``: the agent's own ensemble,
    thresholded at the agent's tune deferral rate), shown in its own table."""
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
                     ci(r, "accuracy"), seed_ci(r, "accuracy"), ci(r, "kappa"),
                     ci(r, "accuracy_vs_always_defer", 1, 100, "+"),
                     seed_ci(r, "accuracy_vs_always_defer", 1, 100, "+"),
                     ci(r, "accuracy_vs_never_defer", 1, 100, "+"),
                     seed_ci(r, "accuracy_vs_never_defer", 1, 100, "+")])
    return markdown_table(["cost", "method", "deferred %", "accuracy [95% CI]",
                           "accuracy, seed-level 95% CI", "kappa [95% CI]",
                           "vs reader alone (points) [95% CI]", "seed-level 95% CI",
                           "vs ensemble alone (points) [95% CI]", "seed-level 95% CI"], rows)


#: What the matched-rate section says about the twins.
TWIN_NOTE = (
    "Each agent run is paired with its threshold twin (`global_threshold@<agent>`): the "
    "agent's own ensemble (its weights, so its probability and its answer on every study it "
    "keeps), deferring instead the studies where that probability is least sure (its distance "
    "from the decision threshold, 0.5 by default, below one cut chosen so that the twin defers "
    "as many tune studies as the agent). "
    "The two differ only in which studies they defer. Deferral rates are means over the runs; "
    "the valid rates of agent and twin can differ, since only the tune rates are matched.")


def _matched_table(frame: pd.DataFrame, agents: list[str]) -> list[str]:
    """Each agent against its threshold twin per cost: both valid deferral rates (and both
    tune rates when ``frame`` has ``tune_deferral_rate``), the accuracy and kappa
    differences and P(agent better)."""
    tune = "tune_deferral_rate" in frame.columns
    keys = ["deferral_rate", "tune_deferral_rate"] if tune else ["deferral_rate"]
    rows = []
    for agent in agents:
        twin = f"global_threshold@{agent}"
        for _, r in frame[frame["method"] == agent].iterrows():
            t = frame[(frame["method"] == twin) & (frame["cost"] == r["cost"])].iloc[0]
            rates = [fmt(x[key], 1, 100) for key in keys for x in (r, t)]  # agent, twin
            rows.append([agent, f"{r['cost']:g}", *rates,
                         ci(r, f"accuracy_vs_{twin}", 1, 100, "+"),
                         seed_ci(r, f"accuracy_vs_{twin}", 1, 100, "+"),
                         ci(r, f"kappa_vs_{twin}", 3, 1, "+"),
                         ci(r, f"poi_vs_{twin}", 2)])
    rate_columns = [f"{who} deferred % ({split})" for split in ("valid", "tune")[:len(keys)]
                    for who in ("agent", "twin")]
    return markdown_table(["agent", "cost", *rate_columns,
                           "accuracy difference (points) [95% CI]", "seed-level 95% CI",
                           "kappa difference", "P(agent better)"], rows)


def _part_table(frame: pd.DataFrame) -> list[str]:
    rows = [[f"{r['cost']:g}", label(r), *(fmt(r[f"deferral_rate_{p}"], 0, 100)
                                          for p in BODY_PARTS)]
            for _, r in frame[~frame["method"].map(is_twin)].iterrows()
            if r["method"] not in ALONE_LABELS]
    return markdown_table(["cost", "method", *BODY_PARTS], rows)


def _per_table_section(per_table: pd.DataFrame, agents: list[str],
                       heading: str = "## Per table") -> list[str]:
    """``heading``: the team accuracy of every method at every cost per table, and each RL
    agent's accuracy difference from its threshold twin per table."""
    shown = per_table[~per_table["method"].map(is_twin)]
    lines = [heading, "",
             table_legend(per_table) + " Mean over the table's seeds; differences in points "
             "with a 95% interval from the same bootstrap draws restricted to that table (its "
             "seeds and its valid studies). Every value is in `per_table.csv`.", "",
             "Team accuracy:", "",
             *per_table_lines(shown, lambda r: fmt(r["accuracy"]), ("cost", "method"),
                              lambda r: [f"{r['cost']:g}", label(r)])]
    mine = per_table[per_table["method"].isin(agents)]
    if len(mine):
        lines += ["", "RL agent vs its threshold twin, accuracy points [95% CI]:", "",
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
    """Who the readers are: the simulated radiologists (source of their kappas, how their
    errors share difficulty) and any reads given as data."""
    sources = info.get("reader_provenance") or {}
    simulated = [r for r in info["readers"] if (sources.get(r) or {}).get("kind") == "simulated"]
    others = [r for r in info["readers"] if r not in simulated]
    text = []
    if simulated:
        sharing = sorted({(sources[r] or {}).get("sharing", 0.0) for r in simulated})
        shared = ", ".join(f"{x:g}" for x in sharing)
        text.append(
            f"The readers {', '.join(f'`{r}`' for r in simulated)} are simulated radiologists "
            "(mura_env.readers) with the per-body-part Cohen's kappas of the MURA paper's three "
            "radiologists (Rajpurkar et al. 2017, arXiv:1712.06957), equal sensitivity and "
            "specificity per part; their errors share the studies' difficulty (the synthetic "
            f"generator's latent) with sharing {shared} (0: independent of the ensemble's "
            "errors). Their reads are simulated, not a radiologist's.")
    if others:
        text.append("Reads given as data: " + ", ".join(f"`reader_{r}`" for r in others) + ".")
    return " ".join(text)


def _readers_table(frame: pd.DataFrame, correlations: pd.DataFrame) -> list[str]:
    """One row per reader at the tables' own sharing: the paper's overall kappa, the reader
    alone on valid, and the error correlations."""
    rows = []
    for _, c in correlations.iterrows():
        alone = frame[(frame["reader"] == c["reader"]) & (frame["method"] == "always_defer")
                      & _same_sharing(frame, c["sharing"])]
        if not len(alone):
            continue
        a = alone.iloc[0]
        paper = RADIOLOGIST_KAPPAS.get(c["reader"], {}).get("overall")
        rows.append([c["reader"], _sharing_text(c["sharing"]),
                     fmt(paper) if paper is not None else "—", ci(a, "accuracy"),
                     ci(a, "kappa"), f"{c['members_tune']:+.3f}",
                     f"{c['stacking_valid']:+.3f}"])
    return markdown_table(["reader", "sharing", "paper's overall kappa",
                           "reader alone: accuracy (valid) [95% CI]", "kappa [95% CI]",
                           "error correlation with the members (tune)",
                           "with stacking (valid)"], rows)


def _same_sharing(frame: pd.DataFrame, sharing: Any) -> pd.Series:
    """Rows of ``frame`` at ``sharing`` (None/NaN: reads given as data)."""
    if sharing is None or (isinstance(sharing, float) and np.isnan(sharing)):
        return frame["sharing"].isna()
    return np.isclose(frame["sharing"].astype(float), float(sharing))


def _sharing_text(sharing: Any) -> str:
    if sharing is None or (isinstance(sharing, float) and np.isnan(sharing)):
        return "—"
    return f"{float(sharing):g}"


def own_rows(frame: pd.DataFrame, reader: str) -> pd.DataFrame:
    """``reader``'s rows at the tables' own reads (its first sharing in ``frame``)."""
    mine = frame[frame["reader"] == reader]
    return mine[_same_sharing(mine, mine["sharing"].iloc[0])] if len(mine) else mine


#: What the report says of the deferral rate at cost 0.
COST_ZERO_NOTE = (
    "At cost 0 the deferral rate is not determined by the task: deferring a study that the "
    "ensemble and the reader would both get right (or both get wrong) changes nothing, so "
    "many rates score the same, and the rate a method reports there says how it broke those "
    "ties (an RL agent may defer whole body parts), not what the task asks. A small cost "
    "(0.005, 0.01) breaks the ties; the rates quoted as findings are those at the smallest "
    "positive cost.")


def headline_cost(costs: list[float]) -> float:
    """The cost the report's headline quotes: the smallest positive one (where the deferral
    rate is determined), else the lowest."""
    positive = [c for c in costs if c > 0]
    return min(positive) if positive else min(costs)


def _headline_table(frame: pd.DataFrame, readers: list[str], cost: float) -> list[str]:
    rows = []
    for reader in readers:
        at = own_rows(frame, reader)
        at = at[np.isclose(at["cost"], cost) & ~at["method"].map(is_twin)]
        for _, r in at.iterrows():
            rows.append([reader, label(r), fmt(r["deferral_rate"], 1, 100), ci(r, "accuracy"),
                         seed_ci(r, "accuracy"), ci(r, "accuracy_vs_always_defer", 1, 100, "+"),
                         ci(r, "accuracy_vs_never_defer", 1, 100, "+")])
    return markdown_table(["reader", "method", "deferred %", "team accuracy [95% CI]",
                           "seed-level 95% CI", "vs reader alone (points) [95% CI]",
                           "vs ensemble alone (points) [95% CI]"], rows)


def _sensitivity_section(sensitivity: pd.DataFrame, info: dict[str, Any]) -> list[str]:
    study = info.get("sensitivity") or {}
    lines = ["## Sensitivity to shared difficulty", ""]
    if not len(sensitivity):
        return lines + [f"Not run: {study.get('skipped') or 'one sharing value only'}.", ""]
    lines += [
        f"Reader `{study['reader']}` at cost {study['cost']:g}; its reads made again at each "
        "sharing (same per-part kappas; 0: errors independent of the ensemble's), every "
        f"method refitted and retrained on them. The classical method shown, `{study['method']}`,"
        " is the one with the best *tune* team accuracy at the tables' own sharing (on the "
        "out-of-fold predictions its rule was fitted on); the RL agents beside it, and the "
        "oracle, the reader alone and the ensemble alone for scale.", ""]
    values = sorted(sensitivity["sharing"].unique())
    rows = []
    for method in dict.fromkeys(sensitivity["method"]):
        mine = sensitivity[sensitivity["method"] == method].set_index("sharing")
        name = ALONE_LABELS.get(method, method)
        rows.append([name, *(ci(mine.loc[x], "accuracy") for x in values)])
    deployable = [m for m in dict.fromkeys(sensitivity["method"])
                  if m not in ALONE_LABELS and not m.startswith("oracle")]
    for method in deployable:
        mine = sensitivity[sensitivity["method"] == method].set_index("sharing")
        rows.append([f"{method} vs reader alone (points)",
                     *(ci(mine.loc[x], "accuracy_vs_always_defer", 1, 100, "+")
                       for x in values)])
        rows.append([f"{method} deferred %",
                     *(fmt(mine.loc[x, "deferral_rate"], 1, 100) for x in values)])
    return lines + markdown_table(["team accuracy [95% CI] at sharing", *(f"{x:g}"
                                                                          for x in values)],
                                  rows) + ["", "![team accuracy against sharing]"
                                           "(sensitivity.png)", ""]


def reader_sections(frame: pd.DataFrame, per_table: pd.DataFrame | None,
                    agents: list[str]) -> list[str]:
    """One reader's (one sharing's) sections: coverage and accuracy, where the team beats
    both alone, the agents against their threshold twins, areas, per-part deferral rates and
    (with ``per_table``) the per-table figures; ``###`` headings."""
    agents = [a for a in agents if a in set(frame["method"])]
    methods = [m for m in dict.fromkeys(frame["method"]) if not is_twin(m)
               and m not in ALONE_LABELS]
    both = team_beats_both(frame)
    return [
        "### Coverage and accuracy", "", *_coverage_table(frame), "",
        "### Does the team beat both the reader alone and the ensemble alone?", "",
        ("Yes, at: " + "; ".join(both) + ".") if both else
        "No operating point beats both with both intervals above zero.", "",
        "### RL agents against confidence thresholding at equal deferral rate", "",
        TWIN_NOTE, "",
        *_matched_table(frame, agents), "",
        "### Area under the accuracy-coverage curve", "",
        *markdown_table(["method", "area"],
                        [[m, fmt(coverage_area(frame, m))] for m in methods]),
        "", "Trapezoids over each method's cost points (mean deferral rate, mean accuracy), "
        "anchored by the reader alone at coverage 0 and the ensemble alone at coverage 1.", "",
        "### Deferral rate per body part (%)", "", *_part_table(frame), "",
        *(_per_table_section(per_table, agents, "### Per table")
          if per_table is not None and len(per_table) else [])]


def to_markdown(frame: pd.DataFrame, info: dict[str, Any],
                per_table: pd.DataFrame | None = None,
                correlations: pd.DataFrame | None = None,
                sensitivity: pd.DataFrame | None = None) -> str:
    """The report: sizes and readers, the readers' figures and error correlations, every
    reader at the headline cost (:func:`headline_cost`), the sensitivity study, then each
    reader's sections (:func:`reader_sections`) at the tables' own reads."""
    readers = list(info["readers"])
    headline = headline_cost(list(info["costs"]))
    lines = [
        "# When to hand a study to a radiologist: deferral on the reference tables", "",
        f"{len(info['tables'])} tables x {info['seeds']} seeds per RL agent; tune "
        f"{info['n_tune']:,} studies (fitting and training), {_valid_sentence(info)}. "
        f"{reader_sentence(info)} A study scores 1 when the answer that counts is right; "
        "deferring costs `cost`. Classical rules are fitted on out-of-fold tune predictions "
        "(cross-fitted stacking). Synthetic data: nothing here is clinical.", "",
        "**Intervals.** "
        + coverage_note(len(info["tables"]),
                        len(set(info.get("backbone_seeds") or range(len(info["tables"])))),
                        len(set(info.get("study_sets") or [0]))),
        "" if not info.get("quick") else "\n**--quick: a smoke test, not a result.**\n",
        "## The readers", "",
        "Error correlation: Pearson's r between the reader's wrong reads and another's wrong "
        "answers, each centred within body part (a reader weak on FINGER and a member strong "
        "there do not count as avoiding each other's errors), mean over tables; members: each "
        "member's argmax on tune, mean over members; stacking: the ensemble-alone answers on "
        "valid.", "",
        *(_readers_table(frame, correlations) if correlations is not None else []), "",
        f"## Every reader at cost {headline:g}", "",
        *([COST_ZERO_NOTE, ""] if min(info["costs"]) == 0 else []),
        *_headline_table(frame, readers, headline), "",
        *_sensitivity_section(sensitivity if sensitivity is not None else frame.iloc[:0],
                              info)]
    for reader in readers:
        mine = own_rows(frame, reader)
        sharing = mine["sharing"].iloc[0] if len(mine) else None
        tables = None
        if per_table is not None:
            tables = per_table[(per_table["reader"] == reader)
                               & _same_sharing(per_table, sharing)]
        lines += [f"## Reader `{reader}` (sharing {_sharing_text(sharing)})", "",
                  *reader_sections(mine, tables, list(info["agents"]))]
    plots = {name: text for name, text in PLOTS.items()
             if name != "sensitivity.png" or (sensitivity is not None and len(sensitivity))}
    lines += ["## Plots", "", *(f"![{text}]({name})" for name, text in plots.items()), ""]
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


def plot_sensitivity(sensitivity: pd.DataFrame, info: dict[str, Any], path: Path) -> Path:
    """Team accuracy (valid, 95% CI bars) against difficulty sharing for each method of the
    sensitivity study; the tables' own sharing marked."""
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for method in dict.fromkeys(sensitivity["method"]):
        rows = sensitivity[sensitivity["method"] == method].sort_values("sharing")
        err = np.abs(np.vstack([rows["accuracy"] - rows["accuracy_ci_low"],
                                rows["accuracy_ci_high"] - rows["accuracy"]]))
        ax.errorbar(rows["sharing"], rows["accuracy"], yerr=err, fmt="o", ms=4, capsize=3,
                    lw=1, label=ALONE_LABELS.get(method, method),
                    ls="--" if method.startswith("oracle") else "-")
    own = (info.get("reader_sharing") or {}).get((info.get("sensitivity") or {}).get("reader"))
    if own is not None:
        ax.axvline(own, color="grey", lw=0.8, ls=":", label=f"tables' sharing ({own:g})")
    study = info.get("sensitivity") or {}
    ax.set_xlabel("difficulty sharing of the reader's errors (0: independent)")
    ax.set_ylabel("team accuracy (valid)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"Reader {study.get('reader')} at cost {study.get('cost', 0):g}: team accuracy "
                 "against sharing (95% CIs)", fontsize=9)
    return save_figure(fig, path)


def write_plots(frame: pd.DataFrame, out: Path, info: dict[str, Any],
                sensitivity: pd.DataFrame) -> None:
    """Write the :data:`PLOTS` into ``out``: the coverage plots for the sensitivity reader
    (else the first) at the tables' own reads, and the sensitivity plot when there is one."""
    reader = (info.get("sensitivity") or {}).get("reader")
    frame = own_rows(frame, reader if reader in set(frame["reader"]) else frame["reader"].iloc[0])
    plot_coverage(frame, "accuracy", out / "coverage_accuracy.png")
    plot_coverage(frame, "kappa", out / "coverage_kappa.png")
    if len(sensitivity):
        plot_sensitivity(sensitivity, info, out / "sensitivity.png")
