"""torch Datasets over the decode cache, with deterministic per-sample augmentation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from backbones.cache import ImageCache
from mura_env.constants import BODY_PARTS

PART_INDEX = {p: i for i, p in enumerate(BODY_PARTS)}


class CachedImages(Dataset):
    """Images of one split, read from an :class:`ImageCache`.

    Item ``i`` is ``(image, label, body_part)``: float32 tensor ``(1, size, size)``, int64
    label (1 = abnormal), int64 body-part index (order of ``BODY_PARTS``).

    Augmentation randomness is seeded per sample from ``(seed, epoch, i)``, so a sample looks
    the same whatever the worker count or process, and a resumed run repeats an uninterrupted
    one. Call :meth:`set_epoch` at the start of every epoch.
    """

    def __init__(self, cache: ImageCache, images: pd.DataFrame, transform, seed: int = 0):
        index = cache.index_of()
        missing = [p for p in images["path"] if p not in index]
        if missing:
            raise KeyError(f"{len(missing)} image(s) are not in the cache, e.g. {missing[:3]}")
        self.rows = np.array([index[p] for p in images["path"]], dtype=np.int64)
        self.labels = images["label"].to_numpy(dtype=np.int64)
        self.parts = images["body_part"].map(PART_INDEX).to_numpy(dtype=np.int64)
        self.cache = cache
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        image = np.asarray(self.cache.images[self.rows[i]])
        if hasattr(self.transform, "set_random_seed"):
            self.transform.set_random_seed(
                int(np.random.SeedSequence([self.seed, self.epoch, int(i)]).generate_state(1)[0]))
        out = self.transform(image=image)["image"]
        return out, int(self.labels[i]), int(self.parts[i])


def class_weights(studies: pd.DataFrame) -> torch.Tensor:
    """Per-body-part class weights as in the MURA paper, from the training studies.

    Returns a float32 tensor ``(7, 2)``: ``w[b, 1]`` (abnormal) = share of normal studies of
    body part ``b``, ``w[b, 0]`` (normal) = share of abnormal ones. A body part without
    training studies gets 0.5 / 0.5.
    """
    w = torch.full((len(BODY_PARTS), 2), 0.5, dtype=torch.float32)
    for part, group in studies.groupby("body_part"):
        abnormal = float(group["label"].mean())
        w[PART_INDEX[part], 1] = 1.0 - abnormal
        w[PART_INDEX[part], 0] = abnormal
    return w
