"""Patient-level split of MURA's official train part into ``train`` and ``tune``.

Backbones learn on ``train``; weighting agents learn on ``tune``, so they only see logits of
studies the backbones never trained on. The official ``valid`` part is left untouched: it is the
held-out test split and is never used for training or model selection.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold


def split_train_tune(studies: pd.DataFrame, tune_fraction: float = 0.2, seed: int = 0) -> pd.Series:
    """Assign each official-train study to ``train`` or ``tune``, by patient.

    Stratified by body part and label (scikit-learn's :class:`StratifiedGroupKFold` with the
    patient as group), deterministic in ``seed``; no patient has studies on both sides. The tune
    share is realised as one fold of ``round(1 / tune_fraction)`` folds (0.2 -> 5 folds).

    Args:
        studies: table with columns ``study_id``, ``patient_id``, ``body_part``, ``label``,
            ``split`` (``train``/``valid``); ``valid`` rows keep their split.
        tune_fraction: share of train patients to move to ``tune``, in (0, 0.5].
        seed: random seed of the fold assignment.

    Returns:
        A str Series aligned with ``studies``: ``train``, ``tune`` or ``valid``.
    """
    if not 0 < tune_fraction <= 0.5:
        raise ValueError(f"tune_fraction must be in (0, 0.5], got {tune_fraction}")
    if abs(1 / tune_fraction - round(1 / tune_fraction)) > 0.02:
        raise ValueError(
            f"tune_fraction={tune_fraction} is not 1/n: the split uses one of n folds, so "
            "use 0.5, 1/3, 0.25, 0.2, 1/6, ... (0.2 is the default)")
    out = studies["split"].astype(str).copy()
    is_train = (out == "train").to_numpy()
    train = studies.loc[is_train]
    n_folds = max(2, round(1 / tune_fraction))
    n_patients = train["patient_id"].nunique()
    if n_patients < n_folds:
        raise ValueError(
            f"cannot split {n_patients} train patient(s) into train/tune with "
            f"tune_fraction={tune_fraction}: need at least {n_folds} patients"
        )
    strata = (train["body_part"].astype(str) + "_" + train["label"].astype(str)).to_numpy()
    if pd.Series(strata).value_counts().max() < n_folds:
        # Too small to stratify by body part and label (a toy data set): by label only.
        strata = train["label"].astype(str).to_numpy()
    if pd.Series(strata).value_counts().max() < n_folds:
        strata = np.zeros(len(train), dtype=int)
    cv = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # Tiny data sets have strata smaller than the number of folds; that is expected.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        _, tune_idx = next(
            cv.split(np.zeros(len(train)), strata, groups=train["patient_id"].to_numpy())
        )
    train_positions = np.flatnonzero(is_train)
    values = out.to_numpy(copy=True)
    values[train_positions[tune_idx]] = "tune"
    return pd.Series(values, index=studies.index, name="split")
