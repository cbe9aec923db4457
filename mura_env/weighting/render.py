"""Pictures and text of one answered study, for ``render_mode="rgb_array"`` and ``"ansi"``.

Both take a :class:`StudyView`: what the env knows of the current study and, once answered,
its weights and ensemble probability. The picture is drawn with NumPy alone (no plotting
library in the step loop).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mura_env.constants import BODY_PARTS
from mura_env.logits.study_set import StudySet

#: Height and width of a rendered frame, in pixels.
FRAME_HEIGHT = 160
_STRIP = 16  # height of the body-part strip at the top
_BAR_W, _GAP = 18, 6  # width of one bar and the gap between bars
_BG, _GRID = 255, 200
_COLORS = {
    "probability": (120, 120, 120),   # a member's abnormality probability
    "weight": (40, 90, 200),          # its ensemble weight
    "right": (30, 150, 60),           # ensemble probability, prediction right
    "wrong": (200, 40, 40),           # ensemble probability, prediction wrong
    "pending": (160, 160, 160),       # ensemble probability not known yet (after reset)
    "part": (40, 90, 200),            # the study's body part in the strip
    "abnormal": (0, 0, 0),            # label marker: filled for abnormal
}


@dataclass(frozen=True)
class StudyView:
    """One study as a frame shows it.

    Attributes:
        study_id, body_part: the study; label: 0 normal, 1 abnormal.
        model_names: the ``K`` members; probabilities: their abnormality probabilities ``[K]``.
        threshold: the decision threshold.
        weights: the ensemble weights ``[K]`` once answered, else None.
        probability: the ensemble probability once answered, else None.
    """

    study_id: str
    body_part: str
    label: int
    model_names: tuple[str, ...]
    probabilities: tuple[float, ...]
    threshold: float
    weights: tuple[float, ...] | None = None
    probability: float | None = None

    @property
    def prediction(self) -> int | None:
        """``int(probability > threshold)``, or None before the study is answered."""
        return None if self.probability is None else int(self.probability > self.threshold)


def study_view(studies: StudySet, index: int, threshold: float,
               weights: Sequence[float] | None = None,
               probability: float | None = None) -> StudyView:
    """Study row ``index`` of ``studies`` as a frame shows it, with the ensemble's
    ``weights`` ``[K]`` and ``probability`` once it is answered (None before)."""
    return StudyView(
        study_id=str(studies.study_ids[index]), body_part=str(studies.body_parts[index]),
        label=int(studies.labels[index]), model_names=studies.model_names,
        probabilities=tuple(studies.probabilities[index].tolist()), threshold=threshold,
        weights=None if weights is None else tuple(np.asarray(weights, float).tolist()),
        probability=None if probability is None else float(probability))


def draw(view: StudyView, render_mode: str) -> np.ndarray | str:
    """``view`` drawn for ``render_mode``: :func:`render_rgb` for ``"rgb_array"``,
    :func:`render_text` for ``"ansi"``."""
    return render_rgb(view) if render_mode == "rgb_array" else render_text(view)


def frame_width(n_models: int) -> int:
    """Width in pixels of a frame for ``n_models`` members (at least the body-part strip)."""
    bars = _GAP + (2 * n_models + 1) * (_BAR_W + _GAP) + _BAR_W
    return max(bars, 7 * 24)


def _bar(frame: np.ndarray, x: int, value: float, color: tuple[int, int, int]) -> None:
    top = _STRIP + 8
    height = FRAME_HEIGHT - top - 4
    filled = int(round(max(0.0, min(1.0, value)) * height))
    frame[FRAME_HEIGHT - 4 - filled: FRAME_HEIGHT - 4, x: x + _BAR_W] = color


def render_rgb(view: StudyView) -> np.ndarray:
    """The study as a uint8 RGB frame ``[FRAME_HEIGHT, frame_width(K), 3]``.

    Layout: a strip of 7 cells on top, the study's body part (``BODY_PARTS`` order) filled;
    then per member a gray bar (its abnormality probability, 0 to 1 bottom to top) and a blue
    bar (its weight); then the ensemble probability (green when the prediction is right, red
    when wrong, gray before the step); a dark horizontal line marks the threshold; a square in
    the top-right corner is filled for an abnormal label and hollow for a normal one.
    """
    k = len(view.model_names)
    width = frame_width(k)
    frame = np.full((FRAME_HEIGHT, width, 3), _BG, dtype=np.uint8)
    cell = width // len(BODY_PARTS)
    frame[_STRIP - 1, :] = _GRID
    part = BODY_PARTS.index(view.body_part)
    frame[1: _STRIP - 2, part * cell + 1: (part + 1) * cell - 1] = _COLORS["part"]
    x = _GAP
    for m in range(k):
        _bar(frame, x, view.probabilities[m], _COLORS["probability"])
        x += _BAR_W + _GAP
        if view.weights is not None:
            _bar(frame, x, view.weights[m], _COLORS["weight"])
        x += _BAR_W + _GAP
    if view.probability is None:
        _bar(frame, x, 1.0, _COLORS["pending"])
    else:
        key = "right" if view.prediction == view.label else "wrong"
        _bar(frame, x, view.probability, _COLORS[key])
    top = _STRIP + 8
    y = FRAME_HEIGHT - 4 - int(round(view.threshold * (FRAME_HEIGHT - top - 4)))
    frame[y, :] = (0, 0, 0)
    size = 10
    box = frame[_STRIP + 2: _STRIP + 2 + size, width - size - 2: width - 2]
    box[:] = _COLORS["abnormal"]
    if view.label == 0:
        box[1:-1, 1:-1] = _BG
    return frame


def render_text(view: StudyView) -> str:
    """The study as text: body part, label, each member's probability and weight, and the
    ensemble probability against the threshold."""
    label = "abnormal" if view.label else "normal"
    lines = [f"{view.study_id} ({view.body_part}, label {view.label} = {label})"]
    width = max(len(m) for m in view.model_names)
    for m, name in enumerate(view.model_names):
        weight = "  -  " if view.weights is None else f"{view.weights[m]:.3f}"
        lines.append(f"  {name:<{width}}  q={view.probabilities[m]:.3f}  w={weight}")
    if view.probability is None:
        lines.append(f"  ensemble not answered yet (threshold {view.threshold:.3f})")
    else:
        verdict = "right" if view.prediction == view.label else "wrong"
        lines.append(f"  ensemble p={view.probability:.3f} vs threshold {view.threshold:.3f}"
                     f" -> prediction {view.prediction} ({verdict})")
    return "\n".join(lines) + "\n"
