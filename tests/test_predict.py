"""``python -m experiments.predict`` on new studies: folders, PNG files and DICOM files, the
body-part precedence, agents, Grad-CAM panels, and every bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from dicom_fixtures import write_dicom
from test_gradcam import tiny_run  # noqa: F401  (a fixture: a run with checkpoints and logits)

import experiments.predict.__main__ as predict
from experiments.predict.inputs import PredictInputError, collect_studies, resolve_body_part
from mura_env.data import load_mura
from mura_env.logits import LogitsTable


def _predict(run: Path, out: Path, *args: str) -> int:
    return predict.main(["--run", str(run), "--out", str(out), "--device", "cpu", *args])


@pytest.fixture(scope="module")
def valid_study(tiny_run: Path, _mini_source: Path) -> tuple[str, Path, float]:  # noqa: F811
    """A valid study of the run's data set: its id, its folder and its members' probabilities
    in the run's logits table."""
    data = load_mura(_mini_source, tune_fraction=0.2, seed=0)
    table = LogitsTable.load(tiny_run / "logits.parquet")
    valid = table.studies[table.studies["split"] == "valid"]
    study_id = valid["study_id"].iloc[0]
    path = data.images.loc[data.images["study_id"] == study_id, "path"].iloc[0]
    return study_id, Path(path).parent, table


def test_a_study_of_the_runs_data_set_gets_the_logits_tables_probabilities(
        tiny_run: Path, valid_study, tmp_path: Path) -> None:  # noqa: F811
    study_id, folder, table = valid_study
    assert _predict(tiny_run, tmp_path / "o", str(folder)) == 0
    frame = pd.read_csv(tmp_path / "o" / "predictions.csv")
    row = frame.iloc[0]
    k = table.studies.index[table.studies["study_id"] == study_id][0]
    expected = table.abnormal_probabilities()[k]
    got = [row[f"{m}.probability"] for m in table.model_names]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert row["body_part"] == table.studies.loc[k, "body_part"]  # from the XR_<PART> folder
    assert row["n_images"] == table.studies.loc[k, "n_images"]
    np.testing.assert_allclose(row["ensemble_probability"], np.mean(expected), atol=1e-5)
    assert row["prediction"] == int(np.mean(expected) > 0.5)
    payload = json.loads((tmp_path / "o" / "predictions.json").read_text())
    assert payload["weights"] == "uniform" and len(payload["predictions"]) == 1


def test_loose_files_one_study_or_one_each_and_the_body_part_order(valid_study,
                                                                   tmp_path: Path) -> None:
    _, folder, _ = valid_study
    files = sorted(folder.glob("*.png"))
    loose = tmp_path / "loose"
    loose.mkdir()
    copies = [Path(shutil.copy(f, loose / f"img{i}.png")) for i, f in enumerate(files)]
    with pytest.raises(PredictInputError, match="--body-part"):
        collect_studies(copies)
    each = collect_studies(copies, body_part="hand")
    assert [s.body_part for s in each] == ["HAND"] * len(copies)
    assert len(each) == len(copies) and all(len(s.images) == 1 for s in each)
    one = collect_studies(copies, study="mine", body_part="HAND")
    assert len(one) == 1 and one[0].study_id == "mine" and len(one[0].images) == len(copies)
    in_folder = collect_studies([folder])[0]
    part = in_folder.body_part
    other = "FINGER" if part != "FINGER" else "HAND"
    assert collect_studies([folder], body_part=other)[0].body_part == other  # flag first
    assert resolve_body_part(None, [folder], ["ELBOW"], "s") == part  # path before DICOM
    assert resolve_body_part(None, [loose], ["ELBOW"], "s") == "ELBOW"  # DICOM last


def test_bad_inputs_are_named(tiny_run: Path, valid_study, tmp_path: Path) -> None:  # noqa: F811
    _, folder, _ = valid_study
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PredictInputError, match="no PNG, JPEG or DICOM"):
        collect_studies([empty])
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"not a png")
    with pytest.raises(PredictInputError, match="broken.png"):
        collect_studies([corrupt], body_part="HAND")
    with pytest.raises(PredictInputError, match="is not one of"):
        collect_studies([folder], body_part="KNEE")
    with pytest.raises(PredictInputError, match="no such file"):
        collect_studies([tmp_path / "missing.png"])
    colour = tmp_path / "colour.png"
    grey = cv2.imread(str(next(folder.glob("*.png"))), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(colour), cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
    with pytest.warns(UserWarning, match="grayscale"):
        study = collect_studies([colour], body_part="HAND")[0]
    np.testing.assert_array_equal(study.images[0], grey)
    out = tmp_path / "o"
    assert _predict(tiny_run, out, str(empty)) == 2 and not (out / "predictions.csv").exists()
    no_ckpt = tmp_path / "run"
    shutil.copytree(tiny_run, no_ckpt)
    for ckpt in no_ckpt.glob("*/checkpoint.pth"):
        ckpt.unlink()
    assert _predict(no_ckpt, out, str(folder)) == 2
    assert _predict(tiny_run, out, str(folder), "--agent", str(tmp_path / "nothing")) == 2


def test_agent_weights_deferral_and_gradcam_panels(tiny_run: Path, valid_study,  # noqa: F811
                                                   tmp_path: Path) -> None:
    from agents.core.saved import load_agent
    from agents.core.train import train_agent
    from mura_env.deferral.config import DeferralConfig

    _, folder, table = valid_study
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    table = table.with_simulated_reader()
    table.save(run / "logits.parquet")
    agent_dir = tmp_path / "agent"
    train_agent("softmax-pg", DeferralConfig(logits=table, defer_cost=0.0), agent_dir,
                total_timesteps=2048, n_envs=512, tensorboard=False)
    out, panels = tmp_path / "o", tmp_path / "panels"
    assert _predict(run, out, str(folder), "--agent", str(agent_dir),
                    "--gradcam", str(panels)) == 0
    row = pd.read_csv(out / "predictions.csv").iloc[0]
    names = list(table.model_names)
    q = np.array([row[f"{m}.probability"] for m in names])
    obs = predict.observation(q, row["body_part"])[None]
    agent = load_agent(agent_dir)
    np.testing.assert_allclose([row[f"{m}.weight"] for m in names], agent.weights(obs)[0],
                               atol=1e-6)
    assert bool(row["deferred"]) == bool(agent.deferred(obs)[0])
    index = (panels / "index.html").read_text()
    assert "label unknown" in index and len(list(panels.glob("*.png"))) == row["n_images"]
    other = tmp_path / "other_agent"  # trained on another table: refused
    train_agent("softmax-pg", DeferralConfig(logits=table.select(split="tune"),
                                             defer_cost=0.0),
                other, total_timesteps=512, n_envs=512, tensorboard=False)
    assert _predict(run, tmp_path / "o2", str(folder), "--agent", str(other)) == 2


def _as_dicom(png: Path, out: Path, body_part: str | None) -> Path:
    """``png`` written as an 8-bit MONOCHROME2 DICOM file (with BodyPartExamined)."""
    extra = {} if body_part is None else {"BodyPartExamined": body_part}
    return write_dicom(out, cv2.imread(str(png), cv2.IMREAD_GRAYSCALE), **extra)


def test_the_same_study_as_dicom_files_gets_the_same_prediction(tiny_run: Path,  # noqa: F811
                                                                valid_study,
                                                                tmp_path: Path) -> None:
    _, folder, table = valid_study
    part = collect_studies([folder])[0].body_part
    dicom_folder = tmp_path / "dicom_study"  # no XR_<PART> in this path: the tag decides
    dicom_folder.mkdir()
    for i, png in enumerate(sorted(folder.glob("*.png"))):
        _as_dicom(png, dicom_folder / f"image{i}", part + "S")  # a plural; no suffix
    assert _predict(tiny_run, tmp_path / "png", str(folder)) == 0
    assert _predict(tiny_run, tmp_path / "dcm", str(dicom_folder)) == 0
    png_row = pd.read_csv(tmp_path / "png" / "predictions.csv").iloc[0]
    dcm_row = pd.read_csv(tmp_path / "dcm" / "predictions.csv").iloc[0]
    assert dcm_row["body_part"] == part and dcm_row["n_images"] == png_row["n_images"]
    for m in table.model_names:
        assert dcm_row[f"{m}.probability"] == pytest.approx(png_row[f"{m}.probability"],
                                                            abs=1e-5)
    no_pixels = _as_dicom(next(folder.glob("*.png")), tmp_path / "sr.dcm", "HAND")
    from pydicom import dcmread

    ds = dcmread(no_pixels)
    del ds.PixelData
    ds.save_as(no_pixels, enforce_file_format=True)
    with pytest.raises(PredictInputError, match="no pixel data"):
        collect_studies([no_pixels])


def test_a_jpeg_file_and_an_agent_of_another_model_set(tiny_run: Path, valid_study,  # noqa: F811
                                                       tmp_path: Path) -> None:
    from agents.core.train import train_agent
    from mura_env.weighting.config import WeightingConfig

    _, folder, table = valid_study
    png = next(folder.glob("*.png"))
    jpeg = tmp_path / "study.jpg"
    cv2.imwrite(str(jpeg), cv2.imread(str(png), cv2.IMREAD_GRAYSCALE),
                [cv2.IMWRITE_JPEG_QUALITY, 100])
    assert _predict(tiny_run, tmp_path / "o", str(jpeg), "--body-part", "WRIST") == 0
    row = pd.read_csv(tmp_path / "o" / "predictions.csv").iloc[0]
    assert row["study_id"] == str(jpeg) and row["n_images"] == 1 and row["body_part"] == "WRIST"
    renamed = LogitsTable.from_arrays(table.studies, [f"other_{m}" for m in table.model_names],
                                      table.logits, data_fingerprint=table.data_fingerprint)
    agent_dir = tmp_path / "agent"
    train_agent("softmax-pg", WeightingConfig(logits=renamed), agent_dir, total_timesteps=512,
                n_envs=512, tensorboard=False)
    assert _predict(tiny_run, tmp_path / "o2", str(folder), "--agent", str(agent_dir)) == 2
