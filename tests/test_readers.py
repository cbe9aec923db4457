"""Simulated readers, the reader CSV loader and attach_reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from mura_env.constants import BODY_PARTS, MURA_DIRNAME
from mura_env.readers import (
    DEFAULT_READER,
    DEFAULT_SHARING,
    RADIOLOGIST_KAPPAS,
    READER_PROFILES,
    VALID_PREVALENCE,
    VALID_STUDY_COUNTS,
    ReaderFormatError,
    SimulatedReader,
    attach_reads,
    equal_rate_for_kappa,
    kappa_for,
    load_reader_csv,
)


def _studies(n_per_part: int, prevalence: float | None = 0.5, seed: int = 0) -> pd.DataFrame:
    """A study table with ``n_per_part`` studies per body part, labels drawn at ``prevalence``
    (None: the part's MURA valid prevalence) and a uniform ``difficulty``."""
    rng = np.random.default_rng(seed)
    rows = []
    for part in BODY_PARTS:
        share = VALID_PREVALENCE[part] if prevalence is None else prevalence
        labels = (rng.random(n_per_part) < share).astype(np.int64)
        for i, label in enumerate(labels):
            kind = "positive" if label else "negative"
            rows.append((f"valid/XR_{part}/patient{i:06d}/study1_{kind}", part, int(label)))
    studies = pd.DataFrame(rows, columns=["study_id", "body_part", "label"])
    studies["difficulty"] = rng.random(len(studies))
    return studies


def _reader(sens: float, spec: float, seed: int = 0) -> SimulatedReader:
    return SimulatedReader({p: sens for p in BODY_PARTS}, {p: spec for p in BODY_PARTS}, seed)


# --- kappa and the defaults ---------------------------------------------------------------

def test_kappa_for_limits() -> None:
    assert kappa_for(1.0, 1.0, 0.3) == pytest.approx(1.0)
    # A reader whose read ignores the label (P(read 1) equal for both labels) agrees by chance.
    assert kappa_for(0.7, 0.3, 0.3) == pytest.approx(0.0)
    assert kappa_for(0.0, 0.0, 0.4) < 0.0
    with pytest.raises(ValueError):
        kappa_for(1.1, 0.9, 0.5)
    with pytest.raises(ValueError):
        kappa_for(0.9, 0.9, 0.0)


@pytest.mark.parametrize(("sens", "spec", "prevalence"),
                         [(0.8, 0.95, 0.4), (0.95, 0.7, 0.15), (0.6, 0.6, 0.7)])
def test_kappa_for_matches_sklearn_on_large_sample(sens: float, spec: float,
                                                   prevalence: float) -> None:
    studies = _studies(30_000, prevalence=prevalence, seed=1)
    reads = _reader(sens, spec, seed=5).reads(studies)
    observed = cohen_kappa_score(studies["label"], reads)
    assert observed == pytest.approx(kappa_for(sens, spec, prevalence), abs=0.02)


@pytest.mark.parametrize("target", [0.3, 0.6, 0.9])
@pytest.mark.parametrize("prevalence", [0.1, 0.45, 0.8])
def test_equal_rate_for_kappa_inverts_kappa_for(target: float, prevalence: float) -> None:
    rate = equal_rate_for_kappa(target, prevalence)
    assert 0.5 <= rate <= 1.0
    assert kappa_for(rate, rate, prevalence) == pytest.approx(target, abs=1e-9)


def test_valid_counts_are_the_real_mura_counts() -> None:
    from mura_env.synthetic.plan import REAL_COUNTS

    for part in BODY_PARTS:
        n_norm, n_abn = REAL_COUNTS[("valid", part)][:2]
        assert VALID_STUDY_COUNTS[part] == (n_norm, n_abn)
        assert VALID_PREVALENCE[part] == pytest.approx(n_abn / (n_norm + n_abn))


def test_profiles_reach_the_papers_kappas_in_expectation() -> None:
    assert set(READER_PROFILES) == {"radiologist_1", "radiologist_2", "radiologist_3"}
    assert DEFAULT_READER == "radiologist_3"
    for name, rates in READER_PROFILES.items():
        assert list(rates) == list(BODY_PARTS)
        reader = SimulatedReader.profile(name)
        assert reader.reader_id == name
        for part in BODY_PARTS:
            sens, spec = rates[part]
            assert sens == spec
            assert reader.expected_kappa(part, VALID_PREVALENCE[part]) == pytest.approx(
                RADIOLOGIST_KAPPAS[name][part], abs=1e-6)
    with pytest.raises(KeyError, match="radiologist_1"):
        SimulatedReader.profile("radiologist_9")


@pytest.mark.parametrize("sharing", [0.0, DEFAULT_SHARING])
def test_each_profile_reaches_its_per_part_kappa_on_20000_studies(sharing: float) -> None:
    studies = _studies(20_000, prevalence=None, seed=7)
    labels = studies["label"].to_numpy()
    for name in READER_PROFILES:
        reads = SimulatedReader.profile(name, seed=1, sharing=sharing).reads(studies)
        for part in BODY_PARTS:
            rows = (studies["body_part"] == part).to_numpy()
            observed = cohen_kappa_score(labels[rows], reads[rows])
            assert observed == pytest.approx(RADIOLOGIST_KAPPAS[name][part], abs=0.03), \
                (name, part, sharing)


# --- simulated reads ----------------------------------------------------------------------

def test_reads_are_deterministic_per_study_and_seed() -> None:
    studies = _studies(500, seed=2)
    reader = SimulatedReader.default(seed=3)
    reads = reader.reads(studies)
    assert reads.dtype == np.int8 and reads.shape == (len(studies),)
    assert set(np.unique(reads)) <= {0, 1}
    np.testing.assert_array_equal(reads, SimulatedReader.default(seed=3).reads(studies))

    shuffled = studies.sample(frac=1.0, random_state=0)
    by_study = dict(zip(studies["study_id"], reads, strict=True))
    expected = np.array([by_study[s] for s in shuffled["study_id"]], dtype=np.int8)
    np.testing.assert_array_equal(reader.reads(shuffled), expected)

    subset = studies.iloc[::7]
    np.testing.assert_array_equal(reader.reads(subset), reads[::7])

    other = SimulatedReader.default(seed=4).reads(studies)
    assert (other != reads).mean() > 0.05
    # another profile draws from its own stream: its errors are not the same studies'
    profiles = [SimulatedReader.profile(name, seed=3, sharing=0.0).reads(studies) != labels
                for name in READER_PROFILES for labels in [studies["label"].to_numpy()]]
    assert (profiles[0] & profiles[2]).mean() < 0.5 * min(profiles[0].mean(), profiles[2].mean())


def test_reads_follow_configured_rates_per_part() -> None:
    sens = {part: 0.55 + 0.06 * i for i, part in enumerate(BODY_PARTS)}
    spec = {part: 0.97 - 0.05 * i for i, part in enumerate(BODY_PARTS)}
    reader = SimulatedReader(sens, spec, seed=11, reader_id="r")
    studies = _studies(20_000, prevalence=0.5, seed=3)
    reads = reader.reads(studies)
    labels = studies["label"].to_numpy()
    for part in BODY_PARTS:
        in_part = (studies["body_part"] == part).to_numpy()
        observed_sens = reads[in_part & (labels == 1)].mean()
        observed_spec = 1.0 - reads[in_part & (labels == 0)].mean()
        assert observed_sens == pytest.approx(sens[part], abs=0.02)
        assert observed_spec == pytest.approx(spec[part], abs=0.02)


def test_reader_rejects_bad_configuration_and_tables() -> None:
    with pytest.raises(ValueError, match="unknown body part"):
        SimulatedReader({"KNEE": 0.9}, {"KNEE": 0.9})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        SimulatedReader({"HAND": 1.5}, {"HAND": 0.9})
    hand_only = SimulatedReader({"HAND": 0.9}, {"HAND": 0.9})
    with pytest.raises(ValueError, match="ELBOW"):
        hand_only.reads(_studies(3))


# --- reader CSVs --------------------------------------------------------------------------

def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "reads.csv"
    path.write_text(text)
    return path


def test_load_reader_csv_matches_reference_table_ids(tmp_path: Path) -> None:
    from mura_env.logits.reference import load_reference_table

    studies = load_reference_table(0).studies
    valid = studies[studies["split"] == "valid"].iloc[:4]
    lines = ["study,reader,read"]
    for i, study_id in enumerate(valid["study_id"]):
        lines += [f"{MURA_DIRNAME}/{study_id}/,r1,{i % 2}", f"{MURA_DIRNAME}/{study_id}/,r2,1"]
    reads = load_reader_csv(_write(tmp_path, "\n".join(lines) + "\n"))
    assert list(reads.columns) == ["study_id", "reader_id", "read"]
    assert reads["read"].dtype == np.int8
    assert set(reads["study_id"]) == set(valid["study_id"])

    joined = attach_reads(valid, reads)
    assert list(joined.columns) == [*valid.columns, "reader_r1", "reader_r2"]
    assert joined["reader_r1"].dtype == np.int8
    assert joined["reader_r1"].tolist() == [i % 2 for i in range(4)]
    assert joined["reader_r2"].tolist() == [1, 1, 1, 1]
    pd.testing.assert_frame_equal(joined[valid.columns], valid)


_GOOD_ROW = f"{MURA_DIRNAME}/valid/XR_WRIST/patient11185/study1_positive/"


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("", 1, "empty"),
        ("study,reader,read\n", 2, "no reads"),
        ("study,read\n" f"{_GOOD_ROW},1\n", 1, "reader"),
        ("study,reader,read\n" f"{_GOOD_ROW},a,1\n" f"{_GOOD_ROW.replace('11185', '11186')},a,2\n",
         3, "not 0 or 1"),
        ("study,reader,read\n" f"{_GOOD_ROW},a,1\n" f"{_GOOD_ROW},b,0\n" f"{_GOOD_ROW},a,0\n",
         4, "first at line 2"),
        ("study,reader,read\n" "valid/XR_KNEE/patient1/study1_positive,a,1\n", 2, "study path"),
        ("study,reader,read\n" f"{_GOOD_ROW},,1\n", 2, "reader is empty"),
        ("study,reader,read\n" f"{_GOOD_ROW},a\n", 2, "expected 3 fields"),
    ],
    ids=["empty", "header-only", "missing-column", "bad-read", "duplicate", "bad-study",
         "empty-reader", "short-row"],
)
def test_load_reader_csv_rejects_malformed(tmp_path: Path, text: str, line: int,
                                           expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ReaderFormatError) as info:
        load_reader_csv(path)
    message = str(info.value)
    assert str(path) in message
    assert f"line {line}" in message
    assert expected in message
    assert isinstance(info.value, ValueError)


def test_load_reader_csv_accepts_ids_and_extra_columns(tmp_path: Path) -> None:
    text = ("note,study,reader,read\n"
            "x,valid/XR_HAND/patient00001/study2_negative,dr a,0\n"
            f"y,{_GOOD_ROW},dr a,1\n")
    reads = load_reader_csv(_write(tmp_path, text))
    assert reads["study_id"].tolist() == ["valid/XR_HAND/patient00001/study2_negative",
                                          "valid/XR_WRIST/patient11185/study1_positive"]
    assert reads["reader_id"].tolist() == ["dr a", "dr a"]
    assert reads["read"].tolist() == [0, 1]


# --- attach_reads -------------------------------------------------------------------------

def test_attach_reads_lists_studies_without_a_read() -> None:
    studies = _studies(3)
    reads = pd.DataFrame({"study_id": studies["study_id"].iloc[1:], "reader_id": "sim",
                          "read": 1})
    with pytest.raises(ValueError, match="no read") as info:
        attach_reads(studies, reads)
    assert repr(studies["study_id"].iloc[0]) in str(info.value)
    assert repr(studies["study_id"].iloc[1]) not in str(info.value)


def test_attach_reads_of_a_simulated_reader() -> None:
    studies = _studies(50, seed=4).set_index(pd.RangeIndex(100, 100 + 50 * len(BODY_PARTS)))
    reader = SimulatedReader.profile("radiologist_1", seed=9)
    reads = pd.DataFrame({"study_id": studies["study_id"], "reader_id": reader.reader_id,
                          "read": reader.reads(studies)})
    joined = attach_reads(studies, reads.iloc[::-1])
    np.testing.assert_array_equal(joined["reader_radiologist_1"].to_numpy(),
                                  reader.reads(studies))
    assert joined.index.equals(studies.index)
    with pytest.raises(ValueError, match="repeated"):
        attach_reads(studies, pd.concat([reads, reads.iloc[:1]]))
    with pytest.raises(ValueError, match="already"):
        attach_reads(joined, reads)
