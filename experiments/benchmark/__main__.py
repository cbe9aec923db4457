"""The headline benchmark: every weighting agent and every baseline over every reference table.

``python -m experiments.benchmark [--tables PATH ...] [--seeds 3] [--out DIR] [--quick]``

For each table (default: every shipped reference table, :mod:`mura_env.logits.reference`), each
agent of ``--algos`` trains ``--seeds`` times (seeds 0..S-1) on ``tune`` with the budget of
its ``--<algo>-steps`` field, its training curve evaluated on ``tune`` only; every baseline is
fitted on ``tune`` (once per table, or once per seed for the seeded ones); then every run
answers each ``valid`` study once. Valid is read for those final answers only. Tables of one
synthetic data draw share their valid studies; tables of different draws have as many, other
ones (:func:`experiments.common.tables.valid_sets`). Statistics:
:mod:`mura_env.evaluation.statistics`
(backbone seeds and data draws resampled as crossed factors, agent seeds within each table
and distinct studies within each data draw, jointly; a seed-level Student-t interval over the
backbone seeds' means; rliable's probability of improvement); settings,
budgets and jobs: :mod:`experiments.common.benchmark.config`; the run:
:mod:`experiments.common.benchmark.pipeline`; report:
:mod:`experiments.common.benchmark.report`.

Writes into ``--out`` (default ``runs/benchmark/<time>``), all at once (everything is made in
a hidden folder beside it, renamed at the end; a failure leaves nothing): ``benchmark.md``,
``benchmark.csv`` (one row per method, every figure with its 95% interval and, for the main
figures and differences, the seed-level interval), ``per_table.csv`` (one row per method x
table: accuracy, kappa and the differences from uniform and stacking with 95% intervals over
that table's seeds and studies; the table's label, backbone seed and data seed), ``runs.csv``
(valid scores per table x seed x method), ``curves.csv`` (the agents' tune curves),
``config.json`` (resolved settings, the split each step used, sizes, wall times), the PNG
plots and ``agents/`` (every agent run folder).

Agent budgets: :data:`~experiments.common.benchmark.config.BUDGET_RULE` says how they were
fixed (from tune curves only). The jobs run in ``--workers`` processes (default 2, one torch
thread each); every job is seeded, so the numbers do not depend on the number of workers.
``--quick`` is a smoke test of the whole pipeline with tiny budgets, not a result.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace

from experiments.common.benchmark.config import BenchmarkConfig, resolve
from experiments.common.benchmark.pipeline import run_and_show
from experiments.common.job_pool import new_output_folder
from experiments.common.tables import INPUT_ERRORS, load_tables, valid_sets
from mura_env.common.config_cli import parse_config


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2: bad settings or tables)."""
    started = time.perf_counter()
    try:
        cfg = resolve(parse_config(BenchmarkConfig, argv))
        sources = load_tables(cfg.tables)
        valid = valid_sets(sources)
        out = new_output_folder(cfg.out, "runs/benchmark")
    except INPUT_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return run_and_show(replace(cfg, out=out), sources, valid, started)

if __name__ == "__main__":
    sys.exit(main())
