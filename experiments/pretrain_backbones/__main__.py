"""Pretrain a diverse CNN ensemble and write study-level logits (the first half of the main job).

With no arguments: generates the synthetic MURA-format data set if missing, trains the quick
profile's ensemble (different architectures and input resolutions) and writes
``runs/pretrain/<run>/``:

* ``config.json``: the resolved configuration;
* ``<model>/checkpoint.pth`` (the last epoch's model: no checkpoint is chosen on tune or
  valid), ``<model>/tb/`` (TensorBoard);
* ``logits.parquet`` + manifest: study-level logits of every member for tune and valid;
* ``metrics.csv``: each model's study-level accuracy and kappa, overall and per body part,
  on tune and valid;
* ``diversity.json``: disagreement, oracle and uniform-average accuracy on valid;
* ``draws/data_seed_<s>/``: the same three files for every other synthetic data draw the
  members score (``--score-data-seeds``): its tune and valid studies, by inference only.

``--data-root`` points at a real MURA-v1.1; ``--profile full`` selects paper-like settings for
a GPU. One model: ``--models NAME``. Launched by ``torchrun --nproc_per_node N -m
experiments.pretrain_backbones --out DIR ...``, every process trains each member together
(DistributedDataParallel, gloo on CPU, nccl on CUDA); the main process alone generates the
data, scores the draws and writes the outputs. ``--profile reference`` makes the package's
reference tables: three specialist members, each trained mostly on its own body parts (see
:data:`PROFILES`), on the train split of the scale-1.0 synthetic draw with generator seed 0,
then scoring the MURA-size tune (about 2,700 studies) and valid (1,199) splits of two
independent draws (generator seeds 0 and 1; the second is generated into
``data/synthetic_full_seed1``). ``--export-reference`` installs the run's tables as the
reference tables of backbone seed ``--seed``
(:func:`mura_env.logits.reference.reference_index`). ``--resume`` continues an interrupted run
folder.

Synthetic data: results on it say nothing about clinical performance.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from backbones.cache import ImageCache, build_cache
from backbones.data import CachedImages, check_body_parts
from backbones.distributed import DistributedContext, init_distributed
from backbones.ensemble_report import diversity_report, metrics_table
from backbones.infer import aggregate_studies, predict_logits
from backbones.registry import build_model, checkpoint_model_options, get_spec
from backbones.runs import LOGIT_SPLITS, PRETRAIN_RUNS, RUN_LOGITS
from backbones.train import CHECKPOINT, TrainConfig, load_checkpoint
from backbones.train import main as train_backbone
from backbones.transforms import eval_transform
from experiments.common.provenance import export_reference, git_commit, run_provenance
from mura_env.common.atomic import atomic_write_bytes, file_sha256
from mura_env.common.config_cli import parse_config, save_config
from mura_env.data import MuraData, load_mura
from mura_env.logits import LogitsTable
from mura_env.logits.reference import REFERENCE_DATA_SEEDS, reference_index
from mura_env.synthetic import generate

#: Profiles: models with their (input size, epochs[, focus body parts[, focus share]]), batch
#: size, learning rate, synthetic scale, training studies per member (None: all of train), the
#: share of them from the member's focus body parts (for members without their own), the
#: synthetic data folder, the data seed of the draw
#: the members train on (None: the run's ``--seed``) and the data seeds of the draws they
#: score (None: the training draw only).
#:
#: ``reference`` builds the weighting problem on purpose: each member is a specialist that
#: trains mostly (``focus_share``) on its own body parts, the way a model from one clinic's
#: case mix would, so the best member differs by body part and the observation (body part and
#: member logits) says which one to trust. Its members are attention ResNets of three widths
#: (the seed model's family: a stride-2 stem keeps detail at 64 px, where torchvision's
#: stride-4 stems lose it) at 64 px, so that one backbone seed's remake (training and the
#: logits of both data draws) takes about 20 minutes on 2 CPU cores. The HAND/FINGER member,
#: whose parts are the hardest, trains the most epochs.
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"models": {"attention_resnet": (96, 13), "resnet18": (64, 10),
                         "mobilenet_v3_small": (96, 14)},
              "batch_size": 64, "lr": 4e-3, "scale": 0.1, "train_studies": None,
              "focus_share": 0.8, "synthetic_dir": Path("data/synthetic"), "data_seed": None,
              "score_data_seeds": None},
    "reference": {"models": {
        "attention_resnet_small": (64, 10, ("SHOULDER", "HUMERUS", "ELBOW")),
        "attention_resnet": (64, 10, ("WRIST", "FOREARM")),
        "attention_resnet_large": (64, 12, ("HAND", "FINGER"))},
        "batch_size": 64, "lr": 4e-3, "scale": 1.0, "train_studies": 2500, "focus_share": 0.9,
        "synthetic_dir": Path("data/synthetic_full"), "data_seed": REFERENCE_DATA_SEEDS[0],
        "score_data_seeds": REFERENCE_DATA_SEEDS},
    "full": {"models": {"densenet169": (320, 30), "resnet50": (320, 30),
                        "efficientnet_b0": (320, 30), "attention_resnet": (256, 30)},
             "batch_size": 64, "lr": 1e-3, "scale": 1.0, "train_studies": None,
             "focus_share": 0.8, "synthetic_dir": Path("data/synthetic_full"),
             "data_seed": None, "score_data_seeds": None},
}
#: Which split each step of a pretraining run uses (recorded in its config.json).
SPLIT_USE = {"backbones_fit": "train", "checkpoint": "last epoch (no split)",
             "logits_written": "tune, valid", "member_metrics": "tune, valid (reported only)"}


@dataclass
class PretrainConfig:
    """Pretrain backbones on MURA-v1.1 (or the synthetic stand-in) and write their logits."""

    data_root: Path | None = field(default=None, metadata={
        "help": "folder holding a real MURA-v1.1/ (default: the synthetic data set)"})
    synthetic_dir: Path | None = field(default=None, metadata={
        "help": "where the synthetic data set lives (default: profile's, data/synthetic "
                "for quick, data/synthetic_full for scale 1.0)"})
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
    seed: int = field(default=0, metadata={"help": "seed of the members' training"})
    data_seed: int | None = field(default=None, metadata={
        "help": "seed of the synthetic data the members train on, of its train/tune split and "
                "of the training subsets (default: --seed; the reference profile: 0)"})
    score_data_seeds: tuple[int, ...] | None = field(default=None, metadata={
        "help": "seeds of the synthetic data draws whose tune and valid studies the members "
                "score, one logits table each (default: the profile's; reference: 0 1; "
                "others: the training draw only)"})
    train_studies: int | None = field(default=None, metadata={
        "help": "train studies per member, a patient-level subset (default: profile's)"})
    focus: tuple[str, ...] | None = field(default=None, metadata={
        "help": "per model, comma-separated body parts it trains mostly on, '' for none "
                "(default: profile's)"})
    focus_share: tuple[float, ...] | None = field(default=None, metadata={
        "help": "share of a member's training studies from its focus parts, one for all "
                "models or one per model (default: profile's)"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N"})
    workers: int = field(default=0, metadata={"help": "DataLoader workers"})
    cache_dir: Path = field(default=Path("data/cache"), metadata={"help": "image decode cache"})
    tune_fraction: float = field(default=0.2, metadata={"help": "train patients moved to tune"})
    skip_bad_images: bool = field(default=False,
                                  metadata={"help": "exclude undecodable images, counted"})
    resume: bool = field(default=False, metadata={"help": "continue the run folder --out"})
    export_reference: bool = field(default=False, metadata={
        "help": "also install the run's tables (one per scored draw) as the package's reference "
                "tables of backbone seed --seed"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})


def _per_model(given: tuple | None, flag: str, default: list, n_models: int) -> tuple:
    """One value per model: ``given`` (one for all, or one each) or ``default``."""
    values = tuple(given if given is not None else default)
    if len(values) == 1:
        values = values * n_models
    if len(values) != n_models:
        raise ValueError(f"{flag} takes one value or one per model ({n_models}), "
                         f"got {len(values)}")
    return values


#: Settings a reference table's remake command takes from the profile: ``--export-reference``
#: refuses them on the command line, so that the recorded command remakes the table.
PROFILE_SETTINGS = ("models", "image_size", "epochs", "batch_size", "lr", "scale", "data_seed",
                    "score_data_seeds", "train_studies", "focus", "focus_share", "data_root")


def resolve_profile(cfg: PretrainConfig) -> PretrainConfig:
    """Fill every None of ``cfg`` from its profile; check the model names and sizes, and that
    ``--export-reference`` comes with the reference profile's own settings."""
    if cfg.export_reference:
        overridden = [f"--{k.replace('_', '-')}" for k in PROFILE_SETTINGS
                      if getattr(cfg, k) is not None]
        if cfg.profile != "reference" or overridden:
            raise ValueError("--export-reference installs a reference table, which the "
                             "reference profile's own settings make: use --profile reference "
                             f"without {', '.join(overridden) or 'other profiles'}")
    prof = PROFILES[cfg.profile]
    models = tuple(cfg.models or prof["models"])
    for m in models:
        get_spec(m)  # unknown names list the valid ones
    known = prof["models"]
    sizes = _per_model(cfg.image_size or None, "--image-size",
                       [known[m][0] if m in known else get_spec(m).default_size
                        for m in models], len(models))
    epochs = _per_model(cfg.epochs or None, "--epochs",
                        [known[m][1] if m in known else max(v[1] for v in known.values())
                         for m in models], len(models))
    focus = _per_model(cfg.focus, "--focus",
                       [",".join(known[m][2]) if m in known and len(known[m]) > 2 else ""
                        for m in models], len(models))
    for parts in focus:
        parse_focus(parts)
    focus_share = _per_model(cfg.focus_share or None, "--focus-share",
                             [known[m][3] if m in known and len(known[m]) > 3
                              else prof["focus_share"] for m in models], len(models))
    out = cfg.out or PRETRAIN_RUNS / time.strftime("%Y%m%d-%H%M%S")
    data_seed = next(s for s in (cfg.data_seed, prof["data_seed"], cfg.seed) if s is not None)
    score_seeds = tuple(cfg.score_data_seeds or prof["score_data_seeds"] or (data_seed,))
    if len(set(score_seeds)) != len(score_seeds):
        raise ValueError(f"--score-data-seeds repeats a seed: {score_seeds}")
    if data_seed not in score_seeds:
        raise ValueError(f"--score-data-seeds {score_seeds} must include the draw the members "
                         f"train on (--data-seed {data_seed}): the run folder's own logits "
                         "table is of that draw")
    if cfg.data_root is not None and score_seeds != (data_seed,):
        raise ValueError("--score-data-seeds draws synthetic data sets; with --data-root (a "
                         "real MURA-v1.1) the members score that data set only")
    train_studies = cfg.train_studies or prof["train_studies"]
    if train_studies is None and any(focus):
        raise ValueError("--focus needs --train-studies: a focus share of all of train is "
                         "undefined")
    return replace(cfg, models=models, image_size=tuple(sizes), out=out, epochs=epochs,
                   synthetic_dir=cfg.synthetic_dir or prof["synthetic_dir"],
                   batch_size=cfg.batch_size or prof["batch_size"], lr=cfg.lr or prof["lr"],
                   scale=cfg.scale or prof["scale"], data_seed=data_seed, focus=focus,
                   score_data_seeds=score_seeds,
                   train_studies=train_studies, focus_share=focus_share)


def parse_focus(parts: str) -> tuple[str, ...]:
    """The body parts of one ``--focus`` entry (comma-separated, '' for none), checked."""
    return check_body_parts(tuple(p.strip().upper() for p in parts.split(",") if p.strip()),
                            "--focus")


def train_config(cfg: PretrainConfig, data_root: Path, model: str, size: int,
                 epochs: int) -> TrainConfig:
    """The training settings of one member of the resolved run ``cfg``: ``model`` at input
    ``size`` for ``epochs`` on ``data_root``, written to ``<cfg.out>/<model>/`` (continuing
    its ``checkpoint.pth`` under ``--resume`` when there is one)."""
    assert cfg.out is not None and cfg.batch_size is not None and cfg.lr is not None
    run_dir = cfg.out / model
    last = run_dir / CHECKPOINT
    assert cfg.data_seed is not None and cfg.focus is not None and cfg.focus_share is not None
    return TrainConfig(
        data_root=str(data_root), model=model, image_size=size, batch_size=cfg.batch_size,
        epochs=epochs, lr=cfg.lr, seed=cfg.seed, split_seed=cfg.data_seed, device=cfg.device,
        train_studies=cfg.train_studies,
        focus_parts=parse_focus(cfg.focus[list(cfg.models or ()).index(model)]),
        focus_share=cfg.focus_share[list(cfg.models or ()).index(model)],
        workers=cfg.workers, output_dir=str(run_dir), tune_fraction=cfg.tune_fraction,
        cache_dir=str(cfg.cache_dir), skip_bad_images=cfg.skip_bad_images,
        progress=cfg.progress, resume=str(last) if cfg.resume and last.is_file() else None)


def scored_images_cache(data: MuraData, size: int, cfg: PretrainConfig,
                        trained_on: bool) -> ImageCache:
    """The decode cache a member's logits read at input ``size``: every image of ``data`` for
    the draw it trained on (the cache its training built), only the images of
    :data:`backbones.runs.LOGIT_SPLITS` for another draw (nothing else of it is read)."""
    if trained_on:
        return build_cache(data.images["path"].tolist(), size, cfg.cache_dir, data.fingerprint,
                           skip_bad=cfg.skip_bad_images, progress=False)
    paths = data.images.loc[data.images["split"].isin(LOGIT_SPLITS), "path"].tolist()
    key = hashlib.sha256(f"{data.fingerprint}:{','.join(LOGIT_SPLITS)}".encode()).hexdigest()
    return build_cache(paths, size, cfg.cache_dir, key, skip_bad=cfg.skip_bad_images,
                       progress=False)


def study_logits(data: MuraData, model_name: str, size: int, checkpoint: Path,
                 cfg: PretrainConfig, device: torch.device, trained_on: bool = True
                 ) -> tuple[np.ndarray, list[str]]:
    """Study-level logits ``(S, 2)`` float32 of one trained model for every study of ``data``
    in :data:`backbones.runs.LOGIT_SPLITS` (in ``data.studies`` order), and the paths of
    undecodable images skipped. ``trained_on``: ``data`` is the draw the model trained on
    (see :func:`scored_images_cache`)."""
    ckpt = load_checkpoint(checkpoint)
    model = build_model(model_name, **checkpoint_model_options(ckpt.get("args")))
    model.load_state_dict(ckpt["model"])
    model.to(device)
    cache = scored_images_cache(data, size, cfg, trained_on)
    images = data.images[~data.images["path"].isin(set(cache.bad))
                         & data.images["split"].isin(LOGIT_SPLITS)]
    studies = data.studies[data.studies["split"].isin(LOGIT_SPLITS)]
    loader = DataLoader(CachedImages(cache, images, eval_transform(size)),
                        batch_size=2 * (cfg.batch_size or 64), num_workers=cfg.workers)
    logits = predict_logits(model, loader, device, amp=device.type == "cuda")
    return aggregate_studies(logits, images["study_id"].to_numpy(),
                             studies["study_id"].to_numpy()), cache.bad


@dataclass
class Member:
    """One trained ensemble member: its registry ``name``, study-level ``logits`` ``(S, 2)``
    float32 (every study of :data:`backbones.runs.LOGIT_SPLITS`, in ``data.studies`` order),
    its entry of the logits table's ``model_configs``, the seconds its training and logits took
    and the undecodable images its cache skipped."""

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
    save_config(cfg, cfg.out / "config.json", {"splits": SPLIT_USE})


def draw_folder(cfg: PretrainConfig, data_seed: int) -> Path:
    """Where the synthetic draw with generator seed ``data_seed`` lives: ``--synthetic-dir``
    for the draw the members train on, ``<synthetic-dir>_seed<data_seed>`` for another."""
    assert cfg.synthetic_dir is not None
    if data_seed == cfg.data_seed:
        return cfg.synthetic_dir
    return cfg.synthetic_dir.with_name(f"{cfg.synthetic_dir.name}_seed{data_seed}")


def prepare_data(cfg: PretrainConfig, data_seed: int | None = None) -> tuple[Path, MuraData]:
    """The data root and the data set read from it with its train/tune split: ``--data-root``,
    or the synthetic draw with generator seed ``data_seed`` (default: the one the members
    train on, ``cfg.data_seed``), generated into :func:`draw_folder` when missing."""
    data_seed = cfg.data_seed if data_seed is None else data_seed
    assert data_seed is not None
    if cfg.data_root is None:
        assert cfg.scale is not None
        data_root = draw_folder(cfg, data_seed)
        generate(data_root, scale=cfg.scale, seed=data_seed, progress=cfg.progress)
    else:
        data_root = cfg.data_root
    return data_root, load_mura(data_root, tune_fraction=cfg.tune_fraction, seed=data_seed)


def train_member(cfg: PretrainConfig, data_root: Path, data: MuraData, model: str, size: int,
                 epochs: int, context: DistributedContext) -> Member | None:
    """Train ``model`` (see :func:`train_config`; with every process of a ``torchrun`` launch),
    then, on the main process, compute the study-level logits of its last epoch's checkpoint
    on ``context.device`` and print a one-line summary (other processes return None)."""
    start = time.perf_counter()
    train_cfg = train_config(cfg, data_root, model, size, epochs)
    result = train_backbone(train_cfg)
    if not context.is_main:
        return None
    device = context.device
    final = Path(result["checkpoint"])
    logits, bad = study_logits(data, model, size, final, cfg, device)
    config = {"name": model, "image_size": size, "epochs": epochs,
              "batch_size": cfg.batch_size, "lr": cfg.lr, "seed": cfg.seed,
              "train_studies": result["train_studies"],
              "focus_parts": list(train_cfg.focus_parts), "focus_share": train_cfg.focus_share,
              "checkpoint": str(final), "checkpoint_sha256": file_sha256(final)}
    seconds = time.perf_counter() - start
    print(f"{model} ({size}px, {result['train_studies']} training studies, focus "
          f"{'/'.join(train_cfg.focus_parts) or 'none'}): {seconds:.0f} s")
    return Member(name=model, logits=logits, config=config, seconds=seconds, bad_images=bad)


def print_summary(folder: Path, cfg: PretrainConfig, metrics: pd.DataFrame,
                  report: dict[str, Any]) -> None:
    """Print the ``folder`` of one draw's outputs, each member's tune/valid accuracy and kappa
    and the valid split's diversity figures (``report`` of :func:`diversity_report`, with
    ``wall_seconds``, ``data_seed`` and ``bad_images`` added)."""
    print(f"\n{folder} (data seed {report['data_seed']}; run {report['wall_seconds']:.0f} s)"
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


@dataclass
class DrawResult:
    """What the members made of one data draw: its generator seed, ``folder`` (where its
    outputs go), the logits ``table`` of its tune and valid studies, the members' ``metrics``
    (:func:`metrics_table`), the valid split's diversity ``report`` and the seconds its
    logits took (beyond training)."""

    data_seed: int
    folder: Path
    table: LogitsTable
    metrics: pd.DataFrame
    report: dict[str, Any]
    seconds: float


def draw_result(cfg: PretrainConfig, data: MuraData, data_seed: int, folder: Path,
                members: list[Member], logits: list[np.ndarray], seconds: float) -> DrawResult:
    """Build one draw's logits table from the members' study ``logits`` (one ``(S, 2)`` per
    member, ``data.studies`` order of :data:`backbones.runs.LOGIT_SPLITS`), with its metrics
    and diversity figures.

    Raises:
        FloatingPointError: a member's logits are not finite (training diverged); nothing is
            written.
    """
    names = [m.name for m in members]
    studies = data.studies[data.studies["split"].isin(LOGIT_SPLITS)].reset_index(drop=True)
    stacked = np.stack(logits, axis=1).astype(np.float32)  # (S, K, 2)
    if not np.isfinite(stacked).all():
        bad = [n for k, n in enumerate(names) if not np.isfinite(stacked[:, k]).all()]
        raise FloatingPointError(f"members {bad} produced non-finite study logits (training "
                                 "diverged?); no table written. Lower --lr or turn AMP off.")
    table = LogitsTable.from_arrays(studies, names, stacked,
                                    model_configs={m.name: m.config for m in members},
                                    data_fingerprint=data.fingerprint)
    probabilities = table.abnormal_probabilities()  # (S, K) softmax(logits)[1]
    metrics = metrics_table(studies, probabilities, names)
    valid = (studies["split"] == "valid").to_numpy()
    report = diversity_report(studies[valid], probabilities[valid], names)
    report.update({"data_seed": data_seed, "synthetic": cfg.data_root is None,
                   "bad_images": len(set().union(*(m.bad_images for m in members)))})
    return DrawResult(data_seed, folder, table, metrics, report, seconds)


def score_other_draw(cfg: PretrainConfig, data_seed: int, members: list[Member],
                     device: torch.device) -> DrawResult:
    """The members' logits on the tune and valid studies of the synthetic draw ``data_seed``
    (generated when missing; not the one they trained on), by inference only."""
    start = time.perf_counter()
    _, data = prepare_data(cfg, data_seed)
    assert cfg.out is not None
    logits = []
    for m in members:
        values, bad = study_logits(data, m.name, int(m.config["image_size"]),
                                   Path(m.config["checkpoint"]), cfg, device, trained_on=False)
        logits.append(values)
        m.bad_images.extend(bad)
    seconds = time.perf_counter() - start
    print(f"data draw {data_seed}: logits of {len(members)} members in {seconds:.0f} s")
    return draw_result(cfg, data, data_seed, cfg.out / "draws" / f"data_seed_{data_seed}",
                       members, logits, seconds)


def write_draw(cfg: PretrainConfig, argv: list[str], draw: DrawResult,
               wall_seconds: float, model_seconds: dict[str, float], commit: str) -> None:
    """Write one draw's ``logits.parquet`` (+ manifest), ``metrics.csv``, ``diversity.json``
    and ``provenance.json`` (recording ``commit``, the code the run started from) into
    ``draw.folder``; under ``--export-reference`` also install its table as reference table
    :func:`mura_env.logits.reference.reference_index` (``--seed``, draw)."""
    draw.folder.mkdir(parents=True, exist_ok=True)
    draw.table.save(draw.folder / RUN_LOGITS)
    atomic_write_bytes(draw.folder / "metrics.csv", draw.metrics.to_csv(index=False).encode())
    report = {**draw.report, "wall_seconds": wall_seconds, "model_seconds": model_seconds,
              "logits_seconds": draw.seconds}
    atomic_write_bytes(draw.folder / "diversity.json",
                       (json.dumps(report, indent=2) + "\n").encode())
    provenance = run_provenance(cfg, argv, draw.table, draw.metrics, report, draw.data_seed,
                                commit)
    atomic_write_bytes(draw.folder / "provenance.json",
                       (json.dumps(provenance, indent=2) + "\n").encode())
    if cfg.export_reference:
        assert cfg.score_data_seeds is not None
        draw_index = cfg.score_data_seeds.index(draw.data_seed)
        export_reference(reference_index(cfg.seed, draw_index), draw.table, provenance)


def main(argv: list[str] | None = None) -> int:
    """``python -m experiments.pretrain_backbones``: parse ``argv`` (default
    ``sys.argv[1:]``), train every member on the training draw, score every draw of
    ``--score-data-seeds``, write the run folder's outputs (see the module docstring) and
    print a summary. Returns the exit status (0)."""
    given = parse_config(PretrainConfig, argv)
    if given.out is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise SystemExit("error: under torchrun every process writes to one run folder: give "
                         "it with --out")
    cfg = resolve_profile(given)
    commit = git_commit()  # before any table is installed (installing one changes the tree)
    if cfg.export_reference and commit.endswith("+dirty"):
        raise SystemExit("error: --export-reference records the commit that made the tables, "
                         "and tracked files differ from it: commit (or stash) them first")
    context = init_distributed(cfg.device)  # the processes of a torchrun launch, or this one
    try:
        return run(cfg, argv, commit, context)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def run(cfg: PretrainConfig, argv: list[str] | None, commit: str,
        context: DistributedContext) -> int:
    """The run of :func:`main` in one process. Under ``torchrun`` every process trains each
    member together (DistributedDataParallel); the main process alone prepares the data
    first, scores the draws and writes the outputs."""
    assert cfg.out is not None and cfg.models is not None and cfg.data_seed is not None
    assert cfg.image_size is not None and cfg.epochs is not None
    assert cfg.score_data_seeds is not None
    start = time.perf_counter()
    if context.is_main:
        start_run_folder(cfg)
        data_root, data = prepare_data(cfg)
    context.barrier()
    if not context.is_main:
        data_root, data = prepare_data(cfg)  # generated by the main process
    trained = [train_member(cfg, data_root, data, model, size, epochs, context)
               for model, size, epochs in zip(cfg.models, cfg.image_size, cfg.epochs,
                                              strict=True)]
    if not context.is_main:
        return 0
    members = [m for m in trained if m is not None]
    device = context.device
    draws = [draw_result(cfg, data, cfg.data_seed, cfg.out, members,
                         [m.logits for m in members], 0.0)
             if seed == cfg.data_seed else score_other_draw(cfg, seed, members, device)
             for seed in cfg.score_data_seeds]
    wall_seconds = time.perf_counter() - start
    model_seconds = {m.name: m.seconds for m in members}
    for draw in draws:
        write_draw(cfg, sys.argv[1:] if argv is None else argv, draw, wall_seconds,
                   model_seconds, commit)
    for draw in draws:
        print_summary(draw.folder, cfg, draw.metrics, {**draw.report,
                                                       "wall_seconds": wall_seconds})
    return 0


if __name__ == "__main__":
    sys.exit(main())
