"""The synthetic MURA-format generator: exact CSV format, proportions, images, determinism."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mura_env.constants import BODY_PARTS, MURA_DIRNAME
from mura_env.data import load_mura
from mura_env.synthetic import (
    contact_sheet,
    generate,
    read_manifest,
    render_study,
    sample_study,
    sample_view,
)
from mura_env.synthetic.plan import REAL_COUNTS, plan_dataset
from mura_env.synthetic.render import render

IMAGE_ROW = re.compile(
    r"MURA-v1\.1/(train|valid)/XR_(ELBOW|FINGER|FOREARM|HAND|HUMERUS|SHOULDER|WRIST)/"
    r"patient\d{5}/study\d+_(positive|negative)/image\d+\.png\n"
)
STUDY_ROW = re.compile(
    r"MURA-v1\.1/(train|valid)/XR_(ELBOW|FINGER|FOREARM|HAND|HUMERUS|SHOULDER|WRIST)/"
    r"patient\d{5}/study\d+_(positive|negative)/,([01])\n"
)


@pytest.mark.parametrize("split", ["train", "valid"])
def test_csvs_have_stanfords_exact_format(synthetic_s002: Path, split: str) -> None:
    root = synthetic_s002 / MURA_DIRNAME
    image_text = (root / f"{split}_image_paths.csv").read_bytes().decode("ascii")
    study_text = (root / f"{split}_labeled_studies.csv").read_bytes().decode("ascii")
    assert "\r" not in image_text + study_text
    image_rows = image_text.splitlines(keepends=True)
    study_rows = study_text.splitlines(keepends=True)
    for row in image_rows:
        m = IMAGE_ROW.fullmatch(row)
        assert m and m.group(1) == split, row
    for row in study_rows:
        m = STUDY_ROW.fullmatch(row)
        assert m and m.group(1) == split, row
        assert m.group(4) == ("1" if m.group(3) == "positive" else "0")
    studies = {r.split(",")[0] for r in study_rows}
    assert {r.rsplit("/", 1)[0] + "/" for r in image_rows} == studies
    # first rows as in Stanford's files: shoulder first, patient numbering from 1 in train
    if split == "train":
        assert study_rows[0].startswith("MURA-v1.1/train/XR_SHOULDER/patient00001/study1_")


def test_study_counts_follow_the_real_proportions(synthetic_s002: Path) -> None:
    """Per-part/label study counts are within 15% (or +-2 studies) of the real ones."""
    studies = load_mura(synthetic_s002, tune_fraction=0).studies
    real_total = sum(n + a for n, a, _, _ in REAL_COUNTS.values())
    for (split, part), (n_norm, n_abn, _, _) in REAL_COUNTS.items():
        for label, real in ((0, n_norm), (1, n_abn)):
            got = int(((studies["split"] == split) & (studies["body_part"] == part)
                       & (studies["label"] == label)).sum())
            expected = real / real_total * len(studies)
            assert abs(got - expected) <= max(2, 0.15 * expected), (split, part, label, got)


def test_images_per_study_follow_the_real_ratio() -> None:
    plan = plan_dataset(0.5, 1)
    for (split, part), (n_norm, n_abn, img_norm, img_abn) in REAL_COUNTS.items():
        for label, n_real, img_real in ((0, n_norm, img_norm), (1, n_abn, img_abn)):
            cell = plan[(plan["split"] == split) & (plan["body_part"] == part)
                        & (plan["label"] == label)]
            assert cell["n_images"].mean() == pytest.approx(img_real / n_real, rel=0.05)


def test_patients_have_one_to_three_studies_per_body_part() -> None:
    plan = plan_dataset(0.2, 0)
    per_part = plan.groupby(["patient", "body_part"]).size()
    assert per_part.min() >= 1 and per_part.max() <= 3
    assert plan.groupby("patient")["split"].nunique().max() == 1
    assert (plan.groupby("patient")["body_part"].nunique() == 2).any()


def test_images_are_8bit_grayscale_up_to_512(synthetic_s002: Path) -> None:
    paths = load_mura(synthetic_s002).images["path"].tolist()[::25]
    sizes = set()
    for p in paths:
        with Image.open(p) as im:
            assert im.mode == "L" and max(im.size) <= 512
            assert "synthetic" in im.text.get("Source", "")
            sizes.add(im.size)
    assert len(sizes) > len(paths) // 2  # sizes vary
    manifest = read_manifest(synthetic_s002)
    assert manifest["synthetic"] is True and "clinical" in manifest["note"]


def test_abnormal_studies_show_a_finding_normal_ones_do_not() -> None:
    kinds = {part: set() for part in BODY_PARTS}
    for i in range(400):
        part = BODY_PARTS[i % 7]
        spec = sample_study(part, label=1, n_images=3, seed=0, study_index=i)
        assert spec.kind in ("fracture", "lesion", "hardware", "narrowing", "swelling",
                             "osteopenia")
        assert any(spec.shows)
        kinds[part].add(spec.kind)
        normal = sample_study(part, label=0, n_images=2, seed=0, study_index=i)
        assert normal.kind == "normal"
        assert all(finding.kind == "growth_plate" for finding in normal.findings)
    # several kinds in every body part
    assert all(len(part_kinds) >= 3 for part_kinds in kinds.values())


@pytest.mark.parametrize("finding_kind", ["hardware", "fracture"])
def test_findings_change_the_picture(finding_kind: str) -> None:
    """The same study drawn with and without its finding differs where the finding is."""
    for i in range(200):
        spec = sample_study("FOREARM", 1, 1, seed=5, study_index=i)
        if spec.kind == finding_kind and spec.shows[0]:
            break
    else:
        pytest.fail(f"no {finding_kind} study among the first 200")
    view = sample_view(0, spec.marker, np.random.default_rng(0))
    with_finding = render(spec.anatomy, view, spec.findings, np.random.default_rng(1))
    without = render(spec.anatomy, view, [], np.random.default_rng(1))
    diff = np.abs(with_finding.astype(int) - without.astype(int))
    assert diff.max() > 40
    if finding_kind == "hardware":
        assert with_finding.max() >= without.max()  # metal is the brightest thing


def test_same_seed_same_pictures_other_seed_other_pictures() -> None:
    a = render_study("WRIST", 1, 2, seed=1, study_index=3)[1]
    b = render_study("WRIST", 1, 2, seed=1, study_index=3)[1]
    c = render_study("WRIST", 1, 2, seed=2, study_index=3)[1]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_byte_identical_across_worker_counts(tmp_path: Path) -> None:
    one = generate(tmp_path / "w1", scale=0.004, seed=11, workers=1, progress=False)
    two = generate(tmp_path / "w2", scale=0.004, seed=11, workers=2, progress=False)
    d1, d2 = _tree_digest(one), _tree_digest(two)
    assert len(d1) > 100 and d1 == d2


def test_existing_data_set_is_kept_or_refused(tmp_path: Path) -> None:
    root = generate(tmp_path, scale=0.001, seed=1, workers=1, progress=False)
    marker = root / "train_image_paths.csv"
    mtime = marker.stat().st_mtime_ns
    assert generate(tmp_path, scale=0.001, seed=1, workers=1, progress=False) == root
    assert marker.stat().st_mtime_ns == mtime  # same settings: kept, not redone
    with pytest.raises(FileExistsError, match="other settings"):
        generate(tmp_path, scale=0.001, seed=2, workers=1, progress=False)
    generate(tmp_path, scale=0.001, seed=2, workers=1, overwrite=True, progress=False)
    assert read_manifest(tmp_path)["seed"] == 2
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())
    real = tmp_path / "real"
    (real / MURA_DIRNAME).mkdir(parents=True)
    with pytest.raises(FileExistsError, match="not a synthetic data set"):
        generate(real, scale=0.001, seed=1, workers=1, overwrite=True, progress=False)


def test_contact_sheet_is_a_grayscale_grid_of_examples(mini_mura: Path) -> None:
    path = contact_sheet(mini_mura, mini_mura / "sheet.png", per_row=(1, 2), tile=64)
    with Image.open(path) as im:
        assert im.mode == "L"
        assert im.width >= 3 * 64 and im.height >= 7 * 64
        pixels = np.asarray(im)
    assert pixels.std() > 10  # not blank


def test_older_generator_version_is_remade(tmp_path: Path) -> None:
    root = generate(tmp_path, scale=0.001, seed=1, workers=1, progress=False)
    manifest = json.loads((root / "SYNTHETIC.json").read_text())
    manifest["generator_version"] -= 1
    (root / "SYNTHETIC.json").write_text(json.dumps(manifest))
    generate(tmp_path, scale=0.001, seed=1, workers=1, progress=False)
    assert read_manifest(tmp_path)["generator_version"] == manifest["generator_version"] + 1


def test_failed_build_leaves_nothing_behind(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import mura_env.synthetic.dataset as dataset_module

    def broken(*args: object, **kwargs: object) -> int:
        raise RuntimeError("disk full")

    monkeypatch.setattr(dataset_module, "_write_study", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        generate(tmp_path, scale=0.001, seed=1, workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []
