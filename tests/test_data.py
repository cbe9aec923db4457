"""The MURA-v1.1 reader: round trip on generated data, and a clear error for every bad input."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pandas as pd
import pytest

from mura_env.constants import BODY_PARTS, MURA_DIRNAME
from mura_env.data import MuraFormatError, load_mura, resolve_mura_root, summarize
from mura_env.synthetic import read_manifest
from mura_env.synthetic.plan import plan_dataset, study_relpath


def _csv(root: Path, name: str) -> Path:
    return root / MURA_DIRNAME / name


def _edit_lines(path: Path, fn) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(fn(lines)))


# --- round trip -----------------------------------------------------------------------------


def test_round_trip_matches_the_generator_plan(synthetic_s002: Path) -> None:
    data = load_mura(synthetic_s002, tune_fraction=0)
    manifest = read_manifest(synthetic_s002)
    plan = plan_dataset(manifest["scale"], manifest["seed"])
    expected = {study_relpath(r): r for r in plan.to_dict("records")}
    assert len(data.studies) == len(plan)
    assert set(data.studies["study_id"]) == set(expected)
    for row in data.studies.to_dict("records"):
        planned = expected[row["study_id"]]
        assert row["n_images"] == planned["n_images"]
        assert row["label"] == planned["label"]
        assert row["body_part"] == planned["body_part"]
        assert row["split"] == planned["split"]
        assert row["patient_id"] == f"patient{planned['patient']:05d}"
    assert len(data.images) == plan["n_images"].sum()
    assert data.images["path"].map(lambda p: Path(p).is_absolute() and Path(p).is_file()).all()
    per_study = data.images.groupby("study_id")["label"].first()
    assert per_study.to_dict() == dict(zip(data.studies["study_id"], data.studies["label"],
                                           strict=True))
    assert set(data.studies["body_part"]) == set(BODY_PARTS)
    assert re.fullmatch(r"[0-9a-f]{64}", data.fingerprint)


def test_study_identity_is_the_full_path(synthetic_s002: Path) -> None:
    """A patient may have a study1 in two body parts: both must stay separate studies."""
    studies = load_mura(synthetic_s002).studies
    assert studies["study_id"].is_unique
    parts_per_patient = studies.groupby("patient_id")["body_part"].nunique()
    assert (parts_per_patient > 1).any(), "the generator should make cross-part patients"
    short = studies["patient_id"] + "/" + studies["study_id"].str.extract(r"(study\d+)_")[0]
    assert not short.is_unique  # the naive key would merge studies


def test_root_may_be_the_parent_or_the_mura_folder(mini_mura: Path) -> None:
    a = load_mura(mini_mura)
    b = load_mura(mini_mura / MURA_DIRNAME)
    assert a.studies.equals(b.studies)
    assert resolve_mura_root(mini_mura) == (mini_mura / MURA_DIRNAME).resolve()


def test_tune_split_is_by_patient_and_leaves_valid_alone(synthetic_s002: Path) -> None:
    data = load_mura(synthetic_s002, tune_fraction=0.2, seed=0)
    assert set(data.studies["split"]) == {"train", "tune", "valid"}
    # valid is never touched
    official = load_mura(synthetic_s002, tune_fraction=0)
    valid_ids = set(official.studies.loc[official.studies["split"] == "valid", "study_id"])
    assert set(data.studies.loc[data.studies["split"] == "valid", "study_id"]) == valid_ids
    splits_per_patient = data.studies.groupby("patient_id")["split"].nunique()
    assert (splits_per_patient == 1).all()
    image_split = data.images.groupby("study_id")["split"].first()
    assert image_split.to_dict() == dict(zip(data.studies["study_id"], data.studies["split"],
                                             strict=True))


def test_summary_totals_match_studies_and_images(synthetic_s002: Path) -> None:
    data = load_mura(synthetic_s002)
    table = summarize(data.studies)
    totals = table[table["body_part"] == "total"].set_index("split")
    assert totals["studies"].sum() == len(data.studies)
    assert totals["images"].sum() == len(data.images)
    assert (table["normal"] + table["abnormal"] == table["studies"]).all()


def test_ignores_resource_forks_and_non_image_files(mini_mura: Path) -> None:
    before = load_mura(mini_mura)
    study_dir = Path(before.images["path"].iloc[0]).parent
    (study_dir / "._image1.png").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    (study_dir / "notes.txt").write_text("not an image")
    (mini_mura / MURA_DIRNAME / "train" / ".DS_Store").write_bytes(b"junk")
    (mini_mura / MURA_DIRNAME / "README.txt").write_text("readme")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        after = load_mura(mini_mura)
    assert after.images.equals(before.images)


def test_unlisted_image_on_disk_is_reported(mini_mura: Path) -> None:
    data = load_mura(mini_mura)
    extra = Path(data.images["path"].iloc[0]).parent / "image99.png"
    extra.write_bytes(Path(data.images["path"].iloc[0]).read_bytes())
    with pytest.warns(UserWarning, match=r"1 image\(s\) .* not listed"):
        load_mura(mini_mura)


# --- bad input ------------------------------------------------------------------------------


def test_missing_root_or_root_without_csvs_is_reported(tmp_path: Path) -> None:
    with pytest.raises(MuraFormatError, match="does not exist"):
        load_mura(tmp_path / "nope")
    with pytest.raises(MuraFormatError, match="holds no MURA-v1.1"):
        load_mura(tmp_path)


def test_missing_csv_is_named(mini_mura: Path) -> None:
    _csv(mini_mura, "valid_labeled_studies.csv").unlink()
    with pytest.raises(MuraFormatError, match="missing valid_labeled_studies.csv"):
        load_mura(mini_mura)


@pytest.mark.parametrize("name,header", [("train_image_paths.csv", "path\n"),
                                         ("valid_labeled_studies.csv", "path,label\n")])
def test_csv_with_header_row_is_rejected(mini_mura: Path, name: str, header: str) -> None:
    _edit_lines(_csv(mini_mura, name), lambda lines: [header, *lines])
    with pytest.raises(MuraFormatError, match=rf"{name}, row 1 .*header"):
        load_mura(mini_mura)


def test_wrong_column_count_names_file_and_row(mini_mura: Path) -> None:
    _edit_lines(_csv(mini_mura, "train_image_paths.csv"),
                lambda lines: [lines[0], lines[1].rstrip("\n") + ",1\n", *lines[2:]])
    with pytest.raises(MuraFormatError, match=r"train_image_paths.csv, row 2: expected 1 "
                                              r"column\(s\), found 2"):
        load_mura(mini_mura)
    _edit_lines(_csv(mini_mura, "train_image_paths.csv"),
                lambda lines: [lines[0], lines[1].replace(",1\n", "\n"), *lines[2:]])
    _edit_lines(_csv(mini_mura, "valid_labeled_studies.csv"),
                lambda lines: [*lines[:-1], lines[-1].split(",")[0] + "\n"])
    with pytest.raises(MuraFormatError, match=r"valid_labeled_studies.csv, row \d+: expected 2"):
        load_mura(mini_mura)


def test_listed_image_missing_on_disk_is_reported(mini_mura: Path) -> None:
    data = load_mura(mini_mura)
    gone = data.images[data.images["split"] == "valid"]["path"].iloc[:3].tolist()
    for p in gone:
        Path(p).unlink()
    n_valid = int((data.images["split"] == "valid").sum())
    expected = rf"3 of {n_valid} listed image\(s\) are missing"
    with pytest.raises(MuraFormatError, match=expected) as e:
        load_mura(mini_mura)
    assert Path(gone[0]).name in str(e.value) and "valid_image_paths.csv" in str(e.value)


@pytest.mark.parametrize("bad,match", [
    ("MURA-v1.1/train/../../outside/image1.png", "escapes the data set root"),
    ("/etc/MURA-v1.1/train/XR_HAND/patient00001/study1_positive/image1.png", "absolute path"),
])
def test_path_escaping_the_root_is_rejected(mini_mura: Path, bad: str, match: str) -> None:
    _edit_lines(_csv(mini_mura, "train_image_paths.csv"), lambda lines: [bad + "\n", *lines])
    with pytest.raises(MuraFormatError, match=match):
        load_mura(mini_mura)


def test_unknown_body_part_in_csv_is_rejected(mini_mura: Path) -> None:
    _edit_lines(_csv(mini_mura, "train_labeled_studies.csv"),
                lambda lines: [lines[0].replace("XR_SHOULDER", "XR_FOOT"), *lines[1:]])
    with pytest.raises(MuraFormatError, match="unknown body part folder 'XR_FOOT'"):
        load_mura(mini_mura)


def test_unknown_body_part_folder_on_disk_is_rejected(mini_mura: Path) -> None:
    (mini_mura / MURA_DIRNAME / "valid" / "XR_KNEE" / "patient99999").mkdir(parents=True)
    with pytest.raises(MuraFormatError, match="unknown body part folder .*XR_KNEE"):
        load_mura(mini_mura)


def test_label_disagreeing_with_folder_is_rejected(mini_mura: Path) -> None:
    def flip(lines: list[str]) -> list[str]:
        path, label = lines[0].rstrip("\n").split(",")
        return [f"{path},{1 - int(label)}\n", *lines[1:]]

    _edit_lines(_csv(mini_mura, "train_labeled_studies.csv"), flip)
    with pytest.raises(MuraFormatError, match=r"row 1: study .* has label \d but its folder says"):
        load_mura(mini_mura)


def test_empty_image_csv_is_reported(mini_mura: Path) -> None:
    _csv(mini_mura, "valid_image_paths.csv").write_text("")
    with pytest.raises(MuraFormatError, match="valid_image_paths.csv is empty"):
        load_mura(mini_mura)


def test_study_without_images_is_reported(mini_mura: Path) -> None:
    path = _csv(mini_mura, "train_image_paths.csv")
    first_study = path.read_text().splitlines()[0].rsplit("/", 1)[0]
    _edit_lines(path, lambda lines: [ln for ln in lines if not ln.startswith(first_study + "/")])
    with pytest.raises(MuraFormatError, match=r"1 labeled study\(ies\) have no image listed"):
        load_mura(mini_mura)


def test_csv_with_byte_order_mark_reads_as_without_it(mini_mura: Path) -> None:
    without_bom = load_mura(mini_mura)
    for name in ("train_labeled_studies.csv", "valid_image_paths.csv"):
        path = _csv(mini_mura, name)
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    with_bom = load_mura(mini_mura)
    assert len(with_bom.studies) > 0
    pd.testing.assert_frame_equal(with_bom.studies, without_bom.studies)
    pd.testing.assert_frame_equal(with_bom.images, without_bom.images)


def test_binary_csv_is_reported_as_not_text(mini_mura: Path) -> None:
    _csv(mini_mura, "train_image_paths.csv").write_bytes(b"\xff\xfe\x00garbage\x81\n")
    with pytest.raises(MuraFormatError, match="train_image_paths.csv is not a text CSV"):
        load_mura(mini_mura)


def test_label_not_zero_or_one_is_rejected(mini_mura: Path) -> None:
    _edit_lines(_csv(mini_mura, "valid_labeled_studies.csv"),
                lambda lines: [lines[0].rsplit(",", 1)[0] + ",abnormal\n", *lines[1:]])
    with pytest.raises(MuraFormatError, match="label 'abnormal' is not 0 or 1"):
        load_mura(mini_mura)


def test_study_listed_twice_is_rejected(mini_mura: Path) -> None:
    _edit_lines(_csv(mini_mura, "train_labeled_studies.csv"), lambda lines: [*lines, lines[0]])
    with pytest.raises(MuraFormatError, match="listed twice"):
        load_mura(mini_mura)
