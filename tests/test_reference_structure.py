"""The shipped reference tables' sizes and provenance, and the structure report that measures
their designed weighting problem (``python -m experiments.reference_report``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from agent_fixtures import specialist_table

from experiments.pretrain import reference_report
from experiments.pretrain.reference_report import failed_bars, paired_difference, structure_figures
from mura_env.reference import load_reference_table, reference_indices
from mura_env.synthetic.plan import REAL_COUNTS


def test_three_mura_size_tables_share_their_valid_studies() -> None:
    indices = reference_indices()
    assert len(indices) >= 3
    valid_ids = None
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
        ids = valid["study_id"].tolist()
        assert valid_ids is None or ids == valid_ids
        valid_ids = ids
        provenance = table.provenance
        assert provenance["seed"] == index and provenance["profile"] == "reference"
        assert f"--seed {index} --export-reference {index}" in provenance["remake_command"]
        for key in ("commit", "machine", "wall_seconds", "sizes", "members"):
            assert key in provenance, key
        assert set(provenance["members"]) == set(table.model_names)


def test_structure_report_finds_the_specialists() -> None:
    table = specialist_table(per_cell=12)  # member k right exactly on body part k
    figures = structure_figures(table, n_bootstrap=200)
    assert figures["distinct_best_members"] == 7
    assert figures["per_part_accuracy"] == 1.0 and figures["uniform_accuracy"] == 0.0
    assert figures["per_part_minus_uniform"] == 100.0
    assert figures["per_part_ci"] == [100.0, 100.0]
    assert figures["disagreement"] == 1.0
    # each member is right on 1 part in 7: its kappa is far below the bar
    assert any("kappa" in fail for fail in failed_bars(figures))


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
    assert list(payload["tables"]) == ["0"]
    assert (out / "structure.csv").read_text().startswith("table,")
    assert status == (1 if failed_bars(payload["tables"]["0"]) else 0)
