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


def check_body_parts(parts: tuple[str, ...], what: str) -> tuple[str, ...]:
    """``parts`` unchanged when every name is one of :data:`BODY_PARTS`; else a
    :class:`ValueError` naming the unknown ones (``what``: the setting, for the message)."""
    unknown = sorted(set(parts) - set(BODY_PARTS))
    if unknown:
        raise ValueError(f"unknown {what} body part(s) {unknown}; valid: {', '.join(BODY_PARTS)}")
    return parts


def select_training_studies(studies: pd.DataFrame, n_studies: int | None,
                            focus_parts: tuple[str, ...] = (), focus_share: float = 0.8,
                            seed: int = 0) -> np.ndarray:
    """Which ``train`` studies a member trains on: a patient-level random subset.

    Patients are visited in a seeded random order and each is taken whole (every one of its
    train studies) while it fits the remaining quotas: ``round(focus_share * n_studies)``
    studies of ``focus_parts`` and the rest of the other body parts. With no ``focus_parts``
    the subset is a plain random patient subset; with ``n_studies=None`` every train study is
    taken whatever the focus.

    Args:
        studies: one row per study with ``study_id``, ``patient_id``, ``body_part``, ``split``.
        n_studies: size of the subset (``None``: all train studies).
        focus_parts: body parts of the focus quota (names in :data:`BODY_PARTS`).
        focus_share: share of the subset from ``focus_parts``, in [0, 1].
        seed: seed of the patient order.

    Returns:
        Boolean array ``(len(studies),)``: True for the studies to train on.
    """
    is_train = (studies["split"] == "train").to_numpy()
    check_body_parts(focus_parts, "focus")
    if not 0.0 <= focus_share <= 1.0:
        raise ValueError(f"focus_share must be in [0, 1], got {focus_share}")
    if n_studies is None:
        return is_train
    if n_studies < 1:
        raise ValueError(f"train_studies must be >= 1, got {n_studies}")
    in_focus = studies["body_part"].isin(set(focus_parts)).to_numpy()
    left = {True: round(focus_share * n_studies) if focus_parts else 0}
    left[False] = n_studies - left[True]
    chosen = np.zeros(len(studies), dtype=bool)
    train_rows = np.flatnonzero(is_train)
    patients = studies["patient_id"].to_numpy()[train_rows]
    order = np.random.default_rng(seed).permutation(np.unique(patients))
    rows_of = pd.Series(train_rows).groupby(patients).apply(list)
    for patient in order:
        rows = rows_of[patient]
        need = {True: int(in_focus[rows].sum()), False: int((~in_focus[rows]).sum())}
        if need[True] <= left[True] and need[False] <= left[False]:
            chosen[rows] = True
            left[True] -= need[True]
            left[False] -= need[False]
            if left[True] == 0 and left[False] == 0:
                break
    return chosen
