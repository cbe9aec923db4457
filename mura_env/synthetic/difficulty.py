"""How hard a synthetic study is to read: a latent the generator already draws.

A study's *difficulty* is a number in [0, 1]: the share of studies of its body part and label
that are easier to read. It comes from the study's plan (:func:`~mura_env.synthetic.dataset.
sample_study`), with no image drawn, in two steps.

1. A *hardness* ``h`` in [0, 1] from how conspicuous the finding is. Each finding kind has a
   band of hardness (:data:`ABNORMAL_BANDS`), ordered by how much of the picture the finding
   changes: osteopenia (every bone loses 55-70% of its density) is plainest, then swelling
   (all soft tissue widens), hardware (bright metal along part of one bone), joint-space
   narrowing (one joint), a lytic lesion (a blob inside one bone) and, hardest, a fracture (a
   line a few pixels wide at full size, one or two at the 64-pixel size the reference members
   see). Where a study falls inside its band is set by the drawn size of its finding
   (:func:`within_band`): a fracture's gap and displacement (a thin, undisplaced line is the
   hardest), a lytic lesion's contrast and size, how far a joint space narrows, how much
   soft tissue swells, how much bone density is lost. Every view of an abnormal study shows
   its finding in this generator (``SHOW_FINDING_P`` = 1), so views do not enter. A normal
   study is hard when it shows a *mimic*: growth plates (a faint line near a bone end, like a
   fracture; :data:`NORMAL_BANDS`), then a joint space at the narrow end of normal.
2. The difficulty is ``h``'s distribution function within the body part and label
   (:func:`difficulty_quantile`): every within-band position is a uniform draw (or a
   function of two uniform draws made uniform again), so that distribution is a known
   mixture of uniform bands and the difficulty is exactly uniform on [0, 1] within each
   (body part, label). A simulated reader (:class:`mura_env.readers.SimulatedReader`) can
   then make its error depend on it without changing its error rate.

The bands are a judgement of which findings are harder to see in these pictures, not a
measurement of radiologists.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np
import pandas as pd

from mura_env.synthetic.dataset import (
    FINDING_MIX,
    FRACTURE_ANGLE,
    FRACTURE_OFFSET,
    FRACTURE_WIDTH,
    GROWTH_PLATE_P,
    HARDWARE_T,
    LESION_DEPTH,
    LESION_SIZE,
    NARROWING_GAP,
    NORMAL_GAP,
    OSTEOPENIA_THIN,
    SWELLING_GROW,
    UNDISPLACED_P,
    StudySpec,
    sample_study,
)
from mura_env.synthetic.plan import plan_dataset, study_relpath

#: Finding kind -> (low, high) hardness band of an abnormal study of that kind.
ABNORMAL_BANDS: dict[str, tuple[float, float]] = {
    "osteopenia": (0.0, 0.3),
    "swelling": (0.1, 0.5),
    "hardware": (0.2, 0.6),
    "narrowing": (0.2, 0.7),
    "lesion": (0.4, 0.9),
    "fracture": (0.5, 1.0),
}
#: Normal study -> hardness band: with growth plates (a fracture mimic) or without.
NORMAL_BANDS: dict[str, tuple[float, float]] = {"growth_plate": (0.5, 1.0), "plain": (0.0, 0.5)}


def _unit(value: float, low: float, high: float) -> float:
    """``value`` rescaled from [low, high] to [0, 1]."""
    return (float(value) - low) / (high - low)


def _mean_of_two_uniform(a: float, b: float) -> float:
    """The distribution function of the mean of two independent uniforms on [0, 1] (Irwin-Hall,
    n = 2), at ``(a + b) / 2``: uniform on [0, 1] again, rising with both."""
    s = 0.5 * (a + b)
    return 2.0 * s * s if s < 0.5 else 1.0 - 2.0 * (1.0 - s) ** 2


def _fracture_position(width: float, angle: float, offset: float) -> float:
    """A fracture's position in its band: thin gap and no displacement are hardest. The
    displacement term is uniform on [0, 1]: displaced fractures fill [0, 1 - p] (the smaller
    the shift, the harder), undisplaced ones [1 - p, 1] by their tilt (p =
    :data:`~mura_env.synthetic.dataset.UNDISPLACED_P`)."""
    gap = 1.0 - _unit(width, *FRACTURE_WIDTH)
    displaced_share = 1.0 - UNDISPLACED_P
    if offset == 0.0:
        shift = displaced_share + UNDISPLACED_P * abs(angle) / FRACTURE_ANGLE
    else:
        shift = displaced_share * (1.0 - _unit(abs(offset), *FRACTURE_OFFSET))
    return _mean_of_two_uniform(gap, shift)


def within_band(spec: StudySpec) -> tuple[str, float]:
    """Which band a study falls in and where: ``(band name, position in [0, 1])``, 1 hardest.

    Args:
        spec: a study's plan from :func:`~mura_env.synthetic.dataset.sample_study`.

    Returns:
        The band (a key of :data:`ABNORMAL_BANDS` for an abnormal study, of
        :data:`NORMAL_BANDS` for a normal one) and a position that is uniform on [0, 1] over
        the generator's draws of that band.
    """
    main = [f for f in spec.findings if f.kind == spec.kind]
    if spec.kind == "normal":
        band = ("growth_plate" if any(f.kind == "growth_plate" for f in spec.findings)
                else "plain")
        return band, 1.0 - _unit(spec.draws["gap"], *NORMAL_GAP)
    if spec.kind == "fracture":
        f = main[0]
        return "fracture", _fracture_position(f.width, f.angle, f.offset)
    if spec.kind == "lesion":
        f = main[0]
        return "lesion", _mean_of_two_uniform(1.0 - _unit(f.depth, *LESION_DEPTH),
                                              1.0 - _unit(f.size, *LESION_SIZE))
    if spec.kind == "hardware":  # equally plain wherever it is: its position breaks ties
        return "hardware", _unit(main[0].t, *HARDWARE_T)
    if spec.kind == "narrowing":
        return "narrowing", _unit(spec.draws["gap"], *NARROWING_GAP)
    if spec.kind == "swelling":
        return "swelling", 1.0 - _unit(spec.draws["grow"], *SWELLING_GROW)
    if spec.kind == "osteopenia":
        return "osteopenia", _unit(spec.draws["thin"], *OSTEOPENIA_THIN)
    raise ValueError(f"unknown finding kind {spec.kind!r}")


def band_shares(part: str, label: int) -> dict[str, float]:
    """The generator's share of each band among studies of ``part`` with ``label``.

    Args:
        part: a body part (a key of ``FINDING_MIX``); label: 0 normal, 1 abnormal.

    Returns:
        band name -> share (floats summing to 1): :data:`NORMAL_BANDS`' for label 0, the
        part's finding mix over :data:`ABNORMAL_BANDS`' for label 1.
    """
    if label == 0:
        return {"growth_plate": GROWTH_PLATE_P, "plain": 1.0 - GROWTH_PLATE_P}
    mix = FINDING_MIX[part]
    total = sum(mix.values())
    return {kind: share / total for kind, share in mix.items()}


def difficulty_quantile(hardness: float, shares: Mapping[str, float],
                        bands: Mapping[str, tuple[float, float]]) -> float:
    """The distribution function of hardness at ``hardness`` for a mixture of uniform bands.

    Args:
        hardness: a value in [0, 1].
        shares: band -> its share of the studies (summing to 1).
        bands: band -> (low, high).

    Returns:
        P(H <= hardness) for H drawn from the mixture (float in [0, 1]).
    """
    return float(sum(share * np.clip((hardness - bands[b][0]) / (bands[b][1] - bands[b][0]),
                                     0.0, 1.0) for b, share in shares.items()))


def study_difficulty(spec: StudySpec, part: str, label: int) -> float:
    """A study's difficulty: the share of studies of its body part and label that are easier.

    Args:
        spec: the study's plan (:func:`~mura_env.synthetic.dataset.sample_study`).
        part: its body part; label: its label (0 normal, 1 abnormal).

    Returns:
        float in [0, 1], uniform over the generator's studies of (part, label).
    """
    bands = NORMAL_BANDS if label == 0 else ABNORMAL_BANDS
    band, position = within_band(spec)
    low, high = bands[band]
    return difficulty_quantile(low + (high - low) * position, band_shares(part, label), bands)


def plan_difficulty(scale: float, seed: int,
                    study_ids: Collection[str] | None = None) -> pd.DataFrame:
    """The difficulty of every study of the synthetic data set made at ``scale`` and ``seed``
    (``python -m experiments.synthetic``), from its plan alone: no image is drawn.

    ``study_ids`` limits it to those studies (None: all); ids not in the plan are left out.

    Returns:
        DataFrame with ``study_id`` (str, as in logits tables, e.g.
        ``valid/XR_WRIST/patient00011/study1_positive``), ``kind`` (``normal`` or the finding
        kind) and ``difficulty`` (float64 in [0, 1]), one row per study, in plan order.
    """
    wanted = None if study_ids is None else set(study_ids)
    rows = []
    for row in plan_dataset(scale, seed).to_dict("records"):
        if wanted is not None and study_relpath(row) not in wanted:
            continue
        spec = sample_study(row["body_part"], row["label"], row["n_images"], seed,
                            row["study_index"])
        rows.append((study_relpath(row), spec.kind,
                     study_difficulty(spec, row["body_part"], row["label"])))
    return pd.DataFrame(rows, columns=["study_id", "kind", "difficulty"])
