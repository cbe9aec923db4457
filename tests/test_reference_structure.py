"""The shipped reference tables' sizes and provenance, and the structure report that measures
their designed weighting problem on tune (``python -m experiments.reference_report``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from agent_fixtures import specialist_table

import experiments.reference_report.__main__ as reference_report
from experiments.common.tables import backbone_key
from experiments.reference_report.__main__ import (
    failed_bars,
    failed_set_bars,
    paired_difference,
    patient_halves,
    tune_figures,
    valid_figures,
)
from mura_env.logits import LogitsTable
from mura_env.logits.reference import (
    REFERENCE_DATA_SEEDS,
    load_reference_table,
    reference_indices,
    reference_origin,
    reference_table_path,
    remake_command,
)
from mura_env.synthetic.plan import REAL_COUNTS


def test_mura_size_tables_over_backbone_seeds_and_data_draws() -> None:
    indices = reference_indices()
    assert len(indices) >= 10 and indices == list(range(len(indices)))
    valid_ids: dict[int, list[str]] = {}
    fingerprints: dict[int, set[str]] = {}
    for index in indices:
        table = load_reference_table(index)
        valid = table.studies[table.studies["split"] == "valid"]
        assert len(valid) == 1199  # the real MURA valid split's size ...
        counts = valid.groupby(["body_part", "label"]).size()
        for (split, part), (normal, abnormal, _, _) in REAL_COUNTS.items():
            if split == "valid":  # ... and its counts per body part and label
                assert (counts[(part, 0)], counts[(part, 1)]) == (normal, abnormal), part
        assert (table.studies["split"] == "tune").sum() >= 2500
        assert set(table.studies["split"]) == {"tune", "valid"}
        provenance = table.provenance
        backbone_seed, data_seed = reference_origin(index)
        assert (provenance["seed"], provenance["data_seed"]) == (backbone_seed, data_seed)
        assert provenance["train_data_seed"] == REFERENCE_DATA_SEEDS[0]
        assert provenance["profile"] == "reference"
        assert provenance["remake_command"] == remake_command(index)
        assert not provenance["commit"].endswith("+dirty")
        for key in ("commit", "machine", "wall_seconds", "sizes", "members"):
            assert key in provenance, key
        assert set(provenance["members"]) == set(table.model_names)
        ids = valid["study_id"].tolist()
        assert valid_ids.setdefault(data_seed, ids) == ids  # one draw: the same studies
        fingerprints.setdefault(data_seed, set()).add(table.data_fingerprint)
    assert len(valid_ids) >= 2  # at least two data draws ...
    assert all(len(f) == 1 for f in fingerprints.values())
    assert len(set().union(*fingerprints.values())) == len(fingerprints)  # ... that differ
    assert len({reference_origin(i)[0] for i in indices}) >= 5  # at least 5 backbone seeds
    # the statistics' backbone seed: the tables of one training share its checkpoints
    keys = {i: backbone_key(load_reference_table(i)) for i in indices}
    for i in indices:
        for j in indices:
            same_seed = reference_origin(i)[0] == reference_origin(j)[0]
            assert (keys[i] == keys[j]) == same_seed, (i, j)
    size = sum(reference_table_path(i).stat().st_size for i in indices)
    assert size < 5_000_000  # the shipped tables stay compact


def test_structure_report_finds_the_specialists() -> None:
    table = specialist_table(per_cell=12)  # member k right exactly on body part k
    figures = tune_figures(table, n_bootstrap=200)
    assert figures["split"] == "tune" and figures["n_studies"] == 7 * 24
    assert figures["distinct_best_members"] == 7
    assert figures["per_part_accuracy"] == 1.0 and figures["uniform_accuracy"] == 0.0
    assert figures["per_part_minus_uniform"] == 100.0
    assert figures["per_part_ci"] == [100.0, 100.0]
    assert figures["disagreement"] == 1.0
    # each member is right on 1 part in 7: its kappa is far below the bar
    assert any("kappa" in fail for fail in failed_bars(figures))


def _hidden_valid(table: LogitsTable) -> LogitsTable:
    """``table`` with every valid logit NaN and every valid label flipped."""
    valid = table.studies["split"].eq("valid").to_numpy()
    logits = np.array(table.logits)
    logits[valid] = np.nan
    studies = table.studies.copy()
    studies.loc[valid, "label"] = 1 - studies.loc[valid, "label"]
    return LogitsTable.from_arrays(studies, table.model_names, logits)


def test_the_design_bars_read_no_valid_row() -> None:
    table = specialist_table(per_cell=10, seed=3)
    rng = np.random.default_rng(0)  # noisy members, so that the figures are not all extremes
    noisy = LogitsTable.from_arrays(table.studies, table.model_names,
                                    table.logits + rng.normal(0, 2.5, table.logits.shape))
    hidden = _hidden_valid(noisy)
    figures = tune_figures(noisy, n_bootstrap=300, seed=1)
    assert 0 < figures["per_part_minus_uniform"] < 100 and figures["split"] == "tune"
    assert tune_figures(hidden, n_bootstrap=300, seed=1) == figures
    assert valid_figures(noisy, n_bootstrap=300)["split"] == "valid"
    with pytest.raises(ValueError, match="valid"):
        valid_figures(hidden, n_bootstrap=300)


def test_the_set_bar_is_the_mean_per_part_gain_over_the_tables() -> None:
    figures = {0: {"per_part_minus_uniform": 1.0}, 1: {"per_part_minus_uniform": 3.5}}
    assert failed_set_bars(figures) == []  # mean 2.25
    figures[1]["per_part_minus_uniform"] = 2.9  # mean 1.95
    assert "mean over the tables 1.95" in failed_set_bars(figures)[0]


def test_patient_halves_keep_each_patients_studies_together() -> None:
    patients = np.array(["p1", "p2", "p1", "p3", "p4", "p2", "p5", "p6"])
    half = patient_halves(patients, seed=4)
    assert half.sum() > 0 and (~half).sum() > 0
    for patient in np.unique(patients):
        assert len(set(half[patients == patient].tolist())) == 1
    assert len(np.unique(patients[half])) == 3  # half of the 6 patients
    np.testing.assert_array_equal(half, patient_halves(patients, seed=4))


def test_paired_difference_resamples_studies_jointly() -> None:
    a = np.array([True, True, False, False] * 50)
    diff, low, high = paired_difference(a, a.copy(), n_bootstrap=300, seed=0)
    assert diff == low == high == 0.0  # the same studies on both sides: no spread
    b = ~a
    diff, low, high = paired_difference(a, b, n_bootstrap=300, seed=0)
    assert diff == 0.0 and low < 0 < high


def test_reference_report_command_writes_its_files(tmp_path: Path) -> None:
    out = tmp_path / "report"
    status = reference_report.main(["--tables", "0", "--out", str(out), "--n-bootstrap", "100"])
    payload = json.loads((out / "structure.json").read_text())
    assert list(payload["tune"]) == ["0"] and "valid" not in payload
    assert payload["tune"]["0"]["split"] == "tune"
    assert (out / "structure.csv").read_text().startswith("table,")
    assert status == (1 if failed_bars(payload["tune"]["0"]) or failed_set_bars(payload["tune"])
                      else 0)
    assert payload["per_part_minus_uniform_mean"] == payload["tune"]["0"][
        "per_part_minus_uniform"]
    checked = tmp_path / "checked"
    assert reference_report.main(["--tables", "0", "--out", str(checked), "--n-bootstrap",
                                  "100", "--valid-check"]) == status
    payload = json.loads((checked / "structure.json").read_text())
    assert payload["valid"]["0"]["split"] == "valid" and payload["valid"]["0"]["n_studies"] == 1199


def test_reference_report_measures_any_table_given_by_path(tmp_path: Path) -> None:
    path = specialist_table(per_cell=8).save(tmp_path / "trial.parquet")
    out = tmp_path / "report"
    assert reference_report.main(["--logits", str(path), "--out", str(out),
                                  "--n-bootstrap", "50"]) == 1  # specialists: kappa too low
    payload = json.loads((out / "structure.json").read_text())
    assert list(payload["tune"]) == [str(path)]
    assert payload["tune"][str(path)]["distinct_best_members"] == 7
