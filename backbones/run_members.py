"""The ensemble members of a pretraining run folder, loaded from their final checkpoints and
checked against the run's logits table (:mod:`backbones.runs`)."""

from __future__ import annotations

from pathlib import Path

import torch

from backbones.checkpoint import CHECKPOINT, load_checkpoint
from backbones.gradcam import Member, resolve_target_layer
from backbones.registry import (
    UnknownModelError,
    build_model,
    checkpoint_model_options,
    get_spec,
)
from backbones.runs import RunInputError
from mura_env.common.atomic import file_sha256
from mura_env.logits import LogitsTable


def load_members(run: Path, table: LogitsTable, model_names: tuple[str, ...],
                 device: torch.device) -> list[Member]:
    """Load each model's ``checkpoint.pth`` of run folder ``run`` (the last epoch's model, the
    one ``table``'s logits came from) onto ``device``, in evaluation mode.

    Checks that each checkpoint exists, is the one recorded in the table's manifest (sha256),
    belongs to that model and data set, and fits the registry architecture.

    Returns:
        One :class:`backbones.gradcam.Member` per name of ``model_names``, in that order, with
        the registry's target layer and the input size the logits were computed at.

    Raises:
        RunInputError: a checkpoint is missing or does not match.
    """
    members = []
    for name in model_names:
        try:
            spec = get_spec(name)
        except UnknownModelError as e:
            raise RunInputError(f"the run's logits table has a model the registry does not "
                                f"know: {e}") from None
        path = run / name / CHECKPOINT
        if not path.is_file():
            found = sorted(p.name for p in (run / name).glob("*.pth")) if (run / name).is_dir() \
                else []
            raise RunInputError(
                f"run folder {run} has no checkpoint for {name}: expected {path} (the final "
                f"checkpoint pretrain_backbones writes and computes the logits with)"
                + (f"; found only {found}" if found else "")
                + ". Pass the run folder that holds the models' checkpoints.")
        config = table.model_configs.get(name, {})
        recorded = config.get("checkpoint_sha256")
        if recorded and file_sha256(path) != recorded:
            raise RunInputError(
                f"{path} is not the checkpoint this run's logits were computed with (its sha256 "
                "differs from the one in logits.manifest.json): its predictions and heatmaps "
                "would be another model's. Rerun the pretraining's logits or use the matching "
                "run folder.")
        ckpt = load_checkpoint(path)
        args = ckpt.get("args") or {}
        if args.get("model", name) != name:
            raise RunInputError(f"{path} holds a {args['model']!r} model, not {name!r}")
        fingerprint = ckpt.get("data_fingerprint")
        if fingerprint and table.data_fingerprint and fingerprint != table.data_fingerprint:
            raise RunInputError(f"{path} was trained on another data set than the logits "
                                "table of its run folder (data fingerprints differ)")
        size = config.get("image_size") or args.get("image_size") or spec.default_size
        model = build_model(name, **checkpoint_model_options(args))
        try:
            model.load_state_dict(ckpt["model"])
        except (KeyError, RuntimeError) as e:
            raise RunInputError(f"{path} does not fit the registry's {name}: {e}") from e
        model.to(device).eval()
        resolve_target_layer(model, spec.target_layer)
        members.append(Member(name, model, spec.target_layer, int(size)))
    return members
