"""The benchmark report on one table (``experiments.compare``): the seed-level interval is not
defined there, and says so with a dash; on several tables it is shown beside the bootstrap's."""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.common.benchmark.report import UNDEFINED, seed_ci, to_markdown
from mura_env.constants import BODY_PARTS
from mura_env.evaluation.statistics import (
    MethodRuns,
    ValidSets,
    draw_resamples,
    method_metrics,
    summarise,
    summarise_tables,
)


def _report(n_tables: int) -> tuple[pd.DataFrame, str]:
    rng = np.random.default_rng(0)
    parts = np.array([BODY_PARTS[i % 7] for i in range(70)], dtype=object)
    labels = rng.integers(0, 2, 70)
    valid = ValidSets.shared(labels, parts, n_tables)
    methods = []
    for name, kind, seeds, quality in (("ppo", "agent", 2, 0.8), ("uniform", "baseline", 1, 0.7),
                                       ("stacking", "baseline", 1, 0.75)):
        pred = np.where(rng.random((n_tables, seeds, 70)) < quality, labels, 1 - labels)
        methods.append(MethodRuns(name, kind, pred, pred + 0.1 * rng.random(pred.shape)))
    resample = draw_resamples(valid, 2, 50, seed=0)
    metrics = method_metrics(methods, valid, resample)
    frame = summarise(methods, valid, resample, ["uniform", "stacking"], metrics=metrics)
    frame["train_time"], frame["env_steps"] = 0.0, 0
    per_table = summarise_tables(methods, valid, resample, ["uniform", "stacking"],
                                 metrics=metrics)
    per_table.insert(3, "table_label", [f"table_{t}.parquet" for t in per_table["table"]])
    per_table.insert(4, "table_seed", per_table["table"])
    per_table.insert(5, "data_seed", None)
    info = {"tables": [f"table_{t}.parquet" for t in range(n_tables)], "seeds": 2,
            "n_tune": [100] * n_tables, "n_valid": 70, "n_valid_abnormal": int(labels.sum()),
            "study_sets": [0] * n_tables, "budgets": {"ppo": 1024}, "budget_note": "",
            "tune_gain_check": "", "n_bootstrap": 50, "design": "design.",
            "timings": {"total": 1.0}, "machine": "here"}
    return frame, to_markdown(frame, info, ["uniform", "stacking"], "T", per_table)


def test_one_table_shows_a_dash_for_the_table_level_interval() -> None:
    frame, text = _report(1)
    assert frame["accuracy_seed_ci_low"].isna().all()
    assert frame["accuracy_vs_uniform_seed_ci_high"].isna().all()
    row = frame.iloc[0]
    assert seed_ci(row, "accuracy") == UNDEFINED == "\u2014"
    ppo_line = next(line for line in text.splitlines() if line.startswith("| ppo | agent |"))
    cells = [c.strip() for c in ppo_line.strip("|").split("|")]
    assert cells[3] == UNDEFINED and cells[6] == UNDEFINED  # accuracy, accuracy vs uniform
    assert cells[2].startswith(f"{row['accuracy']:.3f} [")
    assert "1 table (" in text and "## Per table" in text and "| t0 (seed 0) |" in text


def test_several_tables_show_both_intervals_side_by_side() -> None:
    frame, text = _report(3)
    row = frame.set_index("method").loc["ppo"]
    ppo_line = next(line for line in text.splitlines() if line.startswith("| ppo | agent |"))
    cells = [c.strip() for c in ppo_line.strip("|").split("|")]
    assert cells[3] == f"[{row['accuracy_seed_ci_low']:.3f}, {row['accuracy_seed_ci_high']:.3f}]"
    assert cells[6] == (f"[{100 * row['accuracy_vs_uniform_seed_ci_low']:+.1f}, "
                        f"{100 * row['accuracy_vs_uniform_seed_ci_high']:+.1f}]")
    assert "the same in every table" in text
    header = next(line for line in text.splitlines() if line.startswith("| method | t0"))
    assert header == "| method | t0 (seed 0) | t1 (seed 1) | t2 (seed 2) |"
