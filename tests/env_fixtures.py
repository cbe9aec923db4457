"""Tiny hand-built logits tables and a by-hand reference of the env's mapping, shared by the
env, vector env, logits and registration tests (import as ``from env_fixtures import ...``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mura_env.constants import BODY_PARTS
from mura_env.logits import LogitsTable


def studies_frame(body_parts: list[str], labels: list[int], splits: list[str]) -> pd.DataFrame:
    """A study table with one row per (body part, label, split), ids ``s0, s1, ...``."""
    n = len(body_parts)
    return pd.DataFrame({
        "study_id": [f"{splits[i]}/XR_{body_parts[i]}/patient{i}/study1_"
                     f"{'positive' if labels[i] else 'negative'}" for i in range(n)],
        "patient_id": [f"patient{i}" for i in range(n)],
        "body_part": body_parts,
        "label": labels,
        "split": splits,
        "n_images": [1 + i % 3 for i in range(n)],
    })


def tiny_table(n_tune: int = 9, n_train: int = 4, n_valid: int = 5, k: int = 3,
               seed: int = 0) -> LogitsTable:
    """A random but reproducible table: ``n_tune``/``n_train``/``n_valid`` studies, ``k`` models
    (``m0, m1, ...``), body parts cycling through ``BODY_PARTS``, labels alternating."""
    rng = np.random.default_rng(seed)
    splits = ["train"] * n_train + ["tune"] * n_tune + ["valid"] * n_valid
    n = len(splits)
    parts = [BODY_PARTS[i % len(BODY_PARTS)] for i in range(n)]
    labels = [i % 2 for i in range(n)]
    logits = rng.normal(0.0, 2.0, size=(n, k, 2)).astype(np.float32)
    return LogitsTable.from_arrays(studies_frame(parts, labels, splits),
                                   [f"m{j}" for j in range(k)], logits)


def with_known_reads(table: LogitsTable, readers: tuple[str, str, str]) -> LogitsTable:
    """``table`` with three readers whose reads are known by construction: always right,
    always wrong, right on even rows (in ``readers``' order)."""
    studies = table.studies
    labels = studies["label"].to_numpy()
    parity = np.arange(len(studies)) % 2 == 0
    reads = dict(zip(readers, (labels, 1 - labels, np.where(parity, labels, 1 - labels)),
                     strict=True))
    frame = pd.concat([pd.DataFrame({"study_id": studies["study_id"], "reader_id": r,
                                     "read": reads[r]}) for r in readers])
    return table.with_reads(frame)


def hand_mapping(logits: np.ndarray, action: np.ndarray, action_scale: float = 3.0,
                 temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray, float]:
    """The env's contract, written out: ``(weights [K], q [K], p)`` for one study's logits
    ``[K, 2]`` and action ``[K]`` (clipped to [-1, 1])."""
    a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
    z = action_scale * a / temperature
    w = np.exp(z - z.max())
    w /= w.sum()
    lg = logits.astype(np.float64)
    q = np.array([math.exp(r[1]) / (math.exp(r[0]) + math.exp(r[1])) for r in lg])
    return w, q, float(np.dot(w, q))


def hand_reward(name: str, p: float, label: int, threshold: float = 0.5,
                miss_cost: float = 2.0, false_alarm_cost: float = 1.0,
                floor: float = 1e-6) -> float:
    """Each reward of ``mura_env.rewards``, computed from its written definition."""
    pred = int(p > threshold)
    if name == "correct":
        return 1.0 if pred == label else 0.0
    if name == "signed":
        return 1.0 if pred == label else -1.0
    if name == "log_likelihood":
        return math.log(max(p if label == 1 else 1.0 - p, floor))
    if name == "cost_sensitive":
        if label == 1 and pred == 0:
            return -miss_cost
        if label == 0 and pred == 1:
            return -false_alarm_cost
        return 0.0
    raise ValueError(name)


REWARD_NAMES = ("correct", "signed", "log_likelihood", "cost_sensitive")
