"""``python -m experiments.retrain``: fine-tune a pretraining run's members on ``train`` and
write a new run folder with their logits.

Each member continues from its final checkpoint on the same ``train`` studies it trained on
(its patient-level subset and focus, as the run recorded them) for ``--epochs`` epochs, with
one of the methods of :mod:`backbones.retraining`: ``ce`` (continued cross-entropy, the
control), ``hard-examples`` (cross-entropy weighted toward the ``train`` studies the current
ensemble misclassifies) or ``reinforce`` (sampled study answers rewarded with an env reward,
with a baseline, mixed with cross-entropy). "The ensemble" is the uniform average of the
members' study probabilities, recomputed on ``train`` at the start of every epoch and fixed
during it; nothing reads ``tune`` or ``valid`` to train or to pick a checkpoint (the members
are the last epoch's). Then every member scores the ``tune`` and ``valid`` studies, as the
pretraining did.

The output folder (default ``runs/retrain/<run>-<method>-seed<seed>``) has the layout of a
pretraining run folder, so every env, agent and benchmark takes it (``--run``, or its
``logits.parquet`` as ``--logits``): ``config.json``, ``<model>/checkpoint.pth``,
``logits.parquet`` + manifest, ``metrics.csv``, ``diversity.json``, ``tb/``. It is written
into a hidden folder renamed into place at the end: an interrupted run leaves nothing.

    python -m experiments.retrain --run runs/pretrain/reference-seed0 --method reinforce
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
from torch.utils.tensorboard import SummaryWriter

from backbones.cache import ImageCache, build_cache
from backbones.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from backbones.data import CachedImages, class_weights, select_training_studies
from backbones.distributed import resolve_device
from backbones.ensemble_report import diversity_report, metrics_table
from backbones.gradcam import Member
from backbones.infer import aggregate_studies, predict_logits, probability_logits
from backbones.retraining import (
    ANSWER_REWARDS,
    METHODS,
    RetrainLoss,
    hard_example_weights,
    retrain_one_epoch,
)
from backbones.run_members import load_members
from backbones.runs import (
    LOGIT_SPLITS,
    RUN_LOGITS,
    RunInputError,
    load_run_dataset,
    load_run_table,
)
from backbones.study_batches import StudyBatchSampler, WithIndex
from backbones.transforms import eval_transform, train_transform
from experiments.common.provenance import git_commit, machine_description
from mura_env.common.atomic import atomic_write_bytes, file_sha256, staged_folder
from mura_env.common.config_cli import parse_config, save_config
from mura_env.data import MuraData
from mura_env.logits import LogitsTable
from mura_env.rewards import make_reward

#: Where retraining runs go by default.
RETRAIN_RUNS = Path("runs/retrain")
#: Which split each step uses (recorded in config.json).
SPLIT_USE = {"members_fit": "train (each member's own training studies)",
             "ensemble_errors": "train", "checkpoint": "last epoch (no split)",
             "logits_written": "tune, valid"}


@dataclass
class RetrainConfig:
    """Fine-tune a pretraining run's members on train (see the module docstring)."""

    run: Path = field(metadata={"help": "pretraining run folder to start from"})
    method: str = field(default="ce", metadata={"help": "retraining method",
                                                "choices": METHODS})
    epochs: int = field(default=2, metadata={"help": "epochs over each member's studies"})
    lr: float = field(default=1e-3, metadata={"help": "OneCycleLR max learning rate"})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay"})
    batch_size: int | None = field(default=None, metadata={
        "help": "most images per batch of whole studies (default: the run's batch size)"})
    boost: float = field(default=2.0, metadata={
        "help": "hard-examples: extra weight of a study the ensemble misclassifies"})
    reward: str = field(default="correct", metadata={
        "help": "reinforce: the env reward of a sampled answer", "choices": ANSWER_REWARDS})
    ce_weight: float = field(default=1.0, metadata={
        "help": "reinforce: weight of the cross-entropy beside the policy gradient"})
    seed: int = field(default=0, metadata={"help": "seed of sampling, shuffling and dropout"})
    data_root: Path | None = field(default=None, metadata={
        "help": "the run's data set (default: the one its config.json names)"})
    cache_dir: Path = field(default=Path("data/cache"), metadata={"help": "image decode cache"})
    out: Path | None = field(default=None, metadata={
        "help": "output run folder (default runs/retrain/<run>-<method>-seed<seed>)"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N"})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads"})
    workers: int = field(default=0, metadata={"help": "DataLoader workers"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})


@dataclass
class Source:
    """What a retraining run starts from: the run folder's ``config`` (its config.json),
    logits ``table``, data set and loaded ``members``, and each member's training studies
    (bool ``(len(data.studies),)`` per member name)."""

    config: dict[str, Any]
    table: LogitsTable
    data: MuraData
    members: list[Member]
    train_rows: dict[str, np.ndarray]


def read_source(cfg: RetrainConfig, device: torch.device) -> Source:
    """Load ``cfg.run``'s table, data set, members and their training studies.

    Raises:
        RunInputError: the run folder, its data set or a checkpoint cannot be used.
    """
    table = load_run_table(cfg.run)
    if not (cfg.run / "config.json").is_file():
        raise RunInputError(f"--run {cfg.run} has no config.json: expected a run folder "
                            "written by python -m experiments.pretrain_backbones")
    run_cfg = json.loads((cfg.run / "config.json").read_text())
    data = load_run_dataset(cfg.run, table, cfg.data_root)
    members = load_members(cfg.run, table, tuple(table.model_names), device)
    split_seed = next(s for s in (run_cfg.get("data_seed"), run_cfg.get("seed"), 0)
                      if s is not None)
    rows = {}
    for member in members:
        recorded = table.model_configs.get(member.name, {})
        chosen = select_training_studies(
            data.studies, run_cfg.get("train_studies"),
            tuple(recorded.get("focus_parts") or ()),
            float(recorded.get("focus_share", run_cfg.get("focus_share", 0.8))),
            seed=int(split_seed))
        if recorded.get("train_studies") not in (None, int(chosen.sum())):
            raise RunInputError(
                f"{member.name}: the run trained on {recorded['train_studies']} studies, but "
                f"its recorded settings select {int(chosen.sum())} here; is --data-root the "
                "run's data set?")
        rows[member.name] = chosen
    return Source(run_cfg, table, data, members, rows)


def image_cache(cfg: RetrainConfig, data: MuraData, size: int) -> ImageCache:
    """The decode cache of every image of ``data`` at ``size`` (the one pretraining built)."""
    return build_cache(data.images["path"].tolist(), size, cfg.cache_dir, data.fingerprint,
                       progress=False)


def study_probabilities(member: Member, cache: ImageCache, images: pd.DataFrame,
                        study_ids: np.ndarray, device: torch.device,
                        batch_size: int) -> np.ndarray:
    """``member``'s study-level abnormality probabilities (MURA's rule, evaluation
    transform): float64 ``(len(study_ids),)`` over ``images`` (rows with ``study_id``)."""
    loader = DataLoader(CachedImages(cache, images, eval_transform(member.image_size)),
                        batch_size=batch_size)
    logits = predict_logits(member.model, loader, device, amp=device.type == "cuda")
    study = aggregate_studies(logits, images["study_id"].to_numpy(), study_ids)
    return torch.softmax(torch.from_numpy(study).double(), dim=1)[:, 1].numpy()


def ensemble_errors(members: list[Member], caches: dict[str, ImageCache],
                    images: pd.DataFrame, studies: pd.DataFrame, device: torch.device,
                    batch_size: int) -> np.ndarray:
    """bool ``(len(studies),)``: the uniform average of the members' study probabilities
    calls the study wrongly (``> 0.5`` is abnormal)."""
    ids = studies["study_id"].to_numpy()
    mean = np.mean([study_probabilities(m, caches[m.name], images, ids, device, batch_size)
                    for m in members], axis=0)
    return (mean > 0.5).astype(int) != studies["label"].to_numpy()


def retrain_members(cfg: RetrainConfig, source: Source, device: torch.device,
                    writer: SummaryWriter) -> dict[str, dict[str, float]]:
    """Fine-tune every member of ``source`` in place, epoch by epoch (each epoch: the
    ensemble's errors for ``hard-examples``, then one pass per member). Returns per member
    the last epoch's figures (:func:`backbones.retraining.retrain_one_epoch`)."""
    data = source.data
    union = np.logical_or.reduce(list(source.train_rows.values()))
    train_studies = data.studies[union].reset_index(drop=True)
    position = pd.Series(np.arange(len(train_studies)), index=train_studies["study_id"])
    train_images = data.images[data.images["study_id"].isin(set(train_studies["study_id"]))]
    images_per_study = train_images.groupby("study_id").size().reindex(
        train_studies["study_id"]).to_numpy()
    caches = {m.name: image_cache(cfg, data, m.image_size) for m in source.members}
    batch = cfg.batch_size or int(source.config.get("batch_size") or 64)
    reward = make_reward(cfg.reward) if cfg.method == "reinforce" else None
    plans = []
    for k, member in enumerate(source.members):
        mine = data.studies[source.train_rows[member.name]]
        images = train_images[train_images["study_id"].isin(set(mine["study_id"]))]
        study_of_image = torch.tensor(position[images["study_id"]].to_numpy(),
                                      dtype=torch.int64)
        dataset = WithIndex(CachedImages(caches[member.name], images,
                                         train_transform(member.image_size), seed=cfg.seed))
        sampler = StudyBatchSampler(study_of_image.numpy(), batch, seed=cfg.seed * 1009 + k)
        optimizer = torch.optim.AdamW(member.model.parameters(), lr=cfg.lr,
                                      weight_decay=cfg.weight_decay)
        total = sum(len(sampler.batches(e)) for e in range(cfg.epochs))
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr,
                                                        total_steps=total)
        generator = torch.Generator(device=device).manual_seed(cfg.seed * 7919 + k)
        loss = RetrainLoss(cfg.method, class_weights(mine).to(device), reward=reward,
                           ce_weight=cfg.ce_weight, generator=generator)
        plans.append((member, dataset, sampler, optimizer, scheduler, loss, study_of_image,
                      np.isin(train_studies["study_id"], mine["study_id"])))
    figures: dict[str, dict[str, float]] = {}
    for epoch in range(cfg.epochs):
        wrong = None
        if cfg.method == "hard-examples":
            wrong = ensemble_errors(source.members, caches, train_images, train_studies,
                                    device, 2 * batch)
            writer.add_scalar("retrain/ensemble_train_error", float(wrong.mean()), epoch)
        for k, (member, dataset, sampler, optimizer, scheduler, loss, study_of_image,
                own) in enumerate(plans):
            if wrong is not None:
                weights = np.zeros(len(train_studies))
                weights[own] = hard_example_weights(wrong[own], images_per_study[own],
                                                    cfg.boost)
                loss.study_weights = torch.as_tensor(weights, dtype=torch.float32,
                                                     device=device)
            torch.manual_seed(cfg.seed * 100_003 + epoch * 101 + k)  # dropout stream
            dataset.dataset.set_epoch(epoch)
            sampler.set_epoch(epoch)
            loader = DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.workers)
            step0 = sum(len(sampler.batches(e)) for e in range(epoch))
            figures[member.name] = retrain_one_epoch(
                member.model, loss, optimizer, scheduler, loader, study_of_image, device,
                log=lambda tag, v, s, n=member.name: writer.add_scalar(f"{n}/{tag}", v, s),
                step0=step0, desc=f"{member.name} {cfg.method} epoch {epoch + 1}/{cfg.epochs}",
                progress=cfg.progress)
            print(f"epoch {epoch + 1}/{cfg.epochs} {member.name}: "
                  + ", ".join(f"{k_}={v:.4f}" for k_, v in figures[member.name].items()))
    for member in source.members:
        member.model.eval()
    return figures


def scored_table(cfg: RetrainConfig, source: Source, device: torch.device, out: Path,
                 staging: Path) -> tuple[LogitsTable, pd.DataFrame]:
    """Save each member's checkpoint under ``staging`` and score the ``tune`` and ``valid``
    studies: the new logits table (its manifest pointing at the checkpoints' final place
    under ``out``) and the members' metrics (:func:`metrics_table`).

    Raises:
        FloatingPointError: a member's logits are not finite; nothing is kept.
    """
    data = source.data
    studies = data.studies[data.studies["split"].isin(LOGIT_SPLITS)].reset_index(drop=True)
    images = data.images[data.images["split"].isin(LOGIT_SPLITS)]
    ids = studies["study_id"].to_numpy()
    batch = 2 * (cfg.batch_size or int(source.config.get("batch_size") or 64))
    probabilities, configs = [], {}
    for member in source.members:
        p = study_probabilities(member, image_cache(cfg, data, member.image_size), images, ids,
                                device, batch)
        probabilities.append(p)
        path = staging / member.name / CHECKPOINT
        path.parent.mkdir(parents=True)
        old = load_checkpoint(cfg.run / member.name / CHECKPOINT)
        args = {**old.get("args", {}), "retrain": retrain_settings(cfg)}
        save_checkpoint({"model": member.model.state_dict(), "epoch": cfg.epochs - 1,
                         "args": args, "metrics": {}, "data_fingerprint": data.fingerprint},
                        path)
        configs[member.name] = {**source.table.model_configs.get(member.name, {}),
                                "checkpoint": str(out / member.name / CHECKPOINT),
                                "checkpoint_sha256": file_sha256(path),
                                "retrain": retrain_settings(cfg)}
    if not np.isfinite(np.stack(probabilities)).all():
        raise FloatingPointError("a retrained member gave non-finite probabilities (training "
                                 "diverged?); nothing written. Lower --lr.")
    logits = np.stack([probability_logits(p) for p in probabilities], axis=1)  # (S, K, 2)
    names = [m.name for m in source.members]
    table = LogitsTable.from_arrays(studies, names, logits, model_configs=configs,
                                    data_fingerprint=data.fingerprint)
    return table, metrics_table(studies, table.abnormal_probabilities(), names)


def retrain_settings(cfg: RetrainConfig) -> dict[str, Any]:
    """The retraining settings a checkpoint and the manifest record."""
    return {"from_run": str(cfg.run), "method": cfg.method, "epochs": cfg.epochs,
            "lr": cfg.lr, "boost": cfg.boost, "reward": cfg.reward,
            "ce_weight": cfg.ce_weight, "seed": cfg.seed}


def resolve(cfg: RetrainConfig) -> RetrainConfig:
    """``cfg`` with the output folder filled in and its numbers checked.

    Raises:
        ValueError: a setting out of range.
    """
    if cfg.epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {cfg.epochs}")
    if cfg.lr <= 0 or cfg.boost < 0 or cfg.ce_weight < 0:
        raise ValueError("--lr must be > 0, --boost and --ce-weight >= 0")
    out = cfg.out or RETRAIN_RUNS / f"{cfg.run.name}-{cfg.method}-seed{cfg.seed}"
    if out.exists():
        raise ValueError(f"{out} exists already; pass a new --out (nothing was written)")
    return replace(cfg, out=out)


def write_run(cfg: RetrainConfig, source: Source, device: torch.device, started: float
              ) -> dict[str, Any]:
    """Retrain and write the whole output folder ``cfg.out`` (staged, renamed at the end).
    Returns the members' valid metrics and the wall seconds."""
    assert cfg.out is not None
    with staged_folder(cfg.out) as staging:
        writer = SummaryWriter(log_dir=str(staging / "tb"))
        try:
            figures = retrain_members(cfg, source, device, writer)
        finally:
            writer.close()
        table, metrics = scored_table(cfg, source, device, cfg.out, staging)
        table.save(staging / RUN_LOGITS)
        atomic_write_bytes(staging / "metrics.csv", metrics.to_csv(index=False).encode())
        names = [m.name for m in source.members]
        valid = (table.studies["split"] == "valid").to_numpy()
        report = diversity_report(table.studies[valid],
                                  table.abnormal_probabilities()[valid], names)
        seconds = time.perf_counter() - started
        report.update({"wall_seconds": seconds, "last_epoch": figures})
        atomic_write_bytes(staging / "diversity.json",
                           (json.dumps(report, indent=2) + "\n").encode())
        inherited = {k: source.config.get(k) for k in (
            "data_root", "synthetic_dir", "data_seed", "tune_fraction", "train_studies",
            "focus_share", "batch_size", "scale", "profile")}
        save_config(cfg, staging / "config.json", {
            **inherited, "source_run": str(cfg.run), "backbone_seed": source.config.get("seed"),
            "splits": SPLIT_USE, "wall_seconds": round(seconds, 1), "commit": git_commit(),
            "machine": machine_description(str(device))})
    return {"metrics": metrics, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2: an unusable run folder or setting)."""
    started = time.perf_counter()
    try:
        cfg = resolve(parse_config(RetrainConfig, argv, __doc__))
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        device = resolve_device(cfg.device)
        source = read_source(cfg, device)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result = write_run(cfg, source, device, started)
    metrics = result["metrics"]
    overall = metrics[(metrics["body_part"] == "ALL") & (metrics["metric"] == "kappa")]
    print(overall.pivot_table(index="model", columns="split", values="value",
                              sort=False).round(3).to_string())
    print(f"wrote {cfg.out} ({cfg.method}, {cfg.epochs} epoch{'s' * (cfg.epochs != 1)}) in "
          f"{result['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
