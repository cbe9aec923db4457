"""Is the frozen ensemble worth weighting? Diversity figures of the members' probabilities.

For a split: each member's accuracy, the share of studies on which members disagree, the
oracle (a study counts as right if any member is right), the uniform average of members'
probabilities, and the best member per body part.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from backbones.runs import LOGIT_SPLITS
from mura_env.evaluation.metrics import study_metrics


def diversity_report(studies: pd.DataFrame, prob: np.ndarray,
                     model_names: list[str], threshold: float = 0.5) -> dict[str, Any]:
    """Diversity of an ensemble on some studies.

    Args:
        studies: studies table (``label``, ``body_part``), ``S`` rows.
        prob: float ``(S, K)`` abnormality probabilities of the ``K`` members
            (``LogitsTable.abnormal_probabilities()``).
        model_names: the ``K`` member names.
        threshold: a probability above it is an "abnormal" prediction.

    Returns:
        ``member_accuracy`` (name -> float), ``disagreement`` (share of studies where members'
        predictions differ), ``oracle_accuracy``, ``average_accuracy`` (uniform average of
        probabilities > 0.5), ``oracle_minus_average`` (accuracy points, 0-100 scale),
        ``best_member_per_body_part`` (part -> name) and ``distinct_best_members``.
    """
    label = studies["label"].to_numpy()
    pred = (prob > threshold).astype(int)
    correct = pred == label[:, None]
    avg_pred = (prob.mean(axis=1) > threshold).astype(int)
    best: dict[str, str] = {}
    for part, idx in studies.reset_index(drop=True).groupby("body_part").groups.items():
        acc = correct[np.asarray(idx)].mean(axis=0)
        best[str(part)] = model_names[int(np.argmax(acc))]
    oracle = float(correct.any(axis=1).mean())
    average = float((avg_pred == label).mean())
    return {
        "n_studies": int(len(label)),
        "member_accuracy": {m: float(correct[:, k].mean()) for k, m in enumerate(model_names)},
        "disagreement": float((pred.min(axis=1) != pred.max(axis=1)).mean()),
        "oracle_accuracy": oracle,
        "average_accuracy": average,
        "oracle_minus_average": 100.0 * (oracle - average),
        "best_member_per_body_part": best,
        "distinct_best_members": len(set(best.values())),
    }


def metrics_table(studies: pd.DataFrame, probabilities: np.ndarray,
                  members: list[str]) -> pd.DataFrame:
    """Each member's study-level metrics on tune and valid, overall and per body part.

    ``probabilities`` is ``(S, K)``: member ``k``'s abnormality probability of every study of
    ``studies`` (with ``split``, ``label``, ``body_part``). Returns the rows of
    :func:`mura_env.evaluation.metrics.study_metrics` with the columns ``model`` and ``split`` in
    front."""
    rows = []
    for k, model in enumerate(members):
        for split in LOGIT_SPLITS:
            mask = (studies["split"] == split).to_numpy()
            sub = studies[mask]
            m = study_metrics(sub["label"].to_numpy(), probabilities[mask, k],
                              sub["body_part"].to_numpy(), n_bootstrap=0)
            m.insert(0, "split", split)
            m.insert(0, "model", model)
            rows.append(m)
    return pd.concat(rows, ignore_index=True)
