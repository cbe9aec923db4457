"""study_metrics: values equal scikit-learn's; bootstrap replicates and intervals by hand."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, cohen_kappa_score, recall_score, roc_auc_score

from mura_env.constants import BODY_PARTS
from mura_env.evaluation.metrics import METRICS, OVERALL, study_metrics, weighted_metrics


def _data(n: int = 300, seed: int = 0, ties: bool = False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    p = np.clip(0.35 * y + rng.uniform(0.0, 0.65, size=n), 0.0, 1.0)
    if ties:
        p = np.round(p, 1)  # many tied scores
    parts = rng.choice(BODY_PARTS, size=n)
    return y, p, parts


def _sklearn(y, p, pred) -> dict[str, float]:
    return {
        "accuracy": accuracy_score(y, pred),
        "kappa": cohen_kappa_score(y, pred),
        "auroc": roc_auc_score(y, p),
        "sensitivity": recall_score(y, pred, pos_label=1),
        "specificity": recall_score(y, pred, pos_label=0),
    }


def test_table_columns_group_and_metric_order() -> None:
    y, p, parts = _data()
    df = study_metrics(y, p, parts, n_bootstrap=50)
    assert list(df.columns) == ["body_part", "metric", "value", "ci_low", "ci_high",
                                "n_studies", "n_abnormal"]
    groups = [OVERALL] + [b for b in BODY_PARTS if b in set(parts)]
    assert df["body_part"].tolist() == [g for g in groups for _ in METRICS]
    assert df["metric"].tolist() == list(METRICS) * len(groups)
    overall = df[df["body_part"] == OVERALL]
    assert (overall["n_studies"] == len(y)).all() and (overall["n_abnormal"] == y.sum()).all()
    assert df.attrs["n_bootstrap"] == 50 and df.attrs["confidence"] == 0.95


@pytest.mark.parametrize("ties", [False, True])
def test_values_equal_sklearn_overall_and_per_body_part(ties: bool) -> None:
    y, p, parts = _data(ties=ties)
    df = study_metrics(y, p, parts, n_bootstrap=0).set_index(
        ["body_part", "metric"])["value"]
    pred = (p > 0.5).astype(int)
    for group in [OVERALL, *BODY_PARTS]:
        rows = np.ones(len(y), bool) if group == OVERALL else parts == group
        for metric, value in _sklearn(y[rows], p[rows], pred[rows]).items():
            assert df[(group, metric)] == pytest.approx(value, rel=1e-12, abs=1e-15)


def test_threshold_matches_given_predictions_and_predictions_alone_have_no_auroc() -> None:
    y, p, parts = _data()
    pred = (p > 0.3).astype(int)
    a = study_metrics(y, p, parts, threshold=0.3, n_bootstrap=0)
    b = study_metrics(y, p, parts, predictions=pred, n_bootstrap=0)
    pd.testing.assert_series_equal(a["value"], b["value"])
    acc = a.loc[(a["body_part"] == OVERALL) & (a["metric"] == "accuracy"), "value"].item()
    assert acc == pytest.approx(accuracy_score(y, pred))
    # predictions only: AUROC undefined, the rest from sklearn
    c = study_metrics(y, None, parts, predictions=pred, n_bootstrap=20).set_index(
        ["body_part", "metric"])
    assert np.isnan(c.loc[(OVERALL, "auroc"), "value"])
    assert np.isnan(c.loc[(OVERALL, "auroc"), "ci_low"])
    assert c.loc[(OVERALL, "kappa"), "value"] == pytest.approx(cohen_kappa_score(y, pred))


@pytest.mark.parametrize("ties", [False, True])
def test_weighted_metrics_equal_sklearn_on_resamples(ties: bool) -> None:
    y, p, _ = _data(n=120, seed=3, ties=ties)
    pred = (p > 0.5).astype(np.int64)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(y), size=(6, len(y)))
    counts = np.stack([np.bincount(r, minlength=len(y)) for r in idx]).astype(float)
    got = weighted_metrics(y, pred, counts, p)
    for b, r in enumerate(idx):
        for metric, value in _sklearn(y[r], p[r], pred[r]).items():
            assert got[metric][b] == pytest.approx(value, rel=1e-12, abs=1e-12)


def test_bootstrap_interval_by_hand() -> None:
    """Replays the documented resampling (default_rng([seed, group]) drawing [B, n] indices)
    and computes each replicate with scikit-learn, then the percentile interval."""
    y, p, parts = _data(n=80, seed=4)
    pred = (p > 0.5).astype(int)
    n_boot, seed = 120, 11
    df = study_metrics(y, p, parts, n_bootstrap=n_boot, seed=seed,
                       confidence=0.9).set_index(["body_part", "metric"])
    for group, group_index in [(OVERALL, 0), ("WRIST", BODY_PARTS.index("WRIST") + 1)]:
        rows = np.flatnonzero(np.ones(len(y), bool) if group == OVERALL else parts == group)
        idx = np.random.default_rng([seed, group_index]).integers(
            0, len(rows), size=(n_boot, len(rows)))
        replicates = {metric: [] for metric in METRICS}
        for resample in idx:
            labels = y[rows][resample]
            scores = p[rows][resample]
            preds = pred[rows][resample]
            both = 0 < labels.sum() < len(labels)
            replicates["accuracy"].append(accuracy_score(labels, preds))
            if both or (preds != labels[0]).any():  # undefined only if all are one class
                replicates["kappa"].append(cohen_kappa_score(labels, preds))
            if both:
                replicates["auroc"].append(roc_auc_score(labels, scores))
            if labels.sum() > 0:
                replicates["sensitivity"].append(recall_score(labels, preds, pos_label=1))
            if labels.sum() < len(labels):
                replicates["specificity"].append(recall_score(labels, preds, pos_label=0))
        for metric in METRICS:
            low, high = np.percentile(replicates[metric], [5, 95])
            assert df.loc[(group, metric), "ci_low"] == pytest.approx(low, rel=1e-9)
            assert df.loc[(group, metric), "ci_high"] == pytest.approx(high, rel=1e-9)


def test_bootstrap_is_seeded_and_groups_are_independent() -> None:
    y, p, parts = _data()
    a = study_metrics(y, p, parts, n_bootstrap=100, seed=1)
    b = study_metrics(y, p, parts, n_bootstrap=100, seed=1)
    c = study_metrics(y, p, parts, n_bootstrap=100, seed=2)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["ci_low"], c["ci_low"])
    # a group's interval does not depend on the other groups
    wrist = parts == "WRIST"
    d = study_metrics(y[wrist], p[wrist], parts[wrist], n_bootstrap=100, seed=1)
    pd.testing.assert_frame_equal(
        a[a["body_part"] == "WRIST"].reset_index(drop=True),
        d[d["body_part"] == "WRIST"].reset_index(drop=True))


def test_undefined_metrics_are_nan_without_warnings() -> None:
    y = np.array([0, 0, 0, 1, 1, 0])
    parts = np.array(["HAND", "HAND", "HAND", "WRIST", "WRIST", "WRIST"])
    p = np.array([0.1, 0.7, 0.2, 0.9, 0.8, 0.3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = study_metrics(y, p, parts, n_bootstrap=50).set_index(
            ["body_part", "metric"])
    assert np.isnan(df.loc[("HAND", "sensitivity"), "value"])  # no abnormal hand study
    assert np.isnan(df.loc[("HAND", "auroc"), "value"])
    assert df.loc[("HAND", "specificity"), "value"] == pytest.approx(2 / 3)
    assert np.isnan(df.loc[("HAND", "sensitivity"), "ci_low"])
    # all-normal group predicted all normal: kappa undefined
    df2 = study_metrics([0, 0], None, ["HAND", "HAND"], predictions=[0, 0], n_bootstrap=10)
    kappa = df2.query("body_part == 'HAND' and metric == 'kappa'")["value"].item()
    assert np.isnan(kappa)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"labels": [0, 2]}, "labels must hold only 0 and 1"),
     ({"body_parts": ["HAND", "KNEE"]}, "Unknown body part"),
     ({"body_parts": ["HAND"]}, "length 2"),
     ({"probabilities": [0.1, np.nan]}, "finite"),
     ({"probabilities": None}, "Give probabilities"),
     ({"predictions": [1, 0, 1]}, "length 2"),
     ({"confidence": 1.0}, "confidence"),
     ({"n_bootstrap": -1}, "n_bootstrap")],
)
def test_invalid_inputs_raise_value_error(kwargs: dict, message: str) -> None:
    args = {"labels": [0, 1], "body_parts": ["HAND", "HAND"], "probabilities": [0.2, 0.7]}
    args.update(kwargs)
    labels, probs, parts = args.pop("labels"), args.pop("probabilities"), args.pop("body_parts")
    with pytest.raises(ValueError, match=message):
        study_metrics(labels, probs, parts, **args)
