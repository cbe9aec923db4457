"""``python -m experiments.part_attention``: does an attention head of its own for SHOULDER and
ELBOW help? The part-attention ResNet against the plain attention ResNet at an equal budget.

For each backbone seed, one pretraining run (``python -m experiments.pretrain_backbones``)
trains both models with the same settings, at the reference profile's scale: the same
patient-level subset of ``--train-studies`` train studies of the reference data draw (no
focus), the same input size, epochs, batch size and learning rate; both score the draw's tune
and valid studies. A finished run folder is reused, so an interrupted study continues.

Scored once on ``valid`` (nothing is fitted here): each model's kappa on SHOULDER, on ELBOW and
overall, and the paired differences part-attention minus plain, with the joint-bootstrap
interval over seeds and studies and the Student-t interval over the seeds
(:mod:`experiments.common.paired`). Writes ``part_attention.md``, ``scores.csv``,
``differences.csv`` and ``config.json`` into ``--out``.

Synthetic data: results on it say nothing about clinical performance.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from backbones.runs import RUN_LOGITS
from experiments.common.commands import run_command
from experiments.common.paired import (
    method_from_answers,
    paired_report,
    points,
    shared_valid,
    write_results,
)
from experiments.common.provenance import machine_description
from mura_env.common.config_cli import parse_config
from mura_env.evaluation.statistics import coverage_note
from mura_env.logits import LogitsTable

PLAIN, PARTS = "attention_resnet", "attention_resnet_parts"
#: The figures compared.
FIGURES = ("kappa_SHOULDER", "kappa_ELBOW", "kappa", "accuracy")


@dataclass
class PartAttentionConfig:
    """Part-attention against plain attention at an equal budget (see the module docstring)."""

    seeds: tuple[int, ...] = field(default=(0, 1, 2), metadata={"help": "backbone seeds"})
    epochs: int = field(default=6, metadata={"help": "epochs of both models"})
    image_size: int = field(default=64, metadata={"help": "input size of both models"})
    train_studies: int = field(default=2500, metadata={
        "help": "train studies both models train on (a patient-level subset)"})
    scale: float = field(default=1.0, metadata={"help": "synthetic data size"})
    synthetic_dir: Path = field(default=Path("data/synthetic_full"), metadata={
        "help": "the synthetic draw's folder (generated when missing)"})
    cache_dir: Path = field(default=Path("data/cache"), metadata={"help": "image decode cache"})
    runs: Path = field(default=Path("runs/part_attention"), metadata={
        "help": "where the pretraining runs go (one per seed, reused when finished)"})
    out: Path = field(default=Path("benchmarks/results/part_attention"), metadata={
        "help": "results folder (replaced)"})
    n_bootstrap: int = field(default=2000, metadata={"help": "bootstrap draws"})
    progress: bool = field(default=False, metadata={"help": "show progress bars"})


def pretrain_argv(cfg: PartAttentionConfig, seed: int, folder: Path) -> list[str]:
    """The ``experiments.pretrain_backbones`` arguments of seed ``seed``'s run."""
    argv = ["--profile", "reference", "--models", PLAIN, PARTS, "--focus", "", "",
            "--image-size", str(cfg.image_size), "--epochs", str(cfg.epochs),
            "--train-studies", str(cfg.train_studies), "--scale", str(cfg.scale),
            "--seed", str(seed), "--score-data-seeds", "0", "--out", str(folder),
            "--synthetic-dir", str(cfg.synthetic_dir), "--cache-dir", str(cfg.cache_dir)]
    return argv + ([] if cfg.progress else ["--no-progress"])


def run_seed(cfg: PartAttentionConfig, seed: int) -> tuple[LogitsTable, float]:
    """Seed ``seed``'s logits table (pretraining it unless its run folder is finished) and
    the run's wall seconds."""
    folder = cfg.runs / f"seed{seed}"
    if not (folder / RUN_LOGITS).is_file():
        argv = pretrain_argv(cfg, seed, folder)
        if (folder / "config.json").is_file():
            argv.append("--resume")
        print(f"seed {seed}: python -m experiments.pretrain_backbones {shlex.join(argv)}",
              flush=True)
        if run_command("experiments.pretrain_backbones", argv) != 0:
            raise RuntimeError(f"pretraining seed {seed} into {folder} failed")
    report = json.loads((folder / "diversity.json").read_text())
    return LogitsTable.load(folder / RUN_LOGITS), float(report["wall_seconds"])


def compare(tables: list[LogitsTable], n_bootstrap: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scores and differences (:func:`experiments.common.paired.paired_report`) of the two
    models on the valid studies of ``tables`` (one per seed, the same studies)."""
    sets = shared_valid(tables)
    valid = [t.studies["split"].to_numpy() == "valid" for t in tables]
    methods = []
    for name in (PLAIN, PARTS):
        p = np.stack([t.abnormal_probabilities()[rows, list(t.model_names).index(name)]
                      for t, rows in zip(tables, valid, strict=True)])[:, None, :]
        methods.append(method_from_answers(name, (p > 0.5).astype(np.int64), p))
    return paired_report(methods, sets, [(PARTS, PLAIN)], FIGURES, n_bootstrap)


def report_markdown(cfg: PartAttentionConfig, scores: pd.DataFrame, diffs: pd.DataFrame,
                    seconds: list[float]) -> str:
    """The study's report: scores and paired differences in points, with both intervals."""
    lines = [f"# Part attention against plain attention ({len(cfg.seeds)} backbone seeds, "
             "valid)", "",
             f"Both models: {cfg.train_studies} train studies (no focus), {cfg.image_size} px, "
             f"{cfg.epochs} epochs, scale-{cfg.scale} synthetic draw 0; scored once on valid. "
             "Kappa and accuracy in points (x 100), mean over seeds, joint-bootstrap 95% CI, "
             "then the Student-t 95% CI over the seeds.", "",
             "| model | " + " | ".join(FIGURES) + " |", "|---" * (len(FIGURES) + 1) + "|"]
    for name in (PLAIN, PARTS):
        cells = []
        for key in FIGURES:
            r = scores[(scores["method"] == name) & (scores["figure"] == key)].iloc[0]
            cells.append(points(r["value"], r["ci_low"], r["ci_high"]))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| part-attention - plain | difference, joint 95% CI | seeds' t 95% CI | "
              "per seed |", "|---|---|---|---|"]
    for _, r in diffs.iterrows():
        per_seed = ", ".join(f"{100 * float(v):+.1f}" for v in str(r["per_table"]).split(";"))
        lines.append(f"| {r['figure']} | "
                     f"{points(r['difference'], r['ci_low'], r['ci_high'], True)} | "
                     f"[{100 * r['seed_ci_low']:+.1f}, {100 * r['seed_ci_high']:+.1f}] "
                     f"| {per_seed} |")
    lines += ["", "Pretraining runs (both models and their logits): "
              + ", ".join(f"{s:.0f} s" for s in seconds) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the study; returns the exit status."""
    cfg = parse_config(PartAttentionConfig, argv, __doc__)
    started = time.perf_counter()
    results = [run_seed(cfg, seed) for seed in cfg.seeds]
    tables = [t for t, _ in results]
    scores, diffs = compare(tables, cfg.n_bootstrap)
    valid = shared_valid(tables)
    text = (report_markdown(cfg, scores, diffs, [s for _, s in results]) + "\n"
            + coverage_note(valid.n_tables, valid.n_seeds, valid.n_sets) + "\n")
    write_results(cfg.out, {"part_attention.md": text, "scores.csv": scores.to_csv(index=False),
                            "differences.csv": diffs.to_csv(index=False)}, cfg, {
        "pretrain_commands": ["python -m experiments.pretrain_backbones "
                              + shlex.join(pretrain_argv(cfg, s, cfg.runs / f"seed{s}"))
                              for s in cfg.seeds],
        "machine": machine_description("cpu"),
        "seconds": round(time.perf_counter() - started, 1)})
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
