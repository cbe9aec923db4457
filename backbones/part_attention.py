"""The attention ResNet with a spatial attention head of its own for some body parts.

:class:`AttentionResNetParts` is :class:`~backbones.attention_resnet.AttentionResNet` whose
spatial attention map comes from :class:`PartAttention`: one
:class:`~backbones.attention_resnet.SpatialAttention` head per listed body part (default
SHOULDER and ELBOW) and a shared head for every other part. Its forward takes the body part
of each image with the image: ``model(images, body_parts)``.

Every caller reaches a model through :func:`forward_with_parts`, which passes the body parts
to a model that takes them (:func:`takes_body_part`) and calls any other model with the
images alone; :class:`BodyPartBound` binds a batch's body parts to such a model for code that
calls ``model(images)`` (Grad-CAM).
"""

from __future__ import annotations

import torch
from torch import nn

from backbones.attention_resnet import AttentionResNet, SpatialAttention
from backbones.data import PART_INDEX, check_body_parts
from mura_env.constants import BODY_PARTS

#: The body parts the seed model gave attention layers of their own.
DEFAULT_ATTENTION_PARTS: tuple[str, ...] = ("SHOULDER", "ELBOW")
#: The key of the head every other body part shares.
SHARED_HEAD = "shared"


class PartAttention(nn.Module):
    """Spatial attention routed by body part.

    Args:
        channels: feature channels ``C``.
        parts: the body parts (names of ``BODY_PARTS``) with a head of their own; every other
            part goes through the shared head.

    Called with features ``(B, C, H, W)`` float and body parts ``(B,)`` int64 (indices into
    ``BODY_PARTS``), it returns the features times each image's own head's sigmoid map (same
    shape); only the heads of the parts present in the batch take part in the forward (and so
    get gradient). The last maps, ``(B, 1, H, W)``, are kept in ``self.last_map``.
    """

    def __init__(self, channels: int, parts: tuple[str, ...] = DEFAULT_ATTENTION_PARTS):
        super().__init__()
        self.parts = check_body_parts(tuple(parts), "attention")
        if len(set(self.parts)) != len(self.parts):
            raise ValueError(f"attention parts repeat a body part: {self.parts}")
        names = [*self.parts, SHARED_HEAD]
        self.heads = nn.ModuleDict({name: SpatialAttention(channels) for name in names})
        route = torch.full((len(BODY_PARTS),), len(self.parts), dtype=torch.int64)
        for i, part in enumerate(self.parts):
            route[PART_INDEX[part]] = i
        self.register_buffer("route", route, persistent=False)
        self.last_map: torch.Tensor | None = None

    def head_of(self, part: str) -> str:
        """The key in ``self.heads`` of the head that body part ``part`` goes through."""
        check_body_parts((part,), "attention")
        return part if part in self.parts else SHARED_HEAD

    def forward(self, x: torch.Tensor, parts: torch.Tensor) -> torch.Tensor:
        if parts.shape != (x.shape[0],):
            raise ValueError(f"need one body part per image: {x.shape[0]} images, body parts "
                             f"of shape {tuple(parts.shape)}")
        head_index = self.route[parts.to(self.route.device)]
        out = torch.empty_like(x)
        maps = x.new_empty((x.shape[0], 1, *x.shape[2:]))
        for i, head in enumerate(self.heads.values()):
            rows = torch.nonzero(head_index == i).squeeze(1)
            if rows.numel() == 0:
                continue
            out[rows] = head(x[rows])
            assert head.last_map is not None
            maps[rows] = head.last_map
        self.last_map = maps.detach()
        return out


class AttentionResNetParts(AttentionResNet):
    """:class:`~backbones.attention_resnet.AttentionResNet` with :class:`PartAttention`:
    ``model(images (B, in_channels, H, W) float, body_parts (B,) int64) -> (B, n)`` logits.

    Args: those of ``AttentionResNet``, and ``attention_parts``: the body parts with an
    attention head of their own (default SHOULDER and ELBOW).
    """

    takes_body_part = True

    def __init__(self, num_classes: int = 2, in_channels: int = 1, dropout: float = 0.2,
                 block_dropout: float = 0.0, widths: tuple[int, ...] = (16, 32, 64, 128),
                 attention_parts: tuple[str, ...] = DEFAULT_ATTENTION_PARTS):
        super().__init__(num_classes, in_channels, dropout, block_dropout, widths)
        self.attention = PartAttention(widths[-1], attention_parts)  # type: ignore[assignment]

    @property
    def attention_parts(self) -> tuple[str, ...]:
        """The body parts with a head of their own."""
        return self.attention.parts  # type: ignore[return-value]

    def forward(self, x: torch.Tensor, parts: torch.Tensor | None = None) -> torch.Tensor:
        if parts is None:
            raise ValueError(
                "AttentionResNetParts routes each image by its body part: call "
                "model(images, body_parts), body_parts a (B,) int64 tensor of indices into "
                "BODY_PARTS (or backbones.part_attention.forward_with_parts)")
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.head(self.pool(self.attention(x, parts)))


def unwrapped(model: nn.Module) -> nn.Module:
    """``model`` without a DistributedDataParallel / DataParallel / :class:`BodyPartBound`
    wrapper."""
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel,
                             BodyPartBound)):
        model = model.module
    return model


def takes_body_part(model: nn.Module) -> bool:
    """Whether ``model`` (maybe wrapped) is called as ``model(images, body_parts)``."""
    return bool(getattr(unwrapped(model), "takes_body_part", False))


def forward_with_parts(model: nn.Module, images: torch.Tensor,
                       parts: torch.Tensor | None) -> torch.Tensor:
    """``model``'s logits for ``images`` ``(B, C, H, W)``: ``model(images, parts)`` for a model
    that takes body parts (``parts``: ``(B,)`` int64 indices into ``BODY_PARTS``, moved to the
    images' device), ``model(images)`` for any other.

    Raises:
        ValueError: the model takes body parts and ``parts`` is None.
    """
    if not takes_body_part(model):
        return model(images)
    if parts is None:
        raise ValueError(f"{type(unwrapped(model)).__name__} needs the body part of every "
                         "image, and none was given")
    return model(images, torch.as_tensor(parts, dtype=torch.int64).to(images.device))


def part_indices(parts: list[str] | tuple[str, ...], n: int | None = None) -> torch.Tensor:
    """int64 ``(B,)`` indices into ``BODY_PARTS`` of body part names; a single name with
    ``n`` given is repeated ``n`` times."""
    names = list(parts) * (n if n is not None and len(parts) == 1 else 1)
    check_body_parts(tuple(set(names)), "image")
    return torch.tensor([PART_INDEX[p] for p in names], dtype=torch.int64)


class BodyPartBound(nn.Module):
    """``model`` with the body parts of one batch bound: ``bound(images)`` is
    ``forward_with_parts(model, images, parts)`` (for code that calls ``model(images)``, such
    as Grad-CAM). ``parts``: ``(B,)`` int64, or None for a model that takes none."""

    def __init__(self, model: nn.Module, parts: torch.Tensor | None):
        super().__init__()
        self.module = model
        self.parts = parts

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return forward_with_parts(self.module, images, self.parts)


def attention_map(model: nn.Module) -> torch.Tensor | None:
    """The spatial attention map of ``model``'s last forward pass, ``(B, 1, h, w)`` float in
    ``[0, 1]`` (each image's own head for a part-attention model), or None for a model
    without spatial attention."""
    attention = getattr(unwrapped(model), "attention", None)
    return getattr(attention, "last_map", None)
