"""Synthetic MURA-format data set: the project's built-in stand-in for MURA-v1.1.

Writes ``OUT/MURA-v1.1/`` with the real folder layout and the four CSVs in Stanford's exact
format, filled with procedurally drawn 8-bit grayscale radiographs. Abnormal studies show at
least one finding in at least one view, one of the six kinds of :data:`FINDING_MIX`: hardware,
fracture, lytic lesion, joint-space narrowing, soft-tissue swelling or osteopenia. The mix of
findings differs by body part, so body parts differ in difficulty. Everything it
writes is marked synthetic (``SYNTHETIC.json``, a PNG text chunk): results on it say nothing
about clinical performance.

The same seed and scale give byte-identical files whatever ``workers`` is. The command line
is :mod:`experiments.synthetic.__main__`; the contact sheet :mod:`mura_env.synthetic.preview`.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mura_env.constants import MURA_DIRNAME
from mura_env.synthetic.anatomy import TEMPLATES, Anatomy, Capsule, Shape
from mura_env.synthetic.plan import plan_dataset, study_relpath
from mura_env.synthetic.render import Finding, View, render

GENERATOR_VERSION = 7
MANIFEST_NAME = "SYNTHETIC.json"
SYNTHETIC_NOTE = (
    "Synthetic MURA-format data made by mura-rl (python -m experiments.synthetic). These are "
    "procedurally drawn pictures, not radiographs of people; results on them say nothing "
    "about clinical performance."
)

#: Mix of finding kinds among abnormal studies, per body part.
#: Local findings (fracture, lesion, hardware) are small; narrowing is a joint-sized change;
#: swelling (soft tissue) and osteopenia (less dense bone) change the whole picture at low
#: contrast.
FINDING_MIX: dict[str, dict[str, float]] = {
    "ELBOW": {"swelling": 0.35, "fracture": 0.25, "hardware": 0.15, "narrowing": 0.15,
              "lesion": 0.1},
    "FINGER": {"swelling": 0.35, "fracture": 0.3, "narrowing": 0.2, "lesion": 0.1,
               "hardware": 0.05},
    "FOREARM": {"osteopenia": 0.3, "hardware": 0.3, "fracture": 0.3, "lesion": 0.1},
    "HAND": {"osteopenia": 0.35, "fracture": 0.25, "narrowing": 0.2, "lesion": 0.1,
             "hardware": 0.1},
    "HUMERUS": {"hardware": 0.3, "fracture": 0.3, "osteopenia": 0.25, "lesion": 0.15},
    "SHOULDER": {"osteopenia": 0.3, "hardware": 0.3, "narrowing": 0.2, "fracture": 0.15,
                 "lesion": 0.05},
    "WRIST": {"fracture": 0.3, "osteopenia": 0.25, "swelling": 0.2, "hardware": 0.15,
              "narrowing": 0.1},
}
#: Ranges of the uniform draws that set how plain a finding is (low, high).
NORMAL_GAP = (1.0, 1.4)  # joint-space scale of a study without narrowing
NARROWING_GAP = (-0.5, 0.05)  # joint-space scale of a narrowing (lower: narrower)
SWELLING_GROW = (1.7, 2.1)  # soft-tissue widening of a swelling
OSTEOPENIA_THIN = (0.3, 0.45)  # bone density factor of an osteopenia (lower: thinner)
FRACTURE_WIDTH = (8.0, 14.0)  # fracture gap, pixels at full size
FRACTURE_ANGLE = 0.6  # the fracture line's tilt is uniform in +-this (radians)
FRACTURE_OFFSET = (0.5, 1.1)  # displacement of a displaced fracture, bone radii
UNDISPLACED_P = 0.3  # share of fractures without displacement
LESION_DEPTH = (0.85, 1.0)  # a lytic lesion's contrast
LESION_SIZE = (1.0, 1.6)  # a lytic lesion's radius, bone radii
HARDWARE_T = (0.35, 0.65)  # where along the bone hardware is centred
VIEW_SQUASH = (1.0, 0.45, 0.75)  # AP, lateral, oblique
SHOW_FINDING_P = 1.0  # chance that a view of an abnormal study shows its finding
GROWTH_PLATE_P = 0.2
_PNG_TEXT = b"Source\x00mura-rl synthetic MURA-format data (not a radiograph of a person)"


@dataclass
class StudySpec:
    """What a study looks like: its anatomy, findings, which views show them, its laterality.

    ``draws`` keeps the drawn numbers that change the anatomy rather than add a finding:
    ``gap`` (joint-space scale; below 0.1 for ``narrowing``, 1.0-1.4 otherwise), ``grow``
    (soft-tissue widening of a ``swelling``) and ``thin`` (bone density factor of an
    ``osteopenia``), each present only when drawn.
    """

    kind: str  # "normal" or the finding kind
    anatomy: Anatomy
    findings: list[Finding]
    shows: list[bool]  # per view: does it show the (non-anatomical) finding?
    marker: str
    draws: dict[str, float] = field(default_factory=dict)


def _swollen(shape: Shape, grow: float) -> Shape:
    """Soft tissue widened by ``grow`` and made denser (a swelling or an effusion)."""
    if isinstance(shape, Capsule):
        return replace(shape, r=shape.r * grow, density=shape.density * 1.5)
    return replace(shape, a=shape.a * (1 + (grow - 1) / 2), b=shape.b * grow,
                   density=shape.density * 1.5)


def sample_study(part: str, label: int, n_images: int, seed: int, study_index: int) -> StudySpec:
    """Draw a study's anatomy and findings; a pure function of its arguments.

    Args:
        part: body part, a key of :data:`FINDING_MIX` (one of ``BODY_PARTS``).
        label: 1 abnormal (one finding kind drawn from the part's mix), 0 normal.
        n_images: number of views of the study.
        seed: data set seed.
        study_index: the study's ``study_index`` in the plan (seeds its drawing).

    Returns:
        A :class:`StudySpec`: ``kind`` is ``"normal"`` or the finding kind; ``shows`` has one
        entry per view, at least one True.
    """
    rng = np.random.default_rng([seed, 1, study_index])
    kind = "normal"
    if label == 1:
        kinds = list(FINDING_MIX[part])
        shares = np.array([FINDING_MIX[part][finding] for finding in kinds])
        kind = kinds[int(rng.choice(len(kinds), p=shares / shares.sum()))]
    gap = rng.uniform(*NARROWING_GAP) if kind == "narrowing" else rng.uniform(*NORMAL_GAP)
    anatomy = TEMPLATES[part](rng, gap)
    draws = {"gap": float(gap)}
    if kind == "swelling":
        grow = rng.uniform(*SWELLING_GROW)
        draws["grow"] = float(grow)
        anatomy.soft = [_swollen(shape, grow) for shape in anatomy.soft]
    elif kind == "osteopenia":
        thin = rng.uniform(*OSTEOPENIA_THIN)
        draws["thin"] = float(thin)
        anatomy.bones = [replace(bone, density=bone.density * thin, cortex=bone.cortex * 0.6)
                         for bone in anatomy.bones]
    findings: list[Finding] = []
    if kind in ("fracture", "lesion", "hardware"):
        bone = int(rng.choice(anatomy.long_bones))
        if kind == "fracture":
            findings.append(Finding(
                "fracture", bone, t=rng.uniform(0.25, 0.75),
                angle=rng.uniform(-FRACTURE_ANGLE, FRACTURE_ANGLE),
                width=rng.uniform(*FRACTURE_WIDTH),
                offset=0.0 if rng.random() < UNDISPLACED_P
                else rng.uniform(*FRACTURE_OFFSET) * rng.choice([-1, 1])))
        elif kind == "lesion":
            findings.append(Finding(
                "lesion", bone, t=rng.uniform(0.25, 0.75), depth=rng.uniform(*LESION_DEPTH),
                size=rng.uniform(*LESION_SIZE), side=rng.uniform(-0.2, 0.2)))
        else:
            findings.append(Finding(
                "hardware", bone, t=rng.uniform(*HARDWARE_T), side=rng.choice([-1.0, 1.0]),
                variant=int(rng.random() < 0.3)))
    shows = [True] * n_images
    if kind in ("fracture", "lesion"):
        shows = list(rng.random(n_images) < SHOW_FINDING_P)
        if not any(shows):
            shows[int(rng.integers(n_images))] = True
    if rng.random() < GROWTH_PLATE_P:  # a child: growth plates, a normal variant
        for bone in rng.choice(anatomy.long_bones, size=min(2, len(anatomy.long_bones)),
                               replace=False):
            findings.append(Finding("growth_plate", int(bone), t=rng.choice([0.1, 0.9]),
                                    width=1.5))
    return StudySpec(kind, anatomy, findings, shows, marker="L" if rng.random() < 0.5 else "R",
                     draws=draws)


def sample_view(view_index: int, marker: str, rng: np.random.Generator) -> View:
    """Draw the canvas, projection and exposure of one view.

    Args:
        view_index: the view's position in its study (0 AP, 1 lateral, 2 oblique, then random
            projections).
        marker: the study's laterality letter, ``"L"`` (mirrored) or ``"R"``.
        rng: the view's random generator.

    Returns:
        A :class:`~mura_env.synthetic.render.View` at most 512 pixels on its long side.
    """
    long_side = int(rng.integers(360, 513))
    short_side = int(long_side * rng.uniform(0.62, 0.9))
    portrait = rng.random() < 0.75
    h, w = (long_side, short_side) if portrait else (short_side, long_side)
    rotation = (np.pi / 2 if portrait else 0.0) + rng.uniform(-0.3, 0.3)
    squash = VIEW_SQUASH[view_index] if view_index < 3 else rng.uniform(0.5, 1.0)
    collimation = tuple(int(rng.uniform(0.03, 0.14) * (h if side < 2 else w))
                        if rng.random() < 0.25 else 0 for side in range(4))
    return View(
        height=h, width=w, rotation=float(rotation), squash=float(squash),
        mirror=marker == "L", zoom=rng.uniform(0.85, 1.1),
        shift=(rng.uniform(-0.08, 0.08), rng.uniform(-0.08, 0.08)),
        gain=rng.uniform(0.9, 1.6), gamma=rng.uniform(0.7, 1.4), low=rng.uniform(0.02, 0.12),
        high=rng.uniform(0.78, 1.0), noise=rng.uniform(0.008, 0.035),
        gradient=(rng.uniform(-0.06, 0.06), rng.uniform(-0.06, 0.06)),
        collimation=collimation, collim_level=rng.uniform(0.5, 0.95), marker=marker,
        marker_corner=int(rng.integers(4)),
    )


def render_study(part: str, label: int, n_images: int, seed: int,
                 study_index: int) -> tuple[StudySpec, list[np.ndarray]]:
    """Draw every view of a study: its spec and ``n_images`` uint8 arrays (H, W)."""
    spec = sample_study(part, label, n_images, seed, study_index)
    images = []
    for view_index in range(n_images):
        rng = np.random.default_rng([seed, 2, study_index, view_index])
        view = sample_view(view_index, spec.marker, rng)
        findings = [finding for finding in spec.findings
                    if finding.kind == "growth_plate" or spec.shows[view_index]]
        images.append(render(spec.anatomy, view, findings, rng))
    return spec, images


def encode_png(img: np.ndarray) -> bytes:
    """PNG bytes of a uint8 (H, W) image, tagged as synthetic in a tEXt chunk; deterministic.

    OpenCV's encoder (zlib level 1, RLE strategy) is about twice as fast as Pillow's here.
    """
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 1,
                                         cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE])
    if not ok:
        raise RuntimeError("OpenCV could not encode a PNG")
    data = buf.tobytes()
    # The tEXt chunk goes right after the signature (8 bytes) and the IHDR chunk (25 bytes).
    chunk = struct.pack(">I", len(_PNG_TEXT)) + b"tEXt" + _PNG_TEXT
    chunk += struct.pack(">I", zlib.crc32(b"tEXt" + _PNG_TEXT) & 0xFFFFFFFF)
    return data[:33] + chunk + data[33:]


def _write_study(job: tuple[dict, int, str]) -> int:
    """Draw the study of ``job = (plan row, seed, study folder)`` and write its PNGs there;
    returns the number of images written."""
    row, seed, study_dir = job
    os.makedirs(study_dir, exist_ok=True)
    _, images = render_study(row["body_part"], row["label"], row["n_images"], seed,
                             row["study_index"])
    for i, img in enumerate(images, start=1):
        with open(os.path.join(study_dir, f"image{i}.png"), "wb") as f:
            f.write(encode_png(img))
    return len(images)


def _csv_bytes(plan: pd.DataFrame, split: str) -> tuple[bytes, bytes]:
    """(image_paths.csv, labeled_studies.csv) of a split, in Stanford's exact format."""
    images, studies = [], []
    for row in plan[plan["split"] == split].to_dict("records"):
        rel = f"{MURA_DIRNAME}/{study_relpath(row)}/"
        studies.append(f"{rel},{row['label']}\n")
        images += [f"{rel}image{i}.png\n" for i in range(1, row["n_images"] + 1)]
    return "".join(images).encode(), "".join(studies).encode()


def _manifest(scale: float, seed: int, plan: pd.DataFrame) -> dict:
    """The ``SYNTHETIC.json`` contents of the data set of ``plan`` made at ``scale`` and
    ``seed``."""
    from mura_env import __version__

    return {"synthetic": True, "note": SYNTHETIC_NOTE, "generator": "mura_env.synthetic",
            "generator_version": GENERATOR_VERSION, "package_version": __version__,
            "scale": scale, "seed": seed, "n_studies": int(len(plan)),
            "n_images": int(plan["n_images"].sum())}


def read_manifest(out: str | os.PathLike[str]) -> dict | None:
    """The ``SYNTHETIC.json`` of ``OUT/MURA-v1.1``, or None when there is none."""
    path = Path(out) / MURA_DIRNAME / MANIFEST_NAME
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def generate(out: str | os.PathLike[str], scale: float = 1.0, seed: int = 0,
             workers: int | None = None, overwrite: bool = False, progress: bool = True) -> Path:
    """Write a synthetic MURA-v1.1 under ``out`` and return the ``MURA-v1.1`` folder.

    An existing synthetic data set made with the same scale, seed and generator version is kept
    as it is. Anything else already at ``out/MURA-v1.1`` is an error unless ``overwrite`` is set
    (and a folder without ``SYNTHETIC.json``, such as a real MURA, is never overwritten). The
    data set is built in a temporary folder beside it and renamed into place when complete.

    Args:
        out: folder to write ``MURA-v1.1/`` into (created if needed).
        scale: size relative to the real MURA-v1.1, > 0.
        seed: random seed; the same ``scale`` and ``seed`` give byte-identical files.
        workers: drawing processes (None: one per CPU).
        overwrite: replace a synthetic data set made with other settings.
        progress: show a progress bar.

    Raises:
        FileExistsError: ``out/MURA-v1.1`` is not a synthetic data set made by mura-rl, or was
            made with other settings and ``overwrite`` is not set.
        ValueError: ``scale`` is not > 0.
    """
    out = Path(out)
    final = out / MURA_DIRNAME
    plan = plan_dataset(scale, seed)
    manifest = _manifest(scale, seed, plan)
    if final.exists():
        existing = read_manifest(out)
        keys = ("generator_version", "scale", "seed")
        if existing is not None and all(existing.get(key) == manifest[key] for key in keys):
            return final
        if existing is not None and existing.get("generator_version") != GENERATOR_VERSION \
                and all(existing.get(key) == manifest[key] for key in ("scale", "seed")):
            overwrite = True  # same request, made by an older generator: remake it
        if existing is None:
            raise FileExistsError(
                f"{final} exists and is not a synthetic data set made by mura-rl (no "
                f"{MANIFEST_NAME}); refusing to touch it. Choose another --out.")
        if not overwrite:
            raise FileExistsError(
                f"{final} holds a synthetic data set made with other settings "
                f"(scale={existing.get('scale')}, seed={existing.get('seed')}, generator "
                f"version {existing.get('generator_version')}; asked: scale={scale}, "
                f"seed={seed}, version {GENERATOR_VERSION}); pass "
                "--overwrite to replace it or choose another --out.")
    tmp = out / f".{MURA_DIRNAME}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        _build(plan, manifest, seed, tmp, workers, progress)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def _build(plan: pd.DataFrame, manifest: dict, seed: int, tmp: Path, workers: int | None,
           progress: bool) -> None:
    """Draw every image and write the CSVs and the manifest into ``tmp``."""
    jobs = [(row, seed, str(tmp / study_relpath(row))) for row in plan.to_dict("records")]
    workers = max(1, workers or os.cpu_count() or 1)
    bar = tqdm(total=int(plan["n_images"].sum()), unit="img", desc="synthetic MURA",
               disable=not progress)
    if workers == 1:
        for job in jobs:
            bar.update(_write_study(job))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for n_written in pool.map(_write_study, jobs, chunksize=16):
                bar.update(n_written)
    bar.close()
    for split in ("train", "valid"):
        image_csv, study_csv = _csv_bytes(plan, split)
        (tmp / f"{split}_image_paths.csv").write_bytes(image_csv)
        (tmp / f"{split}_labeled_studies.csv").write_bytes(study_csv)
    (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
