"""Training-input throughput: decode-once cache + albumentations against decoding PNGs with
torchvision-on-PIL every time (target: >= 3x images/s).

On the same images, with the same DataLoader worker count and batch size, it times one full
pass (after a warm-up of two batches; workers are persistent, so their start-up is not timed)
of:

  1. this project's pipeline: :func:`backbones.cache.build_cache` (each PNG decoded once,
     letterboxed to 160 px into a uint8 memmap) read by :class:`backbones.data.CachedImages`
     with :func:`backbones.transforms.train_transform` at 160 px;
  2. the baseline pipeline: PIL decode on every access; every item opens the PNG with PIL
     (grayscale) and applies ``Resize(160)``, ``RandomResizedCrop(160, scale=(0.8, 1.0))``,
     flips, ``RandomRotation(20)``, ``RandomAffine``, one of
     ColorJitter/GaussianBlur/RandomEqualize, ``ToTensor``, ``Normalize`` and
     ``RandomErasing``.

The cache build (a one-off, reused by every later epoch, model and run) is timed and printed
separately; it is not part of the steady-state rate. Torch and OpenCV use one thread per
process (the machine may be shared); each figure is the best of ``--repeats`` interleaved
passes. Prints the comparison and writes ``runs/benchmarks/loader_throughput.json``.

    python benchmarks/loader_throughput.py [--data-root DIR] [--workers 0 2] [--limit N]
        [--batch-size 32] [--repeats 1]

Without ``--data-root`` a synthetic MURA-format set (``--scale 0.03``) is generated into a
temporary folder first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import pandas as pd
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from backbones.cache import build_cache
from backbones.data import CachedImages
from backbones.transforms import train_transform
from mura_env.data import load_mura
from mura_env.synthetic import generate

TARGET_RATIO = 3.0
SIZE = 160


def original_transform(size: int = SIZE) -> T.Compose:
    """The baseline pipeline's torchvision augmentation of a PIL grayscale image."""
    return T.Compose([
        T.Resize(size),
        T.RandomResizedCrop(size, scale=(0.8, 1.0)),
        T.RandomHorizontalFlip(),
        T.RandomVerticalFlip(p=0.3),
        T.RandomRotation(20),
        T.RandomAffine(20, translate=(0.1, 0.1), scale=(0.85, 1.15), shear=10),
        T.RandomChoice([T.ColorJitter(brightness=0.2, contrast=0.2), T.GaussianBlur(3),
                        T.RandomEqualize()]),
        T.ToTensor(),
        T.Normalize(mean=[0.5], std=[0.5]),
        T.RandomErasing(p=0.2),
    ])


class PILImages(Dataset):
    """The baseline pipeline's dataset: decodes the PNG with PIL on every access.

    Item ``i`` is ``(image, label)``: float tensor ``(1, size, size)`` and int label.
    """

    def __init__(self, images: pd.DataFrame, transform: T.Compose):
        self.paths = images["path"].tolist()
        self.labels = images["label"].astype(int).tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.paths[i]) as im:
            image = im.convert("L")
        return self.transform(image), self.labels[i]


def _one_thread_per_worker(_: int) -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def make_loader(dataset: Dataset, workers: int, batch_size: int) -> DataLoader:
    """A training-style DataLoader (no shuffling, so both pipelines see the same order)."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                      persistent_workers=workers > 0,
                      worker_init_fn=_one_thread_per_worker if workers > 0 else None)


def timed_pass(loader: DataLoader, warmup_batches: int = 2) -> float:
    """Images per second over one full pass of ``loader``, after ``warmup_batches`` batches
    of a first, discarded pass (which also starts persistent workers)."""
    for i, _ in enumerate(loader):
        if i + 1 >= warmup_batches:
            break
    n, start = 0, time.perf_counter()
    for batch in loader:
        n += len(batch[0])
    return n / (time.perf_counter() - start)


def run(images: pd.DataFrame, fingerprint: str, workers_list: list[int], batch_size: int,
        repeats: int, cache_dir: Path) -> dict[str, Any]:
    """Build the cache, then time both pipelines for every worker count; returns the report."""
    paths = images["path"].tolist()
    start = time.perf_counter()
    cache = build_cache(paths, SIZE, cache_dir, fingerprint, threads=1, progress=False)
    cache_seconds = time.perf_counter() - start
    ours_set = CachedImages(cache, images, train_transform(SIZE), seed=0)
    theirs_set = PILImages(images, original_transform(SIZE))
    assert ours_set[0][0].shape == theirs_set[0][0].shape == (1, SIZE, SIZE)

    results = []
    for workers in workers_list:
        ours_loader = make_loader(ours_set, workers, batch_size)
        theirs_loader = make_loader(theirs_set, workers, batch_size)
        ours, theirs = 0.0, 0.0
        for _ in range(repeats):  # interleaved: a busy machine slows both alike
            theirs = max(theirs, timed_pass(theirs_loader))
            ours = max(ours, timed_pass(ours_loader))
        del ours_loader, theirs_loader  # stop persistent workers
        results.append({"workers": workers, "ours_images_per_s": round(ours, 1),
                        "original_images_per_s": round(theirs, 1),
                        "ratio": round(ours / theirs, 2),
                        "meets_target": ours / theirs >= TARGET_RATIO})
    return {"images": len(paths), "size": SIZE, "batch_size": batch_size, "repeats": repeats,
            "cache_build_seconds": round(cache_seconds, 3),
            "cache_build_images_per_s": round(len(paths) / cache_seconds, 1),
            "target_ratio": TARGET_RATIO, "results": results}


def main() -> None:
    """Parse flags, prepare the data, run the comparison, print it and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=None,
                        help="folder holding MURA-v1.1/ (default: generate a synthetic one)")
    parser.add_argument("--scale", type=float, default=0.03,
                        help="scale of the generated synthetic set (without --data-root)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2],
                        help="DataLoader worker counts to compare at")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1, help="passes per pipeline (best)")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)

    with tempfile.TemporaryDirectory() as tmp:
        synthetic = args.data_root is None
        if synthetic:
            start = time.perf_counter()
            root = generate(Path(tmp) / "data", scale=args.scale, seed=0, workers=1,
                            progress=False)
            print(f"generated a synthetic set (scale {args.scale}) in "
                  f"{time.perf_counter() - start:.1f} s")
        else:
            root = args.data_root
        data = load_mura(root)
        images = data.images if args.limit is None else data.images.head(args.limit)
        report = run(images, data.fingerprint, args.workers, args.batch_size, args.repeats,
                     Path(tmp) / "cache")

    report.update({"data_root": None if synthetic else str(args.data_root),
                   "synthetic": synthetic, "cpu_count": os.cpu_count(),
                   "torch": torch.__version__, "torchvision": torchvision.__version__,
                   "python": platform.python_version()})
    print(f"{report['images']} images, {SIZE} px, batch {args.batch_size}; cache build "
          f"(decode once, 1 thread): {report['cache_build_seconds']:.2f} s "
          f"({report['cache_build_images_per_s']:.0f} images/s), not in the rates below")
    for r in report["results"]:
        print(f"workers={r['workers']}: cache+albumentations {r['ours_images_per_s']:8.1f} "
              f"images/s | PIL+torchvision {r['original_images_per_s']:8.1f} images/s | "
              f"{r['ratio']:.2f}x (target >= {TARGET_RATIO:.0f}x: "
              f"{'met' if r['meets_target'] else 'NOT met'})")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "loader_throughput.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
