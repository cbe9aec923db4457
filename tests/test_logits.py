"""LogitsTable: construction, Parquet + manifest round trip, selection, validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from env_fixtures import studies_frame, tiny_table

import mura_env
import mura_env.logits.reference as reference_mod
from mura_env.common.atomic import file_sha256
from mura_env.constants import STUDY_COLUMNS
from mura_env.logits import (
    LogitsTable,
    LogitsTableError,
    MissingLogitsError,
    logit_columns,
    manifest_path,
)
from mura_env.logits.reference import resolve_logits


def _arrays(n: int = 4, k: int = 2, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    studies = studies_frame(["WRIST", "HAND", "ELBOW", "SHOULDER"][:n], [1, 0, 1, 0][:n],
                            ["tune", "tune", "valid", "train"][:n])
    logits = np.random.default_rng(seed).normal(size=(n, k, 2)).astype(np.float32)
    return studies, logits


def test_from_arrays_attributes_and_copies() -> None:
    studies, logits = _arrays()
    table = LogitsTable.from_arrays(studies, ["a", "b"], logits,
                                    model_configs={"a": {"arch": "resnet50"}},
                                    data_fingerprint="abc")
    assert list(table.studies.columns) == list(STUDY_COLUMNS)
    assert table.model_names == ("a", "b") and table.n_models == 2 and len(table) == 4
    assert table.logits.dtype == np.float32 and table.logits.shape == (4, 2, 2)
    np.testing.assert_array_equal(table.logits, logits)
    assert not table.logits.flags.writeable
    logits[0, 0, 0] = 99.0  # the table keeps its own copy
    assert table.logits[0, 0, 0] != 99.0
    assert table.model_configs == {"a": {"arch": "resnet50"}, "b": {}}
    assert table.data_fingerprint == "abc"
    assert table.package_version == mura_env.__version__
    assert table.studies["label"].dtype == np.int64
    assert table.studies["study_id"].tolist() == studies["study_id"].tolist()


def test_abnormal_probabilities_are_softmax_index_1() -> None:
    studies, logits = _arrays()
    table = LogitsTable.from_arrays(studies, ["a", "b"], logits)
    as_float64 = logits.astype(np.float64)
    expected = np.exp(as_float64[..., 1]) / np.exp(as_float64).sum(axis=-1)
    np.testing.assert_allclose(table.abnormal_probabilities(), expected, rtol=1e-12)
    # stable for extreme logits
    extreme = np.array([[[0.0, 800.0]], [[800.0, 0.0]]], dtype=np.float32)
    t2 = LogitsTable.from_arrays(studies.iloc[:2], ["a"], extreme)
    np.testing.assert_allclose(t2.abnormal_probabilities(), [[1.0], [0.0]], atol=1e-300)


def test_save_load_round_trip(tmp_path: Path) -> None:
    table = tiny_table()
    path = table.save(tmp_path / "sub" / "ens.parquet")
    assert path == tmp_path / "sub" / "ens.parquet"
    mpath = manifest_path(path)
    assert mpath == tmp_path / "sub" / "ens.manifest.json"
    assert sorted(p.name for p in path.parent.iterdir()) == ["ens.manifest.json",
                                                             "ens.parquet"]  # no temp files
    manifest = json.loads(mpath.read_text())
    for key in ("model_names", "model_configs", "data_fingerprint", "created_at",
                "package_version", "parquet_sha256", "n_studies"):
        assert key in manifest
    assert manifest["model_names"] == list(table.model_names)
    assert manifest["n_studies"] == len(table)
    assert pq.read_schema(path).names == [*STUDY_COLUMNS, *logit_columns(table.model_names)]

    loaded = LogitsTable.load(path)
    pd.testing.assert_frame_equal(loaded.studies, table.studies)
    np.testing.assert_array_equal(loaded.logits, table.logits)
    assert loaded.model_names == table.model_names
    assert loaded.model_configs == table.model_configs
    assert loaded.created_at == table.created_at
    assert loaded.package_version == table.package_version
    assert not loaded.logits.flags.writeable
    # overwriting in place works and stays consistent
    table.select(split="tune").save(path)
    assert len(LogitsTable.load(path)) == 9


def test_select_filters_split_and_body_part_and_reorders_models() -> None:
    table = tiny_table(k=3)
    sub = table.select(split="valid", body_parts=["ELBOW", "HAND", "WRIST", "FINGER"],
                       models=["m2", "m0"])
    keep = table.studies["split"].eq("valid") & table.studies["body_part"].isin(
        ["ELBOW", "HAND", "WRIST", "FINGER"])
    rows = np.flatnonzero(keep.to_numpy())
    assert sub.model_names == ("m2", "m0")
    assert sub.studies["study_id"].tolist() == table.studies["study_id"].iloc[rows].tolist()
    assert sub.studies.index.tolist() == list(range(len(rows)))
    np.testing.assert_array_equal(sub.logits, table.logits[rows][:, [2, 0]])
    assert len(table.select(split=["train", "tune"])) == 13
    assert len(table.select()) == len(table)
    tune_humerus = table.studies["split"].eq("tune") & table.studies["body_part"].eq("HUMERUS")
    assert len(table.select(split="tune", body_parts="HUMERUS")) == int(tune_humerus.sum()) > 0
    with pytest.raises(ValueError, match="Unknown split"):
        table.select(split="test")
    with pytest.raises(ValueError, match="Unknown body_part"):
        table.select(body_parts=["KNEE"])
    with pytest.raises(ValueError, match="unknown \\['m9'\\]"):
        table.select(models=["m9"])


_BAD_MARK = np.arange(16).reshape(4, 2, 2) == 5  # one value of a [4, 2, 2] logits array


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda studies, logits: (studies.drop(columns="label"), logits), "lacks the column"),
        (lambda studies, logits: (studies.assign(label=[0, 2, 1, 0]), logits),
         "labels must be 0"),
        (lambda studies, logits: (studies.assign(body_part=["WRIST", "KNEE", "HAND", "HAND"]),
                                  logits), "unknown body part"),
        (lambda studies, logits: (studies.assign(split=["tune", "test", "tune", "tune"]), logits),
         "unknown split"),
        (lambda studies, logits: (studies.assign(study_id=["a", "a", "b", "c"]), logits),
         "study_id must be unique"),
        (lambda studies, logits: (studies.assign(patient_id=[None, "p", "p", "p"]), logits),
         "missing values"),
        (lambda studies, logits: (studies, np.where(_BAD_MARK, np.inf, logits)), "finite"),
        (lambda studies, logits: (studies, np.where(_BAD_MARK, -np.inf, logits)), "finite"),
        (lambda studies, logits: (studies, np.full((4, 2, 2), 1e39)),
         "finite"),  # overflows float32
        (lambda studies, logits: (studies, logits[:3]), "shape"),
        (lambda studies, logits: (studies, logits[:, :, :1]), "shape"),
    ],
)
def test_from_arrays_rejects_invalid_studies_and_logits(change, message: str) -> None:
    studies, logits = _arrays()
    bad_studies, bad_logits = change(studies, logits)
    with pytest.raises(LogitsTableError, match=message):
        LogitsTable.from_arrays(bad_studies, ["a", "b"], bad_logits)


def test_from_arrays_rejects_repeated_models_and_unknown_configs() -> None:
    studies, logits = _arrays()
    with pytest.raises(LogitsTableError, match="unique"):
        LogitsTable.from_arrays(studies, ["a", "a"], logits)
    with pytest.raises(LogitsTableError, match="not a string"):
        LogitsTable.from_arrays(studies, "ab", logits)
    with pytest.raises(LogitsTableError, match="unknown model"):
        LogitsTable.from_arrays(studies, ["a", "b"], logits, model_configs={"c": {}})


def test_load_missing_file_and_manifest(tmp_path: Path) -> None:
    with pytest.raises(MissingLogitsError, match="from_arrays"):
        LogitsTable.load(tmp_path / "nope.parquet")
    path = tiny_table().save(tmp_path / "t.parquet")
    manifest_path(path).unlink()
    with pytest.raises(MissingLogitsError, match="no manifest"):
        LogitsTable.load(path)


def test_load_detects_replaced_parquet(tmp_path: Path) -> None:
    path = tiny_table(seed=0).save(tmp_path / "t.parquet")
    manifest = manifest_path(path).read_text()
    tiny_table(seed=1).save(path)  # another table...
    manifest_path(path).write_text(manifest)  # ...with the old manifest
    with pytest.raises(LogitsTableError, match="does not match the file"):
        LogitsTable.load(path)


def _rewrite(path: Path, arrow: pa.Table) -> None:
    """Replace the Parquet file and fix the manifest's sha256 (so deeper checks run)."""
    pq.write_table(arrow, path)
    mpath = manifest_path(path)
    manifest = json.loads(mpath.read_text())
    manifest["parquet_sha256"] = file_sha256(path)
    mpath.write_text(json.dumps(manifest))


def test_load_rejects_inf_logits_bad_labels_and_missing_columns(tmp_path: Path) -> None:
    path = tiny_table().save(tmp_path / "t.parquet")
    arrow = pq.read_table(path)
    col = arrow.column("m1.logit_abnormal").to_numpy().copy()
    col[3] = np.inf
    _rewrite(path, arrow.set_column(arrow.schema.get_field_index("m1.logit_abnormal"),
                                    "m1.logit_abnormal", pa.array(col, pa.float32())))
    with pytest.raises(LogitsTableError, match="finite"):
        LogitsTable.load(path)

    path = tiny_table().save(tmp_path / "t.parquet")
    arrow = pq.read_table(path)
    labels = arrow.column("label").to_numpy().copy()
    labels[0] = 3
    _rewrite(path, arrow.set_column(arrow.schema.get_field_index("label"), "label",
                                    pa.array(labels)))
    with pytest.raises(LogitsTableError, match="labels must be 0"):
        LogitsTable.load(path)

    path = tiny_table().save(tmp_path / "t.parquet")
    arrow = pq.read_table(path)
    _rewrite(path, arrow.drop_columns(["n_images"]))
    with pytest.raises(LogitsTableError, match="do not match"):
        LogitsTable.load(path)


def test_load_rejects_invalid_or_mismatched_manifest(tmp_path: Path) -> None:
    path = tiny_table().save(tmp_path / "t.parquet")
    mpath = manifest_path(path)
    good = json.loads(mpath.read_text())

    mpath.write_text("{not json")
    with pytest.raises(LogitsTableError, match="not valid JSON"):
        LogitsTable.load(path)
    mpath.write_text(json.dumps({k: v for k, v in good.items() if k != "model_names"}))
    with pytest.raises(LogitsTableError, match="lacks the key"):
        LogitsTable.load(path)
    mpath.write_text(json.dumps({**good, "model_names": ["m0", "m1", "zz"]}))
    with pytest.raises(LogitsTableError, match="do not match the manifest's models"):
        LogitsTable.load(path)
    mpath.write_text(json.dumps({**good, "n_studies": 3}))
    with pytest.raises(LogitsTableError, match="manifest says 3"):
        LogitsTable.load(path)
    mpath.write_text(json.dumps({**good, "format_version": 99}))
    with pytest.raises(LogitsTableError, match="format"):
        LogitsTable.load(path)


def test_resolve_logits_takes_a_table_a_path_or_a_reference_table(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = tiny_table()
    assert resolve_logits(table) is table
    assert resolve_logits(table, reference_table=5) is table  # ignored when logits is given
    path = table.save(tmp_path / "t.parquet")
    assert resolve_logits(str(path)).model_names == table.model_names
    with pytest.raises(TypeError, match="LogitsTable"):
        resolve_logits(3)
    monkeypatch.setattr(reference_mod, "REFERENCE_DIR", tmp_path / "reference")
    with pytest.raises(MissingLogitsError) as err:
        resolve_logits(None)
    msg = str(err.value)
    assert "reference_0.parquet" in msg and reference_mod.remake_command(0) in msg
    other = tiny_table(seed=4)
    other.save(tmp_path / "reference" / "reference_1.parquet")
    np.testing.assert_array_equal(resolve_logits(None, reference_table=1).logits, other.logits)


def test_nan_logits_are_kept_as_hidden_and_round_trip(tmp_path: Path) -> None:
    studies, logits = _arrays()
    logits[2] = np.nan  # the valid study
    table = LogitsTable.from_arrays(studies, ["a", "b"], logits)
    assert table.hidden_rows().tolist() == [False, False, True, False]
    prob = table.abnormal_probabilities()
    assert np.isnan(prob[2]).all() and np.isfinite(np.delete(prob, 2, axis=0)).all()
    back = LogitsTable.load(table.save(tmp_path / "t.parquet"))
    np.testing.assert_array_equal(back.logits, table.logits)  # NaN compare equal here
    assert back.hidden_rows().tolist() == [False, False, True, False]
    assert not back.select(split="tune").hidden_rows().any()


def test_provenance_is_saved_loaded_and_kept_by_select(tmp_path: Path) -> None:
    studies, logits = _arrays()
    provenance = {"seed": 2, "profile": "reference", "members": {"a": {"kappa": 0.5}},
                  "sizes": [1, 2]}
    table = LogitsTable.from_arrays(studies, ["a", "b"], logits, provenance=provenance)
    assert table.provenance == provenance
    path = table.save(tmp_path / "t.parquet")
    assert json.loads(manifest_path(path).read_text())["provenance"] == provenance
    assert LogitsTable.load(path).provenance == provenance
    assert table.select(split="tune", models=["b"]).provenance == provenance
    assert LogitsTable.from_arrays(studies, ["a", "b"], logits).provenance is None
    with pytest.raises(LogitsTableError, match="provenance"):
        LogitsTable.from_arrays(studies, ["a", "b"], logits, provenance=["not", "a", "dict"])
    with pytest.raises(LogitsTableError, match="JSON"):
        LogitsTable.from_arrays(studies, ["a", "b"], logits, provenance={"x": object()})


def test_a_manifest_without_provenance_still_loads(tmp_path: Path) -> None:
    path = tiny_table().save(tmp_path / "t.parquet")
    mpath = manifest_path(path)
    manifest = json.loads(mpath.read_text())
    del manifest["provenance"]
    mpath.write_text(json.dumps(manifest))
    assert LogitsTable.load(path).provenance is None
