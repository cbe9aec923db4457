"""Does the training input pipeline keep the model busy? Loader-fed training against the
model-only ceiling, for every model of the quick and full pretraining profiles.

For each model (at its profile's input size) it times ``--batches`` training steps (AdamW,
cross-entropy; on CUDA with AMP and channels_last, as ``backbones.train`` does):

  1. fed by the real loader: the decode-once cache (:func:`backbones.cache.build_cache`),
     :class:`backbones.data.CachedImages` with the training augmentations and ``--workers``
     DataLoader workers, batches moved to the device inside the timed loop;
  2. fed by ready tensors already on the device (the model-only ceiling).

The ratio (1) / (2) in images per second is the share of the ceiling the loader delivers;
target: at least 0.9. After ``--warmup`` untimed steps; one torch thread per worker. Prints
the table and writes ``runs/benchmarks/train_throughput.json``.

    python benchmarks/train_throughput.py [--profiles quick full] [--batches 4]
        [--batch-size 8] [--workers 1] [--device auto] [--data-root DIR]

Without ``--data-root`` a small synthetic MURA-format set is generated into a temporary
folder first.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from backbones.cache import build_cache  # noqa: E402
from backbones.data import CachedImages  # noqa: E402
from backbones.distributed import resolve_device  # noqa: E402
from backbones.registry import build_model  # noqa: E402
from backbones.transforms import train_transform  # noqa: E402
from experiments.common.provenance import machine_description  # noqa: E402
from experiments.pretrain_backbones.__main__ import PROFILES  # noqa: E402
from mura_env.data import load_mura  # noqa: E402
from mura_env.synthetic import generate  # noqa: E402

TARGET_RATIO = 0.9


def timed_steps(model: torch.nn.Module, batches: Any, device: torch.device, steps: int,
                warmup: int) -> float:
    """Images per second of ``steps`` training steps over ``batches`` (an iterable of
    ``(images, labels, ...)``), after ``warmup`` untimed ones."""
    amp = device.type == "cuda"
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    model.train()
    seen, start = 0, 0.0
    for i, (images, labels, *_) in enumerate(batches):
        if i == warmup:
            if amp:
                torch.cuda.synchronize()
            seen, start = 0, time.perf_counter()
        if i == warmup + steps:
            break
        images = images.to(device, non_blocking=True)
        if amp:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, enabled=amp):
            loss = torch.nn.functional.cross_entropy(model(images), labels.to(device))
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        seen += len(images)
    if amp:
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def measure(name: str, size: int, dataset: CachedImages, args: argparse.Namespace,
            device: torch.device) -> dict[str, Any]:
    """Loader-fed and ceiling images/s of one model at ``size``."""
    steps, warmup = args.batches, args.warmup
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True,
                        num_workers=args.workers, persistent_workers=args.workers > 0,
                        pin_memory=device.type == "cuda", drop_last=True)

    def cycle() -> Any:
        while True:
            yield from loader

    def build() -> torch.nn.Module:
        torch.manual_seed(0)
        model = build_model(name).to(device)
        return model.to(memory_format=torch.channels_last) if device.type == "cuda" else model

    fed = timed_steps(build(), cycle(), device, steps, warmup)
    images = torch.randn(args.batch_size, 1, size, size, device=device)
    labels = torch.randint(0, 2, (args.batch_size,), device=device)
    ceiling = timed_steps(build(), iter(lambda: (images, labels), None), device, steps, warmup)
    return {"model": name, "size": size, "loader_images_per_s": round(fed, 2),
            "ceiling_images_per_s": round(ceiling, 2), "ratio": round(fed / ceiling, 3)}


def main() -> int:
    """Run the comparison; returns 0 when every ratio meets the target, else 1."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", nargs="+", default=["quick", "full"])
    parser.add_argument("--batches", type=int, default=4, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-root", type=Path, default=None)
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - args.workers))
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data_root
        if root is None:
            root = Path(tmp) / "data"
            generate(root, scale=0.01, seed=0, workers=1, progress=False)
        data = load_mura(root, tune_fraction=0.2, seed=0)
        train = data.images[data.images["split"] == "train"]
        rows = []
        for profile in args.profiles:
            for name, (size, *_rest) in PROFILES[profile]["models"].items():
                cache = build_cache(list(train["path"]), size, Path(tmp) / "cache",
                                    data.fingerprint, threads=1, progress=False)
                dataset = CachedImages(cache, train, train_transform(size), seed=0)
                rows.append({"profile": profile, **measure(name, size, dataset, args, device)})
                print(rows[-1])
    result = {"device": str(device), "machine": machine_description(str(device)),
              "workers": args.workers, "batch_size": args.batch_size,
              "timed_steps": args.batches, "target_ratio": TARGET_RATIO, "models": rows}
    out = Path("runs/benchmarks/train_throughput.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'profile':8} {'model':20} {'px':>4} {'loader img/s':>13} {'ceiling img/s':>14} "
          f"{'ratio':>6}")
    for r in rows:
        print(f"{r['profile']:8} {r['model']:20} {r['size']:4d} {r['loader_images_per_s']:13.1f}"
              f" {r['ceiling_images_per_s']:14.1f} {r['ratio']:6.2f}")
    return 0 if all(r["ratio"] >= TARGET_RATIO for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
