"""Configuration of one backbone's training (:func:`backbones.train.main`), parsed from the
command line with :func:`mura_env.common.config_cli.parse_config`.

:func:`parse_args` reads the fields as ``--flags`` (underscores become dashes; booleans take
``--flag/--no-flag``); ``experiments.pretrain_backbones`` builds one per member. Paths are kept
as the strings given: a checkpoint records them verbatim under ``args``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from backbones.registry import get_spec
from mura_env.common.config_cli import parse_config

DESCRIPTION = "Train one MURA backbone"


@dataclass
class TrainConfig:
    """Settings of one backbone's training run (see the module docstring)."""

    data_root: str = field(default="data/synthetic", metadata={"help": "folder holding MURA-v1.1/"})
    model: str = field(default="attention_resnet", metadata={"help": "registry name"})
    attention_parts: tuple[str, ...] | None = field(default=None, metadata={
        "help": "for a part-attention model: body parts with an attention head of their own "
                "(default SHOULDER ELBOW)"})
    weights: str | None = field(default=None, metadata={
        "help": "initial weights: a local state-dict path or a torchvision weights name"})
    image_size: int | None = field(default=None, metadata={
        "help": "input size (default: the model's quick-profile size)"})
    batch_size: int = field(default=64, metadata={"help": "images per optimizer step"})
    epochs: int = field(default=5, metadata={"help": "epochs of the whole schedule"})
    stop_after: int | None = field(default=None, metadata={
        "help": "stop after this many epochs in this invocation (resume later)"})
    lr: float = field(default=3e-3, metadata={"help": "OneCycleLR max learning rate"})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay"})
    workers: int = field(default=0, metadata={"help": "DataLoader worker processes"})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N"})
    amp: bool = field(default=True, metadata={"help": "mixed precision (CUDA only)"})
    output_dir: str = field(default="runs/train",
                            metadata={"help": "checkpoints and TensorBoard logs"})
    resume: str | None = field(default=None, metadata={"help": "checkpoint to continue from"})
    seed: int = field(default=0, metadata={"help": "seed of the model, sampler and dropout"})
    tune_fraction: float = field(default=0.2,
                                 metadata={"help": "share of train patients moved to tune"})
    split_seed: int = field(default=0, metadata={
        "help": "seed of the train/tune split and of the --train-studies subset"})
    train_studies: int | None = field(default=None, metadata={
        "help": "train on a patient-level random subset of this many train studies "
                "(default: all of train)"})
    focus_parts: tuple[str, ...] = field(default=(), metadata={
        "help": "body parts most training studies come from (a specialist member)"})
    focus_share: float = field(default=0.8, metadata={
        "help": "share of the --train-studies subset drawn from --focus-parts"})
    cache_dir: str = field(default="data/cache", metadata={"help": "decode-once image cache"})
    skip_bad_images: bool = field(default=False, metadata={
        "help": "exclude undecodable images (counted) instead of stopping"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """Parse ``argv`` (default: ``sys.argv[1:]``) into a :class:`TrainConfig`."""
    return parse_config(TrainConfig, argv, description=DESCRIPTION)


def with_model_defaults(config: TrainConfig) -> TrainConfig:
    """``config`` with ``image_size`` filled in (the model's default size when ``None``).

    Raises :class:`backbones.registry.UnknownModelError` for an unknown ``model``."""
    spec = get_spec(config.model)
    return dataclasses.replace(config, image_size=config.image_size or spec.default_size)


def recorded(config: TrainConfig) -> dict[str, Any]:
    """The settings a checkpoint records under ``args``: field name -> value, in field order."""
    return dataclasses.asdict(config)
