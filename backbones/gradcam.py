"""Grad-CAM heatmaps of the ensemble's members, their weighted ensemble map, and panels.

Pure building blocks behind ``python -m experiments.gradcam``:

* :func:`gradcam` / :func:`model_heatmaps`: Grad-CAM (the ``grad-cam`` package) of one model for
  a batch of preprocessed inputs, for the *abnormal* class (logit 1), with the target layer the
  registry records for the model (:attr:`backbones.registry.BackboneSpec.target_layer`);
* :func:`image_heatmaps`: the same for raw radiographs of any shape: each is preprocessed exactly
  as for the study logits (:func:`~backbones.transforms.letterbox` to the model's input size,
  then :func:`~backbones.transforms.eval_transform`), and each map is cut out of the letterbox
  and resized back, so that **every map is aligned pixel for pixel with the original image**
  ``(H, W)``; maps of models with different input sizes can then be averaged;
* :func:`ensemble_map`: the weight-averaged normalised member maps;
* :func:`render_panel` (matplotlib, Agg) and :func:`write_index` (a static HTML page).

Every map is float32 with values in ``[0, 1]``: a Grad-CAM map is ReLU'd then min-max scaled per
image (an all-zero map, where no location supports "abnormal", stays zero).

DenseNet: torchvision's ``DenseNet.forward`` applies ``F.relu(..., inplace=True)`` to the output
of its target layer (``features``), which silently overwrites the activations Grad-CAM keeps and
the tensor its gradient hook sits on (the map comes out wrong, without an error). While a map is
computed, a forward hook registered after Grad-CAM's own hands the rest of the network a *copy*
of the target layer's output, so in-place operations downstream touch the copy only; this is done
for every model (a copy of one feature map is cheap).
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from backbones.transforms import eval_transform, letterbox
from mura_env.common.atomic import atomic_write, atomic_write_bytes

#: Index of the abnormal class in every registry model's two logits.
ABNORMAL = 1

LABEL_NAMES = {0: "normal", 1: "abnormal"}


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
            target_class: int = ABNORMAL) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM of ``model`` for ``target_class`` on a batch of preprocessed inputs.

    Args:
        model: a classifier ``(B, C_in, h, w) -> (B, n_classes)``; put in eval mode.
        target_layer: the module to explain, or its dotted path (see
            :func:`resolve_target_layer`); it must output ``(B, channels, h', w')``.
        images: float tensor ``(B, C_in, h, w)``, already normalised as the model expects
            (moved to the model's device here).
        target_class: the logit explained (default 1, abnormal).

    Returns:
        ``maps``: float32 ``(B, h, w)`` in ``[0, 1]``, aligned with the input;
        ``logits``: float32 ``(B, n_classes)``, the model's outputs for the same forward pass.
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if images.dim() != 4:
        raise ValueError(f"images must be a (B, C, H, W) tensor, got shape {tuple(images.shape)}")
    layer = resolve_target_layer(model, target_layer)
    model.eval()
    cam = GradCAM(model=model, target_layers=[layer])
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
                   target_class: int = ABNORMAL) -> np.ndarray:
    """Grad-CAM maps of ``model`` for the abnormal class: float32 ``(B, h, w)`` in ``[0, 1]``
    for input ``images`` ``(B, C, h, w)`` (see :func:`gradcam`)."""
    return gradcam(model, target_layer, images, target_class)[0]


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


def unletterbox(heatmap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Map a ``(size, size)`` map of a letterboxed input back onto the original image.

    Cuts out the region the image occupies in the letterbox, resizes it (bilinear) to
    ``shape`` ``(H, W)`` and min-max scales it: float32 ``(H, W)`` in ``[0, 1]``.
    """
    heatmap = np.asarray(heatmap, dtype=np.float32)
    size = heatmap.shape[0]
    if heatmap.ndim != 2 or heatmap.shape[1] != size:
        raise ValueError(f"expected a square (size, size) map, got shape {heatmap.shape}")
    top, left, nh, nw = letterbox_box(shape, size)
    crop = np.ascontiguousarray(heatmap[top:top + nh, left:left + nw])
    resized = cv2.resize(crop, (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_LINEAR)
    return normalise_map(resized)


def preprocess(image: np.ndarray, size: int) -> torch.Tensor:
    """A uint8 grayscale radiograph ``(H, W)`` as the models saw it for the study logits:
    letterboxed to ``size`` and normalised; float32 tensor ``(1, size, size)``."""
    image = np.asarray(image)
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 grayscale image (H, W), got {image.dtype} "
                         f"{image.shape}")
    return eval_transform(size)(image=letterbox(image, size))["image"]


def image_heatmaps(model: nn.Module, target_layer: str | nn.Module,
                   images: Sequence[np.ndarray], size: int,
                   target_class: int = ABNORMAL) -> tuple[list[np.ndarray], np.ndarray]:
    """Grad-CAM maps of raw radiographs, each aligned with its own image.

    Args:
        model: a registry model (grayscale in, 2 logits out), on any device.
        target_layer: its Grad-CAM layer or dotted path (registry ``target_layer``).
        images: uint8 grayscale arrays ``(H_i, W_i)``, any shapes.
        size: the model's input size (letterbox side), as used for the study logits.
        target_class: the logit explained (default 1, abnormal).

    Returns:
        ``maps``: one float32 ``(H_i, W_i)`` map in ``[0, 1]`` per image;
        ``probabilities``: float64 ``(B,)``, softmax probability of ``target_class`` per image.
    """
    if len(images) == 0:
        return [], np.zeros(0, dtype=np.float64)
    device = next(model.parameters()).device
    batch = torch.stack([preprocess(im, size) for im in images]).to(device)
    maps, logits = gradcam(model, target_layer, batch, target_class)
    probabilities = torch.softmax(torch.from_numpy(logits).double(), dim=1)[:, target_class]
    aligned = [unletterbox(m, im.shape[:2]) for m, im in zip(maps, images, strict=True)]
    return aligned, probabilities.numpy()


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
class Panel:
    """What one panel shows (one image of one study).

    Attributes:
        image: uint8 ``(H, W)`` radiograph.
        maps: float32 ``(K, H, W)`` member maps in ``[0, 1]``, aligned with ``image``.
        model_names: the ``K`` member names.
        image_probabilities: float ``(K,)``, each member's abnormality probability for this image.
        study_probabilities: float ``(K,)``, each member's study-level probability (the logits
            table's, which the ensemble weighs).
        weights: float ``(K,)``, the ensemble weights for this study (sum 1).
        ensemble: float32 ``(H, W)``, :func:`ensemble_map` of ``maps`` with ``weights``.
        ensemble_probability: the study's weighted probability; ``prediction``: 0/1 at the
            threshold; ``label``: the true label (1 = abnormal).
        study_id, image_name: identify the image; ``weights_source``: e.g. "uniform" or the agent.
        synthetic: whether the data are synthetic (then every title says so).
    """

    image: np.ndarray
    maps: np.ndarray
    model_names: Sequence[str]
    image_probabilities: np.ndarray
    study_probabilities: np.ndarray
    weights: np.ndarray
    ensemble: np.ndarray
    ensemble_probability: float
    prediction: int
    label: int
    study_id: str
    image_name: str
    weights_source: str = "uniform"
    synthetic: bool = False


def _display(array: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale (area) so the long side is at most ``max_side``; display only."""
    h, w = array.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return array
    return cv2.resize(array, (max(1, round(w * scale)), max(1, round(h * scale))),
                      interpolation=cv2.INTER_AREA)


def render_panel(panel: Panel, path: str | os.PathLike[str], dpi: int = 80,
                 max_side: int = 320, alpha: float = 0.45) -> Path:
    """Draw ``panel`` to a PNG at ``path`` (written atomically); returns the path.

    Layout, one row: the radiograph; one overlay per member titled with its image and study
    probabilities and its weight; the ensemble overlay. The title holds the study, the image,
    the ensemble probability, prediction and true label (and "SYNTHETIC data" when so).
    ``max_side`` caps the displayed resolution (maps are drawn on the same grid as the image).
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure registry

    k = len(panel.model_names)
    image = _display(panel.image, max_side)
    maps = [_display(m, max_side) for m in panel.maps]
    ensemble = _display(panel.ensemble, max_side)
    h, w = image.shape
    # Geometry in inches: k + 2 image cells in a row, two title lines above each, the figure
    # title above all, a colour bar at the right.
    cell_h = min(2.6, 2.3 * h / w)
    cell_w = max(1.9, cell_h * w / h)
    gap, left, bar, top, bottom = 0.08, 0.08, 0.55, 0.8, 0.08
    cols = k + 2
    fig_w = left + cols * cell_w + (cols - 1) * gap + bar
    fig_h = bottom + cell_h + top
    fig = Figure(figsize=(fig_w, fig_h), dpi=dpi)

    def cell(c: int) -> object:
        return fig.add_axes(((left + c * (cell_w + gap)) / fig_w, bottom / fig_h,
                             cell_w / fig_w, cell_h / fig_h))

    axes = [cell(c) for c in range(cols)]
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=255)
    axes[0].set_title(f"{panel.image_name}\n{panel.image.shape[1]}x{panel.image.shape[0]} px",
                      fontsize=8)
    overlay = None
    for ax, heat, name, p_img, p_study, weight in zip(
            axes[1:1 + k], maps, panel.model_names, panel.image_probabilities,
            panel.study_probabilities, panel.weights, strict=True):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        overlay = ax.imshow(heat, cmap="jet", alpha=alpha, vmin=0.0, vmax=1.0)
        ax.set_title(f"{name}\np={p_img:.2f} (study {p_study:.2f})  w={weight:.2f}", fontsize=8)
        if float(np.max(heat)) <= 0.0:
            ax.text(0.5, 0.04, "map all zero: no region\nraises p(abnormal)", fontsize=7,
                    ha="center", va="bottom", transform=ax.transAxes,
                    bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0})
    axes[-1].imshow(image, cmap="gray", vmin=0, vmax=255)
    overlay = axes[-1].imshow(ensemble, cmap="jet", alpha=alpha, vmin=0.0, vmax=1.0)
    axes[-1].set_title(f"ensemble ({panel.weights_source} weights)\n"
                       f"p={panel.ensemble_probability:.2f} (study)", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_anchor("S")
    verdict = "correct" if panel.prediction == panel.label else "WRONG"
    tag = "SYNTHETIC data  |  " if panel.synthetic else ""
    fig.suptitle(f"{tag}{panel.study_id}\nensemble p(abnormal)={panel.ensemble_probability:.3f}"
                 f" -> predicted {LABEL_NAMES[int(panel.prediction)]}, true "
                 f"{LABEL_NAMES[int(panel.label)]} ({verdict})", fontsize=9,
                 y=1 - 0.04 / fig_h, va="top")
    cax = fig.add_axes(((fig_w - bar + 0.12) / fig_w, bottom / fig_h, 0.1 / fig_w,
                        cell_h / fig_h))
    fig.colorbar(overlay, cax=cax).ax.tick_params(labelsize=7)
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    return path


@dataclass
class IndexEntry:
    """One study in the HTML index: its id, why it was chosen, a one-line summary and its
    panels' file names (relative to the index)."""

    study_id: str
    reason: str
    summary: str
    panels: Sequence[str]


def write_index(out_dir: str | os.PathLike[str], entries: Sequence[IndexEntry],
                title: str = "Grad-CAM panels", notes: Sequence[str] = ()) -> Path:
    """Write ``out_dir/index.html`` showing every panel under its study id; returns the path.

    Args:
        out_dir: the folder holding the panels (their paths in ``entries`` are relative to it).
        entries: the studies in display order.
        title: page title; ``notes``: paragraphs shown under it (plain text, escaped).
    """
    esc = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{esc(title)}</title>",
             "<style>body{font-family:sans-serif;margin:1.5em}"
             "section{margin-bottom:2em;border-top:1px solid #ccc}"
             "img{max-width:100%;display:block;margin:.4em 0}"
             ".note{color:#a00;font-weight:bold}code{background:#f3f3f3}</style>",
             "</head><body>", f"<h1>{esc(title)}</h1>"]
    parts += [f'<p class="note">{esc(n)}</p>' for n in notes]
    parts.append("<ul>")
    parts += [f'<li><a href="#s{i}"><code>{esc(e.study_id)}</code></a> ({esc(e.reason)})</li>'
              for i, e in enumerate(entries)]
    parts.append("</ul>")
    for i, e in enumerate(entries):
        parts.append(f'<section id="s{i}"><h2><code>{esc(e.study_id)}</code></h2>')
        parts.append(f"<p>{esc(e.summary)}<br>chosen: {esc(e.reason)}</p>")
        for png in e.panels:
            src = esc(Path(png).as_posix(), quote=True)
            parts.append(f'<a href="{src}"><img src="{src}" alt="{esc(e.study_id)} '
                         f'{esc(Path(png).name)}" loading="lazy"></a>')
        parts.append("</section>")
    parts.append("</body></html>\n")
    return atomic_write_bytes(Path(out_dir) / "index.html", "\n".join(parts).encode("utf-8"))
