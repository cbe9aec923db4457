"""Constants of the MURA-v1.1 data set shared by the reader, the generator and the env."""

from __future__ import annotations

#: The seven body parts of MURA, in the order used everywhere in this package
#: (one-hot encodings, tables, plots).
BODY_PARTS: tuple[str, ...] = (
    "ELBOW",
    "FINGER",
    "FOREARM",
    "HAND",
    "HUMERUS",
    "SHOULDER",
    "WRIST",
)

#: Name of the top-level folder of the data set, as Stanford ships it.
MURA_DIRNAME = "MURA-v1.1"

#: Official splits of MURA-v1.1.
OFFICIAL_SPLITS: tuple[str, ...] = ("train", "valid")

#: Splits used by this project: the official train part is divided by patient into
#: ``train`` (backbones learn on it) and ``tune`` (weighting agents learn on it);
#: the official ``valid`` part is the held-out test split.
SPLITS: tuple[str, ...] = ("train", "tune", "valid")

#: Columns of the per-study table shared by the reader and the logits table.
STUDY_COLUMNS: tuple[str, ...] = (
    "study_id", "patient_id", "body_part", "label", "split", "n_images",
)

#: Optional study column of a logits table: how hard the study is to read, in [0, 1] (the
#: share of studies of its body part and label that are easier; the synthetic generator's
#: latent, :mod:`mura_env.synthetic.difficulty`). Simulated readers share it.
DIFFICULTY_COLUMN = "difficulty"
