"""Batches of whole studies, for losses that score a study (MURA's unit) rather than an image."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


class StudyBatchSampler(Sampler[list[int]]):
    """A ``batch_sampler`` whose batches hold whole studies.

    Each epoch visits the studies in a random order seeded by ``(seed, epoch)`` and packs
    their images into batches of at most ``batch_size`` images (a study with more images than
    that is a batch of its own), so every image of a study is in the same batch.

    Args:
        image_studies: int ``(N,)``: the study of each image of the dataset (any integer ids).
        batch_size: the most images per batch (>= 1).
        seed: seed of the study order.

    Call :meth:`set_epoch` at the start of every epoch.
    """

    def __init__(self, image_studies: np.ndarray, batch_size: int, seed: int = 0):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        studies = np.asarray(image_studies)
        self.study_ids, inverse = np.unique(studies, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse, minlength=len(self.study_ids)))[:-1]
        self.images_of = np.split(order, bounds)  # image indices of each study
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the study order of ``epoch``."""
        self.epoch = epoch

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """The image-index batches of ``epoch`` (default: the current one), in order."""
        rng = np.random.default_rng([self.seed, self.epoch if epoch is None else epoch])
        out: list[list[int]] = []
        current: list[int] = []
        for study in rng.permutation(len(self.images_of)):
            images = self.images_of[study].tolist()
            if current and len(current) + len(images) > self.batch_size:
                out.append(current)
                current = []
            current = current + images
        if current:
            out.append(current)
        return out

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())


class WithIndex(Dataset):
    """``dataset`` whose item ``i`` is ``(*dataset[i], i)``: the index rides along with the
    sample, so a batch says which images (and so which studies) it holds."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple:
        return (*self.dataset[i], i)


def study_means(values: torch.Tensor, study_index: torch.Tensor) -> tuple[torch.Tensor,
                                                                           torch.Tensor]:
    """Mean of ``values`` ``(B,)`` float per study of a batch, as MURA averages a study's image
    probabilities; differentiable.

    Args:
        values: float ``(B,)``, one value per image.
        study_index: int ``(B,)``: each image's study (any integer ids).

    Returns:
        ``(means (S,) float, studies (S,) int64)``: one mean per distinct study of the batch,
        in ascending id order, and those ids.
    """
    studies, inverse = torch.unique(study_index, return_inverse=True)
    sums = values.new_zeros(len(studies)).index_add(0, inverse, values)
    counts = torch.bincount(inverse, minlength=len(studies)).to(values.dtype)
    return sums / counts, studies
