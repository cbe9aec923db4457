"""Grad-CAM, attention maps and predictions of part-attention members (attention_resnet_parts):
every pass gets the study's body part, and each image's attention map is its part's head's."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import torch
from test_gradcam import TinyNet, reference_cam, write_run
from torch import nn

import backbones.gradcam as gradcam
import experiments.common.gradcam_report as report
import experiments.gradcam.__main__ as gradcam_cli
import experiments.predict.__main__ as predict
from backbones.part_attention import attention_map, forward_with_parts, part_indices
from backbones.registry import build_model
from backbones.runs import LOGIT_SPLITS
from mura_env.data import load_mura
from mura_env.logits import LogitsTable

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = 32


def separate_heads(model: nn.Module, part: str) -> None:
    """Perturb ``part``'s attention head: weights 20 times larger (a map that varies across
    the image) and a bias far below the others' (a map near 0 where theirs is near 1), so
    that the heads' maps, the Grad-CAM maps and the model's outputs clearly differ."""
    with torch.no_grad():
        head = model.attention.heads[part].conv
        head.weight.mul_(20.0)
        head.bias.fill_(-3.0)


def part_model(seed: int = 0) -> nn.Module:
    """An untrained attention_resnet_parts (SHOULDER and ELBOW heads, SHOULDER's separated),
    in eval mode."""
    torch.manual_seed(seed)
    model = build_model("attention_resnet_parts").eval()
    separate_heads(model, "SHOULDER")
    return model


def trunk(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The features an attention ResNet's attention sees: ``(B, C, h', w')``."""
    return model.layer4(model.layer3(model.layer2(model.layer1(model.stem(x)))))


def head_map(model: nn.Module, head: str, x: torch.Tensor) -> np.ndarray:
    """Attention head ``head``'s own map of inputs ``x``: float32 ``(B, h', w')``."""
    with torch.no_grad():
        module = model.attention.heads[head]
        module(trunk(model, x))
        return module.last_map[:, 0].numpy()


def radiographs(*shapes: tuple[int, int]) -> list[np.ndarray]:
    """Random uint8 grayscale images of these shapes."""
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, s, dtype=np.uint8) for s in shapes]


def test_part_model_gradcam_is_the_cam_of_each_images_own_head() -> None:
    model = part_model()
    x = torch.randn(3, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    parts = part_indices(["SHOULDER", "WRIST", "ELBOW"])
    maps = gradcam.model_heatmaps(model, "layer4", x, body_parts=parts)
    assert not model.layer4._forward_hooks and all(p.grad is None for p in model.parameters())

    def reference(p: torch.Tensor) -> np.ndarray:
        return reference_cam(lambda im: trunk(model, im),
                             lambda a: model.head(model.pool(model.attention(a, p))), x)

    np.testing.assert_allclose(maps, reference(parts), atol=1e-4)
    other = reference(part_indices(["WRIST"], 3))  # the SHOULDER image through the shared head
    assert np.abs(maps[0] - other[0]).max() > 0.05
    np.testing.assert_allclose(maps[1:], other[1:], atol=1e-4)
    with pytest.raises(ValueError, match="needs the body part"):
        gradcam.model_heatmaps(model, "layer4", x)
    assert not model.layer4._forward_hooks  # hooks released after the error too


def test_part_model_heatmaps_are_aligned_and_give_the_models_probabilities() -> None:
    model = part_model()
    images = radiographs((45, 30), (20, 52))
    maps, probs = gradcam.image_heatmaps(model, "layer4", images, SIZE, body_part="SHOULDER")
    assert [m.shape for m in maps] == [(45, 30), (20, 52)]
    assert all(m.dtype == np.float32 and m.min() >= 0 and m.max() <= 1 for m in maps)
    batch = torch.stack([gradcam.preprocess(im, SIZE) for im in images])
    shoulder = part_indices(["SHOULDER"], 2)
    with torch.no_grad():
        expected = torch.softmax(forward_with_parts(model, batch, shoulder), 1)[:, 1].numpy()
        wrist = torch.softmax(forward_with_parts(model, batch, part_indices(["WRIST"], 2)),
                              1)[:, 1].numpy()
    np.testing.assert_allclose(probs, expected, rtol=1e-5)
    assert np.abs(probs - wrist).min() > 1e-4  # the body part decides the head
    cams = gradcam.model_heatmaps(model, "layer4", batch, body_parts=shoulder)
    for m, cam, im in zip(maps, cams, images, strict=True):
        np.testing.assert_allclose(m, gradcam.unletterbox(cam, im.shape), atol=1e-6)
    with pytest.raises(ValueError, match="needs the body part"):
        gradcam.image_heatmaps(model, "layer4", images, SIZE)


def test_attention_maps_are_mapped_back_like_gradcam_maps_without_rescaling() -> None:
    # a 16 x 32 image letterboxes into rows 8..24 of 32, feature rows 1..2 of a 4 x 4 map
    attention = np.zeros((4, 4), np.float32)
    attention[1:3, :2], attention[1:3, 2:] = 0.8, 0.2
    out = gradcam.aligned_attention(attention, SIZE, (16, 32))
    assert out.shape == (16, 32) and out.dtype == np.float32
    np.testing.assert_allclose(out[4:12, :12], 0.8, atol=1e-5)
    np.testing.assert_allclose(out[4:12, 20:], 0.2, atol=1e-5)
    flat = gradcam.aligned_attention(np.full((4, 4), 0.3, np.float32), SIZE, (50, 20))
    np.testing.assert_allclose(flat, 0.3, atol=1e-6)  # a flat map stays flat


def test_the_attention_map_of_an_image_is_its_parts_head() -> None:
    model = part_model()
    image = radiographs((40, 28))[0]
    batch = gradcam.preprocess(image, SIZE)[None]
    shoulder_map, shared_map = head_map(model, "SHOULDER", batch), head_map(model, "shared",
                                                                            batch)
    with torch.no_grad():
        model(batch, part_indices(["SHOULDER"]))
    np.testing.assert_allclose(attention_map(model)[:, 0].numpy(), shoulder_map, atol=1e-6)

    shoulder = gradcam.explain_images(model, "layer4", [image], SIZE, body_part="SHOULDER")
    wrist = gradcam.explain_images(model, "layer4", [image], SIZE, body_part="WRIST")
    assert (shoulder.attention_head, wrist.attention_head) == ("SHOULDER", "shared")
    for explained, expected in ((shoulder, shoulder_map), (wrist, shared_map)):
        (att,) = explained.attention_maps
        assert att.shape == image.shape and att.dtype == np.float32
        assert att.min() >= 0 and att.max() <= 1
        np.testing.assert_allclose(
            att, gradcam.aligned_attention(expected[0], SIZE, image.shape), atol=1e-6)
    assert np.abs(wrist.attention_maps[0] - shoulder.attention_maps[0]).min() > 0.3


def test_plain_attention_model_has_one_attention_map_and_others_none() -> None:
    torch.manual_seed(0)
    plain = build_model("attention_resnet").eval()
    image = radiographs((30, 44))[0]
    explained = gradcam.explain_images(plain, "layer4", [image], SIZE, body_part="WRIST")
    assert explained.attention_head is None
    with torch.no_grad():
        plain(gradcam.preprocess(image, SIZE)[None])
    expected = plain.attention.last_map[0, 0].numpy()
    np.testing.assert_allclose(explained.attention_maps[0],
                               gradcam.aligned_attention(expected, SIZE, image.shape), atol=1e-6)
    torch.manual_seed(0)
    assert gradcam.explain_images(TinyNet().eval(), "features", [image],
                                  SIZE).attention_maps is None


def _members() -> list[gradcam.Member]:
    torch.manual_seed(1)
    return [gradcam.Member("attention_resnet_parts", part_model(), "layer4", SIZE),
            gradcam.Member("attention_resnet", build_model("attention_resnet").eval(),
                           "layer4", SIZE),
            gradcam.Member("tiny", TinyNet().eval(), "features", SIZE)]


def test_study_heatmaps_hold_each_members_attention_maps() -> None:
    members = _members()
    images = radiographs((45, 30), (20, 52))
    heat = gradcam.study_heatmaps(members, images, np.ones(3), body_part="SHOULDER")
    assert heat.attention_heads == ("SHOULDER", None, None)
    part = gradcam.explain_images(members[0].model, "layer4", images, SIZE,
                                  body_part="SHOULDER")
    np.testing.assert_allclose(heat.image_probabilities[:, 0], part.probabilities, rtol=1e-6)
    for j, image in enumerate(images):
        np.testing.assert_allclose(heat.attention(j, 0), part.attention_maps[j], atol=1e-6)
        assert heat.attention(j, 1).shape == image.shape
        assert heat.attention(j, 2) is None
    with pytest.raises(ValueError, match="needs the body part"):
        gradcam.study_heatmaps(members, images, np.ones(3))
    old_style = gradcam.StudyHeatmaps(heat.maps, heat.ensemble_maps, heat.image_probabilities)
    assert old_style.attention(0, 0) is None and old_style.attention_head(0) is None


def test_the_panel_draws_each_attention_map_beside_its_members_cam(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert report.attention_title("SHOULDER") == "attention (SHOULDER head)"
    assert report.attention_title("shared") == "attention (shared head)"
    assert report.attention_title(None) == "attention"
    members = _members()
    images = radiographs((45, 30))
    heat = gradcam.study_heatmaps(members, images, np.ones(3) / 3, body_part="SHOULDER")
    context = report.ReportContext(tuple(m.name for m in members), "uniform", synthetic=True)
    study = report.ExplainedStudy(
        study_id="valid/XR_SHOULDER/patient1/study1_positive", reason="test", label=1,
        image_paths=["image1.png"], images=images, heatmaps=heat,
        study_probabilities=heat.study_probabilities, weights=np.ones(3) / 3,
        ensemble_probability=0.5, prediction=0)
    drawn: list[tuple[str, np.ndarray]] = []
    draw = report._draw_attention
    monkeypatch.setattr(report, "_draw_attention", lambda ax, image, attention, title, alpha: (
        drawn.append((title, attention)), draw(ax, image, attention, title, alpha)))
    panel = report.study_panel(context, study, 0)
    with_attention = report.render_panel(panel, tmp_path / "a.png")
    assert [title for title, _ in drawn] == ["attention (SHOULDER head)", "attention"]
    np.testing.assert_array_equal(drawn[0][1], heat.attention(0, 0))
    without = report.render_panel(replace(panel, attention_maps=()), tmp_path / "b.png")
    assert len(drawn) == 2  # no attention maps: the panel as before
    assert mpimg.imread(with_attention).shape[1] > mpimg.imread(without).shape[1]


def test_predict_gives_part_members_the_studys_body_part() -> None:
    members = [m for m in _members() if m.name != "attention_resnet"]
    images = radiographs((45, 30), (20, 52))
    shoulder = predict.member_probabilities(members, images, body_part="SHOULDER")
    wrist = predict.member_probabilities(members, images, body_part="WRIST")
    assert shoulder.shape == (2, 2)
    batch = torch.stack([gradcam.preprocess(im, SIZE) for im in images])
    with torch.no_grad():
        logits = forward_with_parts(members[0].model, batch, part_indices(["SHOULDER"], 2))
    np.testing.assert_allclose(shoulder[:, 0], torch.softmax(logits.double(), 1)[:, 1],
                               rtol=1e-6)
    assert np.abs(shoulder[:, 0] - wrist[:, 0]).min() > 1e-4  # the part model's heads differ
    np.testing.assert_array_equal(shoulder[:, 1], wrist[:, 1])  # the other ignores the part
    with pytest.raises(ValueError, match="needs the body part"):
        predict.member_probabilities(members, images)


# ---------------------------------------------------------------------------- a run folder
PART_MODELS = {"attention_resnet_parts": SIZE, "attention_resnet": SIZE}


@pytest.fixture(scope="module")
def parts_run(_mini_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder whose part-attention member has a WRIST head of its own (recorded in its
    checkpoint's args) with a bias far below the shared head's, and whose logits table was
    computed with each study's body part."""
    def adjust(name: str, model: nn.Module) -> None:
        if name == "attention_resnet_parts":
            separate_heads(model, "WRIST")

    return write_run(tmp_path_factory.mktemp("parts") / "run", _mini_source, PART_MODELS,
                     options={"attention_resnet_parts": {"attention_parts": ["WRIST"]}},
                     adjust=adjust)


def _wrist_and_other_study(run: Path) -> tuple[str, str]:
    studies = LogitsTable.load(run / "logits.parquet").studies
    scored = studies[studies["split"].isin(LOGIT_SPLITS)]
    wrist = scored[scored["body_part"] == "WRIST"]["study_id"].iloc[0]
    other = scored[scored["body_part"] != "WRIST"]["study_id"].iloc[0]
    return wrist, other


def test_gradcam_cli_explains_a_part_model_with_its_heads(
        parts_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    wrist, other = _wrist_and_other_study(parts_run)
    titles: list[str] = []
    draw = report._draw_attention
    monkeypatch.setattr(report, "_draw_attention", lambda ax, image, attention, title, alpha: (
        titles.append(title), draw(ax, image, attention, title, alpha)))
    out = tmp_path / "panels"
    assert gradcam_cli.main(["--run", str(parts_run), "--out", str(out), "--device", "cpu",
                             "--no-progress", "--study", wrist, other]) == 0
    # the maps' pass gave each study its body part: its probabilities are the table's
    assert "recomputed" not in capsys.readouterr().err
    panels = pd.read_csv(out / "panels.csv")
    n_images = panels["study_id"].value_counts()
    expected = (["attention (WRIST head)", "attention"] * n_images[wrist]
                + ["attention (shared head)", "attention"] * n_images[other])
    assert titles == expected
    assert len(list(out.glob("*.png"))) == len(panels) == n_images.sum()


def test_predict_cli_routes_the_study_through_its_parts_head(
        parts_run: Path, _mini_source: Path, tmp_path: Path) -> None:
    wrist, _ = _wrist_and_other_study(parts_run)
    data = load_mura(_mini_source, tune_fraction=0.2, seed=0)
    folder = Path(data.images.loc[data.images["study_id"] == wrist, "path"].iloc[0]).parent
    table = LogitsTable.load(parts_run / "logits.parquet")
    k = table.studies.index[table.studies["study_id"] == wrist][0]
    names = list(table.model_names)

    def probabilities(out: Path, *args: str) -> np.ndarray:
        assert predict.main(["--run", str(parts_run), "--out", str(out), "--device", "cpu",
                             str(folder), *args]) == 0
        row = pd.read_csv(out / "predictions.csv").iloc[0]
        return np.array([row[f"{m}.probability"] for m in names])

    own = probabilities(tmp_path / "own")  # WRIST, from the XR_WRIST folder
    np.testing.assert_allclose(own, table.abnormal_probabilities()[k], atol=1e-5)
    hand = probabilities(tmp_path / "hand", "--body-part", "HAND")  # the shared head
    part = names.index("attention_resnet_parts")
    assert abs(hand[part] - own[part]) > 1e-4
    np.testing.assert_allclose(np.delete(hand, part), np.delete(own, part), atol=1e-9)
