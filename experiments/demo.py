"""The main job on the built-in synthetic data (``make demo``).

Stage ``data``: generates the synthetic MURA-format data set if it is missing (kept when
already present), writes its contact sheet, reads it back with the MURA-v1.1 reader, makes the
patient-level train/tune split and prints the per-split, per-body-part summary. Outputs go to
``--out``: ``config.json`` (the resolved configuration), ``summary.csv`` and ``studies.csv``.

Stage ``pretrain``: ``python -m experiments.pretrain_backbones`` with its quick profile on the
same data, into ``--pretrain-out`` (default ``runs/pretrain/<time>``).

Synthetic data: results on it say nothing about clinical performance.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from experiments import pretrain_backbones
from mura_env.atomic import atomic_write_bytes
from mura_env.config_cli import parse_config, save_config
from mura_env.data import load_mura, summarize
from mura_env.synthetic import contact_sheet, generate


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
    stages: tuple[str, ...] = field(default=("data", "pretrain"),
                                    metadata={"help": "stages to run: data, pretrain"})
    pretrain_out: Path | None = field(default=None, metadata={
        "help": "pretraining run folder (default runs/pretrain/<time>)"})


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit status."""
    cfg = parse_config(DemoConfig, argv)
    unknown = set(cfg.stages) - {"data", "pretrain"}
    if unknown:
        raise SystemExit(f"unknown stage(s) {sorted(unknown)}; valid: data, pretrain")
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
    if "pretrain" in cfg.stages:
        argv_pre = ["--synthetic-dir", str(cfg.data_dir), "--scale", str(cfg.scale),
                    "--seed", str(cfg.seed), "--tune-fraction", str(cfg.tune_fraction)]
        if cfg.pretrain_out is not None:
            argv_pre += ["--out", str(cfg.pretrain_out)]
        return pretrain_backbones.main(argv_pre)
    return 0


if __name__ == "__main__":
    sys.exit(main())
