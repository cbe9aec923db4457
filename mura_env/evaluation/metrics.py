"""MURA's evaluation protocol at study level, with bootstrap confidence intervals.

:func:`study_metrics` is the one function every evaluation in the project uses: accuracy,
Cohen's kappa, AUROC, sensitivity and specificity, overall and per body part, each with a
percentile bootstrap confidence interval (studies resampled with replacement within the group;
:func:`mura_env.evaluation.statistics.interval`). Point estimates come from scikit-learn; the
bootstrap replicates use the same formulas, vectorized over replicates
(:func:`mura_env.evaluation.resampled_metrics.weighted_metrics`, checked against scikit-learn in
the tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, cohen_kappa_score, recall_score, roc_auc_score

from mura_env.constants import BODY_PARTS
from mura_env.evaluation.bootstrap import chunked_counts
from mura_env.evaluation.resampled_metrics import METRICS, weighted_metrics
from mura_env.evaluation.statistics import interval

#: Name of the all-studies group in the ``body_part`` column.
OVERALL = "ALL"
# Bootstrap replicates are processed in chunks of at most this many (replicate, study) cells.
_CHUNK_CELLS = 2_000_000


def _as_binary(name: str, values: Any, n: int | None = None) -> np.ndarray:
    """``values`` as an int64 0/1 array; ValueError unless it is 1-D (of length ``n`` when
    given) and holds booleans or numbers equal to 0 or 1."""
    array = np.asarray(values)
    if array.ndim != 1 or (n is not None and len(array) != n):
        raise ValueError(f"{name} must be a 1-D array of length {n}, got shape {array.shape}.")
    if array.dtype == bool:
        return array.astype(np.int64)
    binary = array.dtype.kind in "iuf" and np.isin(array, (0, 1)).all()
    if not binary:
        raise ValueError(f"{name} must hold only 0 and 1 (1 = abnormal), got {array[:5]!r}.")
    return array.astype(np.int64)


def _point_metrics(y: np.ndarray, pred: np.ndarray, scores: np.ndarray | None) -> dict[str, float]:
    """scikit-learn's values, NaN where undefined (without calling it then, so no warnings)."""
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    constant_same = (n_pos == 0 or n_neg == 0) and bool((pred == y[0]).all())
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "kappa": np.nan if constant_same else float(cohen_kappa_score(y, pred, labels=[0, 1])),
        "auroc": (float(roc_auc_score(y, scores))
                  if scores is not None and n_pos and n_neg else np.nan),
        "sensitivity": float(recall_score(y, pred, pos_label=1)) if n_pos else np.nan,
        "specificity": float(recall_score(y, pred, pos_label=0)) if n_neg else np.nan,
    }


def study_metrics(
    labels: Sequence[int] | np.ndarray,
    probabilities: Sequence[float] | np.ndarray | None,
    body_parts: Sequence[str] | np.ndarray,
    *,
    predictions: Sequence[int] | np.ndarray | None = None,
    threshold: float = 0.5,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """MURA's study-level metrics, overall and per body part, with bootstrap intervals.

    Args:
        labels: ``[n]`` true labels, 0 normal / 1 abnormal, one per study.
        probabilities: ``[n]`` ensemble abnormality probabilities (or any scores), used for
            AUROC and, when ``predictions`` is None, for ``predictions = probabilities >
            threshold``; None when only ``predictions`` are known (AUROC is then NaN).
        body_parts: ``[n]`` body part of each study (from ``BODY_PARTS``).
        predictions: ``[n]`` 0/1 predictions; given, they are used as they are.
        threshold: decision threshold applied to ``probabilities`` when ``predictions`` is None.
        n_bootstrap: bootstrap replicates per group (0: no intervals).
        confidence: coverage of the percentile intervals, in (0, 1).
        seed: seed of the resampling; group ``g`` uses ``default_rng([seed, g])`` so each
            group's interval does not depend on the others.

    Returns:
        A tidy DataFrame, one row per (group, metric): ``body_part`` (:data:`OVERALL`,
        ``"ALL"``, first, then the body parts present in ``BODY_PARTS`` order), ``metric``
        (``METRICS`` order), ``value``, ``ci_low``, ``ci_high`` (float, NaN when undefined),
        ``n_studies``, ``n_abnormal``. ``df.attrs`` records ``n_bootstrap``, ``confidence``,
        ``seed`` and ``threshold``.

    Raises:
        ValueError: inputs of different lengths, labels or predictions not 0/1, unknown body
            part, non-finite probabilities, neither probabilities nor predictions, empty input.
    """
    y, scores, pred, parts = _check_inputs(labels, probabilities, body_parts, predictions,
                                           threshold, confidence, n_bootstrap)
    records = []
    for name, group_index, rows in _groups(parts):
        records += _group_records(name, y[rows], pred[rows],
                                  None if scores is None else scores[rows],
                                  np.random.default_rng([seed, group_index]), n_bootstrap,
                                  confidence)
    df = pd.DataFrame.from_records(
        records, columns=["body_part", "metric", "value", "ci_low", "ci_high", "n_studies",
                          "n_abnormal"],
    )
    df.attrs.update({"n_bootstrap": int(n_bootstrap), "confidence": confidence, "seed": seed,
                     "threshold": threshold if predictions is None else None})
    return df


def _check_inputs(
    labels: Sequence[int] | np.ndarray,
    probabilities: Sequence[float] | np.ndarray | None,
    body_parts: Sequence[str] | np.ndarray,
    predictions: Sequence[int] | np.ndarray | None,
    threshold: float,
    confidence: float,
    n_bootstrap: int,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """:func:`study_metrics`' inputs, checked, as arrays ``(labels, scores, predictions,
    body_parts)``: int64 0/1 labels, float64 scores (None without probabilities), int64 0/1
    predictions (given, or ``scores > threshold``) and an object array of body parts.

    Raises:
        ValueError: as documented in :func:`study_metrics`.
    """
    y = _as_binary("labels", labels)
    n = len(y)
    if n == 0:
        raise ValueError("study_metrics needs at least one study.")
    parts = np.asarray(body_parts, dtype=object)
    if parts.shape != (n,):
        raise ValueError(f"body_parts must have length {n}, got shape {parts.shape}.")
    unknown = sorted(set(parts.tolist()) - set(BODY_PARTS))
    if unknown:
        raise ValueError(f"Unknown body part(s) {unknown}; expected some of {list(BODY_PARTS)}.")
    scores = None
    if probabilities is not None:
        scores = np.asarray(probabilities, dtype=np.float64)
        if scores.shape != (n,) or not np.isfinite(scores).all():
            raise ValueError(f"probabilities must be {n} finite numbers, got shape "
                             f"{scores.shape}.")
    if predictions is not None:
        pred = _as_binary("predictions", predictions, n)
    elif scores is not None:
        pred = (scores > threshold).astype(np.int64)
    else:
        raise ValueError("Give probabilities (for AUROC and thresholded predictions) "
                         "and/or predictions.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}.")
    if int(n_bootstrap) < 0:
        raise ValueError(f"n_bootstrap must be >= 0, got {n_bootstrap!r}.")
    return y, scores, pred, parts


def _groups(parts: np.ndarray) -> list[tuple[str, int, np.ndarray]]:
    """``(name, group index, row indices)`` of every group: :data:`OVERALL` (index 0) with all
    rows, then each body part present, in ``BODY_PARTS`` order (index = position + 1)."""
    groups = [(OVERALL, 0, np.arange(len(parts)))]
    for group_index, part in enumerate(BODY_PARTS, start=1):
        rows = np.flatnonzero(parts == part)
        if len(rows):
            groups.append((part, group_index, rows))
    return groups


def _bootstrap_replicates(
    labels: np.ndarray,
    predictions: np.ndarray,
    scores: np.ndarray | None,
    rng: np.random.Generator,
    n_bootstrap: int,
) -> dict[str, np.ndarray]:
    """The metrics of ``n_bootstrap`` resamples (with replacement) of one group's studies.

    Each replicate draws ``n`` study indices with ``rng.integers(0, n, size=(B, n))``; chunks of
    at most ``_CHUNK_CELLS`` cells are drawn in turn, which gives the same draws as one call.

    Returns:
        dict metric name -> float64 array ``[n_bootstrap]`` (NaN where undefined).
    """
    replicates: dict[str, list[np.ndarray]] = {metric: [] for metric in METRICS}
    for counts in chunked_counts(rng, len(labels), n_bootstrap, _CHUNK_CELLS):
        chunk_metrics = weighted_metrics(labels, predictions, counts, scores)
        for metric, values in chunk_metrics.items():
            replicates[metric].append(values)
    return {metric: (np.concatenate(values) if values else np.zeros(0))
            for metric, values in replicates.items()}


def _group_records(
    name: str,
    labels: np.ndarray,
    predictions: np.ndarray,
    scores: np.ndarray | None,
    rng: np.random.Generator,
    n_bootstrap: int,
    confidence: float,
) -> list[dict[str, Any]]:
    """One output row per metric of one group: value, bootstrap interval (NaN where the value
    is undefined or no replicate is), number of studies and of abnormal studies."""
    point = _point_metrics(labels, predictions, scores)
    replicates = _bootstrap_replicates(labels, predictions, scores, rng, n_bootstrap)
    records = []
    for metric in METRICS:
        low, high = interval(replicates[metric], confidence)
        if not np.isfinite(point[metric]):
            low = high = np.nan
        records.append({"body_part": name, "metric": metric, "value": point[metric],
                        "ci_low": low, "ci_high": high, "n_studies": len(labels),
                        "n_abnormal": int(labels.sum())})
    return records
