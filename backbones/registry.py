"""Backbone registry: name -> constructor, every model grayscale in, 2 logits out.

Each entry records its Grad-CAM target layer (a dotted module path) and its first convolution,
so that a new model declares its own. Pretrained weights are optional and never downloaded
unless asked for:

* ``weights="path/to/state_dict.pt"``: a local state dict (or a checkpoint with a ``model``
  entry), loaded with ``torch.load(..., weights_only=True)``;
* ``weights="IMAGENET1K_V1"`` (or ``"DEFAULT"``): a torchvision weights name, downloaded by
  torchvision for users with internet; a failed download says so.

RGB first-layer weights are summed over their colour channels into one grayscale channel; a
classification head of another size is left freshly initialised.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision import models as tvm

from backbones.attention_resnet import AttentionResNet
from backbones.part_attention import AttentionResNetParts


@dataclass(frozen=True)
class BackboneSpec:
    """A registry entry.

    Attributes:
        name: registry name.
        build: ``num_classes -> nn.Module`` taking ``(B, 1, H, W)`` float input (a model with
            ``takes_body_part`` also takes ``(B,)`` int64 body parts, see
            :mod:`backbones.part_attention`); a part-attention model's also takes
            ``attention_parts=``.
        target_layer: dotted path of the module Grad-CAM should hook.
        first_conv: dotted path of the first convolution (adapted to one input channel).
        default_size: input size the quick profile uses.
        torchvision_name: the torchvision model name, or None for our own models.
        part_attention: whether ``build`` takes ``attention_parts`` (body parts with an
            attention head of their own).
    """

    name: str
    build: Callable[..., nn.Module]
    target_layer: str
    first_conv: str
    default_size: int
    torchvision_name: str | None = None
    part_attention: bool = False


def _get_module(model: nn.Module, path: str) -> nn.Module:
    return model.get_submodule(path)


def _set_module(model: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, module)


def _grayscale_first_conv(model: nn.Module, path: str) -> nn.Module:
    conv = _get_module(model, path)
    assert isinstance(conv, nn.Conv2d)
    new = nn.Conv2d(1, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, conv.bias is not None)
    _set_module(model, path, new)
    return model


def _torchvision(name: str, first_conv: str) -> Callable[[int], nn.Module]:
    def build(num_classes: int) -> nn.Module:
        model = tvm.get_model(name, weights=None, num_classes=num_classes)
        return _grayscale_first_conv(model, first_conv)

    build.__name__ = f"build_{name}"
    return build


REGISTRY: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec("attention_resnet", lambda n: AttentionResNet(num_classes=n),
                     "layer4", "stem.0", 128),
        BackboneSpec("attention_resnet_small",
                     lambda n: AttentionResNet(num_classes=n, widths=(12, 24, 48, 96)),
                     "layer4", "stem.0", 128),
        BackboneSpec("attention_resnet_large",
                     lambda n: AttentionResNet(num_classes=n, widths=(20, 40, 80, 160)),
                     "layer4", "stem.0", 128),
        BackboneSpec("attention_resnet_parts",
                     lambda n, **options: AttentionResNetParts(num_classes=n, **options),
                     "layer4", "stem.0", 128, part_attention=True),
        BackboneSpec("resnet18", _torchvision("resnet18", "conv1"), "layer4", "conv1", 96,
                     "resnet18"),
        BackboneSpec("resnet50", _torchvision("resnet50", "conv1"), "layer4", "conv1", 128,
                     "resnet50"),
        BackboneSpec("densenet121", _torchvision("densenet121", "features.conv0"),
                     "features", "features.conv0", 128, "densenet121"),
        BackboneSpec("densenet169", _torchvision("densenet169", "features.conv0"),
                     "features", "features.conv0", 128, "densenet169"),
        BackboneSpec("efficientnet_b0", _torchvision("efficientnet_b0", "features.0.0"),
                     "features", "features.0.0", 128, "efficientnet_b0"),
        BackboneSpec("mobilenet_v3_small", _torchvision("mobilenet_v3_small", "features.0.0"),
                     "features", "features.0.0", 160, "mobilenet_v3_small"),
    )
}


class UnknownModelError(KeyError):
    """Raised for a model name that is not in the registry (the message lists valid ones)."""

    def __str__(self) -> str:
        return str(self.args[0])


def get_spec(name: str) -> BackboneSpec:
    """The registry entry for ``name``; an unknown name lists the valid ones."""
    if name not in REGISTRY:
        raise UnknownModelError(
            f"unknown model {name!r}; valid models: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def adapt_state_dict(model: nn.Module, state: dict[str, torch.Tensor],
                     source: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Fit a state dict to ``model``: RGB first convs summed to gray, mismatched heads dropped.

    Returns the state dict to load (non-strict) and the names of the model's parameters left
    as initialised. Raises ``ValueError`` when less than half of the parameters match.
    """
    own = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key not in own:
            continue
        target = own[key]
        if value.shape == target.shape:
            out[key] = value
        elif value.dim() == 4 and value.shape[1] == 3 and target.shape[1] == 1 \
                and value.shape[0] == target.shape[0]:
            out[key] = value.sum(dim=1, keepdim=True)
    missing = [k for k in own if k not in out]
    n_params = sum(1 for k in own if not k.endswith("num_batches_tracked"))
    matched = sum(1 for k in out if not k.endswith("num_batches_tracked"))
    if matched < 0.5 * n_params:
        raise ValueError(
            f"weights from {source} do not fit this model: only {matched} of {n_params} "
            "tensors match by name and shape. Were they saved from another architecture?")
    return out, missing


def _load_weights(model: nn.Module, spec: BackboneSpec, weights: str) -> list[str]:
    if os.sep in weights or weights.endswith((".pt", ".pth", ".bin")) or Path(weights).exists():
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"--weights {weights}: no such file (expected a PyTorch "
                                    "state dict saved with torch.save(model.state_dict(), PATH))")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]  # one of our checkpoints
        if not isinstance(state, dict):
            raise ValueError(f"--weights {weights}: expected a state dict, got {type(state)}")
        state = {k.removeprefix("module."): v for k, v in state.items()}
        source = str(path)
    else:
        if spec.torchvision_name is None:
            raise ValueError(f"{spec.name} has no torchvision weights; pass --weights PATH")
        enum = tvm.get_model_weights(spec.torchvision_name)
        try:
            entry = enum[weights] if weights != "DEFAULT" else enum.DEFAULT
        except KeyError:
            raise ValueError(
                f"unknown torchvision weights {weights!r} for {spec.name}; valid: DEFAULT, "
                f"{', '.join(e.name for e in enum)}") from None
        try:
            state = entry.get_state_dict(progress=True)
        except Exception as e:  # network errors come in many types
            raise RuntimeError(
                f"could not download torchvision weights {entry} for {spec.name} ({e}). "
                "This needs internet access; elsewhere download them and pass --weights PATH."
            ) from e
        source = str(entry)
    ready, missing = adapt_state_dict(model, state, source)
    model.load_state_dict(ready, strict=False)
    return missing


def build_model(name: str, num_classes: int = 2, weights: str | None = None,
                attention_parts: tuple[str, ...] | None = None) -> nn.Module:
    """Build registry model ``name``: input ``(B, 1, H, W)`` float32, output ``(B, num_classes)``
    (a part-attention model also takes ``(B,)`` int64 body parts: ``model(images, parts)``).

    Args:
        name: a registry name (see :data:`REGISTRY`).
        num_classes: size of the head (2: normal, abnormal).
        weights: None (random init), a local state-dict path, or a torchvision weights name.
        attention_parts: for a part-attention model, the body parts with an attention head of
            their own (None: its default, SHOULDER and ELBOW).

    Raises:
        ValueError: ``attention_parts`` for a model without part attention.
    """
    spec = get_spec(name)
    if attention_parts is not None and not spec.part_attention:
        raise ValueError(f"{name} has no part attention heads; attention parts are for "
                         + ", ".join(s.name for s in REGISTRY.values() if s.part_attention))
    options = {} if attention_parts is None else {"attention_parts": tuple(attention_parts)}
    model = spec.build(num_classes, **options)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            # torchvision's MobileNet/EfficientNet use 0.01, which leaves the running statistics
            # far behind the weights in short trainings; 0.1 is PyTorch's default.
            module.momentum = 0.1
    if weights:
        _load_weights(model, spec, weights)
    return model


def checkpoint_model_options(args: dict[str, Any] | None) -> dict[str, Any]:
    """The :func:`build_model` options a training run recorded (a checkpoint's ``args``): its
    ``attention_parts`` when it set them, else nothing."""
    parts = (args or {}).get("attention_parts")
    return {} if parts is None else {"attention_parts": tuple(parts)}
