"""Command line of the synthetic data set generator.

    python -m experiments.synthetic --out DIR [--scale S] [--seed N] [--workers N] [--preview]
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from mura_env.common.config_cli import parse_config
from mura_env.synthetic.dataset import generate, read_manifest
from mura_env.synthetic.preview import contact_sheet


@dataclass
class SyntheticConfig:
    """Generate a synthetic MURA-format data set (not real radiographs)."""

    out: Path = field(metadata={"help": "folder to write MURA-v1.1/ into"})
    scale: float = field(default=1.0, metadata={"help": "size relative to the real MURA-v1.1"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    workers: int = field(default=os.cpu_count() or 1, metadata={"help": "worker processes"})
    preview: bool = field(default=False,
                          metadata={"help": "also write OUT/preview.png, a contact sheet"})
    overwrite: bool = field(default=False,
                            metadata={"help": "replace a synthetic data set made with other "
                                              "settings"})


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point.

    Args:
        argv: the arguments (default ``sys.argv[1:]``), the fields of :class:`SyntheticConfig`.

    Returns:
        The exit status: 0, or 2 when the data set could not be written.
    """
    cfg = parse_config(SyntheticConfig, argv)
    start = time.perf_counter()
    try:
        root = generate(cfg.out, cfg.scale, cfg.seed, cfg.workers, cfg.overwrite)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    manifest = read_manifest(cfg.out)
    print(f"{root}: {manifest['n_studies']} studies, {manifest['n_images']} images "
          f"(synthetic, scale={cfg.scale}, seed={cfg.seed}) in {time.perf_counter() - start:.1f} s")
    if cfg.preview:
        print(f"contact sheet: {contact_sheet(cfg.out, Path(cfg.out) / 'preview.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
