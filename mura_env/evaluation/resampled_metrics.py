"""The five study-level metrics of many weighted resamples of a study table at once.

A resample is the table with study ``i`` counted ``weights[b, i]`` times (a bootstrap draw, or
the whole table with weights 1); :func:`weighted_metrics` gives every metric of ``B`` of them
with the formulas scikit-learn uses, vectorised over resamples (checked against scikit-learn in
the tests). :mod:`mura_env.evaluation.metrics` and :mod:`mura_env.evaluation.statistics` both
compute with it.
"""

from __future__ import annotations

import numpy as np

#: Metric names, in the order of the output table.
METRICS: tuple[str, ...] = ("accuracy", "kappa", "auroc", "sensitivity", "specificity")


def weighted_metrics(
    labels: np.ndarray,
    predictions: np.ndarray,
    weights: np.ndarray,
    scores: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The five metrics of ``B`` weighted resamples at once (a bootstrap replicate is the
    study table with study ``i`` counted ``weights[b, i]`` times).

    Args:
        labels: int array ``[n]`` of 0/1 labels.
        predictions: int array ``[n]`` of 0/1 predictions.
        weights: float array ``[B, n]`` of non-negative counts (each row sums to the resample's
            size).
        scores: float array ``[n]`` of abnormality scores for AUROC, or None (AUROC is NaN).

    Returns:
        dict metric name -> float64 array ``[B]``; NaN where a metric is undefined (no abnormal
        study for sensitivity, no normal one for specificity, one class only for AUROC, no
        chance disagreement for kappa), as scikit-learn defines them.
    """
    y = labels.astype(np.float64)
    pred = predictions.astype(np.float64)
    cells = np.stack([y * pred, (1 - y) * (1 - pred), (1 - y) * pred, y * (1 - pred)], axis=1)
    tp, tn, fp, fn = (weights @ cells).T
    total = tp + tn + fp + fn
    out: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        out["accuracy"] = np.where(total > 0, (tp + tn) / total, np.nan)
        chance = ((tn + fp) * (tp + fp) + (tp + fn) * (tn + fn)) / total  # sum w * expected
        out["kappa"] = np.where(chance > 0, 1.0 - (fp + fn) / chance, np.nan)
        out["sensitivity"] = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        out["specificity"] = np.where(tn + fp > 0, tn / (tn + fp), np.nan)
    out["auroc"] = (np.full(len(weights), np.nan) if scores is None
                    else _weighted_auroc(np.asarray(scores, dtype=np.float64), labels, weights))
    return {m: out[m] for m in METRICS}


def _weighted_auroc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUROC (ties count 1/2) of each weighted resample: float64 ``[B]``."""
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    y = labels[order].astype(np.float64)
    sorted_weights = weights[:, order]
    # Groups of tied scores.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    pos = np.add.reduceat(sorted_weights * y, starts, axis=1)
    neg = np.add.reduceat(sorted_weights * (1.0 - y), starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    num = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    den = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)
