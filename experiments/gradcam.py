"""Per-model and ensemble-weighted Grad-CAM panels for chosen studies of a pretraining run.

    python -m experiments.gradcam [--run runs/pretrain/<run>] [--agent runs/agents/<run>]
                                  [--study STUDY_ID ... | --n 8] [--split valid] [--out DIR]

For every image of every chosen study it writes one PNG panel: the radiograph; one Grad-CAM
heatmap per backbone (abnormal class, on the target layer the registry records for the model)
with that backbone's abnormality probability and its ensemble weight; the ensemble map (the
weight-averaged normalised member maps); and in the title the study's ensemble probability,
prediction and true label. ``--out`` also gets ``index.html`` (every panel under its study id,
for a browser), ``panels.csv`` (the numbers behind every panel) and ``config.json``.

Ensemble weights are uniform (1/K) without ``--agent``; with it, the agent's weights for each
study (the agent must have been trained on this run's logits table). Images go through exactly
the preprocessing of the study logits (letterbox to the model's input size, then the evaluation
transform) with the checkpoints the logits were computed with (``<run>/<model>/best.pth``,
checked against the table's recorded sha256); every map is aligned with the original image.

Without ``--study``, ``--n`` studies of ``--split`` are chosen to be informative, in turn:
confidently wrong ones, confidently correct ones, and the ones whose agent weights differ most
from uniform (without an agent: the ones whose members disagree most).

Synthetic data: panels of it say nothing about clinical performance.
"""

from __future__ import annotations

import difflib
import json
import sys
import time
from dataclasses import dataclass, field, replace
from itertools import zip_longest
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from backbones import gradcam as gc
from backbones.cache import decode
from backbones.registry import UnknownModelError, build_model, get_spec
from backbones.train import BEST, load_checkpoint, resolve_device
from experiments.logits_source import PRETRAIN_RUNS, newest_pretrain_logits
from mura_env.common.atomic import atomic_write_bytes, file_sha256
from mura_env.common.config_cli import parse_config, save_config
from mura_env.constants import MURA_DIRNAME, SPLITS
from mura_env.data import MuraData, load_mura
from mura_env.logits import DEFAULT_LOGITS_PATH, LogitsTable, manifest_path

PRETRAIN_DIR = PRETRAIN_RUNS
#: The env's default decision rule: prediction = ensemble probability > threshold.
DEFAULT_THRESHOLD = 0.5


class GradCamInputError(ValueError):
    """A run folder, study id, agent or data set the user passed cannot be used (the message
    says what was expected and how to fix it)."""


@dataclass
class GradCamConfig:
    """Grad-CAM panels (per backbone and ensemble-weighted) for studies of a pretraining run."""

    run: Path | None = field(default=None, metadata={
        "help": "pretraining run folder (default: the run behind the built-in default table, "
                "else the newest under runs/pretrain)"})
    agent: Path | None = field(default=None, metadata={
        "help": "agent run folder (python -m experiments.train_agent); default uniform weights"})
    study: tuple[str, ...] | None = field(default=None, metadata={
        "help": "study id(s), e.g. valid/XR_WRIST/patient11185/study1_positive (default: --n "
                "informative studies of --split)"})
    n: int = field(default=8, metadata={"help": "how many studies to choose without --study"})
    split: str = field(default="valid", metadata={"help": "split to choose studies from",
                                                  "choices": list(SPLITS)})
    out: Path | None = field(default=None, metadata={
        "help": "output folder (default runs/gradcam/<run>[_<agent>])"})
    data_root: Path | None = field(default=None, metadata={
        "help": "folder holding MURA-v1.1/ (default: the run's data set)"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N"})
    threads: int = field(default=1, metadata={
        "help": "torch CPU threads (0: torch's default); the maps are small, and more threads "
                "slow down badly when other jobs share the cores"})
    dpi: int = field(default=80, metadata={"help": "panel resolution"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})


@dataclass
class Member:
    """A loaded ensemble member: registry name, model (eval mode), Grad-CAM layer path, input
    size."""

    name: str
    model: nn.Module
    target_layer: str
    image_size: int


# ---------------------------------------------------------------------------- inputs
def default_run() -> Path:
    """The default run folder: the one whose checkpoints made the built-in default logits table
    (when it is still here), else the newest ``runs/pretrain/*`` with a logits table.

    Raises:
        GradCamInputError: there is no such folder.
    """
    manifest = manifest_path(DEFAULT_LOGITS_PATH)
    if manifest.is_file():
        configs = json.loads(manifest.read_text()).get("model_configs", {})
        for cfg in configs.values():
            ckpt = cfg.get("checkpoint") if isinstance(cfg, dict) else None
            if ckpt and (Path(ckpt).parent.parent / "logits.parquet").is_file():
                return Path(ckpt).parent.parent
    newest = newest_pretrain_logits(PRETRAIN_DIR)
    if newest is not None:
        return newest.parent
    raise GradCamInputError(
        f"no pretraining run found under {PRETRAIN_DIR}/ (a folder with logits.parquet). Make "
        "one with python -m experiments.pretrain_backbones, or pass --run FOLDER.")


def load_run_table(run: Path) -> LogitsTable:
    """The logits table of run folder ``run`` (``run/logits.parquet``).

    Raises:
        GradCamInputError: ``run`` is not a pretraining run folder.
    """
    if not run.is_dir():
        raise GradCamInputError(f"--run {run}: no such folder; expected a pretraining run folder "
                                "written by python -m experiments.pretrain_backbones")
    if not (run / "logits.parquet").is_file():
        raise GradCamInputError(
            f"--run {run} has no logits.parquet: expected a finished pretraining run folder "
            "(python -m experiments.pretrain_backbones --out FOLDER, or --resume to finish it).")
    return LogitsTable.load(run / "logits.parquet")


def load_members(run: Path, table: LogitsTable, model_names: tuple[str, ...],
                 device: torch.device) -> list[Member]:
    """Load each model's ``best.pth`` of ``run`` (the checkpoint the table's logits came from).

    Checks that each checkpoint exists, is the one recorded in the table's manifest (sha256),
    belongs to that model and data set, and fits the registry architecture.

    Raises:
        GradCamInputError: a checkpoint is missing or does not match.
    """
    members = []
    for name in model_names:
        try:
            spec = get_spec(name)
        except UnknownModelError as e:
            raise GradCamInputError(f"the run's logits table has a model the registry does not "
                                    f"know: {e}") from None
        path = run / name / BEST
        if not path.is_file():
            found = sorted(p.name for p in (run / name).glob("*.pth")) if (run / name).is_dir() \
                else []
            raise GradCamInputError(
                f"run folder {run} has no checkpoint for {name}: expected {path} (the best "
                f"checkpoint pretrain_backbones writes and computes the logits with)"
                + (f"; found only {found}" if found else "")
                + ". Pass the run folder that holds the models' checkpoints.")
        config = table.model_configs.get(name, {})
        recorded = config.get("checkpoint_sha256")
        if recorded and file_sha256(path) != recorded:
            raise GradCamInputError(
                f"{path} is not the checkpoint this run's logits were computed with (its sha256 "
                "differs from the one in logits.manifest.json); the heatmaps would explain "
                "another model. Rerun the pretraining's logits or use the matching run folder.")
        ckpt = load_checkpoint(path)
        args = ckpt.get("args") or {}
        if args.get("model", name) != name:
            raise GradCamInputError(f"{path} holds a {args['model']!r} model, not {name!r}")
        fingerprint = ckpt.get("data_fingerprint")
        if fingerprint and table.data_fingerprint and fingerprint != table.data_fingerprint:
            raise GradCamInputError(f"{path} was trained on another data set than the logits "
                                    "table of its run folder (data fingerprints differ)")
        size = config.get("image_size") or args.get("image_size") or spec.default_size
        model = build_model(name)
        try:
            model.load_state_dict(ckpt["model"])
        except (KeyError, RuntimeError) as e:
            raise GradCamInputError(f"{path} does not fit the registry's {name}: {e}") from e
        model.to(device).eval()
        gc.resolve_target_layer(model, spec.target_layer)
        members.append(Member(name, model, spec.target_layer, int(size)))
    return members


def run_data(run: Path, table: LogitsTable, data_root: Path | None) -> MuraData:
    """The data set of ``run`` (``--data-root`` or the one its config.json names), checked
    against the logits table's data fingerprint.

    Raises:
        GradCamInputError: the data set is missing or is not the one the run used.
    """
    run_cfg: dict[str, Any] = {}
    if (run / "config.json").is_file():
        run_cfg = json.loads((run / "config.json").read_text())
    root = data_root or Path(run_cfg.get("data_root") or run_cfg.get("synthetic_dir")
                             or "data/synthetic")
    try:
        data = load_mura(root, tune_fraction=float(run_cfg.get("tune_fraction", 0.2)),
                         seed=int(run_cfg.get("seed", 0)))
    except (OSError, ValueError) as e:
        raise GradCamInputError(f"cannot read the run's images at {root}: {e}. Pass --data-root "
                                f"FOLDER (the folder holding {MURA_DIRNAME}/).") from e
    if table.data_fingerprint and data.fingerprint != table.data_fingerprint:
        raise GradCamInputError(
            f"the data set at {root} is not the one {run} was trained on (data fingerprints "
            f"differ). Pass --data-root with the run's data set.")
    return data


def load_agent_weights(agent_dir: Path, table: LogitsTable
                       ) -> tuple[tuple[str, ...], np.ndarray, str, float]:
    """Ensemble weights of the agent in ``agent_dir`` for every study of ``table``.

    Returns:
        The agent's model names (``K``), float64 weights ``(n_studies, K)`` in table order
        (rows sum to 1), a short label of the agent and the decision threshold it was trained
        with (0.5 unless its env arguments say otherwise).

    Raises:
        GradCamInputError: the agent cannot be loaded, was trained on another logits table,
            or returns malformed weights (``AgentMismatchError`` passes through unchanged).
    """
    from agents.saved import load_agent
    from mura_env.env import WeightingProblem

    agent = load_agent(agent_dir)
    agent.check_table(table)
    names = tuple(agent.model_names)
    problem = WeightingProblem(logits=table, split=None, models=names)
    weights = np.asarray(agent.weights(problem.observations), dtype=np.float64)
    if weights.shape != (len(table), len(names)) or not np.isfinite(weights).all() \
            or (weights < -1e-9).any() or not np.allclose(weights.sum(1), 1.0, atol=1e-4):
        raise GradCamInputError(
            f"agent {agent_dir} returned weights of shape {weights.shape} that are not "
            f"non-negative rows summing to 1; expected ({len(table)}, {len(names)})")
    env_kwargs = getattr(agent, "env_kwargs", None) or {}
    threshold = float(env_kwargs.get("threshold", DEFAULT_THRESHOLD))
    return names, weights, f"{getattr(agent, 'algo', 'agent')} agent", threshold


def normalise_study_id(study_id: str) -> str:
    """A study id as the tables spell it: no ``MURA-v1.1/`` prefix, no trailing slash."""
    sid = study_id.strip().replace("\\", "/").strip("/")
    return sid.removeprefix(MURA_DIRNAME + "/")


def resolve_studies(wanted: tuple[str, ...], study_ids: np.ndarray) -> list[int]:
    """Row indices of the study ids ``wanted`` (see :func:`normalise_study_id`) in
    ``study_ids``.

    Raises:
        GradCamInputError: an unknown study id (the message suggests close ones).
    """
    index = {s: i for i, s in enumerate(study_ids)}
    rows = []
    for raw in wanted:
        sid = normalise_study_id(raw)
        if sid not in index:
            close = difflib.get_close_matches(sid, list(index), n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise GradCamInputError(
                f"unknown study {raw!r}: it is not in the run's logits table ({len(index)} "
                f"studies). Study ids look like {study_ids[0]!r}.{hint}")
        if index[sid] not in rows:
            rows.append(index[sid])
    return rows


# ---------------------------------------------------------------------------- choosing
def select_studies(probabilities: np.ndarray, weights: np.ndarray, labels: np.ndarray,
                   candidates: np.ndarray, n: int,
                   threshold: float = 0.5) -> list[tuple[int, str]]:
    """Choose ``n`` informative studies among the rows ``candidates``, deterministically.

    Takes in turn (skipping repeats): the most confidently *wrong* ensemble prediction, the
    most confidently *correct* one (each of these two lists alternates abnormal and normal
    studies, most confident first), and the study whose weights are farthest from uniform
    (total variation distance); when every weight is uniform, the study whose members disagree
    most (max - min probability) instead. A category that runs out is skipped.

    Args:
        probabilities: float ``(S, K)`` member abnormality probabilities.
        weights: float ``(S, K)`` ensemble weights (rows sum to 1).
        labels: int ``(S,)`` true labels (1 = abnormal).
        candidates: int row indices to choose from.
        n: how many (fewer when there are fewer candidates).
        threshold: prediction = ensemble probability > threshold.

    Returns:
        ``(row, reason)`` pairs in display order.
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    p = (weights[candidates] * probabilities[candidates]).sum(1)
    pred = (p > threshold).astype(np.int64)
    correct = pred == labels[candidates]
    confidence = np.abs(p - threshold)
    k = weights.shape[1]
    deviation = 0.5 * np.abs(weights[candidates] - 1.0 / k).sum(1)
    spread = probabilities[candidates].max(1) - probabilities[candidates].min(1)

    def ranked(mask: np.ndarray, key: np.ndarray, by_label: bool = False) -> list[int]:
        idx = np.flatnonzero(mask)
        idx = idx[np.argsort(-key[idx], kind="stable")]
        if not by_label:
            return idx.tolist()
        # alternate the labels (abnormal first), so that both kinds of study show up
        per_label = [idx[labels[candidates[idx]] == c].tolist() for c in (1, 0)]
        out = []
        for pair in zip_longest(*per_label):
            out += [j for j in pair if j is not None]
        return out

    everything = np.ones(len(candidates), dtype=bool)
    groups = [(ranked(~correct, confidence, True), lambda j: f"wrong, ensemble p={p[j]:.2f}"),
              (ranked(correct, confidence, True), lambda j: f"correct, ensemble p={p[j]:.2f}")]
    if deviation.max(initial=0.0) > 1e-6:
        groups.append((ranked(everything, deviation),
                       lambda j: f"weights far from uniform (distance {deviation[j]:.2f})"))
    else:
        groups.append((ranked(everything, spread),
                       lambda j: f"members disagree (spread {spread[j]:.2f})"))
    chosen: list[tuple[int, str]] = []
    seen: set[int] = set()
    cursors = [0] * len(groups)
    while len(chosen) < min(n, len(candidates)):
        progressed = False
        for g, (order, reason) in enumerate(groups):
            while cursors[g] < len(order) and order[cursors[g]] in seen:
                cursors[g] += 1
            if cursors[g] < len(order) and len(chosen) < n:
                j = order[cursors[g]]
                seen.add(j)
                chosen.append((int(candidates[j]), reason(j)))
                progressed = True
        if not progressed:
            break
    return chosen


# ---------------------------------------------------------------------------- main
def _slug(study_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in study_id)


def _clear_old_panels(out: Path) -> None:
    """Remove the panels a previous run listed in ``out/panels.csv`` (and nothing else)."""
    old = out / "panels.csv"
    if old.is_file():
        try:
            names = pd.read_csv(old)["png"].astype(str).tolist()
        except (ValueError, KeyError):  # not ours, or damaged: leave the folder alone
            return
        for name in names:
            path = out / Path(name).name
            if path.suffix == ".png" and path.is_file():
                path.unlink()


def run_gradcam(cfg: GradCamConfig) -> dict[str, Any]:
    """Make the panels, ``index.html``, ``panels.csv`` and ``config.json`` in ``cfg.out``.

    Returns:
        ``{"out", "panels" (list of PNG paths), "studies" (ids), "seconds"}``.

    Raises:
        GradCamInputError (a ValueError), FileNotFoundError: unusable inputs.
    """
    threads = torch.get_num_threads()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    try:
        return _run_gradcam(cfg)
    finally:
        torch.set_num_threads(threads)


def _run_gradcam(cfg: GradCamConfig) -> dict[str, Any]:
    start = time.perf_counter()
    run = cfg.run or default_run()
    if cfg.n < 1 and not cfg.study:
        raise GradCamInputError(f"--n must be at least 1, got {cfg.n}")
    table = load_run_table(run)
    if cfg.agent is not None:
        names, weights, source, threshold = load_agent_weights(cfg.agent, table)
    else:
        names = table.model_names
        weights = np.full((len(table), len(names)), 1.0 / len(names))
        source = "uniform"
        threshold = DEFAULT_THRESHOLD
    sub = table.select(models=names)
    probabilities = sub.abnormal_probabilities().astype(np.float64)  # (S, K)
    labels = sub.studies["label"].to_numpy(np.int64)
    study_ids = sub.studies["study_id"].to_numpy(object)
    ensemble_p = (weights * probabilities).sum(1)

    if cfg.study:
        chosen = [(i, "requested") for i in resolve_studies(cfg.study, study_ids)]
    else:
        candidates = np.flatnonzero(sub.studies["split"].to_numpy() == cfg.split)
        if len(candidates) == 0:
            counts = sub.studies["split"].value_counts().to_dict()
            raise GradCamInputError(f"the run's logits table has no {cfg.split!r} studies "
                                    f"(it has {counts}); pick another --split")
        chosen = select_studies(probabilities, weights, labels, candidates, cfg.n, threshold)

    device = resolve_device(cfg.device)
    members = load_members(run, table, names, device)
    data = run_data(run, table, cfg.data_root)
    synthetic = (data.root / "SYNTHETIC.json").is_file()
    out = cfg.out or Path("runs/gradcam") / (run.name + (f"_{cfg.agent.name}" if cfg.agent
                                                         else ""))
    out.mkdir(parents=True, exist_ok=True)
    _clear_old_panels(out)
    save_config(replace(cfg, run=run, out=out), out / "config.json")

    images_by_study = data.images.groupby("study_id", sort=False)["path"].apply(list)
    rows, entries, pngs = [], [], []
    for order, (i, reason) in enumerate(tqdm(chosen, desc="studies", unit="study",
                                             disable=not cfg.progress)):
        sid = str(study_ids[i])
        paths = images_by_study.get(sid, [])
        images = [decode(p) for p in paths]
        bad = [p for p, im in zip(paths, images, strict=True) if im is None]
        if not paths or bad:
            raise GradCamInputError(f"study {sid}: " + (f"cannot decode {bad}" if bad else
                                                        "no images in the data set"))
        maps, p_images = [], []
        for m in members:
            heat, p_img = gc.image_heatmaps(m.model, m.target_layer, images, m.image_size)
            maps.append(heat)
            p_images.append(p_img)
        p_images_arr = np.stack(p_images, axis=1)  # (n_images, K)
        recomputed = p_images_arr.mean(0)
        gap = np.abs(np.clip(recomputed, 1e-6, 1 - 1e-6) - probabilities[i])
        if gap.max() > 1e-3:
            print(f"warning: {sid}: recomputed study probabilities {recomputed.round(4)} differ "
                  f"from the logits table's {probabilities[i].round(4)}; were the images or "
                  "checkpoints changed after the logits were written?", file=sys.stderr)
        prediction = int(ensemble_p[i] > threshold)
        panel_files = []
        for j, (path, image) in enumerate(zip(paths, images, strict=True)):
            member_maps = np.stack([maps[k][j] for k in range(len(members))])
            panel = gc.Panel(
                image=image, maps=member_maps, model_names=names,
                image_probabilities=p_images_arr[j], study_probabilities=probabilities[i],
                weights=weights[i], ensemble=gc.ensemble_map(member_maps, weights[i]),
                ensemble_probability=float(ensemble_p[i]), prediction=prediction,
                label=int(labels[i]), study_id=sid,
                image_name=f"{Path(path).name} ({j + 1}/{len(paths)})",
                weights_source=source, synthetic=synthetic)
            name = f"{order:02d}_{_slug(sid)}_{Path(path).stem}.png"
            gc.render_panel(panel, out / name, dpi=cfg.dpi)
            panel_files.append(name)
            pngs.append(out / name)
            row: dict[str, Any] = {"study_id": sid, "image": Path(path).name, "png": name,
                                   "reason": reason, "label": int(labels[i]),
                                   "ensemble_probability": float(ensemble_p[i]),
                                   "prediction": prediction}
            for k, m in enumerate(names):
                row[f"{m}.weight"] = float(weights[i, k])
                row[f"{m}.p_study"] = float(probabilities[i, k])
                row[f"{m}.p_image"] = float(p_images_arr[j, k])
            rows.append(row)
        verdict = "correct" if prediction == labels[i] else "WRONG"
        summary = (f"{len(paths)} image(s); ensemble p(abnormal)={ensemble_p[i]:.3f} -> "
                   f"{gc.LABEL_NAMES[prediction]}, true {gc.LABEL_NAMES[int(labels[i])]} "
                   f"({verdict}); {source} weights: "
                   + ", ".join(f"{m} {weights[i, k]:.2f}" for k, m in enumerate(names)))
        entries.append(gc.IndexEntry(sid, reason, summary, panel_files))

    notes = []
    if synthetic:
        notes.append("SYNTHETIC data: these images are generated, not radiographs of patients; "
                     "the panels say nothing about clinical performance.")
    notes.append(f"Run {run}, {source} ensemble weights. Heatmaps: Grad-CAM of the abnormal "
                 "class, aligned with each original image; the ensemble map is the "
                 "weight-average of the normalised member maps.")
    gc.write_index(out, entries, title=f"Grad-CAM panels: {run.name}", notes=notes)
    atomic_write_bytes(out / "panels.csv", pd.DataFrame(rows).to_csv(index=False).encode())
    return {"out": out, "panels": pngs, "studies": [e.study_id for e in entries],
            "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 on unusable inputs)."""
    cfg = parse_config(GradCamConfig, argv)
    try:
        result = run_gradcam(cfg)
    except (OSError, ValueError) as e:  # GradCamInputError, AgentMismatchError, table errors
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{len(result['panels'])} panel(s) of {len(result['studies'])} studies in "
          f"{result['out']} ({result['seconds']:.1f} s); open {result['out'] / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
