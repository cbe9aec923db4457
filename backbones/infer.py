"""Study-level logits by MURA's rule: per-image logits, averaged per study as probabilities."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from backbones.part_attention import forward_with_parts

PROB_EPS = 1e-6


@torch.no_grad()
def predict_logits(model: nn.Module, loader: DataLoader, device: torch.device,
                   amp: bool = False) -> np.ndarray:
    """Per-image logits of ``model`` over ``loader`` (in order): float32 ``(N, 2)``.

    The loader yields ``(images, labels, body parts)`` batches (or ``(images,)`` for a model
    that takes no body parts); the body parts go to a part-attention model."""
    model.eval()
    out = []
    for images, *rest in loader:
        images = images.to(device, non_blocking=True)
        if device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        parts = rest[1] if len(rest) > 1 else None
        with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
            logits = forward_with_parts(model, images, parts)
        out.append(logits.float().cpu())
    return torch.cat(out).numpy().astype(np.float32) if out else np.zeros((0, 2), np.float32)


def aggregate_studies(image_logits: np.ndarray, image_study_ids: Sequence[str],
                      study_ids: Sequence[str]) -> np.ndarray:
    """MURA's study rule: the mean of the images' abnormality probabilities.

    Args:
        image_logits: float ``(N_images, 2)``.
        image_study_ids: the study of each image, length ``N_images``.
        study_ids: the studies wanted, in output order; each must have at least one image.

    Returns:
        float32 ``(N_studies, 2)``: the two logits of the mean probability ``p``, i.e.
        ``[log(1 - p), log(p)]`` (``p`` clipped to ``[1e-6, 1 - 1e-6]``), so that
        ``softmax(row)[1] == p``.
    """
    logits = torch.as_tensor(np.asarray(image_logits, dtype=np.float32))
    p_image = torch.softmax(logits, dim=1)[:, 1].numpy().astype(np.float64)
    p_study = pd.Series(p_image).groupby(np.asarray(image_study_ids)).mean()
    missing = [s for s in study_ids if s not in p_study.index]
    if missing:
        raise KeyError(f"{len(missing)} study(ies) have no image logits, e.g. {missing[:3]}")
    return probability_logits(p_study.reindex(list(study_ids)).to_numpy())


def probability_logits(p: np.ndarray) -> np.ndarray:
    """Two logits whose softmax gives abnormality probabilities ``p`` (float ``(N,)``):
    float32 ``(N, 2)``, ``[log(1 - p), log(p)]`` with ``p`` clipped to ``[1e-6, 1 - 1e-6]``
    (how logits tables store a study's probability)."""
    p = np.clip(np.asarray(p, dtype=np.float64), PROB_EPS, 1 - PROB_EPS)
    return np.stack([np.log1p(-p), np.log(p)], axis=1).astype(np.float32)
