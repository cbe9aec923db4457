"""Evaluation of policies and baselines on a whole split."""

from __future__ import annotations

import numpy as np
import pytest
from env_fixtures import hand_mapping, tiny_table

from agents.core.evaluate import evaluate_baseline, evaluate_policy, mean_weights_per_part
from agents.weighting.baselines import UniformAverage
from mura_env.evaluation.metrics import OVERALL, study_metrics
from mura_env.logits.study_set import StudySet
from mura_env.weighting.config import WeightingConfig


@pytest.fixture(scope="module")
def table():
    return tiny_table(n_tune=20, n_valid=30, k=3, seed=4)


def test_policy_evaluation_matches_the_hand_mapping(table):
    rng = np.random.default_rng(0)
    valid = table.select(split="valid")
    actions = rng.uniform(-1, 1, size=(len(valid), 3)).astype(np.float32)

    def policy(obs):
        assert obs.shape == (len(valid), 13)
        return actions

    ev = evaluate_policy(policy, WeightingConfig(logits=table), "valid", n_bootstrap=0)
    expected_p, expected_w = [], []
    for i in range(len(valid)):
        w, _, p = hand_mapping(valid.logits[i], actions[i])
        expected_w.append(w)
        expected_p.append(p)
    np.testing.assert_allclose(ev.probabilities, expected_p, atol=1e-5)
    np.testing.assert_allclose(ev.weights, expected_w, atol=1e-5)
    np.testing.assert_array_equal(ev.study_ids, valid.studies["study_id"].to_numpy())
    reference = study_metrics(valid.studies["label"], np.array(expected_p),
                              valid.studies["body_part"], n_bootstrap=0)
    assert ev.value("accuracy") == pytest.approx(
        reference.query(f"body_part == '{OVERALL}' and metric == 'accuracy'")["value"].iloc[0])
    assert ev.split == "valid"


def test_zero_policy_equals_the_uniform_baseline(table):
    zero = evaluate_policy(lambda o: np.zeros((len(o), 3)), WeightingConfig(logits=table),
                           "valid", n_bootstrap=200)
    base = UniformAverage().fit(StudySet.select(table, "tune"))
    uni = evaluate_baseline(base, StudySet.select(table, "valid"), n_bootstrap=200)
    np.testing.assert_allclose(zero.probabilities, uni.probabilities, atol=1e-6)
    np.testing.assert_array_equal(zero.predictions, uni.predictions)
    np.testing.assert_allclose(zero.metrics["value"], uni.metrics["value"], equal_nan=True)


def test_summary_has_the_metrics_json_layout(table):
    s = evaluate_policy(lambda o: np.zeros((len(o), 3)), WeightingConfig(logits=table), "valid",
                        n_bootstrap=100).summary()
    assert s["split"] == "valid" and s["n_studies"] == 30
    for key in ("accuracy", "kappa", "auroc"):
        low, high = s["ci"][key]
        assert low <= s[key] <= high
    assert set(s["mean_weights"][OVERALL]) == {"m0", "m1", "m2"}
    assert all(set(v) >= {"accuracy", "kappa"} for v in s["per_body_part"].values())


def test_mean_weights_per_part():
    w = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    df = mean_weights_per_part(w, np.array(["HAND", "HAND", "WRIST"]), ("a", "b"))
    assert df.index.tolist() == [OVERALL, "HAND", "WRIST"]
    np.testing.assert_allclose(df.loc["HAND"], [0.5, 0.5])
    np.testing.assert_allclose(df.loc[OVERALL], [0.5, 0.5])

