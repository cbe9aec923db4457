"""Backbone registry, weight loading, study aggregation, class weights, transforms, decode cache."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from torchvision import models as tvm

import backbones.cache as cache_mod
from backbones.cache import BadImageError, build_cache
from backbones.data import PART_INDEX, CachedImages, class_weights
from backbones.infer import aggregate_studies
from backbones.part_attention import forward_with_parts, part_indices
from backbones.registry import REGISTRY, UnknownModelError, build_model, get_spec
from backbones.transforms import MEAN, STD, eval_transform, letterbox, train_transform
from mura_env.constants import BODY_PARTS
from mura_env.data import load_mura


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Keep CPU use modest: the machine is shared."""
    torch.set_num_threads(1)


# --------------------------------------------------------------------------- registry


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_model_gives_two_logits_for_grayscale(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name).eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():  # a part-attention model also takes each image's body part
        out = forward_with_parts(model, x, part_indices(["SHOULDER", "WRIST"]))
    assert out.shape == (2, 2)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    first = model.get_submodule(get_spec(name).first_conv)
    assert isinstance(first, torch.nn.Conv2d) and first.in_channels == 1
    model.get_submodule(get_spec(name).target_layer)  # the Grad-CAM layer exists


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(UnknownModelError) as info:
        build_model("resnet19")
    message = str(info.value)
    assert "resnet19" in message
    for name in REGISTRY:
        assert name in message
    assert isinstance(info.value, KeyError)


# --------------------------------------------------------------------------- weights


def test_local_state_dict_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = build_model("attention_resnet").eval()
    path = tmp_path / "weights.pt"
    torch.save(source.state_dict(), path)
    torch.manual_seed(2)  # a different initialisation, overwritten by the weights
    loaded = build_model("attention_resnet", weights=str(path)).eval()
    x = torch.rand(3, 1, 48, 48)
    with torch.no_grad():
        assert torch.equal(source(x), loaded(x))
    for key, value in source.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


def test_rgb_state_dict_is_summed_to_gray_and_head_left_initialised(tmp_path: Path) -> None:
    torch.manual_seed(3)
    rgb = tvm.resnet18(num_classes=1000).state_dict()
    path = tmp_path / "rgb_resnet18.pth"
    torch.save(rgb, path)

    torch.manual_seed(4)
    fresh = build_model("resnet18")
    torch.manual_seed(4)  # same initialisation as `fresh` before the weights are loaded
    model = build_model("resnet18", weights=str(path))

    assert model.conv1.weight.shape == (64, 1, 7, 7)
    assert torch.allclose(model.conv1.weight, rgb["conv1.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(model.layer3[1].conv2.weight, rgb["layer3.1.conv2.weight"])
    assert torch.equal(model.bn1.running_var, rgb["bn1.running_var"])
    # the 1000-class head does not fit the 2-class one: left as initialised
    assert model.fc.weight.shape == (2, 512)
    assert torch.equal(model.fc.weight, fresh.fc.weight)
    assert torch.equal(model.fc.bias, fresh.fc.bias)
    assert not torch.allclose(model.conv1.weight, fresh.conv1.weight)


def test_state_dict_of_another_architecture_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "attention.pt"
    torch.save(build_model("attention_resnet").state_dict(), path)
    with pytest.raises(ValueError, match="another architecture") as info:
        build_model("resnet18", weights=str(path))
    assert str(path) in str(info.value)


def test_missing_weights_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        build_model("attention_resnet", weights=str(tmp_path / "nope.pt"))


# --------------------------------------------------------------------------- study aggregation


def test_aggregate_studies_by_hand() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 2.0, size=(6, 2)).astype(np.float32)
    image_studies = ["b", "a", "b", "c", "a", "b"]
    wanted = ["c", "a", "b"]  # not the order of first appearance

    def p_abnormal(row: np.ndarray) -> float:
        e0, e1 = math.exp(float(row[0])), math.exp(float(row[1]))
        return e1 / (e0 + e1)

    expected = []
    for study in wanted:
        probs = [p_abnormal(logits[i]) for i, s in enumerate(image_studies) if s == study]
        p = sum(probs) / len(probs)
        expected.append([math.log(1.0 - p), math.log(p)])

    out = aggregate_studies(logits, image_studies, wanted)
    assert out.shape == (3, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out, np.array(expected), rtol=1e-5, atol=1e-6)
    # softmax of a study row gives back its mean probability
    probs = torch.softmax(torch.as_tensor(out), dim=1)[:, 1].numpy()
    np.testing.assert_allclose(probs, np.exp(np.array(expected)[:, 1]), rtol=1e-5)


def test_aggregate_studies_study_without_image_raises() -> None:
    logits = np.zeros((2, 2), np.float32)
    with pytest.raises(KeyError, match="no image"):
        aggregate_studies(logits, ["a", "a"], ["a", "missing"])


# --------------------------------------------------------------------------- class weights


def test_class_weights_mura_rule_by_hand() -> None:
    studies = pd.DataFrame({
        "study_id": [f"s{i}" for i in range(7)],
        "body_part": ["ELBOW", "ELBOW", "ELBOW", "WRIST", "WRIST", "WRIST", "WRIST"],
        "label": [1, 0, 0, 1, 1, 1, 0],
    })
    w = class_weights(studies)
    assert w.shape == (len(BODY_PARTS), 2) and w.dtype == torch.float32
    expected = torch.full((len(BODY_PARTS), 2), 0.5)
    # MURA paper: w_abnormal = |normal| / (|abnormal| + |normal|), w_normal = |abnormal| / ...
    expected[PART_INDEX["ELBOW"]] = torch.tensor([1 / 3, 2 / 3])
    expected[PART_INDEX["WRIST"]] = torch.tensor([3 / 4, 1 / 4])
    assert torch.allclose(w, expected)


# --------------------------------------------------------------------------- transforms


@pytest.mark.parametrize("shape", [(40, 100), (90, 30)])
def test_letterbox_keeps_aspect_and_pads_to_square(shape: tuple[int, int]) -> None:
    image = np.full(shape, 200, dtype=np.uint8)
    size = 50
    out = letterbox(image, size)
    assert out.shape == (size, size) and out.dtype == np.uint8
    rows = np.flatnonzero(out.any(axis=1))
    cols = np.flatnonzero(out.any(axis=0))
    h, w = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    scale = size / max(shape)  # long side to `size`, short side scaled alike
    assert (h, w) == (round(shape[0] * scale), round(shape[1] * scale))
    # centred padding, zeros outside the content
    assert abs(rows[0] - (size - rows[-1] - 1)) <= 1
    assert abs(cols[0] - (size - cols[-1] - 1)) <= 1
    assert (out[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] == 200).all()
    assert out.sum() == 200 * h * w


def test_transforms_give_normalised_float_tensors() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    for make in (train_transform, eval_transform):
        out = make(32)(image=image)["image"]
        assert isinstance(out, torch.Tensor)
        assert out.dtype == torch.float32 and out.shape == (1, 32, 32)
    out = eval_transform(32)(image=image)["image"]
    expected = (torch.as_tensor(image, dtype=torch.float32) / 255.0 - MEAN) / STD
    assert torch.allclose(out[0], expected, atol=1e-5)


def test_same_seed_same_augmentation() -> None:
    rng = np.random.default_rng(1)
    image = letterbox(rng.integers(0, 256, (60, 40), dtype=np.uint8), 32)
    t = train_transform(32)
    t.set_random_seed(5)
    a = t(image=image)["image"]
    t.set_random_seed(5)
    b = t(image=image)["image"]
    assert torch.equal(a, b)
    others = []
    for seed in range(6, 16):  # each transform fires with some probability: try a few seeds
        t.set_random_seed(seed)
        others.append(t(image=image)["image"])
    assert any(not torch.equal(a, c) for c in others)


def test_cached_images_augmentation_depends_on_seed_epoch_index(mini_mura: Path,
                                                                tmp_path: Path) -> None:
    data = load_mura(mini_mura)
    cache = build_cache(data.images["path"].tolist(), 32, tmp_path / "cache", data.fingerprint,
                        threads=1, progress=False)
    train = data.images[data.images["split"] == "train"]
    ds = CachedImages(cache, train, train_transform(32), seed=0)
    first = [ds[i][0] for i in range(4)]
    again = [ds[i][0] for i in reversed(range(4))][::-1]  # other access order, same result
    assert all(torch.equal(x, y) for x, y in zip(first, again, strict=True))
    ds.set_epoch(1)
    assert not all(torch.equal(x, ds[i][0]) for i, x in enumerate(first))
    image, label, part = CachedImages(cache, train, eval_transform(32))[2]
    assert label == int(train["label"].iloc[2])
    assert part == PART_INDEX[train["body_part"].iloc[2]]
    assert image.shape == (1, 32, 32)


# --------------------------------------------------------------------------- decode cache


def test_build_cache_decodes_once(mini_mura: Path, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    data = load_mura(mini_mura)
    paths = data.images["path"].tolist()
    cache_dir = tmp_path / "cache"
    cache = build_cache(paths, 32, cache_dir, data.fingerprint, threads=1, progress=False)
    assert cache.images.shape == (len(paths), 32, 32) and cache.bad == []
    for i in (0, len(paths) - 1):
        assert np.array_equal(cache.images[i], letterbox(cv2.imread(paths[i], 0), 32))
    files = sorted(p.name for p in cache_dir.iterdir())
    mtimes = {p.name: p.stat().st_mtime_ns for p in cache_dir.iterdir()}

    def no_decode(path: str) -> None:
        raise AssertionError(f"decoded {path} a second time")

    monkeypatch.setattr(cache_mod, "decode", no_decode)
    again = build_cache(paths, 32, cache_dir, data.fingerprint, threads=1, progress=False)
    assert np.array_equal(np.asarray(again.images), np.asarray(cache.images))
    assert sorted(p.name for p in cache_dir.iterdir()) == files
    assert {p.name: p.stat().st_mtime_ns for p in cache_dir.iterdir()} == mtimes
    # another size is another cache: it has to decode
    with pytest.raises(AssertionError, match="second time"):
        build_cache(paths, 24, cache_dir, data.fingerprint, threads=1, progress=False)


def test_build_cache_corrupt_image(mini_mura: Path, tmp_path: Path) -> None:
    data = load_mura(mini_mura)
    paths = data.images["path"].tolist()
    broken = paths[3]
    Path(broken).write_bytes(b"\x89PNG\r\n\x1a\n this is not a png at all")
    cache_dir = tmp_path / "cache"
    with pytest.raises(BadImageError) as info:
        build_cache(paths, 32, cache_dir, data.fingerprint, threads=1, progress=False)
    assert broken in str(info.value)
    assert list(cache_dir.iterdir()) == []  # no temporary file, no final file

    cache = build_cache(paths, 32, cache_dir, data.fingerprint, skip_bad=True, threads=1,
                        progress=False)
    assert cache.bad == [broken]
    assert not np.asarray(cache.images[3]).any()
    assert np.asarray(cache.images[2]).any()
    index = json.loads(next(cache_dir.glob("*.json")).read_text())
    assert index["bad"] == [broken]
    assert not [p for p in cache_dir.iterdir() if p.name.endswith(".tmp")]
    # a cache holding bad images is not silently reused without skip_bad
    with pytest.raises(BadImageError):
        build_cache(paths, 32, cache_dir, data.fingerprint, threads=1, progress=False)
