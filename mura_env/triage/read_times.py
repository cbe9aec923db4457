"""How long a radiologist takes to read a study: a draw per study and reader around a mean that
depends on the reader and the body part.

``lognormal`` (the default shape: reading times are positive and right-skewed) with a given mean
and coefficient of variation, or ``exponential`` (coefficient of variation 1, the memoryless
times queueing formulas assume, :mod:`mura_env.triage.theory`).
"""

from __future__ import annotations

import numpy as np

#: The shapes :func:`draw_read_minutes` knows.
READ_TIME_SHAPES = ("lognormal", "exponential")


def draw_read_minutes(mean_minutes: np.ndarray, shape: str, cv: float,
                      rng: np.random.Generator) -> np.ndarray:
    """One reading time per entry of ``mean_minutes``.

    Args:
        mean_minutes: float ``[...]`` (> 0), each draw's mean (e.g. ``[n, R]``: study x reader).
        shape: one of :data:`READ_TIME_SHAPES`.
        cv: the lognormal's coefficient of variation (standard deviation over mean, > 0; not
            read for ``exponential``).
        rng: the generator (one standard normal or exponential per entry).

    Returns:
        float64 of ``mean_minutes``' shape, > 0, with those means: lognormal
        ``exp(m + s Z)`` with ``s^2 = log(1 + cv^2)``, ``m = log(mean) - s^2 / 2``; or
        ``mean * Exp(1)``.

    Raises:
        ValueError: an unknown shape, a mean <= 0 or a cv <= 0.
    """
    mean = np.asarray(mean_minutes, dtype=np.float64)
    if not (np.isfinite(mean).all() and (mean > 0).all()):
        raise ValueError("mean reading times must be finite and > 0.")
    if shape == "exponential":
        return mean * rng.standard_exponential(mean.shape)
    if shape != "lognormal":
        raise ValueError(f"shape must be one of {list(READ_TIME_SHAPES)}, got {shape!r}.")
    if not (np.isfinite(cv) and cv > 0):
        raise ValueError(f"cv must be finite and > 0, got {cv!r}.")
    s2 = np.log1p(cv * cv)
    return np.exp(np.log(mean) - s2 / 2 + np.sqrt(s2) * rng.standard_normal(mean.shape))
