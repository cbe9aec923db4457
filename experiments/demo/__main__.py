"""The main job on the built-in synthetic data (``make demo``).

Stage ``data``: generates the synthetic MURA-format data set if it is missing (kept when
already present), writes its contact sheet, reads it back with the MURA-v1.1 reader, makes the
patient-level train/tune split and prints the per-split, per-body-part summary. Outputs go to
``--out``: ``config.json`` (the resolved configuration), ``summary.csv`` and ``studies.csv``.

Stage ``pretrain``: ``python -m experiments.pretrain_backbones`` with its quick profile on the
same data, into ``--pretrain-out`` (default ``runs/pretrain/<time>``).

Stage ``compare``: ``python -m experiments.compare`` (the benchmark's pipeline on one table) on
that run's logits table (or, without the pretrain stage, the newest one), every agent over
``--seeds`` seeds and every baseline, into ``--compare-out`` (default ``runs/compare/<time>``).

The pretrain and compare stages are a pipeline check: a small data set and one small run, whose
figures move with the machine. Stage ``headline`` prints the project's headline comparison, the
committed results of ``python -m experiments.benchmark`` on the shipped reference tables
(:data:`HEADLINE`); it does not rerun the benchmark, and says so.

Synthetic data: results on it say nothing about clinical performance.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from experiments.common.commands import run_command
from mura_env.common.atomic import atomic_write_bytes
from mura_env.common.config_cli import parse_config, save_config
from mura_env.data import load_mura, summarize
from mura_env.synthetic import contact_sheet, generate

STAGES = ("data", "pretrain", "compare", "headline")
#: The committed benchmark results the headline stage prints.
HEADLINE = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "benchmark.md"


@dataclass
class DemoConfig:
    """Run mura-rl's main job on the built-in synthetic MURA-format data."""

    data_dir: Path = field(default=Path("data/synthetic"),
                           metadata={"help": "where the synthetic MURA-v1.1/ lives"})
    scale: float = field(default=0.1, metadata={"help": "synthetic data size vs. real MURA"})
    seed: int = field(default=0, metadata={"help": "seed of the data and of the split"})
    tune_fraction: float = field(default=0.2,
                                 metadata={"help": "share of train patients moved to tune"})
    workers: int = field(default=os.cpu_count() or 1, metadata={"help": "generator processes"})
    out: Path = field(default=Path("runs/demo"), metadata={"help": "output folder"})
    stages: tuple[str, ...] = field(default=STAGES,
                                    metadata={"help": "stages to run: " + ", ".join(STAGES)})
    pretrain_out: Path | None = field(default=None, metadata={
        "help": "pretraining run folder (default runs/pretrain/<time>)"})
    pretrain_epochs: int = field(default=2, metadata={
        "help": "epochs per backbone in the pretrain stage (a pipeline check; the quick "
                "profile's own are 10-14)"})
    seeds: int = field(default=2, metadata={"help": "seeds per agent in the compare stage"})
    compare_timesteps: int = field(default=8192, metadata={
        "help": "env steps per agent run in the compare stage (a pipeline check, below the "
                "agents' tune plateaus)"})
    compare_out: Path | None = field(default=None, metadata={
        "help": "comparison folder, must not exist yet (default runs/compare/<time>)"})


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit status."""
    cfg = parse_config(DemoConfig, argv)
    unknown = set(cfg.stages) - set(STAGES)
    if unknown:
        raise SystemExit(f"unknown stage(s) {sorted(unknown)}; valid: {', '.join(STAGES)}")
    try:
        root = generate(cfg.data_dir, scale=cfg.scale, seed=cfg.seed, workers=cfg.workers)
        data = load_mura(cfg.data_dir, tune_fraction=cfg.tune_fraction, seed=cfg.seed)
    except (OSError, ValueError) as e:  # MuraFormatError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2
    sheet = cfg.data_dir / "preview.png"
    if not sheet.exists() or sheet.stat().st_mtime < (root / "SYNTHETIC.json").stat().st_mtime:
        contact_sheet(cfg.data_dir, sheet)
    cfg.out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, cfg.out / "config.json")
    table = summarize(data.studies)
    atomic_write_bytes(cfg.out / "summary.csv", table.to_csv(index=False).encode())
    atomic_write_bytes(cfg.out / "studies.csv", data.studies.to_csv(index=False).encode())
    print(f"SYNTHETIC MURA-format data at {root} (not real radiographs)")
    print(f"contact sheet: {sheet}")
    print(table.to_string(index=False))
    print(f"wrote {cfg.out}/config.json, summary.csv, studies.csv")
    logits_argv: list[str] = []
    if "pretrain" in cfg.stages:
        pre_out = cfg.pretrain_out or Path("runs/pretrain") / time.strftime("%Y%m%d-%H%M%S")
        argv_pre = ["--synthetic-dir", str(cfg.data_dir), "--scale", str(cfg.scale),
                    "--seed", str(cfg.seed), "--tune-fraction", str(cfg.tune_fraction),
                    "--epochs", str(cfg.pretrain_epochs), "--out", str(pre_out)]
        rc = run_command("experiments.pretrain_backbones", argv_pre)
        if rc:
            return rc
        logits_argv = ["--logits", str(pre_out / "logits.parquet")]
    if "compare" in cfg.stages:
        argv_cmp = [*logits_argv, "--seeds", str(cfg.seeds),
                    "--total-timesteps", str(cfg.compare_timesteps)]
        if cfg.compare_out is not None:
            argv_cmp += ["--out", str(cfg.compare_out)]
        print("\nPIPELINE CHECK: a small run on the demo's own backbones; its figures move with "
              "the machine and say little."
              + (" The headline comparison follows." if "headline" in cfg.stages else ""))
        rc = run_command("experiments.compare", argv_cmp)
        if rc:
            return rc
    if "headline" in cfg.stages:
        print_headline()
    return 0


def print_headline(path: Path = HEADLINE) -> None:
    """Print the headline of the committed benchmark results at ``path`` (markdown: everything
    before its first ``## `` section, i.e. the sizes, the method table and which intervals
    exclude zero), said to be committed results and not a rerun; a missing file says how to
    make it."""
    if not path.is_file():
        print(f"\nno committed benchmark results at {path}; make them with "
              "python -m experiments.benchmark")
        return
    print(f"\nHEADLINE (committed results of python -m experiments.benchmark on the shipped "
          f"reference tables, read from {path}; not rerun by the demo):\n")
    text = path.read_text()
    print(text.split("\n## ", 1)[0].rstrip())
    print(f"\n(the full results, per-body-part kappa and plots: {path.parent})")


if __name__ == "__main__":
    sys.exit(main())
