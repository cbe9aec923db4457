"""mura_env.evaluation.statistics: percentile intervals, the joint bootstrap over the design
(backbone seeds crossed with data draws, agent seeds nested, distinct studies shared within a
draw), its invariances (a copy of a table, a study shown twice), paired differences, the
seed-level t interval, per-table figures, the probability of improvement and the stacking of
runs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from rliable import metrics as rliable_metrics
from scipy import stats as scipy_stats

from mura_env.constants import BODY_PARTS
from mura_env.evaluation.resampled_metrics import weighted_metrics
from mura_env.evaluation.statistics import (
    MethodRuns,
    ValidSets,
    difference,
    draw_resamples,
    interval,
    method_metrics,
    method_runs,
    pooled,
    probability_of_improvement,
    run_metrics,
    summarise,
    summarise_tables,
    t_interval,
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
    valid = ValidSets.shared(labels, parts, 2)
    resample = draw_resamples(valid, 3, 500, seed=4)
    row = summarise([method], valid, resample, []).iloc[0]
    values = run_metrics(valid, method, resample)
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
    valid = ValidSets.shared(labels, parts, 2)
    resample = draw_resamples(valid, 1, 300, seed=1)
    _, draws = pooled(run_metrics(valid, method, resample)["accuracy"], resample)
    both = np.sort(resample.seed_slots, axis=1).tolist()
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
    valid = ValidSets.shared(labels, parts, 2)
    frame = summarise(methods, valid, draw_resamples(valid, 3, 400, seed=0),
                      ["uniform"]).set_index("method")
    copy = frame.loc["copy"]
    assert copy[["accuracy_vs_uniform_ci_low", "accuracy_vs_uniform_ci_high"]].tolist() == [0, 0]
    width = frame.loc["worse", "accuracy_vs_uniform_ci_high"] - frame.loc[
        "worse", "accuracy_vs_uniform_ci_low"]
    assert width <= 4 / 210  # independent resamples would give about +-0.05


def test_stratified_counts_and_rliable_probability_of_improvement() -> None:
    parts = np.array([BODY_PARTS[i % 5] for i in range(103)], dtype=object)
    valid = ValidSets.shared(np.zeros(103), parts, 3)
    resample = draw_resamples(valid, 2, 50, seed=3)
    assert resample.counts.shape == (50, 1, 103)
    for part in set(parts):
        assert (resample.counts[:, 0, parts == part].sum(axis=1) == (parts == part).sum()).all()
    assert np.array_equal(resample.counts, draw_resamples(valid, 2, 50, seed=3).counts)
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


# --- tables from several data draws, the seed-level interval, per-table figures ---------


def _two_draws(n: int = 70, seed: int = 5) -> ValidSets:
    """Four tables, backbone seeds 0 and 1 crossed with data draws 0 and 1: tables 0 and 2
    from draw 0, 1 and 3 from draw 1 (other labels, other body part order, the same size and
    per-part counts); tables 0 and 1 from seed 0, 2 and 3 from seed 1."""
    rng = np.random.default_rng(seed)
    parts0 = np.array([BODY_PARTS[i % 7] for i in range(n)], dtype=object)
    parts1 = rng.permutation(parts0)
    labels0, labels1 = rng.integers(0, 2, n), rng.integers(0, 2, n)
    return ValidSets(np.stack([labels0, labels1, labels0, labels1]),
                     np.stack([parts0, parts1, parts0, parts1]), np.array([0, 1, 0, 1]),
                     backbone_seed=np.array([0, 0, 1, 1]))


def test_a_draw_averages_the_drawn_cells_of_backbone_seed_x_data_draw() -> None:
    # 3 backbone seeds x 2 data draws, one table per cell; every figure written out draw by
    # draw from the resample's slots, the agent seeds of each slot pair and the study counts
    rng = np.random.default_rng(11)
    n = 63
    parts = np.array([BODY_PARTS[i % 7] for i in range(n)], dtype=object)
    labels = [rng.integers(0, 2, n), rng.integers(0, 2, n)]
    cells = [(u, g) for u in range(3) for g in range(2)]
    valid = ValidSets(np.stack([labels[g] for _, g in cells]), np.tile(parts, (6, 1)),
                      np.array([g for _, g in cells]),
                      backbone_seed=np.array([10 * u for u, _ in cells]))
    assert (valid.n_seeds, valid.n_sets, valid.seed_unit.tolist()) == (3, 2, [0, 0, 1, 1, 2, 2])
    resample = draw_resamples(valid, 2, 200, seed=9)
    assert resample.seed_slots.shape == (200, 3) and resample.draw_slots.shape == (200, 2)
    assert resample.seeds.shape == (200, 3, 2, 2)
    pred = np.where(rng.random((6, 2, n)) < 0.7, valid.labels[:, None, :],
                    1 - valid.labels[:, None, :])
    method = _method("m", pred, valid.labels[:, None, :])
    correct = (pred == valid.labels[:, None, :]).astype(float)
    point, draws = pooled(run_metrics(valid, method, resample)["accuracy"], resample)
    table = {cell: t for t, cell in enumerate(cells)}
    expected = []
    for b in range(200):
        values = []
        for i, u in enumerate(resample.seed_slots[b]):
            for j, g in enumerate(resample.draw_slots[b]):
                t = table[int(u), int(g)]
                values.append(np.mean([correct[t, s] @ resample.counts[b, g] / n
                                       for s in resample.seeds[b, i, j]]))
        expected.append(np.mean(values))
    np.testing.assert_allclose(draws, expected, rtol=1e-12)
    assert point == pytest.approx(correct.mean(), rel=1e-12)
    # both factors are resampled: some draws repeat a seed, some repeat a data draw
    assert (np.ptp(resample.seed_slots, axis=1) < 2).any()
    assert (resample.draw_slots[:, 0] == resample.draw_slots[:, 1]).any()


def test_an_exact_copy_of_a_table_leaves_every_interval_unchanged() -> None:
    rng = np.random.default_rng(21)
    n = 70
    valid = _two_draws(n)
    agent = np.where(rng.random((4, 3, n)) < 0.75, valid.labels[:, None, :],
                     1 - valid.labels[:, None, :])
    fixed = np.where(rng.random((4, 1, n)) < 0.7, valid.labels[:, None, :],
                     1 - valid.labels[:, None, :])

    def frames(tables: list[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
        design = ValidSets(valid.labels[tables], valid.body_parts[tables],
                           valid.study_set[tables], backbone_seed=valid.backbone_seed[tables])
        methods = [MethodRuns("agent", "agent", agent[tables], agent[tables] + 0.1),
                   MethodRuns("fixed", "baseline", fixed[tables], fixed[tables] + 0.2)]
        resample = draw_resamples(design, 3, 300, seed=4)
        return (summarise(methods, design, resample, ["fixed"]),
                summarise_tables(methods, design, resample, ["fixed"]))

    once, once_tables = frames([0, 1, 2, 3])
    twice, twice_tables = frames([0, 1, 2, 3, 2])  # table 2 again: same seed, same draw
    columns = [c for c in once if c not in ("method", "kind", "n_runs")]
    assert any(c.endswith("_seed_ci_low") for c in columns)
    pd.testing.assert_frame_equal(once[columns], twice[columns], rtol=1e-12)
    pd.testing.assert_frame_equal(once_tables, twice_tables[twice_tables["table"] < 4]
                                  .reset_index(drop=True), rtol=1e-12)


def test_a_cell_whose_shifts_repeat_studies_gets_the_interval_of_its_distinct_studies() -> None:
    rng = np.random.default_rng(22)
    n = 84
    parts = np.array([BODY_PARTS[i % 7] for i in range(n)], dtype=object)
    labels = rng.integers(0, 2, n)
    pred = np.where(rng.random((1, 2, n)) < 0.75, labels, 1 - labels)
    ref = np.where(rng.random((1, 1, n)) < 0.7, labels, 1 - labels)
    shown = rng.permutation(np.tile(np.arange(n), 2))  # every study shown twice, shuffled

    def summary(positions: np.ndarray, ids: np.ndarray | None) -> pd.Series:
        design = ValidSets(labels[positions][None], parts[positions][None],
                           np.zeros(1, dtype=np.int64),
                           study_ids=None if ids is None else ids[None])
        methods = [MethodRuns("agent", "agent", pred[..., positions],
                              pred[..., positions].astype(float)),
                   MethodRuns("rule", "baseline", ref[..., positions],
                              ref[..., positions].astype(float))]
        return summarise(methods, design, draw_resamples(design, 2, 400, seed=5),
                         ["rule"]).set_index("method").loc["agent"]

    distinct = summary(np.arange(n), None)
    repeated = summary(shown, shown)  # positions named by their study
    as_if_independent = summary(shown, None)  # each position taken for its own study
    for key in ("accuracy", "kappa", "accuracy_vs_rule"):
        for end in ("", "_ci_low", "_ci_high"):
            assert repeated[key + end] == pytest.approx(distinct[key + end], rel=1e-9)
    width = lambda row: row["accuracy_vs_rule_ci_high"] - row["accuracy_vs_rule_ci_low"]  # noqa: E731
    assert width(as_if_independent) < 0.85 * width(distinct)


def test_valid_sets_names_studies_within_a_set_and_checks_them() -> None:
    parts = np.array(["HAND", "WRIST", "HAND"], dtype=object)
    valid = ValidSets(np.array([[1, 0, 1], [0, 1, 0]]), np.stack([parts, parts[[1, 0, 1]]]),
                      np.array([0, 0]), study_ids=np.array([["a", "b", "a"], ["b", "a", "b"]]))
    assert valid.study_index.tolist() == [[0, 1, 0], [1, 0, 1]]
    assert valid.set_parts[0].tolist() == ["HAND", "WRIST"]
    resample = draw_resamples(valid, 1, 20, seed=0)
    np.testing.assert_array_equal(resample.table_counts(1), resample.counts[:, 0][:, [1, 0, 1]])
    with pytest.raises(ValueError, match="more than one body part"):
        ValidSets(np.zeros((1, 2)), np.array([["HAND", "WRIST"]], dtype=object), np.zeros(1),
                  study_ids=np.array([["a", "a"]]))
    with pytest.raises(ValueError, match="more than one label"):
        ValidSets(np.array([[0, 1]]), np.array([["HAND", "HAND"]], dtype=object), np.zeros(1),
                  study_ids=np.array([["a", "a"]]))


def _old_draw_resamples(body_parts: np.ndarray, n_tables: int, n_seeds: int,
                        n_bootstrap: int, seed: int) -> tuple[np.ndarray, ...]:
    """The bootstrap over tables, their seeds and one set of shared studies, written out."""
    rng = np.random.default_rng(seed)
    parts = np.asarray(body_parts, dtype=object)
    counts = np.zeros((n_bootstrap, len(parts)))
    offsets = (np.arange(n_bootstrap) * len(parts))[:, None]
    for part in BODY_PARTS:
        rows = np.flatnonzero(parts == part)
        if len(rows):
            idx = rows[rng.integers(0, len(rows), size=(n_bootstrap, len(rows)))]
            counts += np.bincount((idx + offsets).ravel(),
                                  minlength=counts.size).reshape(counts.shape)
    tables = rng.integers(0, n_tables, size=(n_bootstrap, n_tables))
    seeds = rng.integers(0, n_seeds, size=(n_bootstrap, n_tables, n_seeds))
    return counts, tables, seeds


def test_one_draw_and_one_table_per_seed_give_the_bootstrap_over_tables() -> None:
    # the retraining and part-attention studies' design: their draws are those of the
    # bootstrap over tables, their seeds and the shared studies
    rng = np.random.default_rng(11)
    parts = np.array([BODY_PARTS[i % 6] for i in range(90)], dtype=object)
    labels = rng.integers(0, 2, 90)
    valid = ValidSets.shared(labels, parts, 3)
    resample = draw_resamples(valid, 2, 200, seed=9)
    counts, tables, seeds = _old_draw_resamples(parts, 3, 2, 200, seed=9)
    assert np.array_equal(resample.counts[:, 0], counts)
    assert np.array_equal(resample.seed_slots, tables)  # one table per backbone seed
    assert np.array_equal(resample.seeds[:, :, 0, :], seeds)
    assert (resample.draw_slots == 0).all()
    pred = np.where(rng.random((3, 2, 90)) < 0.7, labels, 1 - labels)
    method = _method("m", pred, labels)
    values = run_metrics(valid, method, resample)
    # the former run_metrics: every run scored on the one set of weights
    weights = np.vstack([np.ones((1, 90)), counts])
    for t, s in np.ndindex(3, 2):
        former = weighted_metrics(labels, pred[t, s], weights, method.probabilities[t, s])
        for key, v in former.items():
            assert np.array_equal(values[key][t, s], v, equal_nan=True), key
        rows = parts == "ELBOW"
        former_part = weighted_metrics(labels[rows], pred[t, s][rows], weights[:, rows])
        assert np.array_equal(values["kappa_ELBOW"][t, s], former_part["kappa"])
    assert "kappa_WRIST" not in values  # no WRIST study here
    # the former pooled accuracy, written out draw by draw
    correct = (pred == labels).astype(float)
    expected = np.array([np.mean([correct[tables[b, j], seeds[b, j, k]] @ counts[b] / 90
                                  for j in range(3) for k in range(2)]) for b in range(200)])
    point, draws = pooled(values["accuracy"], resample)
    np.testing.assert_allclose(draws, expected, rtol=1e-12)
    assert point == pytest.approx(correct.mean(), rel=1e-12)


def test_each_study_set_is_resampled_on_its_own_and_shared_by_its_tables() -> None:
    valid = _two_draws()
    assert (valid.n_tables, valid.n_sets, valid.n_studies) == (4, 2, 70)
    assert (valid.n_seeds, valid.seed_unit.tolist()) == (2, [0, 0, 1, 1])
    resample = draw_resamples(valid, 3, 400, seed=2)
    assert resample.counts.shape == (400, 2, 70)
    for g, t in enumerate([0, 1]):
        parts = valid.body_parts[t]
        for part in BODY_PARTS:
            rows = parts == part
            assert (resample.counts[:, g, rows].sum(axis=1) == rows.sum()).all()
    # set 1's draws are not set 0's (independent, not a copy through the same positions)
    same_position = np.mean([np.corrcoef(resample.counts[:, 0, i], resample.counts[:, 1, i])[0, 1]
                             for i in range(70)])
    assert abs(same_position) < 0.1
    assert not np.array_equal(resample.counts[:, 0], resample.counts[:, 1])
    np.testing.assert_array_equal(resample.table_counts(2), resample.counts[:, 0])
    np.testing.assert_array_equal(resample.table_counts(3), resample.counts[:, 1])
    # one method answering the same on every table: tables of one set score the same in
    # every draw, tables of the other set use their own labels and counts
    rng = np.random.default_rng(3)
    answers = rng.integers(0, 2, 70)
    pred = np.tile(answers, (4, 1, 1))
    method = MethodRuns("same", "baseline", pred, pred.astype(float))
    acc = run_metrics(valid, method, resample)["accuracy"]
    np.testing.assert_array_equal(acc[0], acc[2])
    np.testing.assert_array_equal(acc[1], acc[3])
    for t in range(4):
        correct = (answers == valid.labels[t]).astype(float)
        expected = resample.table_counts(t) @ correct / 70
        np.testing.assert_allclose(acc[t, 0, 1:], expected, rtol=1e-12)
        assert acc[t, 0, 0] == pytest.approx(correct.mean(), rel=1e-12)


def test_a_copy_of_the_reference_differs_by_exactly_zero_across_study_sets() -> None:
    valid = _two_draws()
    rng = np.random.default_rng(4)
    pred = np.where(rng.random((4, 2, 70)) < 0.7, valid.labels[:, None, :],
                    1 - valid.labels[:, None, :])
    methods = [MethodRuns("ref", "baseline", pred, pred + 0.1 * rng.random(pred.shape)),
               MethodRuns("copy", "agent", pred.copy(), pred + 0.1 * rng.random(pred.shape))]
    resample = draw_resamples(valid, 2, 300, seed=6)
    metrics = method_metrics(methods, valid, resample)
    copy = summarise(methods, valid, resample, ["ref"], metrics=metrics).set_index(
        "method").loc["copy"]
    for metric in ("accuracy", "kappa"):
        key = f"{metric}_vs_ref"
        assert copy[[key, f"{key}_ci_low", f"{key}_ci_high", f"{key}_seed_ci_low",
                     f"{key}_seed_ci_high"]].tolist() == [0.0] * 5
        for name in ("ref", "copy"):
            draws = pooled(metrics[name][metric], resample)[1]
            assert np.ptp(draws) > 0  # the figures themselves do vary
    tables = summarise_tables(methods, valid, resample, ["ref"], metrics=metrics)
    mine = tables[tables["method"] == "copy"]
    assert mine["table"].tolist() == [0, 1, 2, 3] and mine["study_set"].tolist() == [0, 1, 0, 1]
    assert (mine[["accuracy_vs_ref", "accuracy_vs_ref_ci_low", "accuracy_vs_ref_ci_high",
                  "kappa_vs_ref_ci_low", "kappa_vs_ref_ci_high"]] == 0).all().all()


def test_table_level_interval_is_the_t_interval_of_the_table_means() -> None:
    rng = np.random.default_rng(8)
    parts = np.array([BODY_PARTS[i % 7] for i in range(84)], dtype=object)
    labels = rng.integers(0, 2, 84)
    valid = ValidSets.shared(labels, parts, 4)
    quality = np.array([0.6, 0.7, 0.8, 0.75])[:, None, None]  # tables differ in difficulty
    agent = np.where(rng.random((4, 3, 84)) < quality, labels, 1 - labels)
    fixed = np.where(rng.random((4, 1, 84)) < 0.7, labels, 1 - labels)
    methods = [_method("agent", agent, labels), _method("fixed", fixed, labels)]
    frame = summarise(methods, valid, draw_resamples(valid, 3, 100, seed=0),
                      ["fixed"]).set_index("method")
    # by hand, from the runs: per table the mean accuracy over its seeds
    agent_means = (agent == labels).mean(axis=2).mean(axis=1)
    fixed_means = (fixed == labels).mean(axis=2).mean(axis=1)
    crit = scipy_stats.t.ppf(0.975, 3)
    for name, means in (("agent", agent_means), ("fixed", fixed_means)):
        half = crit * means.std(ddof=1) / 2  # sqrt(4) tables
        row = frame.loc[name]
        assert row["accuracy"] == pytest.approx(means.mean(), rel=1e-12)
        assert row["accuracy_seed_ci_low"] == pytest.approx(means.mean() - half, rel=1e-12)
        assert row["accuracy_seed_ci_high"] == pytest.approx(means.mean() + half, rel=1e-12)
    diff = agent_means - fixed_means
    half = crit * diff.std(ddof=1) / 2
    row = frame.loc["agent"]
    assert row["accuracy_vs_fixed_seed_ci_low"] == pytest.approx(diff.mean() - half, rel=1e-12)
    assert row["accuracy_vs_fixed_seed_ci_high"] == pytest.approx(diff.mean() + half,
                                                                   rel=1e-12)
    for key in ("kappa", "auroc", "sensitivity", "specificity", "kappa_vs_fixed"):
        assert row[f"{key}_seed_ci_low"] <= row[key] <= row[f"{key}_seed_ci_high"]
    assert "kappa_WRIST_seed_ci_low" not in frame and "poi_vs_fixed_seed_ci_low" not in frame
    assert t_interval(np.array([0.5, 0.7]), 0.9) == pytest.approx(
        (0.6 - scipy_stats.t.ppf(0.95, 1) * 0.1, 0.6 + scipy_stats.t.ppf(0.95, 1) * 0.1))


def test_table_level_interval_is_nan_with_one_table() -> None:
    rng = np.random.default_rng(9)
    parts = np.array([BODY_PARTS[i % 7] for i in range(70)], dtype=object)
    labels = rng.integers(0, 2, 70)
    valid = ValidSets.shared(labels, parts, 1)
    pred = np.where(rng.random((1, 2, 70)) < 0.7, labels, 1 - labels)
    methods = [_method("a", pred, labels), _method("b", 1 - pred, labels)]
    row = summarise(methods, valid, draw_resamples(valid, 2, 50, seed=1), ["b"]).iloc[0]
    for key in ("accuracy", "kappa", "accuracy_vs_b", "kappa_vs_b"):
        assert np.isnan(row[f"{key}_seed_ci_low"]) and np.isnan(row[f"{key}_seed_ci_high"])
        assert np.isfinite(row[f"{key}_ci_low"])
    assert np.isnan(t_interval(np.array([0.5]))).all()
    assert np.isnan(t_interval(np.array([0.5, np.nan, 0.7]))).all()


def test_per_table_figures_resample_only_that_tables_seeds_and_studies() -> None:
    valid = _two_draws()
    rng = np.random.default_rng(12)
    agent = np.where(rng.random((4, 3, 70)) < 0.75, valid.labels[:, None, :],
                     1 - valid.labels[:, None, :])
    fixed = np.where(rng.random((4, 1, 70)) < 0.65, valid.labels[:, None, :],
                     1 - valid.labels[:, None, :])
    methods = [MethodRuns("agent", "agent", agent, agent.astype(float)),
               MethodRuns("fixed", "baseline", fixed, fixed.astype(float))]
    resample = draw_resamples(valid, 3, 300, seed=3)
    frame = summarise_tables(methods, valid, resample, ["fixed"])
    assert len(frame) == 2 * 4
    assert frame["n_runs"].tolist() == [3] * 4 + [1] * 4
    correct = (agent == valid.labels[:, None, :]).astype(float)
    ref_correct = (fixed == valid.labels[:, None, :]).astype(float)
    for t in range(4):
        row = frame[(frame["method"] == "agent") & (frame["table"] == t)].iloc[0]
        counts = resample.table_counts(t)  # [B, n]
        seeds = resample.table_seeds(t, 3)  # [B, S]: the seeds of its cell
        draws = np.array([np.mean([correct[t, s] @ counts[b] / 70 for s in seeds[b]])
                          for b in range(300)])
        ref_draws = ref_correct[t, 0] @ counts.T / 70
        assert row["accuracy"] == pytest.approx(correct[t].mean(), rel=1e-12)
        assert (row["accuracy_ci_low"], row["accuracy_ci_high"]) == pytest.approx(
            interval(draws), rel=1e-12)
        assert row["accuracy_vs_fixed"] == pytest.approx(correct[t].mean()
                                                         - ref_correct[t].mean(), rel=1e-12)
        assert (row["accuracy_vs_fixed_ci_low"], row["accuracy_vs_fixed_ci_high"]) == (
            pytest.approx(interval(draws - ref_draws), rel=1e-9, abs=1e-12))
    for column in ("kappa", "kappa_ci_low", "kappa_vs_fixed_ci_high"):
        assert frame[column].notna().all()


def test_valid_sets_checks_its_shapes() -> None:
    with pytest.raises(ValueError, match=r"\[T, n\]"):
        ValidSets(np.zeros((2, 3)), np.zeros((2, 4), dtype=object), np.zeros(2))
    with pytest.raises(ValueError, match="0..G-1"):
        ValidSets(np.zeros((2, 3)), np.zeros((2, 3), dtype=object), np.array([0, 2]))
