"""Writing small DICOM files for the tests (Explicit VR Little Endian, with pydicom)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid


def write_dicom(path: Path, pixels: np.ndarray | None, photometric: str = "MONOCHROME2",
                bits_stored: int | None = None, **attrs: object) -> Path:
    """Write ``pixels`` (uint8 or uint16 ``(H, W)``, or None for no pixel data) as a DX
    DICOM file at ``path`` with the extra data elements ``attrs``; returns ``path``."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "DX"
    if pixels is not None:
        bits = bits_stored or (8 if pixels.dtype == np.uint8 else 12)
        ds.set_pixel_data(pixels, photometric, bits)
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return path
