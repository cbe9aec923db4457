"""Prediction speed of ``experiments.predict``: 100 studies after the models are loaded.

Target: at most 30 s for 100 studies on 2 CPU cores. The studies are the first ``--studies``
valid study folders of the run's data set, read from disk (decoding included) and predicted
one by one as ``experiments.predict`` does, with uniform weights. Model loading is timed
separately and not counted.

    python benchmarks/predict_throughput.py [--run runs/pretrain/<run>] [--studies 100]

Prints the comparison and writes ``runs/benchmarks/predict_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from backbones.run_members import load_members  # noqa: E402
from backbones.runs import default_run, load_run_dataset, load_run_table  # noqa: E402
from experiments.common.provenance import machine_description  # noqa: E402
from experiments.predict.__main__ import predict_study  # noqa: E402
from experiments.predict.inputs import collect_studies  # noqa: E402

TARGET_SECONDS = 30.0


def main() -> int:
    """Time the predictions; returns 0 when the target holds, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=None, help="pretraining run folder")
    parser.add_argument("--studies", type=int, default=100, help="studies to predict")
    args = parser.parse_args()
    run = args.run or default_run()
    table = load_run_table(run)
    data = load_run_dataset(run, table, None)
    valid = data.images[data.images["split"] == "valid"]
    folders = list(dict.fromkeys(Path(p).parent for p in valid["path"]))[:args.studies]
    start = time.perf_counter()
    members = load_members(run, table, tuple(table.model_names), torch.device("cpu"))
    load_seconds = time.perf_counter() - start
    start = time.perf_counter()
    studies = collect_studies(folders)
    rows = [predict_study(study, members, None)["row"] for study in studies]
    seconds = time.perf_counter() - start
    result = {"run": str(run), "studies": len(rows),
              "images": int(sum(r["n_images"] for r in rows)), "seconds": round(seconds, 2),
              "model_load_seconds": round(load_seconds, 2), "target_seconds": TARGET_SECONDS,
              "torch_threads": torch.get_num_threads(),
              "machine": machine_description("cpu"), "load_average": os.getloadavg()[0]}
    out = Path("runs/benchmarks/predict_throughput.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{len(rows)} studies ({result['images']} images) predicted in {seconds:.1f} s after "
          f"{load_seconds:.1f} s of model loading; target {TARGET_SECONDS:.0f} s for 100 "
          f"studies: {'met' if seconds <= TARGET_SECONDS * len(rows) / 100 else 'MISSED'}")
    return 0 if seconds <= TARGET_SECONDS * len(rows) / 100 else 1


if __name__ == "__main__":
    sys.exit(main())
