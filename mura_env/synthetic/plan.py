"""The synthetic data set's plan: which studies, patients and images exist, before any drawing.

Counts follow the real MURA-v1.1 (Rajpurkar et al., 2017, and the released CSVs), scaled by
``scale``: per split and body part, the number of normal and abnormal studies and of images in
them. Patients hold 1-3 studies; a few hold studies of two body parts, both numbered
``study1`` (as in the real data), which is why a study is identified by its full path.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mura_env.constants import BODY_PARTS

#: Order of the body parts in Stanford's CSVs (and of patient numbering).
CSV_PART_ORDER: tuple[str, ...] = (
    "SHOULDER", "HUMERUS", "FINGER", "ELBOW", "WRIST", "FOREARM", "HAND",
)

#: Real MURA-v1.1 counts: (split, body part) -> (normal studies, abnormal studies,
#: images in normal studies, images in abnormal studies).
REAL_COUNTS: dict[tuple[str, str], tuple[int, int, int, int]] = {
    ("train", "ELBOW"): (1094, 660, 2925, 2006),
    ("train", "FINGER"): (1280, 655, 3138, 1968),
    ("train", "FOREARM"): (590, 287, 1164, 661),
    ("train", "HAND"): (1497, 521, 4059, 1484),
    ("train", "HUMERUS"): (321, 271, 673, 599),
    ("train", "SHOULDER"): (1364, 1457, 4211, 4168),
    ("train", "WRIST"): (2134, 1326, 5765, 3987),
    ("valid", "ELBOW"): (92, 66, 235, 230),
    ("valid", "FINGER"): (92, 83, 214, 247),
    ("valid", "FOREARM"): (69, 64, 150, 151),
    ("valid", "HAND"): (101, 66, 271, 189),
    ("valid", "HUMERUS"): (68, 67, 148, 140),
    ("valid", "SHOULDER"): (99, 95, 285, 278),
    ("valid", "WRIST"): (140, 97, 364, 295),
}

#: Share of patients with 1, 2 and 3 studies of one body part.
STUDIES_PER_PATIENT_P = (0.72, 0.21, 0.07)
#: Share of single-study patients paired with one of another body part.
CROSS_PART_SHARE = 0.06

PLAN_COLUMNS = ("split", "body_part", "patient", "study", "label", "n_images", "study_index")


def _study_cells(split: str, scale: float, rng: np.random.Generator) -> list[tuple[str, int, int]]:
    """(body part, label, n_images) for every study of ``split`` at ``scale``."""
    out = []
    for part in CSV_PART_ORDER:
        n_norm, n_abn, img_norm, img_abn = REAL_COUNTS[(split, part)]
        for label, n_real, img_real in ((0, n_norm, img_norm), (1, n_abn, img_abn)):
            n_studies = max(1, round(n_real * scale))
            n_images = max(n_studies, round(img_real * scale))
            per_study = 1 + rng.multinomial(n_images - n_studies,
                                            np.full(n_studies, 1.0 / n_studies))
            out += [(part, label, int(count)) for count in per_study]
    return out


def _group_patients(cells: list[tuple[str, int, int]], rng: np.random.Generator) -> list[list[int]]:
    """Group study indices into patients: 1-3 studies of a body part, a few across two parts."""
    patients: list[list[int]] = []
    for part in CSV_PART_ORDER:
        idx = [i for i, cell in enumerate(cells) if cell[0] == part]
        idx = [idx[i] for i in rng.permutation(len(idx))]
        while idx:
            n_studies = int(rng.choice(3, p=STUDIES_PER_PATIENT_P)) + 1
            patients.append(idx[:n_studies])
            idx = idx[n_studies:]
    singles = [patient for patient in patients if len(patient) == 1]
    order = rng.permutation(len(singles))
    n_pairs = round(CROSS_PART_SHARE * len(singles) / 2)
    merged: set[int] = set()
    pairs = 0
    for first, second in zip(order[::2], order[1::2], strict=False):
        if pairs >= n_pairs:
            break
        if cells[singles[first][0]][0] != cells[singles[second][0]][0]:
            singles[first].extend(singles[second])
            merged.add(id(singles[second]))
            pairs += 1
    return [patient for patient in patients if id(patient) not in merged]


def plan_dataset(scale: float, seed: int) -> pd.DataFrame:
    """Plan every study of a synthetic MURA-v1.1 at ``scale`` (1.0 = the real size).

    Args:
        scale: size relative to the real data set, > 0 (every cell keeps at least 1 study).
        seed: random seed; the plan is a pure function of ``(scale, seed)``.

    Returns:
        One row per study, in CSV order: ``split`` (train/valid), ``body_part``, ``patient``
        (int, numbered from 1 across both splits), ``study`` (int, ``studyK`` within the
        patient and body part), ``label`` (0/1), ``n_images`` (>= 1), ``study_index`` (int,
        unique; seeds the study's drawing).
    """
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    rows = []
    next_patient = 1
    for split_no, split in enumerate(("train", "valid")):
        rng = np.random.default_rng([seed, 0, split_no])
        cells = _study_cells(split, scale, rng)
        patients = _group_patients(cells, rng)
        split_rows = []
        for studies in patients:
            per_part: dict[str, int] = {}
            for i in studies:
                part, label, n_images = cells[i]
                per_part[part] = per_part.get(part, 0) + 1
                split_rows.append((split, part, next_patient, per_part[part], label, n_images))
            next_patient += 1
        part_rank = {part: i for i, part in enumerate(CSV_PART_ORDER)}
        split_rows.sort(key=lambda row: (part_rank[row[1]], row[2], row[3]))
        rows += split_rows
    df = pd.DataFrame(rows, columns=list(PLAN_COLUMNS[:-1]))
    df["study_index"] = np.arange(len(df))
    assert set(df["body_part"]) <= set(BODY_PARTS)
    return df


def study_relpath(row: pd.Series | dict) -> str:
    """``train/XR_ELBOW/patient00012/study1_positive`` for a plan row."""
    kind = "positive" if row["label"] == 1 else "negative"
    return (f"{row['split']}/XR_{row['body_part']}/patient{row['patient']:05d}/"
            f"study{row['study']}_{kind}")
