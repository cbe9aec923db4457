"""Every weighting agent (over seeds) and every baseline on one table: the benchmark run on it.

``python -m experiments.compare [--logits PATH] [--seeds N] [--out DIR] [--algos ...]
[--total-timesteps N]``

The table is ``--logits``, else the newest ``runs/pretrain/*/logits.parquet``, else reference
table 0 (:func:`experiments.common.logits_source.resolve_table`). Everything else is the
benchmark's (:mod:`experiments.common.benchmark.pipeline`): each agent of ``--algos`` trains
``--seeds`` times on ``tune`` (its curve evaluated on ``tune``) with the benchmark's budgets
(``--steps ALGO=N``, or ``--total-timesteps N`` for every agent), every baseline is fitted on
``tune``, every run answers each ``valid`` study once; the statistics resample the seeds and
the valid studies jointly (:mod:`mura_env.evaluation.statistics`). Nothing is tuned on valid.

Writes into ``--out`` (default ``runs/compare/<time>``), all at once: ``benchmark.md``,
``benchmark.csv`` (one row per method, every figure with its 95% interval, differences from
uniform and stacking, probability of improvement; the seed-level intervals are NaN with one
table), ``per_table.csv`` (one row per method), ``runs.csv`` (one row per seed x method),
``curves.csv`` (the agents' tune curves), ``config.json``, the PNG plots and
``agents/table0_<algo>_seed<s>/`` (the agent runs, see ``train_agent``).

Synthetic data: results on it say nothing about clinical performance.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from experiments.common.benchmark.config import BenchmarkConfig, resolve
from experiments.common.benchmark.pipeline import run_and_show
from experiments.common.job_pool import new_output_folder
from experiments.common.logits_source import resolve_table
from experiments.common.options import LogitsOptions
from experiments.common.tables import INPUT_ERRORS, TableSource, valid_sets
from mura_env.common.config_cli import parse_config

#: The heading of compare's ``benchmark.md``.
TITLE = "Weighting agents vs. baselines on one table"


@dataclass
class CompareConfig(LogitsOptions, BenchmarkConfig):
    """Compare every weighting agent (over seeds) with every baseline on one logits table."""

    tables: tuple[Path, ...] | None = field(default=None, metadata={
        "help": "refused: compare runs on one table, --logits (experiments.benchmark takes "
                "several)"})
    out: Path | None = field(default=None, metadata={
        "help": "output folder, must not exist yet (default runs/compare/<time>)"})
    total_timesteps: int | None = field(default=None, metadata={
        "help": "env steps per run of every agent (the same as --steps ALGO=N for each); "
                "default: the benchmark's budgets"})


def resolve_compare(cfg: CompareConfig) -> CompareConfig:
    """``cfg`` resolved as the benchmark's (:func:`resolve`: ``--quick``, checks), then
    ``--total-timesteps`` written as a ``--steps`` entry for every agent of ``--algos``.

    Raises:
        ValueError: ``--tables`` given (compare takes one table, ``--logits``), the budget
            given twice or below 1, or :func:`resolve`'s errors. KeyError: an unknown agent.
    """
    if cfg.tables:
        raise ValueError("experiments.compare runs on one table: give it with --logits "
                         "(experiments.benchmark takes --tables).")
    if cfg.total_timesteps is not None:
        if cfg.steps:
            raise ValueError("give the budget once: --total-timesteps or --steps, not both.")
        if cfg.total_timesteps < 1:
            raise ValueError("--total-timesteps must be at least 1.")
    cfg = resolve(cfg)
    if cfg.total_timesteps is not None:
        cfg = replace(cfg, steps=tuple(f"{a}={cfg.total_timesteps}" for a in cfg.algos))
    return cfg


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2: bad settings or table)."""
    started = time.perf_counter()
    try:
        cfg = resolve_compare(parse_config(CompareConfig, argv))
        table, path = resolve_table(cfg.logits)
        sources = [TableSource(str(path), table)]
        valid = valid_sets(sources)
        out = new_output_folder(cfg.out, "runs/compare")
    except INPUT_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return run_and_show(replace(cfg, out=out, logits=path), sources, valid, started, TITLE)

if __name__ == "__main__":
    sys.exit(main())
