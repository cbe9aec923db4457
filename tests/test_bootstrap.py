"""The one bootstrap sampler (:mod:`mura_env.evaluation.bootstrap`)."""

from __future__ import annotations

import numpy as np
import pytest

from mura_env.evaluation.bootstrap import chunked_counts, resample_counts, stratified_counts


def test_counts_are_the_draws_of_one_integers_call() -> None:
    counts = resample_counts(np.random.default_rng(3), 7, 50)
    idx = np.random.default_rng(3).integers(0, 7, size=(50, 7))
    expected = np.stack([np.bincount(row, minlength=7) for row in idx])
    np.testing.assert_array_equal(counts, expected)
    assert counts.dtype == np.float64 and (counts.sum(axis=1) == 7).all()


def test_strata_keep_their_size_and_draw_in_order() -> None:
    strata = np.array(["b", "a", "b", "c", "a", "b"])
    counts = stratified_counts(np.random.default_rng(0), strata, ("a", "b", "z", "c"), 40)
    for stratum in "abc":
        assert (counts[:, strata == stratum].sum(axis=1) == (strata == stratum).sum()).all()
    rng = np.random.default_rng(0)
    first = resample_counts(rng, 2, 40)  # "a" is drawn first
    np.testing.assert_array_equal(counts[:, strata == "a"], first)


def test_chunks_draw_the_same_resamples_as_one_call() -> None:
    whole = resample_counts(np.random.default_rng(5), 9, 23)
    pieces = list(chunked_counts(np.random.default_rng(5), 9, 23, max_cells=40))
    assert [len(p) for p in pieces] == [4, 4, 4, 4, 4, 3]
    np.testing.assert_array_equal(np.concatenate(pieces), whole)


def test_refuses_an_empty_set() -> None:
    with pytest.raises(ValueError, match="n >= 1"):
        resample_counts(np.random.default_rng(0), 0, 5)
