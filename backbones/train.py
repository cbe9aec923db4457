"""Train one backbone on MURA (real or synthetic), in the shape of torchvision's reference
classification ``train.py``: :func:`load_data`, :func:`train_one_epoch`, :func:`evaluate` and
:func:`main` taking a :class:`~backbones.train_config.TrainConfig`.

AdamW, OneCycleLR, cross-entropy weighted per body part as in the MURA paper; AMP and
channels_last on CUDA; a checkpoint ``{model, optimizer, lr_scheduler, scaler, epoch, args,
metrics, data_fingerprint}`` written atomically every epoch (``checkpoint.pth``). The member is
the last epoch's model: no checkpoint is chosen on ``tune`` (which fits the weighting methods)
or ``valid`` (read only for final scores); their images are only decoded into the shared image
cache, which the study logits read later. ``--train-studies``
trains on a patient-level subset of ``train``, ``--focus-parts`` makes most of it come from some
body parts (a specialist member). ``--resume`` continues exactly where a run stopped;
TensorBoard scalars and tqdm progress.

Backbones are trained by ``python -m experiments.pretrain_backbones`` (one model:
``--models NAME``), which calls :func:`main`. Under ``torchrun`` (``torchrun --nproc_per_node N
-m experiments.pretrain_backbones --out DIR ...``) it runs DistributedDataParallel (gloo on CPU,
nccl on CUDA) with a DistributedSampler; only rank 0 writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, cohen_kappa_score
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from backbones.cache import ImageCache, build_cache
from backbones.checkpoint import (
    CHECKPOINT,
    ResumeError,
    check_resume_schedule,
    load_checkpoint,
    load_resume,
    save_checkpoint,
)
from backbones.data import CachedImages, class_weights, select_training_studies
from backbones.distributed import (
    DistributedContext,
    init_distributed,
    resolve_device,
    wrap_distributed,
)
from backbones.infer import aggregate_studies, predict_logits
from backbones.part_attention import forward_with_parts
from backbones.registry import build_model
from backbones.train_config import TrainConfig, recorded, with_model_defaults
from backbones.transforms import train_transform
from mura_env.data import MuraData, load_mura

__all__ = ["CHECKPOINT", "ResumeError", "TrainConfig", "evaluate", "load_checkpoint",
           "load_data", "main", "resolve_device", "train_one_epoch"]


# --------------------------------------------------------------------------- data


@dataclass
class TrainData:
    """What one run reads: the training loader (sharded by ``sampler``) over ``train_set``
    (the images of ``train_studies``, the studies trained on), the per-(body part, label) loss
    weights ``(7, 2)`` float32 on the training device, the data set's ``fingerprint`` and the
    undecodable images excluded."""

    train_set: CachedImages
    sampler: DistributedSampler
    train_loader: DataLoader
    train_studies: pd.DataFrame
    class_weights: torch.Tensor
    fingerprint: str
    bad_images: list[str]

    def set_epoch(self, epoch: int) -> None:
        """Select the shuffling and augmentation streams of ``epoch``."""
        self.sampler.set_epoch(epoch)
        self.train_set.set_epoch(epoch)


def build_image_cache(config: TrainConfig, data: MuraData,
                      context: DistributedContext) -> ImageCache:
    """The decode cache of every image of ``data`` at ``config.image_size``: rank 0 builds it
    (with progress), the other ranks open it after a barrier."""
    paths = data.images["path"].tolist()
    assert config.image_size is not None
    cache = None
    if context.is_main:
        cache = build_cache(paths, config.image_size, config.cache_dir, data.fingerprint,
                            skip_bad=config.skip_bad_images, progress=config.progress)
    context.barrier()
    if cache is None:
        cache = build_cache(paths, config.image_size, config.cache_dir, data.fingerprint,
                            skip_bad=config.skip_bad_images, progress=False)
    return cache


def usable_images(data: MuraData, bad: set[str]) -> pd.DataFrame:
    """The rows of ``data.images`` whose path is not in ``bad``; raises :class:`ValueError`
    when a study would be left without any image."""
    usable = data.images[~data.images["path"].isin(bad)]
    if bad:
        empty = set(data.studies["study_id"]) - set(usable["study_id"])
        if empty:
            raise ValueError(f"{len(empty)} study(ies) have no decodable image left, "
                             f"e.g. {sorted(empty)[:3]}")
    return usable


def load_data(config: TrainConfig, data: MuraData, context: DistributedContext) -> TrainData:
    """Cache ``data``'s images and build the training dataset and loader of ``config``
    (``image_size`` resolved) over the studies :func:`select_training_studies` picks from
    ``train``; the loader yields batches ``(images (B, 1, S, S) float32, labels (B,) int64,
    body parts (B,) int64)`` of this process's shard."""
    assert config.image_size is not None
    size, device = config.image_size, context.device
    cache = build_image_cache(config, data, context)
    bad = set(cache.bad)
    usable = usable_images(data, bad)
    studies = data.studies
    chosen = select_training_studies(studies, config.train_studies, config.focus_parts,
                                     config.focus_share, seed=config.split_seed)
    train_studies = studies[chosen]
    train_images = usable[usable["study_id"].isin(set(train_studies["study_id"]))]
    train_set = CachedImages(cache, train_images, train_transform(size), seed=config.seed)
    sampler = DistributedSampler(train_set, num_replicas=context.world_size,
                                 rank=context.rank, shuffle=True, seed=config.seed)
    train_loader = DataLoader(train_set, batch_size=config.batch_size, sampler=sampler,
                              num_workers=config.workers, pin_memory=device.type == "cuda",
                              persistent_workers=False)
    weights = class_weights(train_studies).to(device)
    return TrainData(train_set=train_set, sampler=sampler, train_loader=train_loader,
                     train_studies=train_studies, class_weights=weights,
                     fingerprint=data.fingerprint, bad_images=sorted(bad))


# --------------------------------------------------------------------------- model state


class WeightedCrossEntropy(nn.Module):
    """Cross-entropy weighted per (body part, label), as in the MURA paper.

    ``weights`` is float32 ``(7, 2)`` (see :func:`backbones.data.class_weights`). Called with
    logits ``(B, 2)``, labels ``(B,)`` int64 and body parts ``(B,)`` int64 it returns the mean
    of each image's cross-entropy (in float32) times ``weights[part, label]`` (times
    ``image_weights``, float ``(B,)``, when given): a scalar.
    """

    def __init__(self, weights: torch.Tensor):
        super().__init__()
        self.weights = weights

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, parts: torch.Tensor,
                image_weights: torch.Tensor | None = None) -> torch.Tensor:
        """The weighted mean loss (scalar float32 tensor)."""
        loss_each = nn.functional.cross_entropy(logits.float(), labels, reduction="none")
        weight = self.weights[parts, labels]
        if image_weights is not None:
            weight = weight * image_weights
        return (loss_each * weight).mean()


@dataclass
class TrainState:
    """Everything a checkpoint restores: the (unwrapped) ``model``, AdamW ``optimizer``,
    OneCycleLR ``scheduler`` and AMP ``scaler`` and the first epoch still to run."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.OneCycleLR
    scaler: torch.amp.GradScaler
    start_epoch: int = 0

    def restore(self, checkpoint: dict[str, Any]) -> None:
        """Continue from ``checkpoint`` (see :func:`load_checkpoint`): states and epochs."""
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["lr_scheduler"])
        if "scaler" in checkpoint:
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.start_epoch = checkpoint["epoch"] + 1

    def checkpoint(self, epoch: int, config: TrainConfig, metrics: dict[str, Any],
                   fingerprint: str) -> dict[str, Any]:
        """The checkpoint of this state after ``epoch`` (see :func:`load_checkpoint`)."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "lr_scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "epoch": epoch, "args": recorded(config), "metrics": metrics,
                "data_fingerprint": fingerprint}


def create_train_state(config: TrainConfig, steps_per_epoch: int, device: torch.device,
                       amp: bool) -> TrainState:
    """A fresh model (initialised from the global torch RNG, or ``config.weights``) on
    ``device`` (channels_last on CUDA), with AdamW and a OneCycleLR schedule of
    ``config.epochs * steps_per_epoch`` steps."""
    model = build_model(config.model, weights=config.weights,
                        attention_parts=config.attention_parts).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    return TrainState(model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler)


# --------------------------------------------------------------------------- epochs


def train_one_epoch(net: nn.Module, criterion: WeightedCrossEntropy, state: TrainState,
                    loader: DataLoader, device: torch.device, epoch: int, *, amp: bool = False,
                    writer: SummaryWriter | None = None, desc: str = "",
                    progress: bool = False) -> float:
    """One pass over ``loader`` (batches ``(images, labels, parts)``): an optimizer and a
    scheduler step per batch on ``net`` (``state.model``, maybe DDP-wrapped). Logs
    ``train/loss`` and ``train/lr`` per step to ``writer``. Returns the mean loss per image."""
    net.train()
    total, count = 0.0, 0
    bar = tqdm(loader, desc=desc, disable=not progress, leave=False)
    for batch_index, (images, labels, parts) in enumerate(bar):
        images = images.to(device, non_blocking=True)
        if device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        labels, parts = labels.to(device), parts.to(device)
        with torch.autocast(device.type, enabled=amp):
            logits = forward_with_parts(net, images, parts)
        loss = criterion(logits, labels, parts)
        state.optimizer.zero_grad(set_to_none=True)
        state.scaler.scale(loss).backward()
        state.scaler.step(state.optimizer)
        state.scaler.update()
        state.scheduler.step()
        total += float(loss.detach()) * len(labels)
        count += len(labels)
        bar.set_postfix(loss=f"{total / count:.4f}")
        if writer is not None:
            step = epoch * len(loader) + batch_index
            writer.add_scalar("train/loss", float(loss.detach()), step)
            writer.add_scalar("train/lr", state.scheduler.get_last_lr()[0], step)
    return total / max(count, 1)


def evaluate(model: nn.Module, loader: DataLoader, images: pd.DataFrame,
             studies: pd.DataFrame, device: torch.device, amp: bool = False) -> dict[str, float]:
    """Study-level ``{accuracy, kappa}`` (Cohen's) of ``model`` by MURA's rule; the model is
    left in eval mode and its parameters untouched.

    ``images`` are the rows ``loader`` yields, in its order (with a ``study_id`` column);
    ``studies`` the studies to score (``study_id``, ``label``), each with at least one of
    those images. A study is called abnormal when its mean abnormality probability is > 0.5.
    """
    logits = predict_logits(model, loader, device, amp)
    study_logits = aggregate_studies(logits, images["study_id"].to_numpy(),
                                     studies["study_id"].to_numpy())
    pred = (study_logits[:, 1] > study_logits[:, 0]).astype(int)
    label = studies["label"].to_numpy()
    kappa = cohen_kappa_score(label, pred) if len(set(label)) > 1 or len(set(pred)) > 1 else 0.0
    return {"accuracy": float(accuracy_score(label, pred)),
            "kappa": float(0.0 if np.isnan(kappa) else kappa)}


def record_epoch(state: TrainState, config: TrainConfig, data: TrainData, epoch: int,
                 train_loss: float, started: float, writer: SummaryWriter) -> dict[str, Any]:
    """Rank 0's end of ``epoch``: write ``checkpoint.pth`` and the epoch's scalars. Returns the
    metrics ``{epoch, train_loss, epoch_seconds}``; ``started`` is the epoch's
    :func:`time.perf_counter` start."""
    metrics = {"epoch": epoch, "train_loss": train_loss,
               "epoch_seconds": time.perf_counter() - started}
    save_checkpoint(state.checkpoint(epoch, config, metrics, data.fingerprint),
                    Path(config.output_dir) / CHECKPOINT)
    writer.add_scalar("train/epoch_loss", train_loss, epoch)
    return metrics


# --------------------------------------------------------------------------- run


def main(config: TrainConfig) -> dict[str, Any]:
    """Train as configured; returns ``{checkpoint, epochs_done, train_studies, bad_images}``
    (the path of ``checkpoint.pth``, the last epoch's model, as a string; the epochs this call
    ran; the number of studies trained on; the sorted undecodable image paths excluded)."""
    context = init_distributed(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    config = with_model_defaults(config)
    out = Path(config.output_dir)
    if context.is_main:
        out.mkdir(parents=True, exist_ok=True)
    amp = bool(config.amp and context.device.type == "cuda")
    mura = load_mura(config.data_root, tune_fraction=config.tune_fraction,
                     seed=config.split_seed)
    resume = load_resume(config, mura.fingerprint) if config.resume else None
    data = load_data(config, mura, context)

    torch.manual_seed(config.seed)
    state = create_train_state(config, len(data.train_loader), context.device, amp)
    if resume is not None:
        check_resume_schedule(config, resume, state.scheduler.total_steps,
                              context.world_size)
        state.restore(resume)
    net = wrap_distributed(state.model, context)
    criterion = WeightedCrossEntropy(data.class_weights)
    writer = SummaryWriter(log_dir=str(out / "tb")) if context.is_main else None
    epochs = range(state.start_epoch,
                   min(config.epochs, state.start_epoch + (config.stop_after or config.epochs)))
    for epoch in epochs:
        started = time.perf_counter()
        torch.manual_seed(config.seed * 100_003 + epoch)  # dropout stream of this epoch
        data.set_epoch(epoch)
        train_loss = train_one_epoch(
            net, criterion, state, data.train_loader, context.device, epoch, amp=amp,
            writer=writer, desc=f"{config.model} epoch {epoch + 1}/{config.epochs}",
            progress=context.is_main and config.progress)
        if writer is not None:  # rank 0
            record_epoch(state, config, data, epoch, train_loss, started, writer)
        context.barrier()
    if writer is not None:
        writer.close()
    return {"checkpoint": str(out / CHECKPOINT), "epochs_done": len(epochs),
            "train_studies": len(data.train_studies), "bad_images": data.bad_images}
