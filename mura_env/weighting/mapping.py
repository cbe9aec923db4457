"""The one action -> weights -> ensemble probability -> prediction mapping of mura-rl.

For ``K`` ensemble members, an action is ``K`` preferences in [-1, 1]; with
``softmax_scale = action_scale / temperature``::

    w = softmax(softmax_scale * clip(action, -1, 1))    # [K] weights, sum 1
    p = min(sum_k w_k * q_k, 1)                # q_k: member k's abnormality probability
    prediction = int(p > threshold)            # 1 = abnormal

The env (single and vector), the baselines, saved agents and Grad-CAM all use the functions
here. :func:`study_mixture` is the float64 single-study form (plain Python floats, for the
single env's step); :func:`batch_mixture` the NumPy form for ``n`` studies at once, in float64
or, for the vector env's speed, float32 with :func:`exact_predictions` recomputing in float64
every study whose probability lies near the threshold. :class:`EnsembleMapping` holds the three
settings with their defaults and checks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from math import exp
from operator import mul
from typing import Any

import numpy as np

#: Default action scale: weights of two members can differ by up to ``exp(2 * 3)`` ~ 400x.
DEFAULT_ACTION_SCALE = 3.0
#: Default softmax temperature (divides the scaled action).
DEFAULT_TEMPERATURE = 1.0
#: Default decision threshold on the ensemble probability (``prediction = p > threshold``).
DEFAULT_THRESHOLD = 0.5
#: ``|softmax_scale|`` up to this needs no max-shift inside the softmax (``exp(50)`` is finite).
NO_SHIFT_LIMIT = 50.0
#: Relative error scale of the float32 batch (see :func:`recheck_margin`).
FLOAT32_ERROR = 1e-6


def positive_finite(name: str, value: Any) -> float:
    """``value`` as a float; raises ``ValueError`` naming ``name`` unless it is finite and > 0."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
    return v


def check_threshold(value: Any) -> float:
    """``value`` as a float in [0, 1); raises ``ValueError`` otherwise."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not 0.0 <= v < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {value!r}.")
    return v


def member_probabilities(logits: np.ndarray) -> np.ndarray:
    """Each member's abnormality probability ``q = softmax(logits)[1]``: float logits
    ``[..., 2]`` (normal, abnormal) -> float64 ``[...]`` (a stable sigmoid of their gap)."""
    gap = logits[..., 1].astype(np.float64) - logits[..., 0].astype(np.float64)
    return np.exp(-np.logaddexp(0.0, -gap))


def study_mixture(action: Sequence[float], probabilities: Sequence[float],
                  softmax_scale: float) -> tuple[list[float], float]:
    """The mapping for one study, in float64 Python arithmetic.

    Args:
        action: the ``K`` preferences, already clipped to [-1, 1] (Python floats).
        probabilities: the ``K`` members' abnormality probabilities for the study.
        softmax_scale: ``action_scale / temperature``.

    Returns:
        ``(weights, p)``: the ``K`` weights (a list of floats summing to 1) and the ensemble
        abnormality probability ``p`` (at most 1).
    """
    if abs(softmax_scale) > NO_SHIFT_LIMIT:
        top = max(action)
        terms = [exp(softmax_scale * (v - top)) for v in action]
    else:
        terms = [exp(softmax_scale * v) for v in action]
    total = sum(terms)
    p = sum(map(mul, terms, probabilities)) / total
    return [t / total for t in terms], (p if p <= 1.0 else 1.0)


def batch_weights(actions: np.ndarray, softmax_scale: float,
                  dtype: type = np.float64) -> np.ndarray:
    """Weights of ``n`` actions: float ``[n, K]`` in [-1, 1] -> ``dtype`` ``[n, K]``, rows
    summing to 1 (a transposed view of a C-ordered ``[K, n]`` array, so that every NumPy
    operation runs on long contiguous rows)."""
    z = np.multiply(np.asarray(actions).T, dtype(softmax_scale), dtype=dtype, order="C")
    if abs(softmax_scale) > NO_SHIFT_LIMIT:
        z -= z.max(axis=0)
    e = np.exp(z, out=z)
    return np.divide(e, e.sum(axis=0), out=e).T


def ensemble_probability(weights: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """``min(sum_k w_k q_k, 1)`` over the last axis: weights and probabilities float
    ``[..., K]`` (broadcast against each other) -> float ``[...]``."""
    p = (weights * probabilities).sum(axis=-1)
    return np.minimum(p, p.dtype.type(1.0), out=p)


def batch_mixture(actions: np.ndarray, probabilities: np.ndarray, softmax_scale: float,
                  dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """The mapping for ``n`` studies at once.

    Args:
        actions: float ``[n, K]``, already clipped to [-1, 1].
        probabilities: float ``[n, K]``, each member's abnormality probability per study.
        softmax_scale: ``action_scale / temperature``.
        dtype: ``np.float64`` (agrees with :func:`study_mixture` to rounding) or
            ``np.float32`` (relative error ~1e-6; see :func:`exact_predictions`).

    Returns:
        ``(weights dtype [n, K], p dtype [n])``.
    """
    w = batch_weights(actions, softmax_scale, dtype)
    q = np.asarray(probabilities, dtype=dtype).T * w.T  # [K, n], contiguous rows
    p = q.sum(axis=0)
    return w, np.minimum(p, dtype(1.0), out=p)


def recheck_margin(softmax_scale: float) -> float:
    """Distance from the threshold within which a float32 :func:`batch_mixture` result is
    recomputed in float64: a bound on its error for ``softmax_scale``."""
    return float(FLOAT32_ERROR * (4.0 + 2.0 * abs(softmax_scale)))


def exact_predictions(p: np.ndarray, actions: np.ndarray,
                      probability_rows: Sequence[Sequence[float]], study_index: np.ndarray,
                      softmax_scale: float, threshold: float) -> np.ndarray:
    """Predictions of a float32 :func:`batch_mixture` made exact.

    Every study whose ``p`` lies within :func:`recheck_margin` of ``threshold`` is recomputed
    with :func:`study_mixture` (``p`` is updated in place), so the predictions equal those of
    the float64 single-study mapping.

    Args:
        p: float32 ``[n]`` ensemble probabilities from :func:`batch_mixture` (updated).
        actions: float ``[n, K]``, the clipped actions behind ``p``.
        probability_rows: every study's ``K`` float64 probabilities (Python lists).
        study_index: int ``[n]``, the row of ``probability_rows`` behind each ``p``.
        softmax_scale, threshold: the mapping's settings.

    Returns:
        bool ``[n]``: ``p > threshold``.
    """
    above = p > np.float32(threshold)
    margin = recheck_margin(softmax_scale)
    for j in np.flatnonzero(np.abs(p - np.float32(threshold)) <= margin).tolist():
        row = probability_rows[int(study_index[j])]
        _, exact = study_mixture(actions[j].tolist(), row, softmax_scale)
        p[j] = exact
        above[j] = exact > threshold
    return above


@dataclass(frozen=True)
class EnsembleMapping:
    """The mapping's three settings, checked, with the mapping functions bound to them.

    Attributes:
        action_scale: multiplies the action before the softmax (finite, > 0).
        temperature: divides it (finite, > 0).
        threshold: ``prediction = p > threshold``, in [0, 1).
    """

    action_scale: float = DEFAULT_ACTION_SCALE
    temperature: float = DEFAULT_TEMPERATURE
    threshold: float = DEFAULT_THRESHOLD

    def __post_init__(self) -> None:
        object.__setattr__(self, "action_scale",
                           positive_finite("action_scale", self.action_scale))
        object.__setattr__(self, "temperature", positive_finite("temperature", self.temperature))
        object.__setattr__(self, "threshold", check_threshold(self.threshold))

    @property
    def softmax_scale(self) -> float:
        """``action_scale / temperature``."""
        return self.action_scale / self.temperature

    def weights(self, actions: np.ndarray) -> np.ndarray:
        """float ``[n, K]`` actions (clipped to [-1, 1] here) -> float64 weights ``[n, K]``."""
        return batch_weights(np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0),
                             self.softmax_scale)
