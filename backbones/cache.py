"""Decode-once image cache: every PNG decoded a single time into a uint8 memory map on disk.

The cache holds each image letterboxed to ``size x size`` (see
:func:`backbones.transforms.letterbox`), in the order of the paths given, keyed by the data set
fingerprint and the size, so later epochs, later models and later runs skip decoding. Files:
``<cache_dir>/<fingerprint[:16]>_<size>.u8`` (raw ``(N, size, size)`` uint8) and a JSON index
beside it. Both are written to temporary names and renamed when complete.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from backbones.transforms import letterbox

CACHE_VERSION = 1


class BadImageError(ValueError):
    """Raised when images cannot be decoded (the message lists their paths)."""


@dataclass
class ImageCache:
    """A built cache: ``images`` is a read-only ``(N, size, size)`` uint8 memmap whose row ``i``
    is ``paths[i]``; ``bad`` lists paths that could not be decoded (their rows are zero)."""

    images: np.ndarray
    paths: list[str]
    size: int
    bad: list[str]

    def index_of(self) -> dict[str, int]:
        """Map each path to its row."""
        return {p: i for i, p in enumerate(self.paths)}


def decode(path: str) -> np.ndarray | None:
    """Decode one image file to grayscale uint8 (H, W); None when it cannot be decoded."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    return image


def build_cache(paths: list[str], size: int, cache_dir: str | os.PathLike[str],
                fingerprint: str, skip_bad: bool = False, threads: int | None = None,
                progress: bool = True) -> ImageCache:
    """Decode ``paths`` once into a memmap (or reuse the one already built for them).

    Args:
        paths: image files, in the order rows should have.
        size: letterbox size in pixels.
        cache_dir: folder of the cache files.
        fingerprint: the data set's fingerprint (``MuraData.fingerprint``).
        skip_bad: False: an undecodable image raises :class:`BadImageError` naming it, before
            anything is written. True: it is recorded in ``bad`` and its row left black.
        threads: decoding threads (OpenCV releases the GIL).
        progress: show a tqdm bar.
    """
    if not paths:
        raise ValueError("build_cache needs at least one image path")
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{fingerprint[:16]}_{size}"
    data_path, index_path = cache_dir / f"{stem}.u8", cache_dir / f"{stem}.json"
    if data_path.is_file() and index_path.is_file():
        index = json.loads(index_path.read_text())
        if (index.get("version") == CACHE_VERSION and index["paths"] == list(paths)
                and index["size"] == size and (skip_bad or not index["bad"])):
            images = np.memmap(data_path, dtype=np.uint8, mode="r",
                               shape=(len(paths), size, size))
            return ImageCache(images, list(paths), size, index["bad"])
    tmp_data = data_path.with_name(f".{data_path.name}.{os.getpid()}.tmp")
    images = np.memmap(tmp_data, dtype=np.uint8, mode="w+", shape=(len(paths), size, size))
    bad: list[str] = []

    def work(i: int) -> None:
        image = decode(paths[i])
        if image is None:
            bad.append(paths[i])
            return
        images[i] = letterbox(image, size)

    try:
        with ThreadPoolExecutor(max_workers=threads or min(8, os.cpu_count() or 1)) as pool:
            list(tqdm(pool.map(work, range(len(paths))), total=len(paths), unit="img",
                      desc=f"decode cache {size}px", disable=not progress))
        if bad and not skip_bad:
            bad.sort()
            raise BadImageError(
                f"{len(bad)} image(s) could not be decoded (unreadable or corrupt), e.g. "
                f"{bad[:5]}. Fix or remove them, or pass --skip-bad-images to exclude them "
                "(they are counted in the report).")
        images.flush()
        del images
        os.replace(tmp_data, data_path)
        tmp_index = index_path.with_name(f".{index_path.name}.{os.getpid()}.tmp")
        tmp_index.write_text(json.dumps({"version": CACHE_VERSION, "size": size,
                                         "fingerprint": fingerprint, "paths": list(paths),
                                         "bad": sorted(bad)}))
        os.replace(tmp_index, index_path)
    finally:
        if tmp_data.exists():
            tmp_data.unlink()
    images = np.memmap(data_path, dtype=np.uint8, mode="r", shape=(len(paths), size, size))
    return ImageCache(images, list(paths), size, sorted(bad))
