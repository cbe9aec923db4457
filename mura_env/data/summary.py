"""Counts of a MURA-v1.1 study table: studies, images, normal and abnormal, per split and part."""

from __future__ import annotations

import pandas as pd

from mura_env.constants import BODY_PARTS


def summarize(studies: pd.DataFrame) -> pd.DataFrame:
    """Count studies and images per split and body part.

    Args:
        studies: a studies table (columns as :attr:`mura_env.data.MuraData.studies`).

    Returns:
        One row per (split, body_part) plus a ``total`` row per split; integer columns
        ``normal``, ``abnormal``, ``studies``, ``images``.
    """
    groups = studies.groupby(["split", "body_part"])
    out = pd.DataFrame({
        "normal": groups["label"].apply(lambda labels: int((labels == 0).sum())),
        "abnormal": groups["label"].sum().astype("int64"),
        "studies": groups.size(),
        "images": groups["n_images"].sum().astype("int64"),
    }).reset_index()
    totals = out.groupby("split", as_index=False)[["normal", "abnormal", "studies", "images"]].sum()
    totals["body_part"] = "total"
    out = pd.concat([out, totals], ignore_index=True)
    split_rank = {split: i for i, split in enumerate(("train", "tune", "valid"))}
    part_rank = {part: i for i, part in enumerate((*BODY_PARTS, "total"))}
    out["_split_rank"] = out["split"].map(split_rank)
    out["_part_rank"] = out["body_part"].map(part_rank)
    return (out.sort_values(["_split_rank", "_part_rank"])
            .drop(columns=["_split_rank", "_part_rank"]).reset_index(drop=True))
