"""The one bootstrap sampler of the project: resamples of ``n`` studies as counts.

A resample draws ``n`` study indices with replacement (``rng.integers(0, n, size=(B, n))``)
and is kept as counts (how often each study was drawn), so any metric of it is a weighted
metric of the whole table (:mod:`mura_env.evaluation.resampled_metrics`). Every interval of
the project draws through :func:`resample_counts`, alone (one group of studies) or per
stratum (:func:`stratified_counts`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def resample_counts(rng: np.random.Generator, n: int, n_bootstrap: int) -> np.ndarray:
    """float64 ``[n_bootstrap, n]``: how often each of ``n`` studies is drawn in each of
    ``n_bootstrap`` resamples with replacement (each row sums to ``n``), from one
    ``rng.integers(0, n, size=(n_bootstrap, n))`` call.

    Raises:
        ValueError: ``n`` < 1 or ``n_bootstrap`` < 0.
    """
    if n < 1 or n_bootstrap < 0:
        raise ValueError(f"a resample needs n >= 1 studies and n_bootstrap >= 0, got {n} and "
                         f"{n_bootstrap}.")
    idx = rng.integers(0, n, size=(n_bootstrap, n))
    idx += (np.arange(n_bootstrap) * n)[:, None]
    counts = np.bincount(idx.ravel(), minlength=n_bootstrap * n).reshape(n_bootstrap, n)
    return counts.astype(np.float64)


def stratified_counts(rng: np.random.Generator, strata: np.ndarray, order: Sequence[object],
                      n_bootstrap: int) -> np.ndarray:
    """float64 ``[n_bootstrap, n]``: resamples of the ``n`` studies with replacement within each
    stratum (each stratum keeps its size), drawn by :func:`resample_counts` one stratum at a
    time in ``order`` (strata absent from ``strata`` draw nothing).

    Args:
        rng: the generator. strata: ``[n]``, each study's stratum (e.g. its body part).
        order: the strata in the order they are drawn. n_bootstrap: resamples.
    """
    strata = np.asarray(strata, dtype=object)
    counts = np.zeros((n_bootstrap, len(strata)))
    for stratum in order:
        rows = np.flatnonzero(strata == stratum)
        if len(rows):
            counts[:, rows] += resample_counts(rng, len(rows), n_bootstrap)
    return counts


def chunked_counts(rng: np.random.Generator, n: int, n_bootstrap: int, max_cells: int):
    """Yield :func:`resample_counts` of ``n`` studies in chunks of at most ``max_cells`` cells
    (at least one resample each) until ``n_bootstrap`` resamples are drawn: the same draws as
    one call, in less memory."""
    chunk = max(1, max_cells // n)
    done = 0
    while done < n_bootstrap:
        size = min(chunk, n_bootstrap - done)
        yield resample_counts(rng, n, size)
        done += size
