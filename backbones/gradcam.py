"""Grad-CAM of the ensemble's members, their weighted ensemble map, and the studies to explain.

The computing half of ``python -m experiments.gradcam``
(:mod:`experiments.common.gradcam_report` draws and writes the panels, CSV and HTML):

* :func:`gradcam` / :func:`model_heatmaps`: Grad-CAM (``grad-cam`` package) of one model for a
  batch of preprocessed inputs, for the *abnormal* class (logit 1), on the target layer the
  registry records for the model (:attr:`backbones.registry.BackboneSpec.target_layer`);
* :func:`image_heatmaps`: the same for raw radiographs of any shape, preprocessed exactly as for
  the study logits (letterbox to the model's input size, then the evaluation transform); each
  map is cut out of the letterbox and resized back, so **every map is aligned pixel for pixel
  with the original image** ``(H, W)`` and maps of models with different input sizes average;
* :func:`explain_images`: :func:`image_heatmaps` and, for a member with spatial attention
  (:func:`backbones.part_attention.attention_map`), the attention map of the same forward
  pass, aligned with each image the same way;
* :func:`ensemble_map` and :func:`study_heatmaps`: the weight-averaged normalised member maps;
* :func:`select_studies`: the studies to explain, requested by id or chosen to be informative
  (:func:`informative_studies`), with the ensemble probability of :mod:`mura_env.weighting.mapping`.

Every map is float32 in ``[0, 1]``: a Grad-CAM map is ReLU'd then min-max scaled per image (an
all-zero map, where no location supports "abnormal", stays zero); an attention map keeps the
sigmoid's own values (not rescaled: a flat map stays flat).

Part-attention members (:mod:`backbones.part_attention`) take each image's body part with it:
every function running a model takes the study's ``body_part`` (or a batch's ``body_parts``)
and passes it to a model that takes one (:func:`~backbones.part_attention.forward_with_parts`);
Grad-CAM, which calls ``model(images)``, runs a
:class:`~backbones.part_attention.BodyPartBound` wrapper, its target layer resolved on the
member itself.

DenseNet: torchvision's ``DenseNet.forward`` applies ``F.relu(..., inplace=True)`` to the output
of its target layer (``features``), which silently overwrites the activations Grad-CAM keeps and
the tensor its gradient hook sits on (the map comes out wrong, without an error). While a map is
computed, a forward hook registered after Grad-CAM's own hands the rest of the network a *copy*
of the target layer's output, so in-place operations downstream touch the copy only (for every
model: a copy of one feature map is cheap).
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import zip_longest

import cv2
import numpy as np
import torch
from torch import nn

from backbones.infer import PROB_EPS
from backbones.part_attention import BodyPartBound, attention_map, part_indices
from backbones.transforms import eval_transform, letterbox
from mura_env.constants import MURA_DIRNAME
from mura_env.logits.study_set import StudySet
from mura_env.weighting.mapping import DEFAULT_THRESHOLD, ensemble_probability

#: Index of the abnormal class in every registry model's two logits.
ABNORMAL = 1


def resolve_target_layer(model: nn.Module, target_layer: str | nn.Module) -> nn.Module:
    """The module to hook: ``target_layer`` itself, or ``model.get_submodule(target_layer)``.

    Raises:
        ValueError: the dotted path names no submodule of ``model`` (the message lists the
            top-level children).
    """
    if isinstance(target_layer, nn.Module):
        return target_layer
    try:
        return model.get_submodule(target_layer)
    except AttributeError:
        children = ", ".join(name for name, _ in model.named_children())
        raise ValueError(
            f"Grad-CAM target layer {target_layer!r} is not a submodule of "
            f"{type(model).__name__} (its top-level children: {children}). Fix the model's "
            "target_layer in backbones/registry.py (a dotted path for model.get_submodule)."
        ) from None


def _copy_output(module: nn.Module, args: object, output: torch.Tensor) -> torch.Tensor:
    """Forward hook: the layers after the target get a copy (see the module docstring)."""
    return output.clone()


def gradcam(model: nn.Module, target_layer: str | nn.Module, images: torch.Tensor,
            target_class: int = ABNORMAL, *,
            body_parts: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM of ``model`` for ``target_class`` on a batch of preprocessed inputs.

    Args:
        model: a classifier ``(B, C_in, h, w) -> (B, n_classes)`` (or a part-attention model,
            ``(images, body_parts) -> (B, n_classes)``); put in eval mode.
        target_layer: the module to explain, or its dotted path in ``model`` (see
            :func:`resolve_target_layer`); it must output ``(B, channels, h', w')``.
        images: float tensor ``(B, C_in, h, w)``, already normalised as the model expects
            (moved to the model's device here).
        target_class: the logit explained (default 1, abnormal).
        body_parts: int64 ``(B,)`` indices into ``BODY_PARTS``, for a model that takes body
            parts (ignored by any other).

    Returns:
        ``maps``: float32 ``(B, h, w)`` in ``[0, 1]``, aligned with the input;
        ``logits``: float32 ``(B, n_classes)``, the model's outputs for the same forward pass.
        After the call, :func:`~backbones.part_attention.attention_map` of ``model`` is that
        forward pass's attention map (for a model with spatial attention).

    Raises:
        ValueError: ``model`` takes body parts and ``body_parts`` is None.
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if images.dim() != 4:
        raise ValueError(f"images must be a (B, C, H, W) tensor, got shape {tuple(images.shape)}")
    layer = resolve_target_layer(model, target_layer)
    model.eval()
    cam = GradCAM(model=BodyPartBound(model, body_parts), target_layers=[layer])
    copy_hook = layer.register_forward_hook(_copy_output)  # after Grad-CAM's hooks
    try:
        with torch.enable_grad():
            maps = cam(input_tensor=images,
                       targets=[ClassifierOutputTarget(target_class)] * len(images))
        logits = cam.outputs.detach().float().cpu().numpy()
    finally:
        copy_hook.remove()
        cam.activations_and_grads.release()
        model.zero_grad(set_to_none=True)
    maps = np.nan_to_num(np.asarray(maps, dtype=np.float32), nan=0.0)
    return np.clip(maps, 0.0, 1.0), logits.astype(np.float32)


def model_heatmaps(model: nn.Module, target_layer: str | nn.Module, images: torch.Tensor,
                   target_class: int = ABNORMAL, *,
                   body_parts: torch.Tensor | None = None) -> np.ndarray:
    """Grad-CAM maps of ``model`` for the abnormal class: float32 ``(B, h, w)`` in ``[0, 1]``
    for input ``images`` ``(B, C, h, w)`` (and int64 ``(B,)`` ``body_parts`` for a
    part-attention model; see :func:`gradcam`)."""
    return gradcam(model, target_layer, images, target_class, body_parts=body_parts)[0]


def letterbox_box(shape: tuple[int, int], size: int) -> tuple[int, int, int, int]:
    """Where :func:`~backbones.transforms.letterbox` puts an image of ``shape`` ``(H, W)`` in its
    ``size x size`` output: ``(top, left, height, width)`` in pixels."""
    h, w = shape
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    return (size - nh) // 2, (size - nw) // 2, nh, nw


def normalise_map(heatmap: np.ndarray) -> np.ndarray:
    """Min-max scale a map to ``[0, 1]`` (float32, same shape); a constant map becomes zeros."""
    m = np.asarray(heatmap, dtype=np.float32)
    low, high = float(m.min()), float(m.max())
    if not np.isfinite(low) or not np.isfinite(high) or high - low <= 1e-12:
        return np.zeros_like(m)
    return (m - low) / (high - low)


def unletterbox(heatmap: np.ndarray, shape: tuple[int, int], *,
                normalise: bool = True) -> np.ndarray:
    """Map a ``(size, size)`` map of a letterboxed input back onto the original image.

    Cuts out the region the image occupies in the letterbox, resizes it (bilinear) to
    ``shape`` ``(H, W)`` and min-max scales it (unless ``normalise`` is False): float32
    ``(H, W)``, in ``[0, 1]`` when scaled.
    """
    heatmap = np.asarray(heatmap, dtype=np.float32)
    size = heatmap.shape[0]
    if heatmap.ndim != 2 or heatmap.shape[1] != size:
        raise ValueError(f"expected a square (size, size) map, got shape {heatmap.shape}")
    top, left, nh, nw = letterbox_box(shape, size)
    crop = np.ascontiguousarray(heatmap[top:top + nh, left:left + nw])
    resized = cv2.resize(crop, (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_LINEAR)
    return normalise_map(resized) if normalise else resized.astype(np.float32)


def aligned_attention(attention: np.ndarray, size: int, shape: tuple[int, int]) -> np.ndarray:
    """An attention map of a letterboxed input mapped back onto the original image, as
    Grad-CAM maps are: upsampled (bilinear) from ``(h', w')`` to the letterbox's
    ``(size, size)``, then :func:`unletterbox` to ``shape`` ``(H, W)`` without rescaling.

    Returns float32 ``(H, W)``, clipped to ``[0, 1]`` (the sigmoid's own values).
    """
    attention = np.asarray(attention, dtype=np.float32)
    if attention.ndim != 2:
        raise ValueError(f"expected an (h, w) attention map, got shape {attention.shape}")
    upsampled = cv2.resize(attention, (size, size), interpolation=cv2.INTER_LINEAR)
    return np.clip(unletterbox(upsampled, shape, normalise=False), 0.0, 1.0)


def preprocess(image: np.ndarray, size: int) -> torch.Tensor:
    """A uint8 grayscale radiograph ``(H, W)`` as the models saw it for the study logits:
    letterboxed to ``size`` and normalised; float32 tensor ``(1, size, size)``."""
    image = np.asarray(image)
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 grayscale image (H, W), got {image.dtype} "
                         f"{image.shape}")
    return eval_transform(size)(image=letterbox(image, size))["image"]


def attention_head(model: nn.Module, body_part: str | None) -> str | None:
    """The key of the attention head ``model`` runs images of ``body_part`` through (e.g.
    ``"SHOULDER"`` or ``"shared"`` for an :class:`~backbones.part_attention.AttentionResNetParts`),
    or None for a model without
    per-part heads (or no body part given)."""
    head_of = getattr(getattr(model, "attention", None), "head_of", None)
    return None if head_of is None or body_part is None else str(head_of(body_part))


@dataclass(frozen=True)
class ImageExplanations:
    """One model's explanation of ``n`` raw radiographs (see :func:`explain_images`).

    Attributes:
        maps: one float32 ``(H_i, W_i)`` Grad-CAM map in ``[0, 1]`` per image, aligned with it.
        probabilities: float64 ``(n,)``, softmax probability of the explained class per image.
        attention_maps: one float32 ``(H_i, W_i)`` spatial attention map in ``[0, 1]`` per
            image (the sigmoid's values, aligned as ``maps``), or None for a model without
            spatial attention.
        attention_head: the attention head the images went through (:func:`attention_head`),
            or None.
    """

    maps: list[np.ndarray]
    probabilities: np.ndarray
    attention_maps: list[np.ndarray] | None = None
    attention_head: str | None = None


def explain_images(model: nn.Module, target_layer: str | nn.Module,
                   images: Sequence[np.ndarray], size: int, target_class: int = ABNORMAL, *,
                   body_part: str | None = None) -> ImageExplanations:
    """Grad-CAM maps and spatial attention maps of raw radiographs, each aligned with its
    own image.

    Args:
        model: a registry model (grayscale in, 2 logits out), on any device.
        target_layer: its Grad-CAM layer or dotted path (registry ``target_layer``).
        images: uint8 grayscale arrays ``(H_i, W_i)``, any shapes (one study's).
        size: the model's input size (letterbox side), as used for the study logits.
        target_class: the logit explained (default 1, abnormal).
        body_part: the images' body part (a name in ``BODY_PARTS``), for a part-attention
            model; None for a model that takes none.

    Returns:
        The maps, the probabilities and the attention maps of one forward pass
        (:class:`ImageExplanations`).

    Raises:
        ValueError: ``model`` takes body parts and ``body_part`` is None.
    """
    if len(images) == 0:
        return ImageExplanations([], np.zeros(0, dtype=np.float64))
    device = next(model.parameters()).device
    batch = torch.stack([preprocess(im, size) for im in images]).to(device)
    parts = None if body_part is None else part_indices([body_part], len(images))
    maps, logits = gradcam(model, target_layer, batch, target_class, body_parts=parts)
    attention = attention_map(model)
    probabilities = torch.softmax(torch.from_numpy(logits).double(), dim=1)[:, target_class]
    shapes = [im.shape[:2] for im in images]
    aligned = [unletterbox(m, s) for m, s in zip(maps, shapes, strict=True)]
    if attention is None or attention.shape[0] != len(images):
        return ImageExplanations(aligned, probabilities.numpy())
    att = attention[:, 0].float().cpu().numpy()
    return ImageExplanations(
        aligned, probabilities.numpy(),
        attention_maps=[aligned_attention(a, size, s) for a, s in zip(att, shapes, strict=True)],
        attention_head=attention_head(model, body_part))


def image_heatmaps(model: nn.Module, target_layer: str | nn.Module,
                   images: Sequence[np.ndarray], size: int, target_class: int = ABNORMAL, *,
                   body_part: str | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """Grad-CAM maps of raw radiographs, each aligned with its own image.

    Args:
        model: a registry model (grayscale in, 2 logits out), on any device.
        target_layer: its Grad-CAM layer or dotted path (registry ``target_layer``).
        images: uint8 grayscale arrays ``(H_i, W_i)``, any shapes.
        size: the model's input size (letterbox side), as used for the study logits.
        target_class: the logit explained (default 1, abnormal).
        body_part: the images' body part, for a part-attention model (see
            :func:`explain_images`).

    Returns:
        ``maps``: one float32 ``(H_i, W_i)`` map in ``[0, 1]`` per image;
        ``probabilities``: float64 ``(B,)``, softmax probability of ``target_class`` per image.
    """
    explained = explain_images(model, target_layer, images, size, target_class,
                               body_part=body_part)
    return explained.maps, explained.probabilities


def ensemble_map(maps: np.ndarray, weights: Sequence[float] | np.ndarray) -> np.ndarray:
    """The ensemble's map: the weighted average of the min-max normalised member maps.

    Args:
        maps: float ``(K, H, W)``, one map per member (each is normalised with
            :func:`normalise_map` first; Grad-CAM maps already are).
        weights: ``(K,)`` non-negative, not all zero (divided by their sum).

    Returns:
        float32 ``(H, W)`` in ``[0, 1]``: ``sum_k w_k * normalise(maps[k]) / sum_k w_k``. It is
        not rescaled again, so its peak says how far the members agree on the hot spots.
    """
    maps = np.asarray(maps, dtype=np.float32)
    w = np.asarray(weights, dtype=np.float64)
    if maps.ndim != 3:
        raise ValueError(f"maps must be (K, H, W), got shape {maps.shape}")
    if w.shape != (maps.shape[0],):
        raise ValueError(f"need one weight per map: {maps.shape[0]} maps, weights of shape "
                         f"{w.shape}")
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {w}")
    normalised = np.stack([normalise_map(m) for m in maps]).astype(np.float64)
    out = np.tensordot(w / w.sum(), normalised, axes=1)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


@dataclass
class Member:
    """A loaded ensemble member: registry name, model (eval mode), Grad-CAM layer path, input
    size."""

    name: str
    model: nn.Module
    target_layer: str
    image_size: int


@dataclass(frozen=True)
class StudyHeatmaps:
    """Grad-CAM of one study's ``n`` images by ``K`` members.

    Attributes:
        maps: per image, float32 ``(K, H_i, W_i)`` member maps in ``[0, 1]``, aligned with it.
        ensemble_maps: per image, float32 ``(H_i, W_i)``: :func:`ensemble_map` of its maps.
        image_probabilities: float64 ``(n, K)``, each member's abnormality probability per image.
        attention_maps: per image, ``K`` entries: the member's float32 ``(H_i, W_i)`` spatial
            attention map in ``[0, 1]``, aligned as ``maps``, or None for a member without
            spatial attention (empty: no member has any; see :meth:`attention`).
        attention_heads: per member (``K``, or empty), the attention head that made its maps
            (e.g. ``"SHOULDER"``, ``"shared"``; :func:`attention_head`), or None.
    """

    maps: list[np.ndarray]
    ensemble_maps: list[np.ndarray]
    image_probabilities: np.ndarray
    attention_maps: list[list[np.ndarray | None]] = field(default_factory=list)
    attention_heads: tuple[str | None, ...] = ()

    def attention(self, image: int, member: int) -> np.ndarray | None:
        """Member ``member``'s float32 ``(H_i, W_i)`` attention map of image ``image``, or
        None."""
        return self.attention_maps[image][member] if self.attention_maps else None

    def attention_head(self, member: int) -> str | None:
        """The attention head of member ``member`` (see ``attention_heads``), or None."""
        return self.attention_heads[member] if self.attention_heads else None

    @property
    def study_probabilities(self) -> np.ndarray:
        """float64 ``(K,)``: the logits table's study rule (mean image probability, clipped)."""
        return np.clip(self.image_probabilities.mean(0), PROB_EPS, 1 - PROB_EPS)


def study_heatmaps(members: Sequence[Member], images: Sequence[np.ndarray],
                   weights: np.ndarray, *, body_part: str | None = None) -> StudyHeatmaps:
    """Every member's Grad-CAM maps (and attention maps) of one study's images, and the
    ensemble map of each image.

    Args:
        members: the ``K`` ensemble members; ``images``: the study's ``n`` uint8 grayscale
            radiographs ``(H_i, W_i)``; ``weights``: float ``(K,)``, the study's ensemble
            weights (non-negative, not all zero).
        body_part: the study's body part (a name in ``BODY_PARTS``); needed when a member is a
            part-attention model.

    Raises:
        ValueError: a part-attention member and no ``body_part``.
    """
    per_member = [explain_images(m.model, m.target_layer, images, m.image_size,
                                 body_part=body_part) for m in members]
    n = len(images)
    maps = [np.stack([e.maps[j] for e in per_member]) for j in range(n)]
    attention: list[list[np.ndarray | None]] = [
        [None if e.attention_maps is None else e.attention_maps[j] for e in per_member]
        for j in range(n)]
    return StudyHeatmaps(maps=maps, ensemble_maps=[ensemble_map(m, weights) for m in maps],
                         image_probabilities=np.stack([e.probabilities for e in per_member],
                                                      axis=1),
                         attention_maps=attention,
                         attention_heads=tuple(e.attention_head for e in per_member))


def normalise_study_id(study_id: str) -> str:
    """A study id as the tables spell it: no ``MURA-v1.1/`` prefix, no trailing slash."""
    sid = study_id.strip().replace("\\", "/").strip("/")
    return sid.removeprefix(MURA_DIRNAME + "/")


def resolve_studies(wanted: Sequence[str], study_ids: np.ndarray) -> list[int]:
    """Row indices (in the order asked, repeats dropped) of the study ids ``wanted`` (see
    :func:`normalise_study_id`) in ``study_ids`` (str ``(S,)``).

    Raises:
        ValueError: an unknown study id (the message suggests close ones).
    """
    index = {s: i for i, s in enumerate(study_ids)}
    rows: list[int] = []
    for raw in wanted:
        sid = normalise_study_id(raw)
        if sid not in index:
            close = difflib.get_close_matches(sid, list(index), n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ValueError(
                f"unknown study {raw!r}: it is not in the run's logits table ({len(index)} "
                f"studies). Study ids look like {study_ids[0]!r}.{hint}")
        if index[sid] not in rows:
            rows.append(index[sid])
    return rows


def _ranked(key: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """int64 indices where bool ``mask`` holds, by decreasing ``key`` (ties keep their order)."""
    idx = np.flatnonzero(mask)
    return idx[np.argsort(-key[idx], kind="stable")]


def _alternate_labels(order: np.ndarray, labels: np.ndarray) -> list[int]:
    """``order`` (indices into ``labels``) rearranged to alternate abnormal and normal studies,
    abnormal first, each kind keeping its own order."""
    per_label = [order[labels[order] == c].tolist() for c in (1, 0)]
    return [j for pair in zip_longest(*per_label) for j in pair if j is not None]


def _take_in_turn(groups: Sequence[tuple[Sequence[int], Callable[[int], str]]],
                  n: int) -> list[tuple[int, str]]:
    """Take the next index not yet taken from each ``(order, reason)`` group in turn, until
    ``n`` are taken or every group runs out: ``(index, reason(index))`` pairs."""
    chosen: list[tuple[int, str]] = []
    seen: set[int] = set()
    cursors = [0] * len(groups)
    progressed = True
    while len(chosen) < n and progressed:
        progressed = False
        for g, (order, reason) in enumerate(groups):
            while cursors[g] < len(order) and order[cursors[g]] in seen:
                cursors[g] += 1
            if cursors[g] < len(order) and len(chosen) < n:
                j = int(order[cursors[g]])
                seen.add(j)
                chosen.append((j, reason(j)))
                progressed = True
    return chosen


def informative_studies(probabilities: np.ndarray, weights: np.ndarray, labels: np.ndarray,
                        candidates: np.ndarray, n: int,
                        threshold: float = DEFAULT_THRESHOLD) -> list[tuple[int, str]]:
    """Choose ``n`` informative studies among the rows ``candidates``, deterministically.

    Takes in turn (skipping repeats): the most confidently *wrong* ensemble prediction, the
    most confidently *correct* one (each of these two lists alternates abnormal and normal
    studies, most confident first), and the study whose weights are farthest from uniform
    (total variation distance); when every weight is uniform, the study whose members disagree
    most (max - min probability) instead. A category that runs out is skipped.

    Args:
        probabilities: float ``(S, K)`` member abnormality probabilities.
        weights: float ``(S, K)`` ensemble weights (rows sum to 1).
        labels: int ``(S,)`` true labels (1 = abnormal).
        candidates: int row indices to choose from.
        n: how many (fewer when there are fewer candidates).
        threshold: prediction = ensemble probability > threshold.

    Returns:
        ``(row, reason)`` pairs in display order.
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    q, w, y = probabilities[candidates], weights[candidates], labels[candidates]
    p = ensemble_probability(w, q)
    correct = (p > threshold).astype(np.int64) == y
    confidence = np.abs(p - threshold)
    deviation = 0.5 * np.abs(w - 1.0 / w.shape[1]).sum(1)
    spread = q.max(1) - q.min(1)
    everything = np.ones(len(candidates), dtype=bool)
    groups: list[tuple[Sequence[int], Callable[[int], str]]] = [
        (_alternate_labels(_ranked(confidence, ~correct), y),
         lambda j: f"wrong, ensemble p={p[j]:.2f}"),
        (_alternate_labels(_ranked(confidence, correct), y),
         lambda j: f"correct, ensemble p={p[j]:.2f}")]
    if deviation.max(initial=0.0) > 1e-6:
        groups.append((_ranked(deviation, everything).tolist(),
                       lambda j: f"weights far from uniform (distance {deviation[j]:.2f})"))
    else:
        groups.append((_ranked(spread, everything).tolist(),
                       lambda j: f"members disagree (spread {spread[j]:.2f})"))
    chosen = _take_in_turn(groups, min(n, len(candidates)))
    return [(int(candidates[j]), reason) for j, reason in chosen]


def select_studies(studies: StudySet, weights: np.ndarray, splits: Sequence[str] | np.ndarray,
                   *, requested: Sequence[str] = (), split: str = "valid", n: int = 8,
                   threshold: float = DEFAULT_THRESHOLD) -> list[tuple[int, str]]:
    """The studies to explain: the ``requested`` ones, else ``n`` informative ones of ``split``.

    Args:
        studies: the ``S`` studies to choose from; ``weights``: float ``(S, K)``, theirs (rows
            sum to 1); ``splits``: str ``(S,)``, the split of each.
        requested: study ids (any spelling :func:`normalise_study_id` accepts); when given,
            exactly these studies, in this order, with the reason ``"requested"``.
        split, n, threshold: otherwise :func:`informative_studies` picks ``n`` studies of
            ``split`` (prediction = ensemble probability > ``threshold``).

    Returns:
        ``(row, reason)`` pairs in display order, ``row`` indexing ``studies``.

    Raises:
        ValueError: an unknown study id (the message suggests close ones), or no ``split`` study.
    """
    if requested:
        return [(row, "requested") for row in resolve_studies(requested, studies.study_ids)]
    splits = np.asarray(splits)
    candidates = np.flatnonzero(splits == split)
    if len(candidates) == 0:
        counts = dict(Counter(splits.tolist()))
        raise ValueError(f"the run's logits table has no {split!r} studies (it has {counts}); "
                         "pick another split")
    return informative_studies(studies.probabilities, weights, studies.labels, candidates, n,
                               threshold)
