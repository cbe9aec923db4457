"""Grad-CAM heatmaps (backbones.gradcam) and their CLI (python -m experiments.gradcam)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import backbones.gradcam as gradcam
import experiments.gradcam.__main__ as gradcam_cli
from backbones.registry import REGISTRY, build_model, get_spec
from backbones.runs import LOGIT_SPLITS
from experiments.pretrain_backbones.__main__ import PretrainConfig, study_logits
from mura_env.common.atomic import file_sha256
from mura_env.data import load_mura
from mura_env.logits import LogitsTable
from mura_env.logits.study_set import StudySet
from mura_env.weighting.config import WeightingConfig


class TinyNet(nn.Module):
    """A DenseNet-shaped toy: ``features`` (the Grad-CAM layer), then an *in-place* ReLU in
    ``forward``, pooling and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(4, 6, 3, stride=2, padding=1))
        self.classifier = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.features(x), inplace=True)
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def reference_cam(features: nn.Module, head, x: torch.Tensor) -> np.ndarray:
    """Grad-CAM by hand (abnormal logit): ReLU of the gradient-weighted activations, min-max
    scaled, resized (bilinear) to the input's resolution and min-max scaled again."""
    activations = features(x)
    activations.retain_grad()
    head(activations)[:, 1].sum().backward()
    weights = activations.grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activations).sum(1)).detach().numpy()
    import cv2

    out = []
    for c in cam:
        c = c - c.min()
        c = c / (1e-7 + c.max())
        c = cv2.resize(c, (x.shape[-1], x.shape[-2]))
        out.append((c - c.min()) / (1e-7 + c.max() - c.min()))
    return np.stack(out)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small models: one torch thread is as fast, and does not crawl when other jobs share
    the cores (as the CLI's default --threads 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def tiny() -> TinyNet:
    torch.manual_seed(0)
    return TinyNet().eval()


def test_tiny_model_heatmap_has_image_shape_and_unit_range(tiny: TinyNet) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (45, 30), dtype=np.uint8),
              rng.integers(0, 256, (20, 52), dtype=np.uint8)]
    maps, probs = gradcam.image_heatmaps(tiny, "features", images, size=32)
    assert [m.shape for m in maps] == [(45, 30), (20, 52)]
    for m in maps:
        assert m.dtype == np.float32
        assert 0.0 <= m.min() and m.max() <= 1.0
        assert m.max() == pytest.approx(1.0, abs=1e-6)  # scaled, not constant
    assert probs.shape == (2,) and ((probs > 0) & (probs < 1)).all()
    with torch.no_grad():  # the probabilities are the model's own for the same input
        batch = torch.stack([gradcam.preprocess(im, 32) for im in images])
        expected = torch.softmax(tiny(batch), 1)[:, 1].numpy()
    np.testing.assert_allclose(probs, expected, rtol=1e-5)
    batch_maps = gradcam.model_heatmaps(tiny, "features", batch)
    assert batch_maps.shape == (2, 32, 32) and batch_maps.min() >= 0 and batch_maps.max() <= 1


def test_inplace_relu_after_target_layer_gives_true_gradcam(tiny: TinyNet) -> None:
    x = torch.randn(3, 1, 24, 24, generator=torch.Generator().manual_seed(1))
    maps = gradcam.model_heatmaps(tiny, tiny.features, x)
    # the model is left as it was: no hooks, no gradients
    assert not tiny.features._forward_hooks
    assert all(p.grad is None for p in tiny.parameters())
    expected = reference_cam(tiny.features, lambda a: tiny.classifier(
        torch.flatten(F.adaptive_avg_pool2d(F.relu(a), 1), 1)), x)
    np.testing.assert_allclose(maps, expected, atol=1e-4)


def test_densenet_map_matches_reference() -> None:
    torch.manual_seed(0)
    model = build_model("densenet121").eval()
    x = torch.randn(2, 1, 64, 64, generator=torch.Generator().manual_seed(2))
    maps = gradcam.model_heatmaps(model, get_spec("densenet121").target_layer, x)
    expected = reference_cam(model.features, lambda a: model.classifier(
        torch.flatten(F.adaptive_avg_pool2d(F.relu(a), 1), 1)), x)
    np.testing.assert_allclose(maps, expected, atol=1e-4)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_registry_model_yields_a_map(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name).eval()
    image = np.random.default_rng(0).integers(0, 256, (50, 70), dtype=np.uint8)
    maps, probs = gradcam.image_heatmaps(model, get_spec(name).target_layer, [image], size=64,
                                         body_part="WRIST")  # ignored without part attention
    assert maps[0].shape == (50, 70) and maps[0].dtype == np.float32
    assert np.isfinite(maps[0]).all() and maps[0].min() >= 0 and maps[0].max() <= 1
    assert 0 < probs[0] < 1


def test_unknown_target_layer_is_a_clear_error(tiny: TinyNet) -> None:
    with pytest.raises(ValueError, match="not a submodule.*registry.py"):
        gradcam.model_heatmaps(tiny, "layer9", torch.zeros(1, 1, 16, 16))


def test_ensemble_map_is_the_weighted_average_of_normalised_maps() -> None:
    rng = np.random.default_rng(0)
    maps = rng.random((3, 12, 9)).astype(np.float32) * np.array([1, 5, 0.2])[:, None, None]
    weights = np.array([0.5, 0.3, 0.2])
    normalised = [(m - m.min()) / (m.max() - m.min()) for m in maps]
    expected = sum(w * m for w, m in zip(weights, normalised, strict=True))
    out = gradcam.ensemble_map(maps, weights)
    assert out.shape == (12, 9) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-6)
    # weights are divided by their sum; one-hot weights give that member's map
    np.testing.assert_allclose(gradcam.ensemble_map(maps, 2 * weights), expected, atol=1e-6)
    np.testing.assert_allclose(gradcam.ensemble_map(maps, [0, 1, 0]), normalised[1], atol=1e-6)
    # an all-zero member map (Grad-CAM found no positive evidence) counts as zeros
    maps[2] = 0
    np.testing.assert_allclose(gradcam.ensemble_map(maps, weights),
                               0.5 * normalised[0] + 0.3 * normalised[1], atol=1e-6)
    for bad in ([0.5, 0.5], [1, -1, 1], [0, 0, 0], [np.nan, 1, 1]):
        with pytest.raises(ValueError):
            gradcam.ensemble_map(maps, bad)


def test_maps_are_mapped_back_from_the_letterbox() -> None:
    # a 20 x 40 image letterboxes into 40 x 40 at rows 10..30; heat on the image's top-left
    assert gradcam.letterbox_box((20, 40), 40) == (10, 0, 20, 40)
    heat = np.zeros((40, 40), np.float32)
    heat[10:20, 0:20] = 1.0
    out = gradcam.unletterbox(heat, (20, 40))
    assert out.shape == (20, 40)
    assert out[:8, :18].min() > 0.9 and out[12:, 22:].max() < 0.1


def test_informative_studies_mix_wrong_correct_and_far_from_uniform() -> None:
    probabilities = np.array([[0.9, 0.9], [0.1, 0.2], [0.8, 0.6], [0.3, 0.45], [0.7, 0.2],
                              [0.55, 0.5]])
    labels = np.array([1, 0, 0, 1, 1, 1])
    weights = np.full((6, 2), 0.5)
    weights[4] = [0.95, 0.05]  # far from uniform
    chosen = gradcam.informative_studies(probabilities, weights, labels, np.arange(6), n=4)
    rows = [r for r, _ in chosen]
    # ensemble p: .9, .15, .7, .375, .675 (weighted), .525
    assert len(rows) == len(set(rows)) == 4
    assert rows[0] == 3 and chosen[0][1].startswith("wrong")  # most confidently wrong abnormal
    assert rows[1] == 0 and chosen[1][1].startswith("correct")  # most confident correct one
    assert rows[2] == 4 and "uniform" in chosen[2][1]
    assert rows[3] == 2 and chosen[3][1].startswith("wrong")  # then a wrong normal one
    assert chosen[0][1] == "wrong, ensemble p=0.38"
    # uniform weights: the members' disagreement replaces the weights' distance
    uniform = np.full((6, 2), 0.5)
    chosen = gradcam.informative_studies(probabilities, uniform, labels, np.arange(6), n=3)
    assert chosen[2][0] == 4 and "disagree" in chosen[2][1]
    assert len(gradcam.informative_studies(probabilities, weights, labels, np.array([1, 3]),
                                           n=8)) == 2
    assert chosen == gradcam.informative_studies(probabilities, uniform, labels, np.arange(6),
                                                 n=3)


def _study_table(probabilities: list[list[float]], labels: list[int],
                 splits: list[str]) -> LogitsTable:
    """A logits table of wrist studies whose two members have these probabilities."""
    kinds = {0: "negative", 1: "positive"}
    studies = pd.DataFrame({
        "study_id": [f"{s}/XR_WRIST/patient{i:05d}/study1_{kinds[y]}"
                     for i, (s, y) in enumerate(zip(splits, labels, strict=True))],
        "patient_id": [f"patient{i:05d}" for i in range(len(labels))],
        "body_part": "WRIST", "label": labels, "split": splits, "n_images": 1})
    p = np.asarray(probabilities, dtype=np.float64)
    return LogitsTable.from_arrays(studies, ["a", "b"], np.stack([np.log1p(-p), np.log(p)], -1))


def test_select_studies_takes_the_requested_ones_or_informative_ones_of_a_split() -> None:
    probabilities = [[0.9, 0.9], [0.1, 0.2], [0.8, 0.6], [0.3, 0.44], [0.7, 0.2], [0.55, 0.5]]
    labels = [1, 0, 0, 1, 1, 1]
    splits = ["valid", "train", "valid", "valid", "train", "valid"]
    studies = StudySet.from_table(_study_table(probabilities, labels, splits))
    weights = np.full((6, 2), 0.5)
    ids = studies.study_ids
    # requested ids: in the order asked, in the CSVs' spelling too, repeats dropped, any split
    requested = [ids[4], f"MURA-v1.1/{ids[1]}/", ids[4]]
    assert gradcam.select_studies(studies, weights, splits, requested=requested) == [
        (4, "requested"), (1, "requested")]
    # otherwise informative studies of the split, and only of it
    chosen = gradcam.select_studies(studies, weights, splits, split="valid", n=8)
    assert sorted(row for row, _ in chosen) == [0, 2, 3, 5]
    assert chosen == gradcam.informative_studies(studies.probabilities, weights, studies.labels,
                                                 np.array([0, 2, 3, 5]), n=8)
    # ensemble p of the valid studies: .9, .7, .37, .525; the threshold decides what is wrong
    chosen = gradcam.select_studies(studies, weights, splits, split="valid", n=2)
    assert chosen == [(3, "wrong, ensemble p=0.37"), (0, "correct, ensemble p=0.90")]
    chosen = gradcam.select_studies(studies, weights, splits, split="valid", n=2, threshold=0.95)
    assert chosen == [(3, "wrong, ensemble p=0.37"), (2, "correct, ensemble p=0.70")]
    with pytest.raises(ValueError, match=f"unknown study.*Did you mean {ids[0]}"):
        gradcam.select_studies(studies, weights, splits,
                               requested=[ids[0].replace("study1", "stdy1")])
    with pytest.raises(ValueError, match="no 'tune' studies"):
        gradcam.select_studies(studies, weights, splits, split="tune")


# ---------------------------------------------------------------------------- the CLI
MODELS = {"attention_resnet": 32, "mobilenet_v3_small": 40}


def write_run(run: Path, source: Path, models: dict[str, int],
              options: dict[str, dict] | None = None,
              adjust: Callable[[str, nn.Module], None] | None = None) -> Path:
    """Write a pretraining run folder in the real format into ``run``: untrained checkpoints
    of ``models`` (name -> input size; ``options``: a model's extra training ``args``, e.g.
    ``attention_parts``; ``adjust(name, model)`` may change a model's weights before it is
    saved), and the logits table computed from them with the pretraining's own code, on the
    data set at ``source``."""
    data = load_mura(source, tune_fraction=0.2, seed=0)
    pre = PretrainConfig(cache_dir=run.parent / "cache", batch_size=32, progress=False)
    logits, configs = [], {}
    for name, size in models.items():
        extra = (options or {}).get(name, {})
        torch.manual_seed(len(name))
        path = run / name / "checkpoint.pth"
        path.parent.mkdir(parents=True)
        model = build_model(name, **{k: tuple(v) for k, v in extra.items()})
        if adjust is not None:
            adjust(name, model)
        torch.save({"model": model.state_dict(), "epoch": 0,
                    "args": {"model": name, "image_size": size, **extra},
                    "data_fingerprint": data.fingerprint}, path)
        logits.append(study_logits(data, name, size, path, pre, torch.device("cpu"))[0])
        configs[name] = {"name": name, "image_size": size, "checkpoint": str(path),
                         "checkpoint_sha256": file_sha256(path)}
    scored = data.studies[data.studies["split"].isin(LOGIT_SPLITS)]
    LogitsTable.from_arrays(scored, list(models), np.stack(logits, axis=1),
                            model_configs=configs, data_fingerprint=data.fingerprint,
                            ).save(run / "logits.parquet")
    (run / "config.json").write_text(json.dumps({"data_root": str(source), "seed": 0,
                                                 "tune_fraction": 0.2}))
    return run


@pytest.fixture(scope="module")
def tiny_run(_mini_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pretraining run folder in the real format: untrained checkpoints of two models, and
    the logits table computed from them with the pretraining's own code."""
    return write_run(tmp_path_factory.mktemp("gradcam") / "run", _mini_source, MODELS)


def _gradcam(run: Path, out: Path, *extra: str) -> int:
    return gradcam_cli.main(["--run", str(run), "--out", str(out), "--device", "cpu",
                             "--no-progress", *extra])


def test_cli_writes_one_png_per_image_and_an_index(tiny_run: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "panels"
    assert _gradcam(tiny_run, out, "--n", "3") == 0
    assert "recomputed" not in capsys.readouterr().err  # same preprocessing as the logits
    table = LogitsTable.load(tiny_run / "logits.parquet")
    panels = pd.read_csv(out / "panels.csv")
    studies = panels["study_id"].unique()
    assert len(studies) == 3
    chosen = table.studies.set_index("study_id").loc[studies]
    assert set(chosen["split"]) == {"valid"}
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == chosen["n_images"].sum() == len(panels)
    assert sorted(panels["png"]) == pngs
    index = (out / "index.html").read_text()
    assert sorted(set(re.findall(r'<img src="([^"]+)"', index))) == pngs
    for sid in studies:
        assert sid in index
    image = mpimg.imread(out / pngs[0])
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 4 * image.shape[0] / 3
    assert "SYNTHETIC" in index
    # uniform weights: the ensemble probability is the members' mean study probability
    p_study = panels[[f"{m}.p_study" for m in MODELS]].to_numpy()
    np.testing.assert_allclose(panels["ensemble_probability"], p_study.mean(1), atol=1e-9)
    np.testing.assert_allclose(panels[[f"{m}.weight" for m in MODELS]], 0.5)
    assert json.loads((out / "config.json").read_text())["n"] == 3

    # a second run into the same folder replaces the panels of the first
    sid = f"MURA-v1.1/{studies[0]}/"  # the CSVs' spelling is accepted too
    assert _gradcam(tiny_run, out, "--study", sid) == 0
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == chosen.loc[studies[0], "n_images"]
    assert all(studies[0].replace("/", "_") in p for p in pngs)


def test_unknown_study_is_a_clear_error(tiny_run: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    table = LogitsTable.load(tiny_run / "logits.parquet")
    sid = table.studies["study_id"].iloc[-1]
    assert _gradcam(tiny_run, tmp_path / "o", "--study", sid.replace("study", "stdy")) == 2
    err = capsys.readouterr().err
    assert "unknown study" in err and f"Did you mean {sid}" in err
    assert not (tmp_path / "o").exists()


def test_run_without_checkpoints_is_a_clear_error(tiny_run: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "mobilenet_v3_small" / "checkpoint.pth").unlink()
    assert _gradcam(run, tmp_path / "o", "--n", "1") == 2
    err = capsys.readouterr().err
    assert "no checkpoint for mobilenet_v3_small" in err and "checkpoint.pth" in err
    assert _gradcam(tmp_path / "nowhere", tmp_path / "o") == 2
    assert "no such folder" in capsys.readouterr().err


class FixedPolicy:
    """Stands in for a trained policy: the same action for every study."""

    def __init__(self, action: list[float]) -> None:
        self.action = np.asarray(action, dtype=np.float32)

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]:
        return np.tile(self.action, (len(obs), 1)), None


def _fake_agent(monkeypatch: pytest.MonkeyPatch, table: LogitsTable,
                digest: str | None = None, threshold: float = 0.5):
    import agents.core.saved as saved
    agent = saved.SavedAgent(algo="fixed", run_dir=Path("agentrun"),
                             model_names=table.model_names,
                             data_fingerprint=table.data_fingerprint,
                             table_digest=digest or saved.table_digest(table),
                             config=WeightingConfig(action_scale=3.0, temperature=1.0,
                                                    threshold=threshold),
                             model=FixedPolicy([1.0, -1.0]))
    monkeypatch.setattr(saved, "load_agent", lambda run_dir: agent)
    return agent


def test_agent_weights_are_used(tiny_run: Path, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    table = LogitsTable.load(tiny_run / "logits.parquet")
    agent = _fake_agent(monkeypatch, table, threshold=0.25)
    out = tmp_path / "o"
    assert _gradcam(tiny_run, out, "--agent", str(tmp_path), "--n", "2") == 0
    panels = pd.read_csv(out / "panels.csv")
    expected = agent.weights(np.zeros((1, 2 * len(MODELS) + 7), np.float32))[0]
    assert expected[0] > 0.99  # softmax(3 * [1, -1])
    weights = panels[[f"{m}.weight" for m in MODELS]].to_numpy()
    np.testing.assert_allclose(weights, np.tile(expected, (len(panels), 1)), atol=1e-9)
    p_study = panels[[f"{m}.p_study" for m in MODELS]].to_numpy()
    np.testing.assert_allclose(panels["ensemble_probability"], (weights * p_study).sum(1),
                               atol=1e-9)
    assert "fixed agent" in (out / "index.html").read_text()
    # the agent's own threshold decides (every untrained member says about 0.5)
    assert (panels["prediction"] == 1).all()
    assert (panels["prediction"] == (panels["ensemble_probability"] > 0.25)).all()


def test_agent_of_another_table_is_a_clear_error(tiny_run: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    table = LogitsTable.load(tiny_run / "logits.parquet")
    _fake_agent(monkeypatch, table, digest="0" * 64)
    assert _gradcam(tiny_run, tmp_path / "o", "--agent", str(tmp_path)) == 2
    assert "trained on another logits table" in capsys.readouterr().err


def test_a_real_trained_agent_drives_the_weights(tiny_run: Path, tmp_path: Path) -> None:
    from agents.core.saved import load_agent
    from agents.core.train import train_agent

    table = LogitsTable.load(tiny_run / "logits.parquet")
    agent_dir = tmp_path / "agent"
    train_agent("softmax-pg", WeightingConfig(logits=table), agent_dir, total_timesteps=2048,
                n_envs=512, tensorboard=False)
    out = tmp_path / "o"
    assert _gradcam(tiny_run, out, "--agent", str(agent_dir), "--n", "2") == 0
    panels = pd.read_csv(out / "panels.csv")
    studies = StudySet.select(table)
    rows = [list(studies.study_ids).index(s) for s in panels["study_id"]]
    expected = load_agent(agent_dir).weights(studies.observations[rows])
    np.testing.assert_allclose(panels[[f"{m}.weight" for m in MODELS]], expected, atol=1e-6)

