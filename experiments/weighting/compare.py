"""Every agent over several seeds and every baseline, on one table.

``python -m experiments.compare [--logits PATH] [--seeds N] [--out DIR]``

Each agent of ``--algos`` trains ``--seeds`` times (seeds 0..N-1) on the ``tune`` split; every
baseline is fitted on ``tune`` (the upper references excepted, labelled so); everything is
scored on ``valid``. Nothing is tuned on valid.

Writes into ``--out`` (default ``runs/compare/<time>``): ``config.json``;
``comparison.csv`` and ``comparison.md`` (accuracy and kappa with 95% bootstrap intervals;
for agents the mean over seeds, its interval from resampling the studies once for all seeds,
and the spread over seeds; per-body-part kappa; wall time and env steps); ``runs.csv`` (one
row per agent run); ``reward_curves.png`` (``rollout/ep_rew_mean`` and ``eval/accuracy`` read
back from TensorBoard); ``weights_heatmap.png`` (mean weight per body part of every method that
weights the members); and ``agents/<algo>_<seed>/`` (the agent runs, see ``train_agent``).

Synthetic data: results on it say nothing about clinical performance.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agents.algos import ALGOS, get_algo
from agents.evaluate import Evaluation, evaluate_policy, seed_mean_interval
from agents.reporting import SPLIT_USE, baseline_evaluations, kind_of, summary_row
from agents.train import train_agent
from experiments.common.logits_source import resolve_table
from experiments.weighting.compare_plots import plot_reward_curves, plot_weight_heatmaps
from mura_env.common.atomic import atomic_write_bytes
from mura_env.common.config_cli import parse_config, save_config
from mura_env.config import WeightingConfig
from mura_env.constants import BODY_PARTS
from mura_env.logits import LogitsTableError, MissingLogitsError
from mura_env.mapping import DEFAULT_ACTION_SCALE, DEFAULT_TEMPERATURE
from mura_env.rewards import REWARDS


@dataclass
class CompareConfig:
    """Compare every weighting agent (over seeds) with every baseline on one logits table."""

    logits: Path | None = field(default=None, metadata={
        "help": "logits table (default: newest runs/pretrain/*/logits.parquet, else "
                "reference table 0)"})
    seeds: int = field(default=3, metadata={"help": "seeds per agent (0..N-1)"})
    out: Path | None = field(default=None, metadata={
        "help": "output folder (default runs/compare/<time>)"})
    algos: tuple[str, ...] = field(default=tuple(ALGOS), metadata={"help": "agents to run"})
    total_timesteps: int | None = field(default=None, metadata={
        "help": "env steps per agent run (default: each algo's registry default)"})
    reward: str = field(default="correct", metadata={
        "help": "reward function", "choices": tuple(REWARDS)})
    action_scale: float = field(default=DEFAULT_ACTION_SCALE, metadata={
        "help": "env action scale"})
    temperature: float = field(default=DEFAULT_TEMPERATURE, metadata={
        "help": "env softmax temperature"})
    studies_per_episode: int = field(default=1, metadata={"help": "studies per episode"})
    n_bootstrap: int = field(default=1000, metadata={"help": "bootstrap replicates for CIs"})
    progress: bool = field(default=False, metadata={"help": "show progress bars"})


def _fmt(v: float, digits: int = 3) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def aggregate_agent(algo: str, evals: list[Evaluation], run_rows: list[dict[str, Any]],
                    n_bootstrap: int) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """One comparison row for an agent's runs (one per seed: their evaluations and their
    :func:`summary_row` rows with ``wall_time`` and ``env_steps``) and its mean weights."""
    frame = pd.DataFrame(run_rows)
    ci = seed_mean_interval(evals[0].labels, np.stack([ev.predictions for ev in evals]),
                            n_bootstrap=n_bootstrap)
    row: dict[str, Any] = {"method": algo, "kind": "agent", "n_seeds": len(evals)}
    for metric in ("accuracy", "kappa"):
        row[metric] = float(frame[metric].mean())
        row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = ci[metric]
        row[f"{metric}_sd"] = float(frame[metric].std(ddof=1)) if len(frame) > 1 else 0.0
        row[f"{metric}_min"], row[f"{metric}_max"] = (float(frame[metric].min()),
                                                      float(frame[metric].max()))
    row["auroc"] = float(frame["auroc"].mean())
    for part in BODY_PARTS:
        col = f"kappa_{part}"
        if col in frame:
            row[col] = float(frame[col].mean())
    row["wall_time"] = float(frame["wall_time"].mean())
    row["env_steps"] = float(frame["env_steps"].mean())
    weights = [ev.mean_weights for ev in evals if ev.mean_weights is not None]
    mean_w = sum(weights) / len(weights) if weights else None
    return row, mean_w


#: Methods every other one is compared with, paired on the same bootstrap resamples.
DIFFERENCE_REFERENCES = ("uniform", "stacking")


def add_differences(rows: list[dict[str, Any]], predictions: dict[str, np.ndarray],
                    labels: np.ndarray, n_bootstrap: int) -> None:
    """Add ``accuracy_vs_<ref>`` and ``kappa_vs_<ref>`` (mean over runs minus the reference)
    with paired 95% bootstrap intervals (``..._ci_low``, ``..._ci_high``) to every row."""
    for ref in DIFFERENCE_REFERENCES:
        ref_row = next(r for r in rows if r["method"] == ref)
        for row in rows:
            ci = seed_mean_interval(labels, predictions[row["method"]], n_bootstrap=n_bootstrap,
                                    reference=predictions[ref])
            for metric in ("accuracy", "kappa"):
                key = f"{metric}_vs_{ref}"
                row[key] = row[metric] - ref_row[metric]
                row[f"{key}_ci_low"], row[f"{key}_ci_high"] = ci[metric]


def baseline_row(ev: Evaluation, kind: str) -> dict[str, Any]:
    """One comparison row for a baseline of ``kind`` (``"baseline"`` or ``"reference"``; one
    deterministic fit, no spread over seeds)."""
    row = summary_row(ev, kind=kind, n_seeds=1)
    for metric in ("accuracy", "kappa"):
        row[f"{metric}_sd"] = 0.0
        row[f"{metric}_min"] = row[f"{metric}_max"] = row[metric]
    row["wall_time"] = ev.fit_time
    row["env_steps"] = 0
    return row


def _label(row: Any) -> str:
    """A method's name as the tables show it: upper references say so."""
    suffix = " (upper reference)" if row["kind"] == "reference" else ""
    return f"{row['method']}{suffix}"


def to_markdown(table: pd.DataFrame, source: Path, n_valid: int, seeds: int) -> str:
    """``comparison.md``: the main table, per-body-part kappa, and the plots."""
    lines = [
        "# Ensemble weighting: agents vs. baselines",
        "",
        f"Logits: `{source}`. Scored on the **valid** split ({n_valid} studies); agents "
        f"trained on `tune` with seeds 0..{seeds - 1}; baselines fitted on `tune`. "
        "**SYNTHETIC data: these numbers say nothing about clinical performance.**",
        "",
        "Accuracy and kappa: point value [95% bootstrap CI over studies]; for agents the mean "
        "over seeds, its CI from resampling the studies once for all seeds, and ± the standard "
        "deviation over seeds. Upper references are not deployable methods: the oracle knows "
        "the label, the best fixed weights were searched on valid itself.",
        "",
        "| method | kind | accuracy [95% CI] | ± sd (seeds) | kappa [95% CI] | ± sd (seeds) "
        "| AUROC | train time (s) | env steps |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        lines.append(
            f"| {_label(r)} | {r['kind']} | {_fmt(r['accuracy'])} "
            f"[{_fmt(r['accuracy_ci_low'])}, {_fmt(r['accuracy_ci_high'])}] | "
            f"{_fmt(r['accuracy_sd'])} | {_fmt(r['kappa'])} [{_fmt(r['kappa_ci_low'])}, "
            f"{_fmt(r['kappa_ci_high'])}] | {_fmt(r['kappa_sd'])} | {_fmt(r['auroc'])} | "
            f"{_fmt(r['wall_time'], 1)} | {int(r['env_steps']):,} |")
    lines += ["", "Differences in accuracy points (method minus reference; agents: mean over "
              "seeds) with paired 95% bootstrap CIs (both methods on the same resamples):", "",
              "| method | " + " | ".join(f"vs {r}" for r in DIFFERENCE_REFERENCES) + " |",
              "|---|" + "---|" * len(DIFFERENCE_REFERENCES)]
    for _, r in table.iterrows():
        cells = []
        for ref in DIFFERENCE_REFERENCES:
            k = f"accuracy_vs_{ref}"
            cells.append(f"{100 * r[k]:+.1f} [{100 * r[k + '_ci_low']:+.1f}, "
                         f"{100 * r[k + '_ci_high']:+.1f}]")
        lines.append(f"| {_label(r)} | " + " | ".join(cells) + " |")
    parts = [p for p in BODY_PARTS if f"kappa_{p}" in table]
    lines += ["", "Kappa per body part (agents: mean over seeds):", "",
              "| method | " + " | ".join(parts) + " |",
              "|---|" + "---|" * len(parts)]
    for _, r in table.iterrows():
        lines.append(f"| {_label(r)} | " + " | ".join(_fmt(r[f'kappa_{p}']) for p in parts)
                     + " |")
    lines += ["", "![reward curves](reward_curves.png)", "",
              "![weights per body part](weights_heatmap.png)", ""]
    return "\n".join(lines)


def run_agents(cfg: CompareConfig, env_config: WeightingConfig, out: Path
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, np.ndarray],
                          dict[str, pd.DataFrame], dict[str, list[Path]]]:
    """Train and score every agent of ``cfg.algos`` over ``cfg.seeds`` seeds.

    Returns:
        ``(rows, run_rows, predictions, weights, tb_dirs)``: one comparison row per agent,
        one row per run, int ``[seeds, n]`` valid predictions per agent, mean weights per
        body part per agent, and the TensorBoard folders of each agent's runs.
    """
    rows, run_rows = [], []
    predictions: dict[str, np.ndarray] = {}
    weights: dict[str, pd.DataFrame] = {}
    tb_dirs: dict[str, list[Path]] = {}
    for algo in cfg.algos:
        evals, algo_rows = [], []
        for seed in range(cfg.seeds):
            run_dir = out / "agents" / f"{algo}_{seed}"
            print(f"[compare] {algo} seed {seed} ...", flush=True)
            trained = train_agent(algo, env_config, run_dir,
                                  total_timesteps=cfg.total_timesteps, seed=seed,
                                  progress=cfg.progress)
            ev = evaluate_policy(trained.policy, env_config, "valid", name=algo,
                                 n_bootstrap=cfg.n_bootstrap, seed=seed)
            evals.append(ev)
            algo_rows.append(summary_row(ev, seed=seed, run_dir=str(run_dir),
                                         env_steps=trained.env_steps,
                                         wall_time=trained.wall_time))
            tb_dirs.setdefault(algo, []).append(run_dir / "tb")
        run_rows += algo_rows
        row, mean_w = aggregate_agent(algo, evals, algo_rows, cfg.n_bootstrap)
        rows.append(row)
        predictions[algo] = np.stack([ev.predictions for ev in evals])
        if mean_w is not None:
            weights[algo] = mean_w
    return rows, run_rows, predictions, weights, tb_dirs


def write_outputs(out: Path, frame: pd.DataFrame, run_rows: list[dict[str, Any]],
                  source: Path, n_valid: int, cfg: CompareConfig,
                  weights: dict[str, pd.DataFrame], tb_dirs: dict[str, list[Path]]) -> None:
    """Write ``comparison.csv``, ``runs.csv``, ``comparison.md`` and the two plots."""
    atomic_write_bytes(out / "comparison.csv", frame.to_csv(index=False).encode())
    atomic_write_bytes(out / "runs.csv", pd.DataFrame(run_rows).to_csv(index=False).encode())
    atomic_write_bytes(out / "comparison.md",
                       to_markdown(frame, source, n_valid, cfg.seeds).encode())
    plot_reward_curves(tb_dirs, out / "reward_curves.png")
    plot_weight_heatmaps(weights, out / "weights_heatmap.png")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    cfg = parse_config(CompareConfig, argv)
    for algo in cfg.algos:
        try:
            get_algo(algo)
        except KeyError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    if cfg.seeds < 1:
        print("error: --seeds must be >= 1", file=sys.stderr)
        return 2
    try:
        table, source = resolve_table(cfg.logits)
    except (MissingLogitsError, LogitsTableError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = cfg.out or Path("runs/compare") / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    cfg.logits = source
    save_config(cfg, out / "config.json", {"splits": SPLIT_USE})
    env_config = WeightingConfig.from_options(cfg, logits=table)
    rows, run_rows, predictions, weights, tb_dirs = run_agents(cfg, env_config, out)
    labels = None
    for baseline, ev in baseline_evaluations(env_config, cfg.n_bootstrap):
        rows.append(baseline_row(ev, kind_of(baseline)))
        predictions[ev.name] = ev.predictions[None]
        labels = ev.labels
        if ev.mean_weights is not None:
            weights[ev.name] = ev.mean_weights
    add_differences(rows, predictions, labels, cfg.n_bootstrap)
    frame = pd.DataFrame(rows)
    n_valid = len(table.select(split="valid"))
    write_outputs(out, frame, run_rows, source, n_valid, cfg, weights, tb_dirs)
    show = frame[["method", "kind", "accuracy", "accuracy_ci_low", "accuracy_ci_high",
                  "kappa", "kappa_ci_low", "kappa_ci_high", "wall_time", "env_steps"]]
    print(f"valid split, {n_valid} studies (SYNTHETIC data; nothing clinical):")
    print(show.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {out}/comparison.md, comparison.csv, runs.csv, reward_curves.png, "
          "weights_heatmap.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
