"""mura_env.weighting.mapping, the one action -> weights -> probability -> prediction mapping,
against
hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mura_env.weighting.mapping import (
    DEFAULT_ACTION_SCALE,
    DEFAULT_TEMPERATURE,
    DEFAULT_THRESHOLD,
    EnsembleMapping,
    batch_mixture,
    batch_weights,
    ensemble_probability,
    exact_predictions,
    member_probabilities,
    recheck_margin,
    study_mixture,
)


def hand_weights(action: list[float], scale: float) -> list[float]:
    terms = [math.exp(scale * a) for a in action]
    return [t / sum(terms) for t in terms]


@pytest.mark.parametrize("scale", [0.5, 3.0, 40.0])
def test_study_mixture_is_the_written_formula(scale: float) -> None:
    action, q = [0.2, -1.0, 0.7], [0.9, 0.2, 0.55]
    weights, p = study_mixture(action, q, scale)
    expected = hand_weights(action, scale)
    assert weights == pytest.approx(expected, rel=1e-12)
    assert p == pytest.approx(sum(w * qk for w, qk in zip(expected, q, strict=True)), rel=1e-12)


def test_large_scales_shift_before_exp_and_stay_finite() -> None:
    weights, p = study_mixture([1.0, 0.99, -1.0], [1.0, 0.0, 0.5], 1e4)
    assert math.isfinite(p) and all(math.isfinite(w) for w in weights)
    assert weights[0] == pytest.approx(1.0) and p == pytest.approx(1.0)
    batch_w, batch_p = batch_mixture(np.array([[1.0, 0.99, -1.0]]),
                                     np.array([[1.0, 0.0, 0.5]]), 1e4)
    assert np.isfinite(batch_w).all() and batch_p[0] == pytest.approx(1.0)


def test_probability_is_capped_at_one() -> None:
    over_one = np.array([[1.0 + 1e-15, 1.0]])
    assert ensemble_probability(np.array([[0.5, 0.5]]), over_one)[0] == 1.0
    assert study_mixture([0.0, 0.0], [1.0 + 1e-15, 1.0], 3.0)[1] == 1.0


def test_batch_float64_agrees_with_the_single_study_form() -> None:
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(50, 4))
    q = rng.uniform(0, 1, size=(50, 4))
    w, p = batch_mixture(actions, q, 3.0)
    assert w.shape == (50, 4) and p.shape == (50,) and p.dtype == np.float64
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    for i in range(50):
        w_i, p_i = study_mixture(actions[i].tolist(), q[i].tolist(), 3.0)
        np.testing.assert_allclose(w[i], w_i, rtol=1e-12)
        assert p[i] == pytest.approx(p_i, rel=1e-12)
    np.testing.assert_allclose(batch_weights(actions, 3.0), w)


def test_float32_batch_is_made_exact_near_the_threshold() -> None:
    rng = np.random.default_rng(1)
    actions = rng.uniform(-1, 1, size=(200, 3)).astype(np.float32)
    rows = rng.uniform(0, 1, size=(200, 3))
    exact = np.array([study_mixture(a.tolist(), r.tolist(), 3.0)[1]
                      for a, r in zip(actions, rows, strict=True)])
    for threshold in (exact[7] - 1e-9, exact[7] + 1e-9):
        _, p32 = batch_mixture(actions, rows.astype(np.float32), 3.0, dtype=np.float32)
        assert p32.dtype == np.float32
        assert np.abs(p32 - exact).max() < recheck_margin(3.0)
        above = exact_predictions(p32, actions, rows.tolist(), np.arange(200), 3.0, threshold)
        np.testing.assert_array_equal(above, exact > threshold)


def test_member_probabilities_are_the_softmax_of_each_member() -> None:
    logits = np.array([[0.0, 2.0], [1.0, -1.0], [800.0, -800.0]])
    expected = [1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(2.0)), 0.0]
    np.testing.assert_allclose(member_probabilities(logits), expected, atol=1e-300)


def test_ensemble_mapping_defaults_checks_and_weights() -> None:
    mapping = EnsembleMapping()
    assert (mapping.action_scale, mapping.temperature, mapping.threshold) == (
        DEFAULT_ACTION_SCALE, DEFAULT_TEMPERATURE, DEFAULT_THRESHOLD)
    hot = EnsembleMapping(action_scale=2.0, temperature=0.5)
    assert hot.softmax_scale == 4.0
    np.testing.assert_allclose(hot.weights([[2.0, -5.0]]),  # clipped to [1, -1]
                               [hand_weights([1.0, -1.0], 4.0)])
    for bad in ({"action_scale": 0.0}, {"temperature": float("nan")}, {"threshold": 1.0},
                {"threshold": "x"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            EnsembleMapping(**bad)
