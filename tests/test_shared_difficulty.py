"""The synthetic generator's difficulty latent, the logits table's difficulty column, and simulated
readers whose errors share it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mura_env.constants import BODY_PARTS
from mura_env.logits import LogitsTable, LogitsTableError
from mura_env.logits.reference import load_reference_table
from mura_env.readers import (
    DEFAULT_SHARING,
    SimulatedReader,
    error_correlation,
    error_events,
)
from mura_env.synthetic.dataset import FINDING_MIX, sample_study
from mura_env.synthetic.difficulty import (
    ABNORMAL_BANDS,
    plan_difficulty,
    study_difficulty,
    within_band,
)


def _generator_difficulty(part: str, label: int, n: int, seed: int = 4) -> np.ndarray:
    """Difficulty of ``n`` studies of ``part`` and ``label`` drawn by the generator."""
    return np.array([study_difficulty(sample_study(part, label, 2, seed, i), part, label)
                     for i in range(n)])


@pytest.mark.parametrize("label", [0, 1])
def test_generator_difficulty_is_uniform_within_each_part_and_label(label: int) -> None:
    n = 400
    grid = (np.arange(n) + 0.5) / n
    for part in BODY_PARTS:
        values = np.sort(_generator_difficulty(part, label, n))
        assert values.min() >= 0.0 and values.max() <= 1.0
        ks = np.abs(values - grid).max()  # Kolmogorov-Smirnov distance to uniform, within 1/2n
        assert ks < 0.1, (part, label, ks)


def test_band_positions_order_the_findings_by_conspicuity() -> None:
    kinds, positions = [], []
    for i in range(300):
        spec = sample_study("WRIST", 1, 2, 9, i)
        band, position = within_band(spec)
        assert band == spec.kind and 0.0 <= position <= 1.0
        kinds.append(spec.kind)
        positions.append(study_difficulty(spec, "WRIST", 1))
    frame = pd.DataFrame({"kind": kinds, "difficulty": positions})
    means = frame.groupby("kind")["difficulty"].mean()
    assert set(means.index) == set(FINDING_MIX["WRIST"])
    assert means["osteopenia"] < means["fracture"]
    assert list(ABNORMAL_BANDS)[0] == "osteopenia" and list(ABNORMAL_BANDS)[-1] == "fracture"


def test_plan_difficulty_is_deterministic_and_matches_the_shipped_table() -> None:
    table = load_reference_table(0)
    assert table.difficulty is not None
    provenance = table.provenance["difficulty"]
    ids = set(table.studies["study_id"].iloc[::50])
    first = plan_difficulty(provenance["scale"], provenance["data_seed"], ids)
    again = plan_difficulty(provenance["scale"], provenance["data_seed"], ids)
    pd.testing.assert_frame_equal(first, again)
    assert set(first["study_id"]) == ids
    shipped = dict(zip(table.studies["study_id"], table.difficulty, strict=True))
    np.testing.assert_allclose(first["difficulty"], [shipped[s] for s in first["study_id"]])


def test_error_events_keep_the_error_rate_for_every_sharing() -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    difficulty, noise = rng.random(n), rng.random(n)
    for rate in (0.05, 0.2, 0.35):
        for sharing in (0.0, 0.5, DEFAULT_SHARING, 0.95):
            wrong = error_events(np.full(n, rate), noise, difficulty, sharing)
            assert wrong.mean() == pytest.approx(rate, abs=0.005)
    independent = error_events(np.full(n, 0.2), noise, difficulty, 0.0)
    shared = error_events(np.full(n, 0.2), noise, difficulty, 0.9)
    assert abs(difficulty[independent].mean() - difficulty[~independent].mean()) < 0.01
    assert difficulty[shared].mean() > difficulty[~shared].mean() + 0.3
    with pytest.raises(ValueError, match="sharing"):
        error_events(np.full(3, 0.1), noise[:3], difficulty[:3], 1.0)


def test_reader_errors_share_the_members_hard_cases_on_tune() -> None:
    table = load_reference_table(0).select(split="tune")
    labels = table.studies["label"].to_numpy()
    parts = table.studies["body_part"].to_numpy()
    member_wrong = table.logits.argmax(axis=2) != labels[:, None]
    correlation = {}
    for sharing in (0.0, DEFAULT_SHARING):
        reader = SimulatedReader.profile("radiologist_3", sharing=sharing)
        wrong = reader.reads(table.studies) != labels
        correlation[sharing] = [error_correlation(wrong, member_wrong[:, k], parts)
                                for k in range(table.n_models)]
    assert all(r > 0 for r in correlation[DEFAULT_SHARING])
    assert np.mean(correlation[DEFAULT_SHARING]) > np.mean(correlation[0.0]) + 0.03
    # the shipped column is that reader at the default sharing
    np.testing.assert_array_equal(
        table.reads("radiologist_3"),
        SimulatedReader.profile("radiologist_3").reads(table.studies))


def test_a_table_without_difficulty_falls_back_to_independent_reads() -> None:
    studies = load_reference_table(0).studies.drop(columns="difficulty")
    shared = SimulatedReader.profile("radiologist_2", sharing=0.8)
    with pytest.warns(UserWarning, match="no 'difficulty' column"):
        reads = shared.reads(studies)
    np.testing.assert_array_equal(
        reads, SimulatedReader.profile("radiologist_2", sharing=0.0).reads(studies))
    assert not shared.shares_difficulty(studies)


def test_difficulty_column_round_trips_and_is_checked(tmp_path: Path) -> None:
    table = load_reference_table(1).select(split="valid")
    saved = LogitsTable.load(table.save(tmp_path / "t.parquet"))
    np.testing.assert_array_equal(saved.difficulty, table.difficulty)
    assert saved.studies.columns.tolist()[6] == "difficulty"
    bad = table.studies.copy()
    bad.loc[0, "difficulty"] = 1.5
    with pytest.raises(LogitsTableError, match=r"difficulty.*\[0, 1\]"):
        LogitsTable(bad, table.model_names, table.logits)
    partial = pd.DataFrame({"study_id": table.studies["study_id"].iloc[1:],
                            "difficulty": 0.5})
    with pytest.raises(ValueError, match="no difficulty for 1 study"):
        table.with_difficulty(partial)
    plain = LogitsTable(table.studies.drop(columns="difficulty"), table.model_names,
                        table.logits)
    assert plain.difficulty is None
    assert LogitsTable.load(plain.save(tmp_path / "plain.parquet")).difficulty is None


def test_reader_columns_use_the_generator_only_for_synthetic_studies() -> None:
    from experiments.common.reader_columns import generator_origin, with_simulated_readers

    table = load_reference_table(0).select(split="valid")
    bare = table.studies.drop(columns=["difficulty", *(f"reader_{r}" for r in table.reader_ids)])
    plain = LogitsTable(bare, table.model_names, table.logits,
                        provenance={"scale": 1.0, "data_seed": 0})
    assert generator_origin(plain) == (1.0, 0)
    added = with_simulated_readers(plain, ["radiologist_2"])
    np.testing.assert_array_equal(added.difficulty, table.difficulty)  # from the plan
    np.testing.assert_array_equal(added.reads("radiologist_2"), table.reads("radiologist_2"))
    real = LogitsTable(plain.studies, plain.model_names, plain.logits,
                       provenance={"scale": 1.0, "data_seed": 0, "synthetic": False})
    assert generator_origin(real) is None
    assert with_simulated_readers(real, ["radiologist_2"]).difficulty is None
    elsewhere = LogitsTable(plain.studies, plain.model_names, plain.logits,
                            provenance={"scale": 1.0, "data_seed": 5})  # another draw
    with pytest.warns(UserWarning, match="no difficulty"):
        out = with_simulated_readers(elsewhere, ["radiologist_2"])
    assert out.difficulty is None
    assert out.provenance["readers"]["radiologist_2"]["sharing"] == 0.0
