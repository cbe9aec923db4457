"""Reader for MURA-v1.1 as Stanford ships it (and for the synthetic stand-in of the same format).

The data set on disk::

    MURA-v1.1/
        train_image_paths.csv        one column, no header, rows like
                                     MURA-v1.1/train/XR_SHOULDER/patient00001/study1_positive/image1.png
        train_labeled_studies.csv    two columns, no header, rows like
                                     MURA-v1.1/train/XR_SHOULDER/patient00001/study1_positive/,1
        valid_image_paths.csv valid_labeled_studies.csv
        train/XR_<PART>/patientNNNNN/studyK_{positive,negative}/imageN.png
        valid/...

:func:`load_mura` reads the four CSVs, checks them strictly against the files on disk and
returns a :class:`MuraData` with one row per image and one row per study. Every problem a user
can cause raises :class:`MuraFormatError` naming the file and what was expected; nothing is
silently dropped. macOS resource files (``._image1.png``) and other non-image files are ignored.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd

from mura_env.constants import BODY_PARTS, MURA_DIRNAME, OFFICIAL_SPLITS, STUDY_COLUMNS
from mura_env.data.split import split_train_tune

IMAGE_COLUMNS: tuple[str, ...] = ("path", "study_id", "patient_id", "body_part", "label", "split")

_STUDY_RE = re.compile(
    r"^(?P<split>train|valid)/XR_(?P<part>[A-Z]+)/(?P<patient>patient\d+)/"
    r"(?P<study>study\d+)_(?P<folder_label>positive|negative)$"
)
_IMAGE_NAME_RE = re.compile(r"^image\d+\.png$", re.IGNORECASE)
_SHOW = 5  # how many offending entries an error message lists


class MuraFormatError(ValueError):
    """Raised when a MURA-v1.1 folder or CSV does not have the layout Stanford ships."""


@dataclass(frozen=True)
class MuraData:
    """A loaded MURA-v1.1 data set.

    Attributes:
        root: the ``MURA-v1.1`` folder (absolute).
        images: one row per image; columns ``path`` (absolute path, str), ``study_id`` (str),
            ``patient_id`` (str), ``body_part`` (str, one of :data:`BODY_PARTS`),
            ``label`` (int64, 1 = abnormal), ``split`` (str: ``train``/``tune``/``valid``, or
            ``train``/``valid`` when no tune split was made).
        studies: one row per study; columns ``study_id``, ``patient_id``, ``body_part``,
            ``label``, ``split``, ``n_images`` (int64).
        fingerprint: sha256 hex digest of the four CSVs' bytes; identifies the data set.
    """

    root: Path
    images: pd.DataFrame
    studies: pd.DataFrame
    fingerprint: str


def resolve_mura_root(root: str | os.PathLike[str]) -> Path:
    """Return the ``MURA-v1.1`` folder for ``root``.

    ``root`` may be the folder that holds ``MURA-v1.1/`` or ``MURA-v1.1/`` itself.
    Raises :class:`MuraFormatError` when neither holds the data set's CSVs.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise MuraFormatError(
            f"{root} does not exist. Pass the folder that holds {MURA_DIRNAME}/ (or that folder "
            "itself); to make a synthetic one run: python -m experiments.synthetic --out DIR"
        )
    for candidate in (root / MURA_DIRNAME, root):
        if (candidate / "train_image_paths.csv").is_file() or (
            candidate / "valid_image_paths.csv"
        ).is_file():
            return candidate.resolve()
    raise MuraFormatError(
        f"{root} holds no MURA-v1.1 data set: expected {root / MURA_DIRNAME}/train_image_paths.csv "
        f"or {root}/train_image_paths.csv. Pass the folder that holds {MURA_DIRNAME}/ "
        "(as unpacked from Stanford's zip) or make a synthetic one with "
        "python -m experiments.synthetic --out DIR"
    )


def _read_rows(csv_path: Path, n_columns: int) -> list[list[str]]:
    """Read a header-less CSV strictly: every row must have exactly ``n_columns`` fields."""
    if not csv_path.is_file():
        raise MuraFormatError(
            f"missing {csv_path.name}: expected it at {csv_path} (MURA-v1.1 ships "
            "train/valid_image_paths.csv and train/valid_labeled_studies.csv side by side)"
        )
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            rows = [row for row in csv.reader(f) if row]
    except UnicodeDecodeError as e:
        raise MuraFormatError(
            f"{csv_path} is not a text CSV (UTF-8/ASCII): {e}. Expected one path per row, as "
            "Stanford ships it") from None
    if not rows:
        raise MuraFormatError(f"{csv_path} is empty: expected one row per "
                              + ("image" if n_columns == 1 else "study"))
    for line_no, row in enumerate(rows, start=1):
        if len(row) != n_columns:
            example = (
                "MURA-v1.1/train/XR_SHOULDER/patient00001/study1_positive/image1.png"
                if n_columns == 1
                else "MURA-v1.1/train/XR_SHOULDER/patient00001/study1_positive/,1"
            )
            raise MuraFormatError(
                f"{csv_path}, row {line_no}: expected {n_columns} column(s), found {len(row)} "
                f"({','.join(row)[:120]!r}). Rows look like {example!r}"
            )
    first = rows[0][0].strip()
    if "/" not in first and "\\" not in first:
        raise MuraFormatError(
            f"{csv_path}, row 1 is {','.join(rows[0])[:120]!r}: it looks like a header. "
            f"MURA's CSVs have no header; every row starts with '{MURA_DIRNAME}/'. "
            "Remove the header row."
        )
    return rows


def _relative_parts(csv_path: Path, line_no: int, raw: str) -> PurePosixPath:
    """Check that a CSV path stays inside the data set and return it below ``MURA-v1.1/``."""
    raw = raw.strip()
    path = PurePosixPath(raw)
    if path.is_absolute() or raw.startswith("\\") or re.match(r"^[A-Za-z]:", raw):
        raise MuraFormatError(
            f"{csv_path}, row {line_no}: {raw!r} is an absolute path; MURA paths are relative "
            f"and start with '{MURA_DIRNAME}/'"
        )
    if ".." in path.parts:
        raise MuraFormatError(
            f"{csv_path}, row {line_no}: {raw!r} escapes the data set root with '..'; "
            f"MURA paths stay inside '{MURA_DIRNAME}/'"
        )
    if not path.parts or path.parts[0] != MURA_DIRNAME:
        raise MuraFormatError(
            f"{csv_path}, row {line_no}: {raw!r} does not start with '{MURA_DIRNAME}/'"
        )
    return PurePosixPath(*path.parts[1:])


def _parse_study(csv_path: Path, line_no: int, rel: str, split: str) -> re.Match[str]:
    match = _STUDY_RE.match(rel)
    if match is None:
        raise MuraFormatError(
            f"{csv_path}, row {line_no}: {rel!r} is not a study path; expected "
            f"'{split}/XR_<PART>/patientNNNNN/studyK_positive' (or _negative)"
        )
    if match["split"] != split:
        raise MuraFormatError(
            f"{csv_path}, row {line_no}: {rel!r} lies in the {match['split']!r} split but is "
            f"listed in the {split!r} CSV"
        )
    if match["part"] not in BODY_PARTS:
        raise MuraFormatError(
            f"{csv_path}, row {line_no}: unknown body part folder 'XR_{match['part']}'; "
            f"expected one of {', '.join('XR_' + part for part in BODY_PARTS)}"
        )
    return match


def _read_split(mura_root: Path, split: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read and check one official split.

    Args:
        mura_root: the ``MURA-v1.1`` folder.
        split: ``train`` or ``valid``.

    Returns:
        ``(images, studies)``: images with the columns of :data:`IMAGE_COLUMNS`; studies with
        ``study_id, patient_id, body_part, label, split, n_images``.

    Raises:
        MuraFormatError: any problem with the split's two CSVs or the files they list.
    """
    studies_csv = mura_root / f"{split}_labeled_studies.csv"
    images_csv = mura_root / f"{split}_image_paths.csv"
    studies = _read_studies(studies_csv, split)
    images = _read_images(images_csv, mura_root, split, set(studies["study_id"]))
    _check_images_on_disk(images_csv, images)
    studies["n_images"] = _images_per_study(images_csv, studies, images)
    _check_tree(mura_root, split, set(images["path"]))
    return images, studies


def _read_studies(studies_csv: Path, split: str) -> pd.DataFrame:
    """The studies listed in ``<split>_labeled_studies.csv``: columns ``study_id, patient_id,
    body_part, label, split``, in the CSV's order. Each label must be 0 or 1 and agree with the
    study folder's name; no study may be listed twice."""
    study_rows = []
    first_row: dict[str, int] = {}
    for line_no, (raw_path, raw_label) in enumerate(_read_rows(studies_csv, 2), start=1):
        rel = str(_relative_parts(studies_csv, line_no, raw_path))  # drops the trailing slash
        match = _parse_study(studies_csv, line_no, rel, split)
        label = _parse_label(studies_csv, line_no, raw_label, rel, match["folder_label"])
        if rel in first_row:
            raise MuraFormatError(
                f"{studies_csv}, row {line_no}: study {rel!r} is listed twice "
                f"(first at row {first_row[rel]})"
            )
        first_row[rel] = line_no
        study_rows.append((rel, match["patient"], match["part"], label, split))
    return pd.DataFrame(study_rows, columns=["study_id", "patient_id", "body_part", "label",
                                             "split"])


def _parse_label(studies_csv: Path, line_no: int, raw_label: str, rel: str,
                 folder_label: str) -> int:
    """The 0/1 label of a study row; it must agree with the folder's ``positive``/``negative``."""
    label_text = raw_label.strip()
    if label_text not in ("0", "1"):
        raise MuraFormatError(
            f"{studies_csv}, row {line_no}: label {raw_label!r} is not 0 or 1"
        )
    label = int(label_text)
    if label != (folder_label == "positive"):
        raise MuraFormatError(
            f"{studies_csv}, row {line_no}: study {rel!r} has label {label} but its folder "
            f"says '{folder_label}' (positive = 1 = abnormal, negative = 0 = normal). "
            "Fix the label or the folder name."
        )
    return label


def _read_images(images_csv: Path, mura_root: Path, split: str,
                 listed_studies: set[str]) -> pd.DataFrame:
    """The images listed in ``<split>_image_paths.csv``, columns :data:`IMAGE_COLUMNS` (``path``
    absolute). Each must be an ``imageN.png`` of a study in ``listed_studies``, listed once."""
    image_rows = []
    unlisted_study: list[str] = []
    for line_no, (raw_path,) in enumerate(_read_rows(images_csv, 1), start=1):
        rel = _relative_parts(images_csv, line_no, raw_path)
        if not _IMAGE_NAME_RE.match(rel.name):
            raise MuraFormatError(
                f"{images_csv}, row {line_no}: {raw_path!r} is not an image path; expected "
                "'.../studyK_positive/imageN.png'"
            )
        study_rel = str(rel.parent)
        match = _parse_study(images_csv, line_no, study_rel, split)
        if study_rel not in listed_studies:
            unlisted_study.append(raw_path)
            continue
        image_rows.append((str(mura_root / rel), study_rel, match["patient"], match["part"],
                           int(match["folder_label"] == "positive"), split))
    if unlisted_study:
        raise MuraFormatError(
            f"{images_csv}: {len(unlisted_study)} image(s) belong to studies that are not in "
            f"{split}_labeled_studies.csv, e.g. {unlisted_study[:_SHOW]}"
        )
    images = pd.DataFrame(image_rows, columns=list(IMAGE_COLUMNS))
    duplicated = images["path"].duplicated()
    if duplicated.any():
        listed_twice = images.loc[duplicated, "path"].tolist()
        raise MuraFormatError(f"{images_csv}: {len(listed_twice)} image(s) listed twice, "
                              f"e.g. {listed_twice[:_SHOW]}")
    return images


def _check_images_on_disk(images_csv: Path, images: pd.DataFrame) -> None:
    """Raise :class:`MuraFormatError` when a listed image is not a file on disk."""
    missing = [path for path in images["path"] if not os.path.isfile(path)]
    if missing:
        raise MuraFormatError(
            f"{images_csv}: {len(missing)} of {len(images)} listed image(s) are missing on disk, "
            f"e.g. {missing[:_SHOW]}. Check that the data set was unpacked completely."
        )


def _images_per_study(images_csv: Path, studies: pd.DataFrame,
                      images: pd.DataFrame) -> pd.Series:
    """int64 Series aligned with ``studies``: how many images each study has (at least one)."""
    counts = images.groupby("study_id").size()
    n_images = studies["study_id"].map(counts).fillna(0).astype("int64")
    empty = studies.loc[n_images == 0, "study_id"].tolist()
    if empty:
        raise MuraFormatError(
            f"{images_csv}: {len(empty)} labeled study(ies) have no image listed, "
            f"e.g. {empty[:_SHOW]}"
        )
    return n_images


def _check_tree(mura_root: Path, split: str, listed: set[str]) -> None:
    """Check the folders on disk: unknown body part folders are errors, unlisted images warn."""
    split_dir = mura_root / split
    if not split_dir.is_dir():
        raise MuraFormatError(f"missing folder {split_dir}: the {split} CSVs list images there")
    for entry in sorted(os.listdir(split_dir)):
        full = split_dir / entry
        if entry.startswith(".") or not full.is_dir():
            continue
        if not (entry.startswith("XR_") and entry[3:] in BODY_PARTS):
            raise MuraFormatError(
                f"unknown body part folder {full}; expected only "
                f"{', '.join('XR_' + part for part in BODY_PARTS)} under {split_dir}"
            )
    unlisted = []
    for dirpath, dirnames, filenames in os.walk(split_dir):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith("._") or not _IMAGE_NAME_RE.match(name):
                continue  # macOS resource forks and non-image files are not data
            path = os.path.join(dirpath, name)
            if path not in listed:
                unlisted.append(path)
    if unlisted:
        warnings.warn(
            f"{len(unlisted)} image(s) under {split_dir} are not listed in "
            f"{split}_image_paths.csv and are not used, e.g. {sorted(unlisted)[:_SHOW]}",
            stacklevel=3,
        )


def data_fingerprint(mura_root: str | os.PathLike[str]) -> str:
    """sha256 hex digest of the four CSVs of a MURA-v1.1 folder (identifies a data set)."""
    mura_root = resolve_mura_root(mura_root)
    digest = hashlib.sha256()
    for split in OFFICIAL_SPLITS:
        for kind in ("image_paths", "labeled_studies"):
            path = mura_root / f"{split}_{kind}.csv"
            if path.is_file():
                digest.update(path.name.encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def load_mura(
    root: str | os.PathLike[str],
    tune_fraction: float = 0.2,
    seed: int = 0,
) -> MuraData:
    """Read MURA-v1.1 (real or synthetic) into per-image and per-study tables.

    Args:
        root: the folder holding ``MURA-v1.1/``, or ``MURA-v1.1/`` itself.
        tune_fraction: share of the official train part's patients moved to the ``tune``
            split (see :func:`mura_env.data.split.split_train_tune`); 0 keeps the official
            train/valid only.
        seed: seed of the train/tune split.

    Returns:
        A :class:`MuraData`. ``studies`` is sorted as the CSVs list them, train before valid.

    Raises:
        MuraFormatError: missing or malformed CSV, header row, wrong column count, a path
            escaping the root, unknown body part, label/folder mismatch, a listed image missing
            on disk, an empty split.
    """
    if tune_fraction < 0:
        raise ValueError(f"tune_fraction must be >= 0, got {tune_fraction}")
    mura_root = resolve_mura_root(root)
    images, studies = [], []
    for split in OFFICIAL_SPLITS:
        split_images, split_studies = _read_split(mura_root, split)
        images.append(split_images)
        studies.append(split_studies)
    images_df = pd.concat(images, ignore_index=True)
    studies_df = pd.concat(studies, ignore_index=True)[list(STUDY_COLUMNS)]
    if tune_fraction > 0:
        studies_df["split"] = split_train_tune(studies_df, tune_fraction=tune_fraction, seed=seed)
        images_df["split"] = images_df["study_id"].map(
            dict(zip(studies_df["study_id"], studies_df["split"], strict=True))
        )
    for table in (images_df, studies_df):
        table["label"] = table["label"].astype("int64")
    return MuraData(root=mura_root, images=images_df, studies=studies_df,
                    fingerprint=data_fingerprint(mura_root))

