"""Pretrain a diverse CNN ensemble and write study-level logits (the first half of the main job).

With no arguments: generates the synthetic MURA-format data set if missing, trains the quick
profile's ensemble (different architectures and input resolutions) and writes
``runs/pretrain/<run>/``:

* ``config.json``: the resolved configuration;
* ``<model>/checkpoint.pth``, ``<model>/best.pth`` (chosen on the tune split's study-level
  kappa), ``<model>/tb/`` (TensorBoard);
* ``logits.parquet`` + manifest: study-level logits of every member for train, tune, valid;
* ``metrics.csv``: each model's study-level accuracy and kappa, overall and per body part,
  on tune and valid;
* ``diversity.json``: disagreement, oracle and uniform-average accuracy on valid.

``--data-root`` points at a real MURA-v1.1; ``--profile full`` selects paper-like settings for a
GPU. ``--resume`` continues an interrupted run folder. ``--export-default`` also installs the
run's logits as the package's built-in default table.

Synthetic data: results on it say nothing about clinical performance.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from backbones.cache import build_cache
from backbones.data import CachedImages
from backbones.ensemble_report import diversity_report
from backbones.infer import aggregate_studies, predict_logits
from backbones.registry import build_model, get_spec
from backbones.train import CHECKPOINT, TrainConfig, load_checkpoint, resolve_device
from backbones.train import main as train_backbone
from backbones.transforms import eval_transform
from mura_env.common.atomic import atomic_write_bytes, file_sha256
from mura_env.common.config_cli import parse_config, save_config
from mura_env.data import MuraData, load_mura
from mura_env.logits import DEFAULT_LOGITS_PATH, LogitsTable
from mura_env.metrics import study_metrics
from mura_env.synthetic import generate

#: Profiles: models with their (input size, epochs), batch size, learning rate, synthetic scale.
#: The quick profile fits pretraining, logits included, in about 8 minutes on 2 CPU cores.
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"models": {"attention_resnet": (96, 13), "resnet18": (64, 10),
                         "mobilenet_v3_small": (96, 14)},
              "batch_size": 64, "lr": 4e-3, "scale": 0.1},
    "full": {"models": {"densenet169": (320, 30), "resnet50": (320, 30),
                        "efficientnet_b0": (320, 30), "attention_resnet": (256, 30)},
             "batch_size": 64, "lr": 1e-3, "scale": 1.0},
}


@dataclass
class PretrainConfig:
    """Pretrain backbones on MURA-v1.1 (or the synthetic stand-in) and write their logits."""

    data_root: Path | None = field(default=None, metadata={
        "help": "folder holding a real MURA-v1.1/ (default: the synthetic data set)"})
    synthetic_dir: Path = field(default=Path("data/synthetic"),
                                metadata={"help": "where the synthetic data set lives"})
    scale: float | None = field(default=None,
                                metadata={"help": "synthetic data size (default: profile's)"})
    out: Path | None = field(default=None,
                             metadata={"help": "run folder (default runs/pretrain/<time>)"})
    profile: str = field(default="quick", metadata={"help": "settings preset",
                                                    "choices": sorted(PROFILES)})
    models: tuple[str, ...] | None = field(default=None,
                                           metadata={"help": "registry names (default: profile)"})
    image_size: tuple[int, ...] | None = field(default=None, metadata={
        "help": "input size, one for all models or one per model (default: profile's)"})
    epochs: tuple[int, ...] | None = field(default=None, metadata={
        "help": "epochs, one for all models or one per model (default: profile's)"})
    batch_size: int | None = field(default=None, metadata={"help": "batch size"})
    lr: float | None = field(default=None, metadata={"help": "OneCycleLR max learning rate"})
    seed: int = field(default=0, metadata={"help": "seed of data, split and training"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N"})
    workers: int = field(default=0, metadata={"help": "DataLoader workers"})
    cache_dir: Path = field(default=Path("data/cache"), metadata={"help": "image decode cache"})
    tune_fraction: float = field(default=0.2, metadata={"help": "train patients moved to tune"})
    skip_bad_images: bool = field(default=False,
                                  metadata={"help": "exclude undecodable images, counted"})
    resume: bool = field(default=False, metadata={"help": "continue the run folder --out"})
    export_default: bool = field(default=False, metadata={
        "help": "also install the logits as mura_env's built-in default table"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})


def resolve_profile(cfg: PretrainConfig) -> PretrainConfig:
    """Fill every None of ``cfg`` from its profile; check the model names and sizes."""
    prof = PROFILES[cfg.profile]
    models = tuple(cfg.models or prof["models"])
    for m in models:
        get_spec(m)  # unknown names list the valid ones
    def per_model(given: tuple[int, ...] | None, flag: str, default: list[int]) -> tuple:
        """One value per model: ``given`` (one for all, or one each) or ``default``."""
        values = tuple(given or default)
        if len(values) == 1:
            values = values * len(models)
        if len(values) != len(models):
            raise ValueError(f"{flag} takes one value or one per model ({len(models)}), "
                             f"got {len(values)}")
        return values

    known = prof["models"]
    sizes = per_model(cfg.image_size, "--image-size",
                      [known[m][0] if m in known else get_spec(m).default_size for m in models])
    epochs = per_model(cfg.epochs, "--epochs", [known[m][1] if m in known else
                                                max(e for _, e in known.values()) for m in models])
    out = cfg.out or Path("runs/pretrain") / time.strftime("%Y%m%d-%H%M%S")
    return replace(cfg, models=models, image_size=tuple(sizes), out=out,
                   epochs=epochs, batch_size=cfg.batch_size or
                   prof["batch_size"], lr=cfg.lr or prof["lr"], scale=cfg.scale or prof["scale"])


def train_config(cfg: PretrainConfig, data_root: Path, model: str, size: int,
                 epochs: int) -> TrainConfig:
    """The training settings of one member of the resolved run ``cfg``: ``model`` at input
    ``size`` for ``epochs`` on ``data_root``, written to ``<cfg.out>/<model>/`` (continuing
    its ``checkpoint.pth`` under ``--resume`` when there is one)."""
    assert cfg.out is not None and cfg.batch_size is not None and cfg.lr is not None
    run_dir = cfg.out / model
    last = run_dir / CHECKPOINT
    return TrainConfig(
        data_root=str(data_root), model=model, image_size=size, batch_size=cfg.batch_size,
        epochs=epochs, lr=cfg.lr, seed=cfg.seed, split_seed=cfg.seed, device=cfg.device,
        workers=cfg.workers, output_dir=str(run_dir), tune_fraction=cfg.tune_fraction,
        cache_dir=str(cfg.cache_dir), skip_bad_images=cfg.skip_bad_images,
        progress=cfg.progress, resume=str(last) if cfg.resume and last.is_file() else None)


def study_logits(data: MuraData, model_name: str, size: int, checkpoint: Path,
                 cfg: PretrainConfig, device: torch.device) -> tuple[np.ndarray, list[str]]:
    """Study-level logits ``(S, 2)`` of one trained model for every study of ``data`` (all
    splits, in ``data.studies`` order), and the paths of undecodable images skipped."""
    ckpt = load_checkpoint(checkpoint)
    model = build_model(model_name)
    model.load_state_dict(ckpt["model"])
    model.to(device)
    cache = build_cache(data.images["path"].tolist(), size, cfg.cache_dir, data.fingerprint,
                        skip_bad=cfg.skip_bad_images, progress=False)
    images = data.images[~data.images["path"].isin(set(cache.bad))]
    loader = DataLoader(CachedImages(cache, images, eval_transform(size)),
                        batch_size=2 * (cfg.batch_size or 64), num_workers=cfg.workers)
    logits = predict_logits(model, loader, device, amp=device.type == "cuda")
    return aggregate_studies(logits, images["study_id"].to_numpy(),
                             data.studies["study_id"].to_numpy()), cache.bad


@dataclass
class Member:
    """One trained ensemble member: its registry ``name``, study-level ``logits`` ``(S, 2)``
    float32 (every study, in ``data.studies`` order), its entry of the logits table's
    ``model_configs``, the seconds its training and logits took and the undecodable images
    its cache skipped."""

    name: str
    logits: np.ndarray
    config: dict[str, Any]
    seconds: float
    bad_images: list[str]


def start_run_folder(cfg: PretrainConfig) -> None:
    """Create the run folder ``cfg.out`` and write the resolved ``config.json`` into it;
    under ``--resume`` the folder must already hold one (else :class:`FileNotFoundError`)."""
    assert cfg.out is not None
    if cfg.resume and not (cfg.out / "config.json").is_file():
        raise FileNotFoundError(f"--resume needs an existing run folder --out; {cfg.out} has "
                                "no config.json")
    cfg.out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, cfg.out / "config.json")


def prepare_data(cfg: PretrainConfig) -> tuple[Path, MuraData]:
    """The data root (``--data-root``, or the synthetic set, generated when missing) and the
    data set read from it with the run's train/tune split."""
    if cfg.data_root is None:
        generate(cfg.synthetic_dir, scale=cfg.scale or 0.1, seed=cfg.seed,
                 progress=cfg.progress)
        data_root = cfg.synthetic_dir
    else:
        data_root = cfg.data_root
    return data_root, load_mura(data_root, tune_fraction=cfg.tune_fraction, seed=cfg.seed)


def train_member(cfg: PretrainConfig, data_root: Path, data: MuraData, model: str, size: int,
                 epochs: int, device: torch.device) -> Member:
    """Train ``model`` (see :func:`train_config`), then compute the study-level logits of its
    best checkpoint on ``device``; prints a one-line summary."""
    start = time.perf_counter()
    result = train_backbone(train_config(cfg, data_root, model, size, epochs))
    best = Path(result["best_checkpoint"])
    logits, bad = study_logits(data, model, size, best, cfg, device)
    config = {"name": model, "image_size": size, "epochs": epochs,
              "batch_size": cfg.batch_size, "lr": cfg.lr, "seed": cfg.seed,
              "best_epoch": result["best_epoch"], "best_tune_kappa": result["best_tune_kappa"],
              "checkpoint": str(best), "checkpoint_sha256": file_sha256(best)}
    seconds = time.perf_counter() - start
    print(f"{model} ({size}px): best tune kappa {result['best_tune_kappa']:.3f} at epoch "
          f"{result['best_epoch'] + 1}, {seconds:.0f} s")
    return Member(name=model, logits=logits, config=config, seconds=seconds, bad_images=bad)


def metrics_table(data: MuraData, probabilities: np.ndarray,
                  members: list[str]) -> pd.DataFrame:
    """Each member's study-level metrics on tune and valid, overall and per body part.

    ``probabilities`` is ``(S, K)``: member ``k``'s abnormality probability of every study of
    ``data.studies``. Returns the rows of :func:`mura_env.metrics.study_metrics` with the
    columns ``model`` and ``split`` in front."""
    rows = []
    for k, model in enumerate(members):
        for split in ("tune", "valid"):
            mask = (data.studies["split"] == split).to_numpy()
            sub = data.studies[mask]
            m = study_metrics(sub["label"].to_numpy(), probabilities[mask, k],
                              sub["body_part"].to_numpy(), n_bootstrap=0)
            m.insert(0, "split", split)
            m.insert(0, "model", model)
            rows.append(m)
    return pd.concat(rows, ignore_index=True)


def print_summary(cfg: PretrainConfig, metrics: pd.DataFrame, report: dict[str, Any]) -> None:
    """Print the run folder, each member's tune/valid accuracy and kappa and the valid
    split's diversity figures (``report`` of :func:`diversity_report`, with ``wall_seconds``
    and ``bad_images`` added)."""
    print(f"\nrun folder {cfg.out} ({report['wall_seconds']:.0f} s)"
          + ("  [SYNTHETIC data]" if cfg.data_root is None else ""))
    overall = metrics[(metrics["body_part"] == "ALL")
                      & metrics["metric"].isin(["accuracy", "kappa"])]
    print(overall.pivot_table(index="model", columns=["split", "metric"], values="value",
                              sort=False).round(3).to_string())
    print(f"valid: disagreement {report['disagreement']:.1%}, oracle "
          f"{report['oracle_accuracy']:.1%} vs uniform average {report['average_accuracy']:.1%} "
          f"(+{report['oracle_minus_average']:.1f} points); best member per body part "
          f"{report['best_member_per_body_part']}")
    if report["bad_images"]:
        print(f"{report['bad_images']} undecodable image(s) were excluded (--skip-bad-images)")


def main(argv: list[str] | None = None) -> int:
    """``python -m experiments.pretrain_backbones``: parse ``argv`` (default
    ``sys.argv[1:]``), train every member, write the run folder's outputs (see the module
    docstring) and print a summary. Returns the exit status (0)."""
    cfg = resolve_profile(parse_config(PretrainConfig, argv))
    assert cfg.out is not None and cfg.models is not None
    assert cfg.image_size is not None and cfg.epochs is not None
    start_run_folder(cfg)
    start = time.perf_counter()
    data_root, data = prepare_data(cfg)
    device = resolve_device(cfg.device)
    members = [train_member(cfg, data_root, data, model, size, epochs, device)
               for model, size, epochs in zip(cfg.models, cfg.image_size, cfg.epochs,
                                              strict=True)]
    names = [m.name for m in members]
    logits = np.stack([m.logits for m in members], axis=1).astype(np.float32)  # (S, K, 2)
    table = LogitsTable.from_arrays(data.studies, names, logits,
                                    model_configs={m.name: m.config for m in members},
                                    data_fingerprint=data.fingerprint)
    table.save(cfg.out / "logits.parquet")

    probabilities = table.abnormal_probabilities()  # (S, K) softmax(logits)[1]
    metrics = metrics_table(data, probabilities, names)
    atomic_write_bytes(cfg.out / "metrics.csv", metrics.to_csv(index=False).encode())
    valid = (data.studies["split"] == "valid").to_numpy()
    report = diversity_report(data.studies[valid], probabilities[valid], names)
    report.update({"wall_seconds": time.perf_counter() - start,
                   "model_seconds": {m.name: m.seconds for m in members},
                   "bad_images": len(set().union(*(m.bad_images for m in members))),
                   "synthetic": cfg.data_root is None})
    atomic_write_bytes(cfg.out / "diversity.json", (json.dumps(report, indent=2) + "\n").encode())
    if cfg.export_default:
        DEFAULT_LOGITS_PATH.parent.mkdir(parents=True, exist_ok=True)
        table.save(DEFAULT_LOGITS_PATH)
        print(f"installed the built-in default table {DEFAULT_LOGITS_PATH}")
    print_summary(cfg, metrics, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
