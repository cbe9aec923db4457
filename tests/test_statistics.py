"""mura_env.statistics: percentile intervals, the joint bootstrap over runs and studies, paired
differences, the probability of improvement and the stacking of runs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from rliable import metrics as rliable_metrics

from mura_env.constants import BODY_PARTS
from mura_env.statistics import (
    MethodRuns,
    difference,
    draw_resamples,
    interval,
    method_runs,
    pooled,
    probability_of_improvement,
    run_metrics,
    summarise,
)


def test_interval_is_the_2_5th_and_97_5th_percentiles() -> None:
    draws = np.random.default_rng(0).permutation(1001).astype(float)  # 0, 1, ..., 1000
    low, high = interval(draws)
    assert (low, high) == pytest.approx((25.0, 975.0), rel=1e-12)
    normal = np.random.default_rng(1).normal(size=997)
    assert interval(normal) == pytest.approx(tuple(np.percentile(normal, [2.5, 97.5])),
                                             rel=1e-12)
    assert interval(draws, 0.9) == pytest.approx((50.0, 950.0), rel=1e-12)


def test_interval_leaves_out_draws_that_are_not_finite() -> None:
    draws = np.random.default_rng(2).permutation(1001).astype(float)
    with_gaps = np.concatenate([draws, [np.nan, np.inf, -np.inf]])
    assert interval(with_gaps) == interval(draws)
    assert np.isnan(interval(np.full(5, np.nan))).all()
    assert np.isnan(interval(np.zeros(0))).all()


def _method(name: str, predictions: np.ndarray, labels: np.ndarray) -> MethodRuns:
    prob = np.where(predictions == 1, 0.8, 0.2) + 0.01 * labels
    return MethodRuns(name, "agent", predictions.astype(np.int64), prob)


def test_summarise_reports_95_percent_percentile_intervals_of_the_pooled_draws() -> None:
    rng = np.random.default_rng(3)
    parts = np.array([BODY_PARTS[i % 7] for i in range(140)], dtype=object)
    labels = rng.integers(0, 2, 140)
    pred = np.where(rng.random((2, 3, 140)) < 0.7, labels, 1 - labels)
    method = _method("m", pred, labels)
    resample = draw_resamples(parts, 2, 3, 500, seed=4)
    row = summarise([method], labels, parts, resample, []).iloc[0]
    values = run_metrics(labels, parts, method, resample.counts)
    for key in ("accuracy", "kappa", "kappa_WRIST"):
        point, draws = pooled(values[key], resample)
        assert row[key] == point
        low, high = np.percentile(draws, [2.5, 97.5])
        assert (row[f"{key}_ci_low"], row[f"{key}_ci_high"]) == pytest.approx(
            (low, high), rel=1e-12)
    assert row["n_runs"] == 6


def test_studies_are_resampled_jointly_across_runs() -> None:
    rng = np.random.default_rng(0)
    parts = np.array([BODY_PARTS[i % 7] for i in range(140)], dtype=object)
    labels = rng.integers(0, 2, 140)
    right = rng.random(140) < 0.5
    # table 0 is right exactly where table 1 is wrong: whenever both tables are drawn once,
    # the mean accuracy over the two runs is 1/2 on any resample of the studies, but only if
    # both runs see the same resample.
    runs = np.stack([np.where(right, labels, 1 - labels), np.where(right, 1 - labels, labels)])
    method = _method("mirror", runs[:, None, :], labels)
    resample = draw_resamples(parts, 2, 1, 300, seed=1)
    _, draws = pooled(run_metrics(labels, parts, method, resample.counts)["accuracy"],
                      resample)
    both = np.sort(resample.tables, axis=1).tolist()
    one_each = np.array([b == [0, 1] for b in both])
    assert one_each.sum() > 50
    assert np.allclose(draws[one_each], 0.5)
    assert draws[~one_each].std() > 0.01


def test_paired_difference_of_a_copy_is_zero_and_of_a_near_copy_is_narrow() -> None:
    rng = np.random.default_rng(1)
    parts = np.array([BODY_PARTS[i % 7] for i in range(210)], dtype=object)
    labels = rng.integers(0, 2, 210)
    pred = np.where(rng.random((2, 3, 210)) < 0.75, labels, 1 - labels)
    worse = pred.copy()
    worse[:, :, 0] = 1 - labels[0]  # one study wrong where it may have been right
    methods = [_method("uniform", pred, labels), _method("copy", pred.copy(), labels),
               _method("worse", worse, labels)]
    frame = summarise(methods, labels, parts, draw_resamples(parts, 2, 3, 400, seed=0),
                      ["uniform"]).set_index("method")
    copy = frame.loc["copy"]
    assert copy[["accuracy_vs_uniform_ci_low", "accuracy_vs_uniform_ci_high"]].tolist() == [0, 0]
    width = frame.loc["worse", "accuracy_vs_uniform_ci_high"] - frame.loc[
        "worse", "accuracy_vs_uniform_ci_low"]
    assert width <= 4 / 210  # independent resamples would give about +-0.05


def test_stratified_counts_and_rliable_probability_of_improvement() -> None:
    parts = np.array([BODY_PARTS[i % 5] for i in range(103)], dtype=object)
    resample = draw_resamples(parts, 3, 2, 50, seed=3)
    for part in set(parts):
        assert (resample.counts[:, parts == part].sum(axis=1) == (parts == part).sum()).all()
    assert np.array_equal(resample.counts, draw_resamples(parts, 3, 2, 50, seed=3).counts)
    rng = np.random.default_rng(2)
    for shape_x, shape_y in (((3, 21), (1, 21)), ((4, 7), (3, 7)), ((2, 5), (2, 5))):
        x = rng.integers(0, 4, shape_x).astype(float)
        y = rng.integers(0, 4, shape_y).astype(float)
        assert np.isclose(probability_of_improvement(x, y),
                          rliable_metrics.probability_of_improvement(x, y))




def test_a_difference_is_taken_draw_by_draw() -> None:
    point, draws = difference((0.8, np.array([0.7, 0.9])), (0.75, np.array([0.72, 0.8])))
    assert point == pytest.approx(0.05)
    np.testing.assert_allclose(draws, [-0.02, 0.1])


@dataclass
class _Run:
    table: int
    seed: int
    method: str
    kind: str
    prediction: np.ndarray
    score: np.ndarray


def test_method_runs_stacks_every_table_and_seed_in_the_first_tables_order() -> None:
    orders = [np.arange(4), np.array([3, 2, 1, 0])]  # table 1 lists the studies backwards

    def run(table: int, seed: int, method: str, kind: str = "agent") -> _Run:
        prediction = np.array([table, seed, 1, 0]) if table == 0 else np.array([0, 1, seed, 1])
        return _Run(table, seed, method, kind, prediction, prediction / 10 + seed)

    runs = [run(t, s, "agent_a") for s in (1, 0) for t in (1, 0)]
    runs += [run(t, 0, "fixed", "baseline") for t in (0, 1)]
    stacked = method_runs(runs, orders, ("prediction", "score"))
    assert [m.name for m in stacked] == ["agent_a", "fixed"]
    agent, fixed = stacked
    assert agent.kind == "agent" and fixed.kind == "baseline"
    assert agent.predictions.shape == (2, 2, 4) and fixed.predictions.shape == (2, 1, 4)
    np.testing.assert_array_equal(agent.predictions[0, 1], [0, 1, 1, 0])  # table 0, seed 1
    np.testing.assert_array_equal(agent.predictions[1, 1], [1, 1, 1, 0])  # reordered
    np.testing.assert_allclose(agent.probabilities[1, 1], [1.1, 1.1, 1.1, 1.0])
    assert [m.name for m in method_runs(runs, orders, ("prediction", "score"),
                                        names=["fixed", "agent_a"])] == ["fixed", "agent_a"]
    with pytest.raises(KeyError):  # a missing (table, seed) run
        method_runs(runs[1:], orders, ("prediction", "score"))
