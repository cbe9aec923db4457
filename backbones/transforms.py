"""albumentations input pipelines for grayscale radiographs.

Images come from the decode cache already letterboxed (aspect-preserving resize and zero pad)
to ``size x size`` uint8. Training adds augmentations suited to radiographs: rotations up to 30
degrees, horizontal flips, affine shift/scale/shear, brightness/contrast and a random resized
crop; no hue or saturation (these are grayscale). Both pipelines end in a float tensor
``(1, size, size)`` normalised with :data:`MEAN` and :data:`STD`.
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
from albumentations.pytorch import ToTensorV2

MEAN, STD = 0.3, 0.25  # of the synthetic data's pixels / 255; close enough for real MURA


def letterbox(image: np.ndarray, size: int) -> np.ndarray:
    """Aspect-preserving resize of a uint8 (H, W) image so its long side is ``size``, then
    zero pad (centred) to ``(size, size)`` uint8."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (nw, nh), interpolation=interp)
    out = np.zeros((size, size), dtype=np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top:top + nh, left:left + nw] = resized
    return out


def train_transform(size: int) -> A.Compose:
    """Augmentations for training: uint8 (size, size) -> float tensor (1, size, size)."""
    return A.Compose([
        A.RandomResizedCrop(size=(size, size), scale=(0.8, 1.0), ratio=(0.9, 1.1), p=0.3),
        A.HorizontalFlip(p=0.5),
        A.Affine(rotate=(-30, 30), translate_percent=(-0.05, 0.05), scale=(0.95, 1.05),
                 shear=(-5, 5), border_mode=cv2.BORDER_CONSTANT, fill=0, p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.15, contrast_limit=0.15, p=0.5),
        A.Normalize(mean=(MEAN,), std=(STD,), max_pixel_value=255.0),
        ToTensorV2(),
    ])


def eval_transform(size: int) -> A.Compose:
    """Evaluation: no augmentation; uint8 (size, size) -> float tensor (1, size, size)."""
    return A.Compose([
        A.Normalize(mean=(MEAN,), std=(STD,), max_pixel_value=255.0),
        ToTensorV2(),
    ])
