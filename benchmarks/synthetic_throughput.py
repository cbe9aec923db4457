"""Throughput of the synthetic MURA-format generator (target: >= 100 images/s per core).

Measures, at full image size (long side up to 512):
  1. one core: drawing + PNG encoding + writing, images/s, in this process;
  2. the whole ``generate()`` (plan, workers, CSVs) with ``--workers`` processes.
Prints a comparison with the target and writes ``runs/benchmarks/synthetic_throughput.json``.

    python benchmarks/synthetic_throughput.py [--studies 400] [--scale 0.05] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from mura_env.synthetic import encode_png, generate, render_study
from mura_env.synthetic.plan import plan_dataset

TARGET_PER_CORE = 100.0


def one_core(n_studies: int, seed: int = 0) -> tuple[int, float]:
    """(images, seconds) to draw, encode and write ``n_studies`` studies in this process."""
    rows = plan_dataset(1.0, seed).sample(n_studies, random_state=seed).to_dict("records")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        n = 0
        for r in rows:
            _, images = render_study(r["body_part"], r["label"], r["n_images"], seed,
                                     r["study_index"])
            for i, img in enumerate(images):
                (Path(tmp) / f"{r['study_index']}_{i}.png").write_bytes(encode_png(img))
            n += len(images)
        return n, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=400)
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
    args = parser.parse_args()

    n1, t1 = one_core(args.studies)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        generate(tmp, scale=args.scale, seed=0, workers=args.workers, progress=False)
        t2 = time.perf_counter() - start
        n2 = int(plan_dataset(args.scale, 0)["n_images"].sum())
    result = {
        "one_core_images": n1, "one_core_seconds": round(t1, 3),
        "one_core_images_per_s": round(n1 / t1, 1),
        "generate_workers": args.workers, "generate_images": n2,
        "generate_seconds": round(t2, 3), "generate_images_per_s": round(n2 / t2, 1),
        "generate_images_per_s_per_worker": round(n2 / t2 / args.workers, 1),
        "target_images_per_s_per_core": TARGET_PER_CORE, "cpu_count": os.cpu_count(),
    }
    print(f"one core        : {result['one_core_images_per_s']:7.1f} images/s "
          f"({n1} images, {t1:.1f} s)  target >= {TARGET_PER_CORE:.0f}  "
          f"-> {result['one_core_images_per_s'] / TARGET_PER_CORE:.2f}x target")
    print(f"generate({args.workers} w) : {result['generate_images_per_s']:7.1f} images/s "
          f"({n2} images, {t2:.1f} s), {result['generate_images_per_s_per_worker']:.1f} per worker")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "synthetic_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out / 'synthetic_throughput.json'}")


if __name__ == "__main__":
    main()
