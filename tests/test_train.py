"""Backbone training (``backbones.train``): learning, exact resume, atomic checkpoints, resume
checks, bad images, torchrun/DDP on CPU (through ``experiments.pretrain_backbones``),
TensorBoard scalars and the epoch building blocks (train_one_epoch, evaluate, the weighted loss,
the config), on tiny synthetic data."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader, TensorDataset

from backbones.cache import BadImageError, build_cache
from backbones.data import CachedImages, select_training_studies
from backbones.infer import predict_logits
from backbones.registry import UnknownModelError, build_model, get_spec
from backbones.train import (
    CHECKPOINT,
    ResumeError,
    TrainConfig,
    WeightedCrossEntropy,
    create_train_state,
    evaluate,
    load_checkpoint,
    main,
    train_one_epoch,
)
from backbones.train_config import parse_args, with_model_defaults
from backbones.transforms import eval_transform
from mura_env.data import load_mura
from mura_env.synthetic import generate

REPO = Path(__file__).resolve().parent.parent
SIZE, BATCH = 32, 16


def _argv(data_root: Path, out: Path, cache_dir: Path, *extra: str) -> list[str]:
    return ["--data-root", str(data_root), "--output-dir", str(out),
            "--cache-dir", str(cache_dir), "--model", "attention_resnet",
            "--image-size", str(SIZE), "--batch-size", str(BATCH), "--threads", "1",
            "--no-progress", *extra]


def _train(data_root: Path, out: Path, cache_dir: Path, *extra: str) -> dict[str, Any]:
    return main(parse_args(_argv(data_root, out, cache_dir, *extra)))


def _leftovers(folder: Path) -> list[Path]:
    """Temporary files (``.name.tmp``) anywhere below ``folder``."""
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def data_root(_mini_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A module-private copy of the tiny synthetic data set (not modified by the tests)."""
    dst = tmp_path_factory.mktemp("train_data") / "mini"
    shutil.copytree(_mini_source, dst)
    return dst


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run folders and the shared decode cache of this module."""
    return tmp_path_factory.mktemp("train_runs")


@pytest.fixture(scope="module")
def run_a(data_root: Path, workdir: Path) -> Path:
    """An uninterrupted 2-epoch run; returns its output folder."""
    torch.set_num_threads(1)
    out = workdir / "a"
    result = _train(data_root, out, workdir / "cache", "--epochs", "2")
    assert result["epochs_done"] == 2 and result["bad_images"] == []
    return out


@pytest.fixture(scope="module")
def run_b(data_root: Path, workdir: Path) -> Path:
    """The same run, stopped after one epoch and resumed; ``epoch0.pth`` keeps the first
    checkpoint. Returns the output folder."""
    torch.set_num_threads(1)
    out = workdir / "b"
    first = _train(data_root, out, workdir / "cache", "--epochs", "2", "--stop-after", "1")
    assert first["epochs_done"] == 1
    shutil.copyfile(out / CHECKPOINT, out / "epoch0.pth")
    second = _train(data_root, out, workdir / "cache", "--epochs", "2",
                    "--resume", str(out / CHECKPOINT))
    assert second["epochs_done"] == 1
    return out


def _assert_same(a: Any, b: Any, where: str) -> None:
    """Recursive exact equality of checkpoint entries (tensors with torch.equal)."""
    if isinstance(a, torch.Tensor):
        same = isinstance(b, torch.Tensor) and torch.equal(a, b)
        assert same, f"{where} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


# --------------------------------------------------------------------------- learning


def _make_separable(root: Path) -> None:
    """Replace every image by noise whose brightness gives away the label (abnormal bright),
    with varied shapes: a signal a few optimizer steps must pick up."""
    data = load_mura(root)
    rng = np.random.default_rng(0)
    for path, label in zip(data.images["path"], data.images["label"], strict=True):
        h, w = rng.integers(48, 96, size=2)
        image = rng.integers(0, 100, size=(h, w)) + (120 if label else 0)
        assert cv2.imwrite(path, image.astype(np.uint8))


def _train_cross_entropy(model: torch.nn.Module, data_root: Path, cache_dir: Path) -> float:
    """Mean (unweighted) cross-entropy of ``model`` on the train split, no augmentation."""
    data = load_mura(data_root)
    cache = build_cache(data.images["path"].tolist(), SIZE, cache_dir, data.fingerprint,
                        threads=1, progress=False)
    train = data.images[data.images["split"] == "train"]
    ds = CachedImages(cache, train, eval_transform(SIZE))
    logits = predict_logits(model, DataLoader(ds, batch_size=64), torch.device("cpu"))
    labels = torch.tensor(train["label"].to_numpy(dtype=np.int64))
    return float(torch.nn.functional.cross_entropy(torch.as_tensor(logits), labels))


def test_short_training_lowers_the_loss(mini_mura: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    _make_separable(mini_mura)
    cache_dir = tmp_path / "cache"
    torch.manual_seed(0)  # main() seeds with --seed (0) before building: the same start
    before = _train_cross_entropy(build_model("attention_resnet"), mini_mura, cache_dir)

    out = tmp_path / "run"
    result = _train(mini_mura, out, cache_dir, "--epochs", "4", "--lr", "0.02")
    model = build_model("attention_resnet")
    model.load_state_dict(load_checkpoint(out / CHECKPOINT)["model"])
    after = _train_cross_entropy(model, mini_mura, cache_dir)

    assert before > 0.5  # about log(2) untrained
    assert after < 0.5 * before, (before, after)
    assert result["checkpoint"] == str(out / CHECKPOINT)
    assert not (out / "best.pth").exists()  # the member is the last epoch, chosen on nothing


# --------------------------------------------------------------------------- resume


def test_resume_reproduces_uninterrupted_run(run_a: Path, run_b: Path) -> None:
    a = load_checkpoint(run_a / CHECKPOINT)
    b = load_checkpoint(run_b / CHECKPOINT)
    first = load_checkpoint(run_b / "epoch0.pth")
    assert a["epoch"] == b["epoch"] == 1 and first["epoch"] == 0
    # exact equality (single thread on CPU is deterministic): model, optimizer, scheduler
    _assert_same(a["model"], b["model"], "model")
    _assert_same(a["optimizer"], b["optimizer"], "optimizer")
    _assert_same(a["lr_scheduler"], b["lr_scheduler"], "lr_scheduler")
    assert a["lr_scheduler"]["last_epoch"] == a["lr_scheduler"]["total_steps"]
    assert a["metrics"]["train_loss"] == b["metrics"]["train_loss"]
    # the resumed invocation really trained: its model moved on from the first epoch's
    assert not all(torch.equal(first["model"][k], b["model"][k]) for k in b["model"])


def test_interrupted_checkpoint_write_keeps_previous(data_root: Path, workdir: Path,
                                                     tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    _train(data_root, out, workdir / "cache", "--epochs", "2", "--stop-after", "1")
    previous = (out / CHECKPOINT).read_bytes()
    real_save = torch.save

    def failing_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        with open(f, "wb") as handle:
            handle.write(b"PK\x03\x04 half")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        _train(data_root, out, workdir / "cache", "--epochs", "2",
               "--resume", str(out / CHECKPOINT))
    monkeypatch.setattr(torch, "save", real_save)

    assert (out / CHECKPOINT).read_bytes() == previous
    checkpoint = load_checkpoint(out / CHECKPOINT)
    assert checkpoint["epoch"] == 0
    assert _leftovers(out) == []


def test_resume_refuses_other_model_size_or_schedule(run_a: Path, data_root: Path,
                                                     workdir: Path, tmp_path: Path) -> None:
    resume = str(run_a / CHECKPOINT)
    cases = [(("--model", "resnet18"), "model"), (("--image-size", "48"), "image size"),
             (("--epochs", "3"), "--epochs"), (("--train-studies", "6"), "training subset"),
             (("--seed", "1"), "seed")]
    for extra, what in cases:
        with pytest.raises(ResumeError, match=what):
            _train(data_root, tmp_path / "out", workdir / "cache", "--epochs", "2",
                   "--resume", resume, *extra)
    assert not (tmp_path / "out" / CHECKPOINT).exists()


def test_resume_refuses_other_data_set(run_a: Path, workdir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    generate(other, scale=0.001, seed=9, workers=1, progress=False)
    assert load_mura(other).fingerprint != load_checkpoint(run_a / CHECKPOINT)["data_fingerprint"]
    with pytest.raises(ResumeError, match="data set"):
        _train(other, tmp_path / "out", workdir / "cache", "--epochs", "2",
               "--resume", str(run_a / CHECKPOINT))
    assert not (tmp_path / "out" / CHECKPOINT).exists()


# --------------------------------------------------------------------------- bad images


def test_corrupt_image_stops_run_or_is_skipped(mini_mura: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    data = load_mura(mini_mura)
    images = data.images
    counts = images.groupby("study_id").size()
    broken = []
    for split in ("train", "tune"):  # one image in each, from studies with others left
        rows = images[(images["split"] == split) & images["study_id"].map(counts).gt(1)]
        broken.append(rows["path"].iloc[0])
    for path in broken:
        Path(path).write_bytes(b"not a png")
    cache_dir, out = tmp_path / "cache", tmp_path / "run"

    with pytest.raises(BadImageError) as info:
        _train(mini_mura, out, cache_dir, "--epochs", "1")
    for path in broken:
        assert path in str(info.value)
    assert not (out / CHECKPOINT).exists()
    assert list(cache_dir.iterdir()) == []

    result = _train(mini_mura, out, cache_dir, "--epochs", "1", "--skip-bad-images")
    assert result["bad_images"] == sorted(broken)
    assert result["epochs_done"] == 1
    assert load_checkpoint(out / CHECKPOINT)["epoch"] == 0


# --------------------------------------------------------------------------- torchrun / DDP


def _scalars(tb_dir: Path, tag: str) -> list[tuple[int, float]]:
    acc = EventAccumulator(str(tb_dir))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_torchrun_two_processes_on_cpu(data_root: Path, tmp_path: Path) -> None:
    """``torchrun -m experiments.pretrain_backbones``: both processes train the member
    together (DDP, gloo), the main process alone writes its checkpoint, curves and the run's
    logits table."""
    out, cache_dir = tmp_path / "ddp", tmp_path / "cache"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "experiments.pretrain_backbones", "--data-root", str(data_root),
           "--out", str(out), "--cache-dir", str(cache_dir), "--models", "attention_resnet",
           "--image-size", str(SIZE), "--batch-size", str(BATCH), "--epochs", "1",
           "--no-progress"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    member = out / "attention_resnet"
    assert sorted(p.relative_to(out) for p in out.rglob("*.pth")) == [
        Path("attention_resnet") / CHECKPOINT]
    assert load_checkpoint(member / CHECKPOINT)["epoch"] == 0
    assert (out / "logits.parquet").is_file() and (out / "metrics.csv").is_file()
    assert _leftovers(out) == [] and _leftovers(cache_dir) == []
    assert len(list((member / "tb").glob("events.out.tfevents.*"))) == 1  # rank 0 only
    # each of the 2 processes saw half the training images: half the batches per epoch
    n_train = int((load_mura(data_root).images["split"] == "train").sum())
    assert len(_scalars(member / "tb", "train/loss")) == math.ceil(math.ceil(n_train / 2)
                                                                   / BATCH)
    single = subprocess.run(cmd[:1] + ["-m", "experiments.pretrain_backbones", "--data-root",
                                       str(data_root), "--models", "attention_resnet"],
                            cwd=REPO, env={**env, "WORLD_SIZE": "2", "RANK": "0"},
                            capture_output=True, text=True, timeout=120)
    assert single.returncode != 0 and "--out" in single.stderr  # one run folder for all


# --------------------------------------------------------------------------- TensorBoard


def test_tensorboard_scalars(run_a: Path, data_root: Path) -> None:
    n_train = int((load_mura(data_root).images["split"] == "train").sum())
    steps_per_epoch = math.ceil(n_train / BATCH)
    loss = _scalars(run_a / "tb", "train/loss")
    assert [s for s, _ in loss] == list(range(2 * steps_per_epoch))
    assert all(math.isfinite(v) and v > 0 for _, v in loss)
    epoch_loss = _scalars(run_a / "tb", "train/epoch_loss")
    assert [s for s, _ in epoch_loss] == [0, 1]
    final = load_checkpoint(run_a / CHECKPOINT)["metrics"]["train_loss"]
    assert epoch_loss[-1][1] == pytest.approx(final, abs=1e-6)
    tags = EventAccumulator(str(run_a / "tb"))
    tags.Reload()
    assert not [t for t in tags.Tags()["scalars"] if t.startswith(("tune/", "valid/"))]


# --------------------------------------------------------------------------- building blocks


def test_command_line_parses_into_train_config() -> None:
    config = parse_args(["--data-root", "d", "--model", "resnet18", "--epochs", "3",
                         "--lr", "0.01", "--skip-bad-images", "--no-amp", "--no-progress"])
    assert isinstance(config, TrainConfig)
    assert (config.data_root, config.model, config.epochs, config.lr) == ("d", "resnet18", 3, 0.01)
    assert config.skip_bad_images and not config.amp and not config.progress
    assert config.image_size is None and config.resume is None and config.batch_size == 64
    assert parse_args([]) == TrainConfig()
    with pytest.raises(UnknownModelError):
        with_model_defaults(TrainConfig(model="vgg99"))
    assert with_model_defaults(TrainConfig(model="attention_resnet")).image_size == get_spec(
        "attention_resnet").default_size


def _tiny_batches(n: int = 12, seed: int = 0) -> DataLoader:
    """Batches ``(images (4, 1, SIZE, SIZE), labels (4,), body parts (4,))`` of random data."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 1, SIZE, SIZE, generator=g)
    labels = torch.arange(n) % 2
    parts = torch.arange(n) % 7
    return DataLoader(TensorDataset(images, labels, parts), batch_size=4)


def test_train_one_epoch_changes_parameters_and_evaluate_does_not() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    loader = _tiny_batches()
    config = TrainConfig(model="attention_resnet", image_size=SIZE, epochs=2, lr=0.01)
    state = create_train_state(config, len(loader), torch.device("cpu"), amp=False)
    before = {k: v.clone() for k, v in state.model.state_dict().items()}
    criterion = WeightedCrossEntropy(torch.full((7, 2), 0.5))

    loss = train_one_epoch(state.model, criterion, state, loader, torch.device("cpu"), 0)
    assert math.isfinite(loss) and loss > 0
    assert state.scheduler.last_epoch == len(loader)  # one scheduler step per batch
    after = state.model.state_dict()
    assert not all(torch.equal(before[k], after[k]) for k in before)

    images = pd.DataFrame({"study_id": [f"s{i // 2}" for i in range(12)]})
    studies = pd.DataFrame({"study_id": [f"s{i}" for i in range(6)], "label": [0, 1] * 3})
    trained = {k: v.clone() for k, v in after.items()}
    result = evaluate(state.model, loader, images, studies, torch.device("cpu"))
    assert set(result) == {"accuracy", "kappa"}
    assert 0.0 <= result["accuracy"] <= 1.0 and -1.0 <= result["kappa"] <= 1.0
    assert not state.model.training
    _assert_same(trained, state.model.state_dict(), "model")


def test_weighted_cross_entropy_weights_each_image() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels, parts = torch.tensor([0, 1]), torch.tensor([3, 5])
    weights = torch.zeros(7, 2)
    weights[3, 0], weights[5, 1] = 2.0, 0.5
    each = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    loss = WeightedCrossEntropy(weights)(logits, labels, parts)
    assert torch.allclose(loss, (2.0 * each[0] + 0.5 * each[1]) / 2)


def _studies_table(n_patients: int = 300, seed: int = 0) -> pd.DataFrame:
    """A studies table of ``train`` patients with 1-3 studies each of one body part (as in
    MURA), plus a few ``tune``/``valid`` studies that a training subset must never take."""
    rng = np.random.default_rng(seed)
    rows = []
    parts = ["ELBOW", "FINGER", "FOREARM", "HAND", "HUMERUS", "SHOULDER", "WRIST"]
    for patient in range(n_patients):
        split = "train" if patient % 10 else ("tune" if patient % 20 else "valid")
        part = parts[int(rng.integers(len(parts)))]
        for k in range(int(rng.integers(1, 4))):
            rows.append({"study_id": f"p{patient}/s{k}", "patient_id": f"p{patient}",
                         "body_part": part,
                         "label": int(rng.integers(2)), "split": split})
    return pd.DataFrame(rows)


def test_training_subset_is_patient_level_with_a_focus_quota() -> None:
    studies = _studies_table()
    focus = ("HAND", "FINGER")
    chosen = select_training_studies(studies, 120, focus, 0.75, seed=3)
    picked = studies[chosen]
    assert set(picked["split"]) == {"train"}
    assert len(picked) == 120
    assert picked["body_part"].isin(focus).sum() == 90  # round(0.75 * 120)
    # whole patients: every train study of a picked patient is picked
    of_picked = studies[studies["patient_id"].isin(set(picked["patient_id"]))]
    assert len(of_picked) == len(picked)
    # seeded: the same seed picks the same studies, another seed others
    assert np.array_equal(chosen, select_training_studies(studies, 120, focus, 0.75, seed=3))
    assert not np.array_equal(chosen, select_training_studies(studies, 120, focus, 0.75, seed=4))
    # no size: all of train; no focus: a plain subset
    assert np.array_equal(select_training_studies(studies, None, focus),
                          (studies["split"] == "train").to_numpy())
    assert select_training_studies(studies, 50, (), seed=1).sum() == 50
    with pytest.raises(ValueError, match="unknown focus body part"):
        select_training_studies(studies, 50, ("KNEE",))
