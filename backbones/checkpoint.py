"""Training checkpoints: written atomically, loaded with ``weights_only=True``, and checked
before a run resumes from one.

A checkpoint is a dict ``{model, optimizer, lr_scheduler, scaler, epoch, args, metrics,
data_fingerprint}``: the state dicts, the last finished epoch, the run's settings (field name ->
value), that epoch's metrics and the fingerprint of the data set trained on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from backbones.train_config import TrainConfig
from mura_env.common.atomic import atomic_write

CHECKPOINT = "checkpoint.pth"


class ResumeError(ValueError):
    """Raised when a ``--resume`` checkpoint belongs to another model, data set or schedule."""


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint written by :func:`backbones.train.main` onto the CPU
    (``weights_only=True``).

    Returns ``{model, optimizer, lr_scheduler, scaler, epoch, args, metrics,
    data_fingerprint}``; raises :class:`FileNotFoundError` when ``path`` is not a file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return torch.load(path, map_location="cpu", weights_only=True)


def save_checkpoint(checkpoint: dict[str, Any], path: Path) -> None:
    """Write ``checkpoint`` with :func:`torch.save` to a temporary file renamed to ``path``."""
    atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))


def load_resume(config: TrainConfig, fingerprint: str) -> dict[str, Any]:
    """The checkpoint ``config.resume``, checked to be of ``config``'s model and image size and
    of the data set with ``fingerprint``; raises :class:`ResumeError` otherwise."""
    assert config.resume is not None
    checkpoint = load_checkpoint(config.resume)
    saved = checkpoint["args"]
    for key, what in (("model", "model"), ("image_size", "image size"),
                      ("train_studies", "training subset size"), ("focus_parts", "focus parts"),
                      ("focus_share", "focus share"), ("split_seed", "split seed"),
                      ("tune_fraction", "tune fraction"), ("seed", "seed")):
        if saved.get(key) != getattr(config, key):
            raise ResumeError(f"--resume {config.resume} was trained with {what} "
                              f"{saved.get(key)!r}, not {getattr(config, key)!r}")
    if checkpoint.get("data_fingerprint") != fingerprint:
        raise ResumeError(f"--resume {config.resume} was trained on another data set "
                          f"(fingerprint {str(checkpoint.get('data_fingerprint'))[:12]}, "
                          f"this one {fingerprint[:12]})")
    return checkpoint


def check_resume_schedule(config: TrainConfig, checkpoint: dict[str, Any], total_steps: int,
                          world_size: int) -> None:
    """Raise :class:`ResumeError` unless ``checkpoint``'s OneCycleLR was planned for
    ``total_steps`` optimizer steps, the number this run plans."""
    planned = checkpoint["lr_scheduler"].get("total_steps")
    if planned != total_steps:
        saved = checkpoint["args"]
        raise ResumeError(
            f"--resume {config.resume} was planned for {planned} optimizer steps "
            f"(--epochs {saved.get('epochs')}, --batch-size {saved.get('batch_size')}), "
            f"this run for {total_steps} (--epochs {config.epochs}, --batch-size "
            f"{config.batch_size}, {world_size} process(es)); resume with the same settings")
