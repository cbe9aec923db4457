"""Hand-built logits tables with known answers, for the agent and baseline tests (import as
``from agent_fixtures import ...``)."""

from __future__ import annotations

import numpy as np
from env_fixtures import studies_frame

from mura_env.constants import BODY_PARTS
from mura_env.logits import LogitsTable

#: One model per body part: ``m_ELBOW`` is the specialist of ELBOW, and so on.
SPECIALISTS = tuple(f"m_{part}" for part in BODY_PARTS)


def specialist_table(per_cell: int = 6, seed: int = 0,
                     fingerprint: str = "specialists-v1") -> LogitsTable:
    """Seven models, model ``k`` right exactly on body part ``k`` and wrong elsewhere.

    Every split (train, tune, valid) has ``per_cell`` normal and ``per_cell`` abnormal studies
    per body part. The specialist's logit margin is ``+(2 to 3)`` toward the true label, every
    other model's ``-(1 to 1.5)`` (wrong but less sure), so the uniform average is wrong on
    every study and weighting by body part is right on every study.
    """
    rng = np.random.default_rng(seed)
    parts, labels, splits = [], [], []
    for split in ("train", "tune", "valid"):
        for part in BODY_PARTS:
            for i in range(2 * per_cell):
                parts.append(part)
                labels.append(i % 2)
                splits.append(split)
    n, k = len(parts), len(BODY_PARTS)
    logits = np.zeros((n, k, 2), dtype=np.float32)
    for i, (part, y) in enumerate(zip(parts, labels, strict=True)):
        sign = 1.0 if y == 1 else -1.0
        for j in range(k):
            margin = rng.uniform(2, 3) if BODY_PARTS[j] == part else -rng.uniform(1, 1.5)
            logits[i, j, 1] = sign * margin  # logit of "abnormal" minus that of "normal"
    frame = studies_frame(parts, labels, splits)
    frame["study_id"] = [f"{s}/XR_{p}/patient{i}/study1" for i, (s, p) in
                         enumerate(zip(splits, parts, strict=True))]
    return LogitsTable.from_arrays(frame, SPECIALISTS, logits, data_fingerprint=fingerprint)
