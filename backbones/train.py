"""Train one backbone on MURA (real or synthetic), in the style of torchvision's reference
``train.py``: ``get_args_parser()`` + ``main(args)``.

AdamW, OneCycleLR, cross-entropy weighted per body part as in the MURA paper; AMP and
channels_last on CUDA; a checkpoint ``{model, optimizer, lr_scheduler, epoch, args, metrics}``
written atomically every epoch (``checkpoint.pth``), the best one on the ``tune`` split's
study-level kappa kept as ``best.pth`` (``valid`` is never looked at); ``--resume`` continues
exactly where a run stopped; TensorBoard scalars and tqdm progress. Launched with
``torchrun --nproc_per_node N`` it runs DistributedDataParallel (gloo on CPU, nccl on CUDA)
with a DistributedSampler; only rank 0 writes.

    python -m backbones.train --data-root data/synthetic --model resnet18 --epochs 5 \
        --output-dir runs/train/resnet18
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from sklearn.metrics import accuracy_score, cohen_kappa_score
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from backbones.cache import build_cache
from backbones.data import CachedImages, class_weights
from backbones.infer import aggregate_studies, predict_logits
from backbones.registry import build_model, get_spec
from backbones.transforms import eval_transform, train_transform
from mura_env.common.atomic import atomic_write
from mura_env.data import load_mura

CHECKPOINT = "checkpoint.pth"
BEST = "best.pth"


class ResumeError(ValueError):
    """Raised when a ``--resume`` checkpoint belongs to another model or data set."""


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    """Command-line arguments of one backbone's training."""
    p = argparse.ArgumentParser(description="Train one MURA backbone", add_help=add_help,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-root", default="data/synthetic", help="folder holding MURA-v1.1/")
    p.add_argument("--model", default="attention_resnet", help="registry name")
    p.add_argument("--weights", default=None,
                   help="initial weights: a local state-dict path or a torchvision weights name")
    p.add_argument("--image-size", type=int, default=None,
                   help="input size (default: the model's quick-profile size)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--stop-after", type=int, default=None,
                   help="stop after this many epochs in this invocation (resume later)")
    p.add_argument("--lr", type=float, default=3e-3, help="OneCycleLR max learning rate")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True,
                   help="mixed precision (CUDA only)")
    p.add_argument("--output-dir", default="runs/train", help="checkpoints and TensorBoard logs")
    p.add_argument("--resume", default=None, help="checkpoint to continue from")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tune-fraction", type=float, default=0.2)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--cache-dir", default="data/cache", help="decode-once image cache")
    p.add_argument("--skip-bad-images", action="store_true",
                   help="exclude undecodable images (counted) instead of stopping")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    return p


def resolve_device(device_arg: str) -> torch.device:
    """The device of a single-process run: ``auto`` is CUDA when available, else the CPU."""
    if device_arg == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device_arg)


def _distributed(device_arg: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); initialises the process group under torchrun."""
    want_cuda = device_arg.startswith("cuda") or (device_arg == "auto"
                                                   and torch.cuda.is_available())
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        if not dist.is_initialized():
            dist.init_process_group("nccl" if want_cuda else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        if want_cuda:
            local = int(os.environ.get("LOCAL_RANK", 0))
            torch.cuda.set_device(local)
            return rank, world, torch.device("cuda", local)
        return rank, world, torch.device("cpu")
    return 0, 1, resolve_device(device_arg)


def _atomic_save(obj: Any, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def _jsonable_args(args: argparse.Namespace) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint written by :func:`main` (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return torch.load(path, map_location="cpu", weights_only=True)


def evaluate_studies(model: nn.Module, loader: DataLoader, images: pd.DataFrame,
                     studies: pd.DataFrame, device: torch.device,
                     amp: bool) -> dict[str, float]:
    """Study-level accuracy and Cohen's kappa of ``model`` (MURA's rule).

    ``images`` are the rows ``loader`` yields, in its order (undecodable images already
    excluded); ``studies`` the studies to score, each with at least one of those images.
    """
    logits = predict_logits(model, loader, device, amp)
    study_logits = aggregate_studies(logits, images["study_id"].to_numpy(),
                                     studies["study_id"].to_numpy())
    pred = (study_logits[:, 1] > study_logits[:, 0]).astype(int)
    label = studies["label"].to_numpy()
    kappa = cohen_kappa_score(label, pred) if len(set(label)) > 1 or len(set(pred)) > 1 else 0.0
    return {"accuracy": float(accuracy_score(label, pred)),
            "kappa": float(0.0 if np.isnan(kappa) else kappa)}


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Train as configured by ``args``; returns ``{best_checkpoint, best_tune_kappa,
    best_epoch, epochs_done, bad_images}``."""
    rank, world, device = _distributed(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = get_spec(args.model)
    size = args.image_size or spec.default_size
    args.image_size = size
    out = Path(args.output_dir)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    amp = bool(args.amp and device.type == "cuda")

    data = load_mura(args.data_root, tune_fraction=args.tune_fraction, seed=args.split_seed)
    resume = None
    if args.resume:
        resume = load_checkpoint(args.resume)
        saved = resume["args"]
        for key, what in (("model", "model"), ("image_size", "image size")):
            if saved.get(key) != getattr(args, key):
                raise ResumeError(f"--resume {args.resume} was trained with {what} "
                                  f"{saved.get(key)!r}, not {getattr(args, key)!r}")
        if resume.get("data_fingerprint") != data.fingerprint:
            raise ResumeError(f"--resume {args.resume} was trained on another data set "
                              f"(fingerprint {str(resume.get('data_fingerprint'))[:12]}, "
                              f"this one {data.fingerprint[:12]})")

    paths = data.images["path"].tolist()
    if rank == 0:
        cache = build_cache(paths, size, args.cache_dir, data.fingerprint,
                            skip_bad=args.skip_bad_images, progress=args.progress)
    if world > 1:
        dist.barrier()
    if rank != 0:
        cache = build_cache(paths, size, args.cache_dir, data.fingerprint,
                            skip_bad=args.skip_bad_images, progress=False)
    bad = set(cache.bad)
    usable = data.images[~data.images["path"].isin(bad)]
    if bad:
        empty = set(data.studies["study_id"]) - set(usable["study_id"])
        if empty:
            raise ValueError(f"{len(empty)} study(ies) have no decodable image left, "
                             f"e.g. {sorted(empty)[:3]}")
    train_images = usable[usable["split"] == "train"]
    tune_images = usable[usable["split"] == "tune"]
    train_set = CachedImages(cache, train_images, train_transform(size), seed=args.seed)
    tune_set = CachedImages(cache, tune_images, eval_transform(size), seed=args.seed)
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True,
                                 seed=args.seed)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler,
                              num_workers=args.workers, pin_memory=device.type == "cuda",
                              persistent_workers=False)
    tune_loader = DataLoader(tune_set, batch_size=args.batch_size * 2, shuffle=False,
                             num_workers=args.workers)
    weights = class_weights(data.studies[data.studies["split"] == "train"]).to(device)

    torch.manual_seed(args.seed)
    model = build_model(args.model, weights=args.weights).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=args.epochs * len(train_loader))
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    start_epoch, best_kappa, best_epoch = 0, -float("inf"), -1
    if resume is not None:
        planned = resume["lr_scheduler"].get("total_steps")
        if planned != scheduler.total_steps:
            raise ResumeError(
                f"--resume {args.resume} was planned for {planned} optimizer steps "
                f"(--epochs {resume['args'].get('epochs')}, --batch-size "
                f"{resume['args'].get('batch_size')}), this run for {scheduler.total_steps} "
                f"(--epochs {args.epochs}, --batch-size {args.batch_size}, {world} "
                "process(es)); resume with the same settings")
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["lr_scheduler"])
        if "scaler" in resume:
            scaler.load_state_dict(resume["scaler"])
        start_epoch = resume["epoch"] + 1
        best_kappa = resume["metrics"]["best_tune_kappa"]
        best_epoch = resume["metrics"]["best_epoch"]
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    writer = SummaryWriter(log_dir=str(out / "tb")) if rank == 0 else None
    last = start_epoch + (args.stop_after or args.epochs)
    epochs_done = 0
    for epoch in range(start_epoch, min(args.epochs, last)):
        torch.manual_seed(args.seed * 100_003 + epoch)  # dropout stream of this epoch
        sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)
        net.train()
        total, count, start = 0.0, 0, time.perf_counter()
        bar = tqdm(train_loader, desc=f"{args.model} epoch {epoch + 1}/{args.epochs}",
                   disable=rank != 0 or not args.progress, leave=False)
        for batch_index, (images, labels, parts) in enumerate(bar):
            images = images.to(device, non_blocking=True)
            if device.type == "cuda":
                images = images.contiguous(memory_format=torch.channels_last)
            labels, parts = labels.to(device), parts.to(device)
            with torch.autocast(device.type, enabled=amp):
                logits = net(images)
            loss_each = nn.functional.cross_entropy(logits.float(), labels, reduction="none")
            loss = (loss_each * weights[parts, labels]).mean()
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            total += float(loss.detach()) * len(labels)
            count += len(labels)
            bar.set_postfix(loss=f"{total / count:.4f}")
            if writer is not None:
                step = epoch * len(train_loader) + batch_index
                writer.add_scalar("train/loss", float(loss.detach()), step)
                writer.add_scalar("train/lr", scheduler.get_last_lr()[0], step)
        epochs_done += 1
        if rank == 0:
            tune = evaluate_studies(model, tune_loader, tune_images,
                                    data.studies[data.studies["split"] == "tune"], device, amp)
            improved = tune["kappa"] > best_kappa
            if improved:
                best_kappa, best_epoch = tune["kappa"], epoch
            metrics = {"epoch": epoch, "train_loss": total / max(count, 1),
                       "tune_kappa": tune["kappa"], "tune_accuracy": tune["accuracy"],
                       "best_tune_kappa": best_kappa, "best_epoch": best_epoch,
                       "epoch_seconds": time.perf_counter() - start}
            checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                          "lr_scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                          "epoch": epoch, "args": _jsonable_args(args), "metrics": metrics,
                          "data_fingerprint": data.fingerprint}
            _atomic_save(checkpoint, out / CHECKPOINT)
            if improved:
                _atomic_save(checkpoint, out / BEST)
            assert writer is not None
            writer.add_scalar("tune/kappa", tune["kappa"], epoch)
            writer.add_scalar("tune/accuracy", tune["accuracy"], epoch)
            writer.add_scalar("train/epoch_loss", metrics["train_loss"], epoch)
        if world > 1:
            dist.barrier()
    if writer is not None:
        writer.close()
    return {"best_checkpoint": str(out / BEST), "best_tune_kappa": best_kappa,
            "best_epoch": best_epoch, "epochs_done": epochs_done, "bad_images": sorted(bad)}


if __name__ == "__main__":
    main(get_args_parser().parse_args())
    if dist.is_initialized():
        dist.destroy_process_group()
