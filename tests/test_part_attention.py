"""The part-attention backbone: heads routed by body part, its state dict, and every place a
backbone is used (training, resume, torchrun, pretraining, a run's members)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import experiments.pretrain_backbones.__main__ as pretrain_backbones
from backbones.checkpoint import CHECKPOINT, load_checkpoint
from backbones.data import PART_INDEX
from backbones.infer import predict_logits
from backbones.part_attention import (
    SHARED_HEAD,
    AttentionResNetParts,
    BodyPartBound,
    attention_map,
    forward_with_parts,
    part_indices,
    takes_body_part,
)
from backbones.registry import build_model, checkpoint_model_options
from backbones.run_members import load_members
from backbones.train import main as train_main
from backbones.train_config import parse_args
from mura_env.logits import LogitsTable

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parent.parent


def _model(seed: int = 0, **options) -> AttentionResNetParts:
    torch.manual_seed(seed)
    model = build_model("attention_resnet_parts", **options)
    assert isinstance(model, AttentionResNetParts)
    return model


def _head_grads(model: AttentionResNetParts, image: torch.Tensor, part: str) -> dict[str, bool]:
    """Which attention heads get a non-zero gradient from one image of body part ``part``."""
    model.zero_grad(set_to_none=True)
    model.eval()
    logits = model(image, part_indices([part]))
    logits[:, 1].sum().backward()
    return {name: head.conv.weight.grad is not None and bool(head.conv.weight.grad.abs().sum())
            for name, head in model.attention.heads.items()}


def test_each_body_part_trains_only_its_own_head() -> None:
    model = _model()
    image = torch.randn(1, 1, 48, 48)
    assert list(model.attention.heads) == ["SHOULDER", "ELBOW", SHARED_HEAD]
    assert _head_grads(model, image, "SHOULDER") == {"SHOULDER": True, "ELBOW": False,
                                                     SHARED_HEAD: False}
    assert _head_grads(model, image, "ELBOW") == {"SHOULDER": False, "ELBOW": True,
                                                  SHARED_HEAD: False}
    for other in ("WRIST", "HAND", "HUMERUS"):
        assert _head_grads(model, image, other) == {"SHOULDER": False, "ELBOW": False,
                                                    SHARED_HEAD: True}
    # the rest of the network learns from every part
    assert model.stem[0].weight.grad is not None


def test_a_mixed_batch_routes_every_image_to_its_head() -> None:
    model = _model().eval()
    with torch.no_grad():
        model.attention.heads["SHOULDER"].conv.bias.fill_(-3.0)  # heads now differ
        model.attention.heads["ELBOW"].conv.bias.fill_(3.0)
    images = torch.randn(4, 1, 48, 48)
    parts = part_indices(["SHOULDER", "WRIST", "ELBOW", "SHOULDER"])
    together = model(images, parts)
    maps = attention_map(model)
    assert maps is not None and maps.shape[0] == 4
    for i in range(4):  # one image at a time gives the same logits and map
        alone = model(images[i:i + 1], parts[i:i + 1])
        torch.testing.assert_close(together[i:i + 1], alone)
        torch.testing.assert_close(maps[i:i + 1], attention_map(model))
    # another body part for the same image changes its logits
    assert not torch.allclose(model(images[:1], part_indices(["WRIST"])), together[:1])


def test_state_dict_round_trips_and_parts_are_configurable(tmp_path: Path) -> None:
    source = _model(seed=1, attention_parts=("WRIST", "SHOULDER")).eval()
    assert {k for k in source.state_dict() if k.startswith("attention.")} == {
        f"attention.heads.{h}.conv.{w}" for h in ("WRIST", "SHOULDER", SHARED_HEAD)
        for w in ("weight", "bias")}
    path = tmp_path / "state.pt"
    torch.save(source.state_dict(), path)
    loaded = build_model("attention_resnet_parts", weights=str(path),
                         attention_parts=("WRIST", "SHOULDER")).eval()
    fresh = _model(seed=2, attention_parts=("WRIST", "SHOULDER"))
    fresh.load_state_dict(torch.load(path, weights_only=True))
    images, parts = torch.randn(3, 1, 40, 40), part_indices(["WRIST", "ELBOW", "SHOULDER"])
    with torch.no_grad():
        expected = source(images, parts)
        torch.testing.assert_close(loaded(images, parts), expected)
        torch.testing.assert_close(fresh.eval()(images, parts), expected)
    assert loaded.attention.head_of("ELBOW") == SHARED_HEAD  # ELBOW has no head here
    with pytest.raises(ValueError, match="unknown attention body part"):
        build_model("attention_resnet_parts", attention_parts=("KNEE",))
    with pytest.raises(ValueError, match="no part attention heads"):
        build_model("attention_resnet", attention_parts=("SHOULDER",))
    assert checkpoint_model_options({"attention_parts": ["WRIST"]}) == {
        "attention_parts": ("WRIST",)}
    assert checkpoint_model_options({"model": "resnet18"}) == {}


def test_callers_pass_body_parts_through_one_helper() -> None:
    model = _model().eval()
    images = torch.randn(2, 1, 32, 32)
    with pytest.raises(ValueError, match="routes each image by its body part"):
        model(images)
    with pytest.raises(ValueError, match="needs the body part"):
        forward_with_parts(model, images, None)
    parts = part_indices(["ELBOW"], n=2)
    assert parts.tolist() == [PART_INDEX["ELBOW"]] * 2
    with torch.no_grad():
        torch.testing.assert_close(BodyPartBound(model, parts)(images), model(images, parts))
    plain = build_model("attention_resnet").eval()
    assert takes_body_part(model) and not takes_body_part(plain)
    with torch.no_grad():  # a model without body parts ignores them
        torch.testing.assert_close(forward_with_parts(plain, images, parts), plain(images))
    # the per-image logits of an evaluation loader route by the loader's body parts
    loader = [(images, torch.zeros(2, dtype=torch.int64), parts)]
    logits = predict_logits(model, loader, torch.device("cpu"))  # type: ignore[arg-type]
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(logits), model(images, parts))


# ---------------------------------------------------------------------- training and runs


def _train_argv(data_root: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return ["--data-root", str(data_root), "--output-dir", str(out), "--cache-dir", str(cache),
            "--model", "attention_resnet_parts", "--attention-parts", "SHOULDER", "WRIST",
            "--image-size", "32", "--batch-size", "16", "--threads", "1", "--no-progress",
            *extra]


def test_training_resume_and_torchrun(_mini_source: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    whole = train_main(parse_args(_train_argv(_mini_source, tmp_path / "a", cache,
                                              "--epochs", "2")))
    first = train_main(parse_args(_train_argv(_mini_source, tmp_path / "b", cache,
                                              "--epochs", "2", "--stop-after", "1")))
    assert first["epochs_done"] == 1
    train_main(parse_args(_train_argv(_mini_source, tmp_path / "b", cache, "--epochs", "2",
                                      "--resume", str(tmp_path / "b" / CHECKPOINT))))
    a = load_checkpoint(whole["checkpoint"])
    b = load_checkpoint(tmp_path / "b" / CHECKPOINT)
    assert a["args"]["attention_parts"] == ["SHOULDER", "WRIST"]
    assert "attention.heads.WRIST.conv.weight" in a["model"]
    for key, value in a["model"].items():  # resuming repeats the uninterrupted run
        torch.testing.assert_close(b["model"][key], value, msg=key)

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    # DDP through the pretraining command: heads of parts absent from a batch take no part
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "experiments.pretrain_backbones", "--data-root", str(_mini_source),
           "--out", str(tmp_path / "ddp"), "--cache-dir", str(cache), "--models",
           "attention_resnet_parts", "--image-size", "32", "--batch-size", "16", "--epochs",
           "1", "--no-progress"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    member = tmp_path / "ddp" / "attention_resnet_parts"
    assert load_checkpoint(member / CHECKPOINT)["epoch"] == 0
    assert (tmp_path / "ddp" / "logits.parquet").is_file()


def test_pretraining_member_and_loaded_members(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["--synthetic-dir", str(tmp_path / "syn"), "--scale", "0.001", "--seed", "3",
            "--out", str(out), "--models", "attention_resnet_parts", "attention_resnet",
            "--image-size", "32", "--epochs", "1", "--batch-size", "16",
            "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    assert pretrain_backbones.main(argv) == 0
    table = LogitsTable.load(out / "logits.parquet")
    assert list(table.model_names) == ["attention_resnet_parts", "attention_resnet"]
    members = load_members(out, table, tuple(table.model_names), torch.device("cpu"))
    assert takes_body_part(members[0].model) and not takes_body_part(members[1].model)


def test_mixed_precision_and_channels_last_forward() -> None:
    """The paths CUDA training takes (autocast, channels_last), here on the CPU with
    bfloat16: the heads still route by part and the logits stay close to float32's."""
    model = _model().eval()
    images = torch.randn(3, 1, 48, 48)
    parts = part_indices(["SHOULDER", "WRIST", "ELBOW"])
    with torch.no_grad():
        expected = model(images, parts)
        fast = model.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = fast(images.contiguous(memory_format=torch.channels_last), parts)
    assert logits.dtype == torch.bfloat16
    torch.testing.assert_close(logits.float(), expected, atol=0.1, rtol=0.05)
