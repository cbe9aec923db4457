"""Read DICOM radiographs as MURA-like 8-bit grayscale images, and map their body part.

MURA ships 8-bit grayscale PNGs in which bone is bright. :func:`read_dicom` turns a DICOM file
into the same kind of image, the way a viewer would display it:

1. decode the pixel data (first frame only of a multi-frame file);
2. colour (RGB, YBR, PALETTE COLOR): convert to luma, ``0.299 R + 0.587 G + 0.114 B`` (ITU-R
   BT.601, as OpenCV's grayscale conversion used for the PNGs in :mod:`backbones.cache`), with
   a warning naming the file; a colour image keeps its nominal range (``0..2**bits - 1``);
3. grayscale: apply the Modality LUT (Rescale Slope/Intercept or Modality LUT Sequence), then
   the VOI LUT Sequence (preferred) or the first Window Center/Width; the display range is
   that transform's full output range; with neither, 8-bit pixels without a rescale are kept
   as they are (as a PNG's), and other images use their own min..max;
4. scale the display range linearly to 0..255 uint8 (a constant image gives all zeros);
5. invert MONOCHROME1 so that bone is bright (the MONOCHROME2 convention of MURA's PNGs).
   Presentation LUT Shape is not applied (DX images pair INVERSE with MONOCHROME1 itself).

Files are read strictly (``force=False``): a file needs the ``DICM`` prefix at offset 128
(see :func:`is_dicom`). Compressed transfer syntaxes need optional decoders: RLE and Deflate
are native to pydicom; JPEG needs ``pylibjpeg`` + ``pylibjpeg-libjpeg`` (Pillow covers 8-bit
baseline only), JPEG-LS ``pylibjpeg`` + ``pylibjpeg-libjpeg``, JPEG 2000 ``pylibjpeg`` +
``pylibjpeg-openjpeg``.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, pixel_array
from pydicom.uid import JPEG2000TransferSyntaxes, JPEGLSTransferSyntaxes

from mura_env.constants import BODY_PARTS

#: ITU-R BT.601 luma weights for R, G and B (as ``cv2.cvtColor(..., COLOR_RGB2GRAY)``).
LUMA_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_COLOUR_PHOTOMETRIC = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR")


class DicomError(ValueError):
    """A DICOM file that cannot be used as a radiograph (the message names the file and says
    what was expected)."""


@dataclass(frozen=True)
class DicomImage:
    """A radiograph read from DICOM.

    Attributes:
        pixels: uint8 ``(H, W)`` grayscale image, 0..255, bone bright (as MURA's PNGs).
        body_part: the raw Body Part Examined (0018,0015) value, stripped; None when absent or
            empty. Map it to a MURA body part with :func:`body_part_from_dicom`.
        photometric: the file's Photometric Interpretation (e.g. ``"MONOCHROME1"``, ``"RGB"``).
        path: the file read.
    """

    pixels: np.ndarray
    body_part: str | None
    photometric: str
    path: str


def is_dicom(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a file with the DICOM ``DICM`` prefix at byte offset 128.

    Reads 132 bytes at most and never raises (a missing or unreadable path gives False). Files
    without the 128-byte preamble (old ACR-NEMA style) give False: :func:`read_dicom` reads
    strictly and rejects them too, so this is exactly "read_dicom may accept it", whatever the
    suffix.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def read_dicom(path: str | os.PathLike[str]) -> DicomImage:
    """Read one DICOM radiograph as a MURA-like image (see the module docstring for the steps).

    Args:
        path: a DICOM file (Part 10, with the ``DICM`` prefix).

    Returns:
        :class:`DicomImage` whose ``pixels`` is uint8 ``(H, W)``. A multi-frame file gives its
        first frame only. A colour file gives its luma, with a ``UserWarning`` naming the file.

    Raises:
        FileNotFoundError: no file at ``path``.
        DicomError: not DICOM or corrupt; no pixel data (e.g. a structured report); pixel data
            that cannot be decoded (corrupt, unsupported, or a compressed transfer syntax whose
            optional decoder package is not installed: the message says which to install).
    """
    name = str(path)
    ds = _read_dataset(name)
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        raise DicomError(
            f"{name} has no pixel data (e.g. a structured report or presentation state); "
            "expected an image")
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    frame = _decode_first_frame(ds, name)
    if photometric in _COLOUR_PHOTOMETRIC or frame.ndim == 3:
        warnings.warn(f"{name} is a colour image ({photometric or 'unknown photometric'}); "
                      "converted to grayscale (luma)", UserWarning, stacklevel=2)
        values, low, high = _colour_to_luma(frame, ds, photometric, name)
    else:
        values, low, high = _grayscale_display(frame, ds)
    pixels = scale_to_uint8(values, low, high)
    if photometric == "MONOCHROME1":
        pixels = 255 - pixels
    body = str(ds.get("BodyPartExamined", "") or "").strip()
    return DicomImage(pixels=pixels, body_part=body or None, photometric=photometric,
                      path=name)


def scale_to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map ``low..high`` linearly to 0..255, clip and round.

    Args:
        values: array of any real dtype and shape.
        low, high: the values that become 0 and 255.

    Returns:
        uint8 array of ``values``' shape; all zeros when ``high <= low`` (a constant image).
    """
    if not high > low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values.astype(np.float64) - low) * (255.0 / (high - low))
    return np.rint(np.clip(scaled, 0.0, 255.0)).astype(np.uint8)


def _read_dataset(name: str) -> Dataset:
    """Parse ``name`` strictly with pydicom; DicomError when it is not (valid) DICOM."""
    if not Path(name).is_file():
        raise FileNotFoundError(f"no DICOM file at {name}")
    try:
        return pydicom.dcmread(name, force=False)
    except InvalidDicomError as exc:
        detail = str(exc).replace(" Use force=True to force reading.", "")
        raise DicomError(
            f"{name} is not a DICOM file: expected a DICOM Part 10 file with the 'DICM' prefix "
            f"at byte 128 (files without that preamble, e.g. old ACR-NEMA ones, are not read); "
            f"pydicom: {detail}") from exc
    except Exception as exc:  # pydicom raises many types on truncated or corrupt files
        raise DicomError(f"{name} could not be parsed as DICOM (corrupt or truncated?): "
                         f"{type(exc).__name__}: {exc}") from exc


def _decode_first_frame(ds: Dataset, name: str) -> np.ndarray:
    """Decode frame 0 of ``ds``: ``(H, W)`` or, for colour, ``(H, W, 3)`` (YBR given as RGB)."""
    syntax = ds.file_meta.get("TransferSyntaxUID")
    label = f"'{syntax.name}' ({syntax})" if syntax else "an unknown transfer syntax"
    try:
        return np.asarray(pixel_array(ds, index=0))
    except NotImplementedError as exc:
        raise DicomError(f"{name}: pixel data in {label} cannot be decoded by pydicom; expected "
                         f"an uncompressed or JPEG/JPEG-LS/JPEG 2000/RLE image ({exc})") from exc
    except RuntimeError as exc:
        if "missing dependencies" in str(exc):
            gist = " ".join(str(exc).split())
            raise DicomError(
                f"{name}: pixel data is compressed as {label} and no installed decoder can "
                f"read it; install the optional decoder: pip install {_decoder_hint(syntax)} "
                f"(pydicom: {gist})") from exc
        raise DicomError(f"{name}: compressed pixel data in {label} could not be decoded "
                         f"(corrupt?): {' '.join(str(exc).split())}") from exc
    except Exception as exc:
        raise DicomError(f"{name}: pixel data could not be decoded (corrupt, truncated, or "
                         f"inconsistent image attributes): {type(exc).__name__}: {exc}") from exc


def _decoder_hint(syntax: object) -> str:
    """The pip packages that decode transfer syntax ``syntax`` (a UID, or None)."""
    if syntax in JPEG2000TransferSyntaxes:
        return "pylibjpeg pylibjpeg-openjpeg"
    if syntax in JPEGLSTransferSyntaxes or str(syntax).startswith("1.2.840.10008.1.2.4."):
        return "pylibjpeg pylibjpeg-libjpeg"
    return "pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg pylibjpeg-rle"


def _colour_to_luma(frame: np.ndarray, ds: Dataset, photometric: str,
                    name: str) -> tuple[np.ndarray, float, float]:
    """Luma of a colour frame and its nominal display range ``(luma, 0, 2**bits - 1)``.

    ``frame`` is ``(H, W, 3)`` RGB (pydicom converts YBR to RGB) or, for PALETTE COLOR,
    ``(H, W)`` palette indices, looked up first. Returns float64 ``(H, W)`` luma.
    """
    if photometric == "PALETTE COLOR":
        frame = apply_color_lut(frame, ds)
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
    else:
        bits = int(ds.get("BitsStored", 8))
    if frame.ndim != 3 or frame.shape[-1] != 3:
        raise DicomError(f"{name}: colour pixel data of shape {frame.shape}; "
                         "expected (rows, columns, 3)")
    luma = frame.astype(np.float64) @ np.asarray(LUMA_WEIGHTS)
    return luma, 0.0, float(2 ** bits - 1)


def _grayscale_display(frame: np.ndarray, ds: Dataset) -> tuple[np.ndarray, float, float]:
    """Apply the Modality LUT then the VOI transform to a grayscale ``(H, W)`` frame.

    Returns ``(values, low, high)``: float64 ``(H, W)`` values and the display range, which is
    the VOI transform's full output range (all of the VOI LUT's entries, or the window's
    output limits); without a VOI transform, 0..255 for 8-bit pixels without a rescale (kept
    as they are, like a PNG's) and ``values``' own min..max otherwise.
    """
    values = apply_modality_lut(frame, ds)
    item = ds.VOILUTSequence[0] if ds.get("VOILUTSequence") else None
    if item is not None and "LUTDescriptor" in item and "LUTData" in item:
        count, first = int(item.LUTDescriptor[0]) or 2 ** 16, int(item.LUTDescriptor[1])
        # VOI LUT inputs are integers (pydicom's apply_voi truncates floats, with a warning);
        # clipping to the LUT's domain first gives the same lookup without uint16 overflow.
        values = np.clip(np.rint(values), first, first + count - 1).astype(np.int64)
        probe = np.arange(first, first + count, dtype=np.int64)
    elif ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        probe = np.array([-1e300, 1e300])  # far outside any window: its output limits
    else:
        values = values.astype(np.float64)
        if int(ds.get("BitsStored", 16)) <= 8 and "RescaleSlope" not in ds:
            return values, 0.0, 255.0  # 8-bit pixels are display values already, as a PNG's
        return values, float(values.min()), float(values.max())
    with np.errstate(over="ignore"):  # a SIGMOID window's exp() of the far probe
        values = apply_voi_lut(values, ds, index=0, prefer_lut=True).astype(np.float64)
        limits = apply_voi_lut(probe, ds, index=0, prefer_lut=True)
    return values, float(np.min(limits)), float(np.max(limits))


def _normalise(value: str) -> str:
    """Upper case, underscores and hyphens as spaces, whitespace collapsed."""
    return " ".join(re.sub(r"[_\-]+", " ", value).upper().split())


_SYNONYMS_BY_PART: dict[str, tuple[str, ...]] = {
    "ELBOW": ("ELBOWS", "ELBOW JOINT", "ELBOW JOINTS"),
    "FINGER": ("FINGERS", "THUMB", "THUMBS", "DIGIT", "DIGITS", "FINGER JOINT"),
    "FOREARM": ("FOREARMS", "FORE ARM", "FORE ARMS", "LOWER ARM", "LOWER ARMS", "LOWERARM",
                "RADIUS ULNA", "RADIUS AND ULNA"),
    "HAND": ("HANDS",),
    "HUMERUS": ("HUMERI", "ARM", "ARMS", "UPPER ARM", "UPPER ARMS", "UPPERARM"),
    "SHOULDER": ("SHOULDERS", "SHOULDER JOINT", "SHOULDER JOINTS", "GLENOHUMERAL JOINT"),
    "WRIST": ("WRISTS", "WRIST JOINT", "WRIST JOINTS", "CARPUS", "SCAPHOID"),
}

#: Normalised Body Part Examined value -> MURA body part: the 7 names, their plurals, common
#: synonyms, and the DICOM defined terms ARM (= upper arm -> HUMERUS), THUMB (-> FINGER).
#: Neighbouring regions that MURA has no class for (CLAVICLE, SCAPULA, ACJOINT, EXTREMITY,
#: UPPER LIMB) are deliberately absent: they map to None.
BODY_PART_SYNONYMS: dict[str, str] = {
    **{part: part for part in BODY_PARTS},
    **{alias: part for part, aliases in _SYNONYMS_BY_PART.items() for alias in aliases},
}

_LATERALITY = frozenset({"LEFT", "RIGHT", "LT", "RT", "L", "R", "BILATERAL", "BOTH"})


def body_part_from_dicom(value: str | None) -> str | None:
    """Map a Body Part Examined value to one of MURA's 7 body parts (``BODY_PARTS``).

    Matching ignores case, surrounding and repeated whitespace, treats underscores and hyphens
    as spaces and drops laterality words (LEFT, RIGHT, LT, RT, L, R, BILATERAL, BOTH), then
    looks the value up in :data:`BODY_PART_SYNONYMS`.

    Args:
        value: the raw value (e.g. ``DicomImage.body_part``), or None.

    Returns:
        e.g. ``"WRIST"`` for ``"wrist_joint"`` or ``"LEFT WRIST"``; None for None, an empty
        value or a body part MURA does not cover.
    """
    if value is None:
        return None
    words = [word for word in _normalise(str(value)).split() if word not in _LATERALITY]
    return BODY_PART_SYNONYMS.get(" ".join(words))
