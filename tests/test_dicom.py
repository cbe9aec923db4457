"""DICOM reading: synthetic radiographs written with pydicom, and pydicom's bundled test files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_fixtures import write_dicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.pixels.decoders import pylibjpeg as pylibjpeg_plugin
from pydicom.pixels.decoders.base import get_decoder

from backbones.dicom import (
    BODY_PART_SYNONYMS,
    DicomError,
    DicomImage,
    body_part_from_dicom,
    is_dicom,
    read_dicom,
    scale_to_uint8,
)
from mura_env.constants import BODY_PARTS

H, W = 64, 48
BONE = (slice(20, 44), slice(16, 32))  # the bright rectangle


def _radiograph(high: int = 3000) -> np.ndarray:
    """A (64, 48) uint16 gradient 0..high/2 with a bright "bone" rectangle at ``high``."""
    image = np.tile(np.linspace(0, high // 2, W), (H, 1)).astype(np.uint16)
    image[BONE] = high
    return image


_write = write_dicom


def _bundled(name: str) -> str:
    """Path of a pydicom test file that ships inside the installed wheel (never downloaded)."""
    path = Path(pydicom.__file__).parent / "data" / "test_files" / name
    assert path.is_file(), f"{name} is not bundled with pydicom"
    return str(get_testdata_file(name))


def _expected(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Hand scaling of ``low..high`` to 0..255 (float, unrounded)."""
    return np.clip((values.astype(np.float64) - low) / (high - low) * 255.0, 0, 255)


def test_monochrome2_rescale_matches_hand_scaling(tmp_path: Path) -> None:
    raw = _radiograph()
    path = _write(tmp_path / "m2.dcm", raw, RescaleSlope=2, RescaleIntercept=-1024,
                  BodyPartExamined=" WRIST ")
    image = read_dicom(path)
    assert isinstance(image, DicomImage)
    assert image.pixels.dtype == np.uint8 and image.pixels.shape == (H, W)
    assert image.photometric == "MONOCHROME2" and image.path == str(path)
    assert image.body_part == "WRIST" and body_part_from_dicom(image.body_part) == "WRIST"
    hu = raw * 2.0 - 1024
    expected = _expected(hu, hu.min(), hu.max())
    assert np.abs(image.pixels.astype(float) - expected).max() <= 1
    assert image.pixels[BONE].min() == 255 and image.pixels[:, 0].max() == 0
    assert image.pixels[BONE].mean() > image.pixels.mean() + 50


def test_monochrome1_is_inverted(tmp_path: Path) -> None:
    raw = _radiograph()
    m2 = read_dicom(_write(tmp_path / "m2.dcm", raw, RescaleSlope=2, RescaleIntercept=-1024))
    m1 = read_dicom(_write(tmp_path / "m1.dcm", raw, "MONOCHROME1", RescaleSlope=2,
                           RescaleIntercept=-1024))
    assert m1.photometric == "MONOCHROME1"
    assert np.abs(m1.pixels.astype(int) - (255 - m2.pixels.astype(int))).max() <= 1
    assert m1.pixels[BONE].max() == 0  # the high stored values are dark in MONOCHROME1


def test_8bit_pixels_are_kept_as_they_are_like_a_png(tmp_path: Path) -> None:
    raw = np.tile(np.linspace(20, 220, W), (H, 1)).astype(np.uint8)
    image = read_dicom(_write(tmp_path / "u8.dcm", raw))
    np.testing.assert_array_equal(image.pixels, raw)
    assert image.body_part is None


def test_constant_image_gives_zeros(tmp_path: Path) -> None:
    image = read_dicom(_write(tmp_path / "flat.dcm", np.full((8, 8), 700, np.uint16)))
    assert image.pixels.shape == (8, 8) and not image.pixels.any()
    assert not scale_to_uint8(np.ones(3), 5.0, 5.0).any()


def test_window_clips_outside_values(tmp_path: Path) -> None:
    raw = _radiograph()  # gradient 0..1500, bone 3000
    image = read_dicom(_write(tmp_path / "win.dcm", raw, WindowCenter=1000, WindowWidth=400))
    assert image.pixels[BONE].min() == 255  # above the window
    assert (image.pixels[:, :10] == 0).all()  # gradient start, below the window
    # DICOM LINEAR window: ((x - (c - 0.5)) / (w - 1) + 0.5), clipped to 0..1
    expected = np.clip((raw - 999.5) / 399 + 0.5, 0, 1) * 255
    assert np.abs(image.pixels - expected).max() <= 1
    assert 0 < image.pixels[0, 30] < 255  # a value inside the window stays grey


def test_voi_lut_sequence_is_applied(tmp_path: Path) -> None:
    raw = np.array([[50, 100, 101], [102, 103, 500]], dtype=np.uint16)
    item = Dataset()
    item.LUTDescriptor = [4, 100, 8]
    item.add_new(0x00283006, "US", [0, 10, 200, 255])  # LUT Data
    path = _write(tmp_path / "voi.dcm", raw, VOILUTSequence=[item],
                  WindowCenter=2000, WindowWidth=10)  # the LUT wins over the window
    image = read_dicom(path)
    # below the LUT -> first entry, above -> last entry; the LUT's 0..255 range maps to 0..255
    assert image.pixels.tolist() == [[0, 0, 10], [200, 255, 255]]


def test_multi_frame_gives_first_frame(tmp_path: Path) -> None:
    first = _radiograph()
    frames = np.stack([first, np.zeros_like(first), np.full_like(first, 4000)])
    multi = read_dicom(_write(tmp_path / "multi.dcm", frames))
    single = read_dicom(_write(tmp_path / "single.dcm", first))
    assert multi.pixels.shape == (H, W)
    np.testing.assert_array_equal(multi.pixels, single.pixels)


def test_rgb_becomes_luma_with_warning(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    path = _write(tmp_path / "colour.dcm", rgb, "RGB", 8)
    with pytest.warns(UserWarning, match="colour.dcm.*grayscale"):
        image = read_dicom(path)
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    assert image.pixels.shape == (H, W) and image.photometric == "RGB"
    assert np.abs(image.pixels - luma).max() <= 1  # 8-bit colour keeps its 0..255 range


def test_no_pixel_data(tmp_path: Path) -> None:
    path = _write(tmp_path / "nopix.dcm", None)
    with pytest.raises(DicomError, match="nopix.dcm has no pixel data"):
        read_dicom(path)


def test_text_file_named_dcm(tmp_path: Path) -> None:
    path = tmp_path / "x.dcm"
    path.write_text("patient,label\n1,abnormal\n" * 20)
    with pytest.raises(DicomError, match=r"x\.dcm is not a DICOM file.*DICM"):
        read_dicom(path)
    assert not is_dicom(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="gone.dcm"):
        read_dicom(tmp_path / "gone.dcm")
    assert not is_dicom(tmp_path / "gone.dcm") and not is_dicom(tmp_path)


def test_is_dicom(tmp_path: Path) -> None:
    written = _write(tmp_path / "no_suffix", _radiograph())
    assert is_dicom(written) and is_dicom(str(written))
    assert is_dicom(_bundled("CT_small.dcm"))
    assert not is_dicom(_bundled("no_meta.dcm"))  # no preamble: read_dicom rejects it too
    with pytest.raises(DicomError, match="no_meta.dcm"):
        read_dicom(_bundled("no_meta.dcm"))


@pytest.mark.parametrize(("value", "part"), [
    ("WRIST", "WRIST"), ("wrist", "WRIST"), ("  Wrist Joint ", "WRIST"), ("WRISTS", "WRIST"),
    ("wrist_joint", "WRIST"), ("LEFT WRIST", "WRIST"), ("SCAPHOID", "WRIST"),
    ("ARM", "HUMERUS"), ("upper arm", "HUMERUS"), ("Upper-Arm", "HUMERUS"),
    ("HUMERUS", "HUMERUS"), ("LOWER ARM", "FOREARM"), ("FOREARM", "FOREARM"),
    ("FORE_ARM", "FOREARM"), ("RADIUS-ULNA", "FOREARM"), ("THUMB", "FINGER"),
    ("FINGERS", "FINGER"), ("digit", "FINGER"), ("HAND", "HAND"), ("RT HAND", "HAND"),
    ("ELBOW", "ELBOW"), ("ELBOW  JOINT", "ELBOW"), ("SHOULDER", "SHOULDER"),
    ("SHOULDER_JOINT", "SHOULDER"),
])
def test_body_part_synonyms(value: str, part: str) -> None:
    assert body_part_from_dicom(value) == part


@pytest.mark.parametrize("value", [
    None, "", "   ", "KNEE", "CHEST", "CLAVICLE", "SCAPULA", "ACJOINT", "EXTREMITY", "LEFT",
    "HAND WRIST",
])
def test_body_part_unknown(value: str | None) -> None:
    assert body_part_from_dicom(value) is None


def test_synonym_table_targets_mura_parts() -> None:
    assert set(BODY_PART_SYNONYMS.values()) == set(BODY_PARTS)
    assert all(BODY_PART_SYNONYMS[part] == part for part in BODY_PARTS)
    assert all(key == " ".join(key.upper().split()) for key in BODY_PART_SYNONYMS)


def test_bundled_ct_small() -> None:
    image = read_dicom(_bundled("CT_small.dcm"))
    assert image.pixels.dtype == np.uint8 and image.pixels.shape == (128, 128)
    assert len(np.unique(image.pixels)) > 50 and image.pixels.max() > 200


def test_bundled_rle_matches_uncompressed() -> None:
    rle = read_dicom(_bundled("MR_small_RLE.dcm"))
    plain = read_dicom(_bundled("MR_small.dcm"))
    assert rle.pixels.shape == (64, 64) and len(np.unique(plain.pixels)) > 50
    np.testing.assert_array_equal(rle.pixels, plain.pixels)


def test_bundled_jpeg_extended_12bit() -> None:
    # JPEG Extended 12-bit: Pillow cannot decode it, pylibjpeg-libjpeg can.
    path = _bundled("JPGExtended.dcm")
    if "pylibjpeg" not in get_decoder(pydicom.dcmread(path).file_meta.TransferSyntaxUID) \
            .available_plugins:
        with pytest.raises(DicomError, match="pip install pylibjpeg pylibjpeg-libjpeg"):
            read_dicom(path)
        return
    image = read_dicom(path)
    assert image.pixels.shape == (1024, 256) and len(np.unique(image.pixels)) > 50
    assert image.body_part == "WHOLE BODY" and body_part_from_dicom(image.body_part) is None


def test_missing_decoder_names_package(monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulate a venv without pylibjpeg: JPEG-LS then has no decoder at all.
    path = _bundled("JPEGLSNearLossless_16.dcm")
    syntax = pydicom.dcmread(path).file_meta.TransferSyntaxUID
    decoder = get_decoder(syntax)
    monkeypatch.setattr(decoder, "_available", {})
    monkeypatch.setitem(decoder._unavailable, "pylibjpeg",
                        pylibjpeg_plugin.DECODER_DEPENDENCIES[syntax])
    with pytest.raises(DicomError) as info:
        read_dicom(path)
    message = str(info.value)
    assert "JPEGLSNearLossless_16.dcm" in message and "JPEG-LS" in message
    assert "pip install pylibjpeg pylibjpeg-libjpeg" in message
    assert "pylibjpeg-libjpeg" in message.split("pydicom:")[1]  # pydicom's own list


@pytest.mark.filterwarnings("ignore:Expected explicit VR")  # a quirk of that bundled file
def test_bundled_colour_jpeg_and_multiframe_ybr() -> None:
    with pytest.warns(UserWarning, match="SC_rgb_jpeg.dcm"):
        rgb = read_dicom(_bundled("SC_rgb_jpeg.dcm"))
    assert rgb.pixels.shape == (256, 256) and rgb.photometric == "RGB"
    with pytest.warns(UserWarning, match="YBR_FULL_422"):
        ybr = read_dicom(_bundled("examples_ybr_color.dcm"))  # 30 frames: the first one
    assert ybr.pixels.shape == (240, 320) and ybr.pixels.std() > 5


def test_bundled_palette_colour() -> None:
    with pytest.warns(UserWarning, match="PALETTE COLOR"):
        image = read_dicom(_bundled("examples_palette.dcm"))
    assert image.pixels.shape == (350, 800) and len(np.unique(image.pixels)) > 10


@pytest.mark.parametrize(("name", "match"), [
    ("reportsi.dcm", "has no pixel data"),  # a structured report
    ("MR_truncated.dcm", "could not be decoded"),
    ("JPEG-lossy.dcm", "could not be decoded"),  # known-bad JPEG stream
])
def test_bundled_unusable_files(name: str, match: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DicomError, match=match) as info:
            read_dicom(_bundled(name))
    assert name in str(info.value)
