"""Classical baselines give the known answers on hand-built tables."""

from __future__ import annotations

import numpy as np
import pytest
from agent_fixtures import specialist_table
from env_fixtures import studies_frame

from agents.weighting.baselines import (
    BestFixedWeightsOnSplit,
    BestSingle,
    BestSinglePerPart,
    KnoraEliminate,
    Oracle,
    Stacking,
    SupervisedGating,
    UniformAverage,
    all_baselines,
)
from mura_env.constants import BODY_PARTS
from mura_env.logits import LogitsTable
from mura_env.logits.study_set import StudySet
from mura_env.weighting.mapping import EnsembleMapping


@pytest.fixture(scope="module")
def specialists():
    table = specialist_table()
    return StudySet.select(table, "tune"), StudySet.select(table, "valid")


def accuracy(studies, prob):
    return float(((prob > 0.5) == studies.labels).mean())


def test_uniform_is_the_plain_average(specialists):
    tune, valid = specialists
    prob, w = UniformAverage().fit(tune).predict(valid)
    np.testing.assert_allclose(prob, valid.probabilities.mean(axis=1))
    np.testing.assert_allclose(w, 1 / 7)
    assert accuracy(valid, prob) == 0.0  # the specialists table defeats averaging


def test_best_single_picks_the_most_accurate_member():
    # model 1 is right on 3 of 4 tune studies, model 0 on 1, model 2 on 2.
    labels = [1, 0, 1, 0, 1, 0]
    splits = ["tune"] * 4 + ["valid"] * 2
    q = np.array([[0.9, 0.9, 0.9], [0.9, 0.1, 0.1], [0.1, 0.9, 0.1], [0.9, 0.1, 0.9],
                  [0.2, 0.8, 0.3], [0.6, 0.4, 0.7]])
    logits = np.stack([np.zeros_like(q), np.log(q / (1 - q))], axis=-1)
    table = LogitsTable.from_arrays(studies_frame(["WRIST"] * 6, labels, splits),
                                    ["m0", "m1", "m2"], logits)
    base = BestSingle().fit(StudySet.select(table, "tune"))
    assert base.best == 1
    valid = StudySet.select(table, "valid")
    prob, w = base.predict(valid)
    np.testing.assert_allclose(prob, [0.8, 0.4])
    np.testing.assert_array_equal(w, [[0, 1, 0], [0, 1, 0]])


def test_best_single_per_part_finds_each_specialist(specialists):
    tune, valid = specialists
    base = BestSinglePerPart().fit(tune)
    np.testing.assert_array_equal(base.best, np.arange(len(BODY_PARTS)))
    prob, w = base.predict(valid)
    assert accuracy(valid, prob) == 1.0
    np.testing.assert_array_equal(w.argmax(axis=1), valid.body_part_index)


def test_stacking_learns_a_shifted_threshold():
    # One model whose logit separates the labels perfectly, but at +2 rather than 0: its own
    # predictions are wrong on every normal study with a logit in (0, 2); stacking is right.
    rng = np.random.default_rng(1)
    n = 120
    labels = np.arange(n) % 2
    margin = np.where(labels == 1, rng.uniform(2.5, 5, n), rng.uniform(0.2, 1.5, n))
    logits = np.zeros((n, 2, 2), dtype=np.float32)
    logits[:, 0, 1] = margin
    logits[:, 1, 1] = rng.normal(0, 1, n)  # an uninformative second model
    splits = ["tune"] * 80 + ["valid"] * 40
    parts = [BODY_PARTS[i % 7] for i in range(n)]
    table = LogitsTable.from_arrays(studies_frame(parts, labels.tolist(), splits),
                                    ["sep", "noise"], logits)
    tune, valid = StudySet.select(table, "tune"), StudySet.select(table, "valid")
    prob, w = Stacking().fit(tune).predict(valid)
    assert w is None
    assert accuracy(valid, prob) == 1.0
    assert accuracy(valid, valid.probabilities[:, 0]) == 0.5  # the member alone


def test_supervised_gating_learns_the_specialists(specialists):
    tune, valid = specialists
    prob, w = SupervisedGating(seed=0).fit(tune).predict(valid)
    assert accuracy(valid, prob) >= 0.98
    assert (w.argmax(axis=1) == valid.body_part_index).mean() >= 0.98
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-6)


def test_supervised_gating_is_deterministic_in_its_seed(specialists):
    tune, valid = specialists
    a = SupervisedGating(seed=3, epochs=50).fit(tune).predict(valid)[1]
    b = SupervisedGating(seed=3, epochs=50).fit(tune).predict(valid)[1]
    np.testing.assert_array_equal(a, b)


def test_knora_e_selects_the_member_right_on_the_neighbours(specialists):
    tune, valid = specialists
    prob, w = KnoraEliminate(k=5).fit(tune).predict(valid)
    expected = np.zeros_like(w)
    expected[np.arange(len(w)), valid.body_part_index] = 1.0
    np.testing.assert_array_equal(w, expected)
    assert accuracy(valid, prob) == 1.0


def test_knora_e_shrinks_the_region_then_falls_back_to_all():
    # tune: 2 studies; m0 right on the nearer, m1 on the farther; nobody right on both.
    q = np.array([[0.9, 0.1], [0.1, 0.9], [0.8, 0.3]])
    logits = np.stack([np.zeros_like(q), np.log(q / (1 - q))], axis=-1)
    logits[1, :, 1] += 5.0  # push the second tune study far away in logit space
    table = LogitsTable.from_arrays(
        studies_frame(["HAND"] * 3, [1, 0, 1], ["tune", "tune", "valid"]), ["m0", "m1"],
        logits)
    base = KnoraEliminate(k=2).fit(StudySet.select(table, "tune"))
    _, w = base.predict(StudySet.select(table, "valid"))
    np.testing.assert_array_equal(w, [[1.0, 0.0]])  # k=2: none; k=1: the nearer -> m0


def test_oracle_accuracy_is_the_share_some_member_gets_right():
    table = specialist_table()
    # make every member wrong on the first valid study
    logits = table.logits.copy()
    valid_rows = np.flatnonzero(table.studies["split"].to_numpy() == "valid")
    first = valid_rows[0]
    label = table.studies["label"].iloc[first]
    logits[first, :, 1] = -3.0 if label == 1 else 3.0
    table = LogitsTable.from_arrays(table.studies, table.model_names, logits)
    valid = StudySet.select(table, "valid")
    oracle = Oracle().fit(StudySet.select(table, "tune"))
    assert oracle.reference
    prob, w = oracle.predict(valid)
    some_right = ((valid.probabilities > 0.5) == valid.labels[:, None]).any(axis=1)
    assert accuracy(valid, prob) == pytest.approx(some_right.mean())
    assert some_right.mean() == pytest.approx(1 - 1 / len(valid_rows))


def test_best_fixed_weights_on_split_is_an_upper_reference(specialists):
    tune, valid = specialists
    base = BestFixedWeightsOnSplit().fit(tune)
    assert base.reference
    prob, w = base.predict(valid)
    assert accuracy(valid, prob) == 1.0
    for part, action in base.actions.items():
        assert np.argmax(action) == BODY_PARTS.index(part)


def test_knora_e_competence_keeps_the_longest_runs_of_right_neighbours():
    # 3 studies, 4 neighbours each (nearest first), 3 members.
    right = np.array([
        [[1, 1, 0], [1, 1, 0], [1, 0, 0], [0, 0, 0]],  # runs 3, 2, 0 -> member 0
        [[1, 1, 0], [1, 1, 0], [1, 1, 1], [1, 1, 1]],  # runs 4, 4, 0 -> members 0 and 1
        [[0, 0, 0], [1, 1, 1], [1, 1, 1], [1, 1, 1]],  # runs 0, 0, 0 -> all members
    ], dtype=bool)
    np.testing.assert_allclose(KnoraEliminate.competence_weights(right),
                               [[1, 0, 0], [0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3]])


def test_a_custom_threshold_reaches_member_correctness_and_predictions():
    # one member, probability 0.6 on an abnormal study: right at 0.5, wrong at 0.7
    q = np.array([[0.6], [0.6]])
    logits = np.stack([np.zeros_like(q), np.log(q / (1 - q))], axis=-1)
    table = LogitsTable.from_arrays(studies_frame(["HAND"] * 2, [1, 1], ["tune", "valid"]),
                                    ["m0"], logits)
    tune, valid = StudySet.select(table, "tune"), StudySet.select(table, "valid")
    strict = Oracle().fit(tune, EnsembleMapping(threshold=0.7))
    assert not strict._member_correct(valid).any()
    assert Oracle().fit(tune)._member_correct(valid).all()


def test_every_baseline_refuses_other_models_and_predict_before_fit(specialists):
    tune, _ = specialists
    table = specialist_table()
    other = StudySet.select(table, "tune", models=list(table.model_names[:3]))
    for base in all_baselines():
        with pytest.raises(RuntimeError, match="fit"):
            base.predict(tune)
        base.fit(tune)
        with pytest.raises(ValueError, match="fitted on models"):
            base.predict(other)


def _knora_e_by_loops(base, studies):
    """KNORA-E's selection written as the shrinking-region loop: for each study, the members
    right on all ``m`` nearest neighbours for the largest ``m`` where some member is."""
    from sklearn.neighbors import NearestNeighbors

    x = base.scaler.transform(studies.observations[:, :2 * studies.n_models])
    w = np.zeros((studies.n_studies, studies.n_models))
    for part in np.unique(studies.body_part_index):
        rows = np.flatnonzero(studies.body_part_index == part)
        pool = np.flatnonzero(base.parts == part)
        if len(pool) < base.k:
            pool = np.arange(len(base.parts))
        k = min(base.k, len(pool))
        _, idx = NearestNeighbors(n_neighbors=k).fit(base.features[pool]).kneighbors(x[rows])
        for i, neighbours in zip(rows, pool[idx], strict=True):
            chosen = np.ones(studies.n_models, dtype=bool)
            for m in range(k, 0, -1):
                selected = base.correct[neighbours[:m]].all(axis=0)
                if selected.any():
                    chosen = selected
                    break
            w[i] = chosen / chosen.sum()
    return w


def test_knora_e_selects_what_the_shrinking_region_loop_selects():
    table = tiny_table_for_knora()
    tune, valid = StudySet.select(table, "tune"), StudySet.select(table, "valid")
    base = KnoraEliminate(k=7).fit(tune)
    np.testing.assert_array_equal(base.predict(valid)[1], _knora_e_by_loops(base, valid))


def tiny_table_for_knora():
    rng = np.random.default_rng(11)
    n = 400
    # WRIST only every 50th study: 6 tune studies, fewer than k, so it searches all of tune
    parts = ["WRIST" if i % 50 == 0 else BODY_PARTS[i % 6] for i in range(n)]
    labels = (rng.random(n) < 0.4).astype(int).tolist()
    splits = ["tune" if i < 300 else "valid" for i in range(n)]
    logits = rng.normal(0, 1.5, size=(n, 4, 2)).astype(np.float32)
    return LogitsTable.from_arrays(studies_frame(parts, labels, splits),
                                   ["a", "b", "c", "d"], logits)
