"""What ``experiments.predict`` reads: studies of new radiographs from folders, PNG/JPEG files
and DICOM files, each with its body part.

A PATH is a study folder (every PNG, JPEG or DICOM file directly inside it is one image of the
study), an image file or a DICOM file. Loose files given together form one study with
``study=NAME``; otherwise each file is its own study. The body part of a study comes, in this
order, from ``body_part`` (the command line's ``--body-part``), a MURA-style path component
(``XR_WRIST``), or the DICOM tag BodyPartExamined (0018,0015) mapped by
:func:`backbones.dicom.body_part_from_dicom`. Colour PNG/JPEG images are converted to
grayscale with a warning (MURA's radiographs are grayscale).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from backbones.dicom import DicomError, body_part_from_dicom, is_dicom, read_dicom
from mura_env.constants import BODY_PARTS

#: File suffixes read as images (lower case); other files are DICOM when they look like one.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_PART_RE = re.compile(r"^XR_([A-Z]+)$")


class PredictInputError(ValueError):
    """A path, image or body part ``experiments.predict`` cannot use (the message names the
    file and says what was expected)."""


@dataclass(frozen=True)
class StudyInput:
    """One study to predict: ``study_id``, ``body_part`` (one of ``BODY_PARTS``), its image
    ``paths`` and the decoded ``images`` (uint8 grayscale ``(H_i, W_i)``, as MURA's PNGs)."""

    study_id: str
    body_part: str
    paths: list[str]
    images: list[np.ndarray]


def read_image(path: Path) -> tuple[np.ndarray, str | None]:
    """One image file as uint8 grayscale ``(H, W)``, and the body part its DICOM tag names.

    Raises:
        PredictInputError: an unreadable, corrupt or unsupported file (named).
    """
    if path.suffix.lower() in IMAGE_SUFFIXES:
        data = np.fromfile(path, dtype=np.uint8) if path.is_file() else np.zeros(0, np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
        if image is None:
            raise PredictInputError(f"{path}: cannot be decoded as a {path.suffix[1:].upper()} "
                                    "image (corrupt or empty file?); expected a radiograph.")
        if image.ndim == 3:
            warnings.warn(f"{path}: colour image converted to grayscale (radiographs are "
                          "grayscale).", stacklevel=2)
            code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
            image = cv2.cvtColor(image, code)
        if image.dtype != np.uint8:  # 16-bit PNG: scale to 8 bits as MURA's PNGs are
            image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
        return image, None
    if is_dicom(path):
        try:
            dicom = read_dicom(path)
        except DicomError as e:
            raise PredictInputError(str(e)) from None
        return dicom.pixels, body_part_from_dicom(dicom.body_part)
    raise PredictInputError(f"{path}: not a PNG, JPEG or DICOM file (suffixes "
                            f"{', '.join(IMAGE_SUFFIXES)}, or a DICOM file).")


def folder_images(folder: Path) -> list[Path]:
    """The PNG, JPEG and DICOM files directly inside ``folder``, sorted by name.

    Raises:
        PredictInputError: the folder holds none.
    """
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and (p.suffix.lower() in IMAGE_SUFFIXES or is_dicom(p)))
    if not files:
        raise PredictInputError(f"{folder}: no PNG, JPEG or DICOM image inside; expected a "
                                "study folder holding the study's images.")
    return files


def path_body_part(paths: list[Path]) -> str | None:
    """The body part a MURA-style path component (``XR_WRIST``) names, or None."""
    for path in paths:
        for part in path.resolve().parts:
            match = _PART_RE.match(part)
            if match and match[1] in BODY_PARTS:
                return match[1]
    return None


def resolve_body_part(given: str | None, paths: list[Path], tags: list[str | None],
                      study_id: str) -> str:
    """A study's body part: ``given``, else the path's ``XR_<PART>``, else a DICOM tag.

    Raises:
        PredictInputError: an unknown ``given`` body part, or none found.
    """
    if given is not None:
        part = given.strip().upper()
        if part not in BODY_PARTS:
            raise PredictInputError(f"--body-part {given!r} is not one of "
                                    f"{', '.join(BODY_PARTS)}.")
        return part
    part = path_body_part(paths) or next((t for t in tags if t is not None), None)
    if part is None:
        raise PredictInputError(
            f"study {study_id}: no body part found (no XR_<PART> folder in its path, no known "
            f"DICOM BodyPartExamined); pass --body-part, one of {', '.join(BODY_PARTS)}.")
    return part


def _study(study_id: str, files: list[Path], body_part: str | None) -> StudyInput:
    read = [read_image(f) for f in files]
    part = resolve_body_part(body_part, files, [tag for _, tag in read], study_id)
    return StudyInput(study_id, part, [str(f) for f in files], [im for im, _ in read])


def collect_studies(paths: list[Path], study: str | None = None,
                    body_part: str | None = None) -> list[StudyInput]:
    """The studies the command line's PATHs name (see the module docstring).

    Args:
        paths: study folders, image files and DICOM files.
        study: when given, every loose file (not the folders) forms this one study.
        body_part: the body part of every study, or None to find each one's.

    Raises:
        PredictInputError: a missing path, an empty folder, an unreadable image, no body part.
    """
    if not paths:
        raise PredictInputError("no PATH given; expected study folders or image files.")
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise PredictInputError(f"no such file or folder: {', '.join(missing)}.")
    folders = [p for p in paths if p.is_dir()]
    files = [p for p in paths if not p.is_dir()]
    studies = [_study(str(f), folder_images(f), body_part) for f in folders]
    if files and study is not None:
        studies.append(_study(study, files, body_part))
    else:
        studies += [_study(str(f), [f], body_part) for f in files]
    ids = [s.study_id for s in studies]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise PredictInputError(f"a study is given twice: {repeated}.")
    return studies
