"""Drawing and writing the Grad-CAM report of ``python -m experiments.gradcam``.

:mod:`backbones.gradcam` computes the maps and chooses the studies; this module turns each
chosen study (an :class:`ExplainedStudy`) into PNG panels (:func:`render_panel`, matplotlib
Agg), and the whole report into ``index.html`` (:func:`write_index`) and ``panels.csv`` (the
numbers behind every panel). Every file is written atomically.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from backbones.gradcam import StudyHeatmaps
from mura_env.common.atomic import atomic_write, atomic_write_bytes
from mura_env.common.config_cli import save_config

LABEL_NAMES = {0: "normal", 1: "abnormal"}


@dataclass
class Panel:
    """What one panel shows (one image of one study).

    Attributes:
        image: uint8 ``(H, W)`` radiograph.
        maps: float32 ``(K, H, W)`` member maps in ``[0, 1]``, aligned with ``image``.
        model_names: the ``K`` member names.
        image_probabilities: float ``(K,)``, each member's abnormality probability for this image.
        study_probabilities: float ``(K,)``, each member's study-level probability (the logits
            table's, which the ensemble weighs).
        weights: float ``(K,)``, the ensemble weights for this study (sum 1).
        ensemble: float32 ``(H, W)``, :func:`backbones.gradcam.ensemble_map` of ``maps``.
        ensemble_probability: the study's weighted probability; ``prediction``: 0/1 at the
            threshold; ``label``: the true label (1 = abnormal).
        study_id, image_name: identify the image; ``weights_source``: e.g. "uniform" or the agent.
        synthetic: whether the data are synthetic (then every title says so).
        note: a line added to the title (a deferral agent's decision), or "".
        attention_maps: per member (``K``, or empty: none), its float32 ``(H, W)`` spatial
            attention map in ``[0, 1]``, aligned with ``image``, or None (no attention).
        attention_heads: per member (``K``, or empty), the attention head that made its map
            (e.g. ``"SHOULDER"``, ``"shared"``), or None (see :func:`attention_title`).
    """

    image: np.ndarray
    maps: np.ndarray
    model_names: Sequence[str]
    image_probabilities: np.ndarray
    study_probabilities: np.ndarray
    weights: np.ndarray
    ensemble: np.ndarray
    ensemble_probability: float
    prediction: int
    label: int
    study_id: str
    image_name: str
    weights_source: str = "uniform"
    synthetic: bool = False
    note: str = ""
    attention_maps: Sequence[np.ndarray | None] = ()
    attention_heads: Sequence[str | None] = ()

    def attention(self, k: int) -> np.ndarray | None:
        """Member ``k``'s float32 ``(H, W)`` attention map, or None."""
        return self.attention_maps[k] if self.attention_maps else None

    def attention_head(self, k: int) -> str | None:
        """Member ``k``'s attention head, or None."""
        return self.attention_heads[k] if self.attention_heads else None


def attention_title(head: str | None) -> str:
    """The title of an attention map: ``"attention (SHOULDER head)"`` for a part-attention
    model's head ``head``, ``"attention"`` for a model with a single attention map."""
    return "attention" if head is None else f"attention ({head} head)"


def _display(array: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale (area) so the long side is at most ``max_side``; display only."""
    h, w = array.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return array
    return cv2.resize(array, (max(1, round(w * scale)), max(1, round(h * scale))),
                      interpolation=cv2.INTER_AREA)


def _draw_attention(ax: Any, image: np.ndarray, attention: np.ndarray, title: str,
                    alpha: float) -> None:
    """Overlay a member's attention map (float ``(h, w)`` in ``[0, 1]``, on the grid of the
    uint8 ``image``) on the image in ``ax``, titled ``title`` and the map's range."""
    ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    ax.imshow(attention, cmap="jet", alpha=alpha, vmin=0.0, vmax=1.0)
    ax.set_title(f"{title}\nrange {float(attention.min()):.2f}-{float(attention.max()):.2f}",
                 fontsize=8)


def render_panel(panel: Panel, path: str | os.PathLike[str], dpi: int = 80,
                 max_side: int = 320, alpha: float = 0.45) -> Path:
    """Draw ``panel`` to a PNG at ``path`` (written atomically); returns the path.

    Layout, one row: the radiograph; one overlay per member titled with its image and study
    probabilities and its weight, followed, for a member with an attention map, by that map's
    overlay (titled by :func:`attention_title`); the ensemble overlay. The title holds the
    study, the image, the ensemble probability, prediction and true label (and "SYNTHETIC
    data" when so). ``max_side`` caps the displayed resolution (maps are drawn on the same grid
    as the image). Every overlay shares the colour bar's ``[0, 1]`` scale.
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure registry

    k = len(panel.model_names)
    image = _display(panel.image, max_side)
    maps = [_display(m, max_side) for m in panel.maps]
    attention = [None if (a := panel.attention(j)) is None else _display(a, max_side)
                 for j in range(k)]
    ensemble = _display(panel.ensemble, max_side)
    h, w = image.shape
    # Geometry in inches: one image cell per column in a row, two title lines above each, the
    # figure title above all, a colour bar at the right.
    cell_h = min(2.6, 2.3 * h / w)
    cell_w = max(1.9, cell_h * w / h)
    gap, left, bar, top, bottom = 0.08, 0.08, 0.55, 0.8, 0.08
    cols = k + 2 + sum(a is not None for a in attention)
    fig_w = left + cols * cell_w + (cols - 1) * gap + bar
    fig_h = bottom + cell_h + top
    fig = Figure(figsize=(fig_w, fig_h), dpi=dpi)

    def cell(c: int) -> object:
        return fig.add_axes(((left + c * (cell_w + gap)) / fig_w, bottom / fig_h,
                             cell_w / fig_w, cell_h / fig_h))

    axes = [cell(c) for c in range(cols)]
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=255)
    axes[0].set_title(f"{panel.image_name}\n{panel.image.shape[1]}x{panel.image.shape[0]} px",
                      fontsize=8)
    overlay = None
    c = 1
    for j, (heat, name, p_img, p_study, weight) in enumerate(zip(
            maps, panel.model_names, panel.image_probabilities, panel.study_probabilities,
            panel.weights, strict=True)):
        ax = axes[c]
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        overlay = ax.imshow(heat, cmap="jet", alpha=alpha, vmin=0.0, vmax=1.0)
        ax.set_title(f"{name}\np={p_img:.2f} (study {p_study:.2f})  w={weight:.2f}", fontsize=8)
        if float(np.max(heat)) <= 0.0:
            ax.text(0.5, 0.04, "map all zero: no region\nraises p(abnormal)", fontsize=7,
                    ha="center", va="bottom", transform=ax.transAxes,
                    bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0})
        c += 1
        if attention[j] is not None:
            _draw_attention(axes[c], image, attention[j],
                            attention_title(panel.attention_head(j)), alpha)
            c += 1
    axes[-1].imshow(image, cmap="gray", vmin=0, vmax=255)
    overlay = axes[-1].imshow(ensemble, cmap="jet", alpha=alpha, vmin=0.0, vmax=1.0)
    axes[-1].set_title(f"ensemble ({panel.weights_source} weights)\n"
                       f"p={panel.ensemble_probability:.2f} (study)", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_anchor("S")
    verdict = "correct" if panel.prediction == panel.label else "WRONG"
    tag = "SYNTHETIC data  |  " if panel.synthetic else ""
    fig.suptitle(f"{tag}{panel.study_id}\nensemble p(abnormal)={panel.ensemble_probability:.3f}"
                 f" -> predicted {LABEL_NAMES[int(panel.prediction)]}, true "
                 f"{LABEL_NAMES[int(panel.label)]} ({verdict})"
                 + (f"\n{panel.note}" if panel.note else ""), fontsize=9,
                 y=1 - 0.04 / fig_h, va="top")
    cax = fig.add_axes(((fig_w - bar + 0.12) / fig_w, bottom / fig_h, 0.1 / fig_w,
                        cell_h / fig_h))
    fig.colorbar(overlay, cax=cax).ax.tick_params(labelsize=7)
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    return path


@dataclass
class IndexEntry:
    """One study in the HTML index: its id, why it was chosen, a one-line summary and its
    panels' file names (relative to the index)."""

    study_id: str
    reason: str
    summary: str
    panels: Sequence[str]


def write_index(out_dir: str | os.PathLike[str], entries: Sequence[IndexEntry],
                title: str = "Grad-CAM panels", notes: Sequence[str] = ()) -> Path:
    """Write ``out_dir/index.html`` showing every panel under its study id; returns the path.

    Args:
        out_dir: the folder holding the panels (their paths in ``entries`` are relative to it).
        entries: the studies in display order.
        title: page title; ``notes``: paragraphs shown under it (plain text, escaped).
    """
    esc = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{esc(title)}</title>",
             "<style>body{font-family:sans-serif;margin:1.5em}"
             "section{margin-bottom:2em;border-top:1px solid #ccc}"
             "img{max-width:100%;display:block;margin:.4em 0}"
             ".note{color:#a00;font-weight:bold}code{background:#f3f3f3}</style>",
             "</head><body>", f"<h1>{esc(title)}</h1>"]
    parts += [f'<p class="note">{esc(n)}</p>' for n in notes]
    parts.append("<ul>")
    parts += [f'<li><a href="#s{i}"><code>{esc(e.study_id)}</code></a> ({esc(e.reason)})</li>'
              for i, e in enumerate(entries)]
    parts.append("</ul>")
    for i, e in enumerate(entries):
        parts.append(f'<section id="s{i}"><h2><code>{esc(e.study_id)}</code></h2>')
        parts.append(f"<p>{esc(e.summary)}<br>chosen: {esc(e.reason)}</p>")
        for png in e.panels:
            src = esc(Path(png).as_posix(), quote=True)
            parts.append(f'<a href="{src}"><img src="{src}" alt="{esc(e.study_id)} '
                         f'{esc(Path(png).name)}" loading="lazy"></a>')
        parts.append("</section>")
    parts.append("</body></html>\n")
    return atomic_write_bytes(Path(out_dir) / "index.html", "\n".join(parts).encode("utf-8"))


# ---------------------------------------------------------------------------- studies
@dataclass(frozen=True)
class ReportContext:
    """What every panel of one report shares.

    Attributes:
        model_names: the ``K`` ensemble members, in weight order.
        weights_source: where the weights come from, e.g. ``"uniform"`` or ``"ppo agent"``.
        synthetic: whether the data are synthetic (then every title says so).
        dpi: panel resolution.
    """

    model_names: tuple[str, ...]
    weights_source: str
    synthetic: bool
    dpi: int = 80


@dataclass(frozen=True)
class ExplainedStudy:
    """One chosen study with its Grad-CAM maps and ensemble numbers.

    Attributes:
        study_id: the study; ``reason``: why it was chosen; ``label``: 1 abnormal, 0 normal.
        image_paths: its ``n`` image files, in order; ``images``: the uint8 ``(H_i, W_i)``
            radiographs read from them.
        heatmaps: the members' and the ensemble's maps of every image.
        study_probabilities: float64 ``(K,)``, each member's probability in the logits table.
        weights: float64 ``(K,)``, the study's ensemble weights (sum 1).
        ensemble_probability: the study's ensemble probability; ``prediction``: 0/1 at the
            decision threshold.
        note: a deferral agent's decision for the study (:func:`deferral_notes`), or "".
    """

    study_id: str
    reason: str
    label: int
    image_paths: Sequence[str]
    images: Sequence[np.ndarray]
    heatmaps: StudyHeatmaps
    study_probabilities: np.ndarray
    weights: np.ndarray
    ensemble_probability: float
    prediction: int
    note: str = ""


def deferral_notes(deferred: np.ndarray, reads: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per study, what a deferral agent decided: ``"deferred to the reader (read: abnormal,
    correct)"`` or ``"kept by the ensemble (not deferred)"``; object array ``(S,)``."""
    return np.array([f"deferred to the reader (read: {LABEL_NAMES[int(r)]}, "
                     f"{'correct' if r == y else 'WRONG'})" if d
                     else "kept by the ensemble (not deferred)"
                     for d, r, y in zip(deferred, reads, labels, strict=True)], dtype=object)


def slug(study_id: str) -> str:
    """``study_id`` with every character but letters, digits, ``-`` and ``_`` replaced by
    ``_`` (for file names)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in study_id)


def panel_file_name(order: int, study_id: str, image_path: str) -> str:
    """File name of the panel of ``image_path``, the ``order``-th study shown (0-based)."""
    return f"{order:02d}_{slug(study_id)}_{Path(image_path).stem}.png"


def clear_old_panels(out: Path) -> None:
    """Remove the panels a previous run listed in ``out/panels.csv`` (and nothing else)."""
    old = out / "panels.csv"
    if not old.is_file():
        return
    try:
        names = pd.read_csv(old)["png"].astype(str).tolist()
    except (ValueError, KeyError):  # not a report's CSV, or damaged: leave the folder alone
        return
    for name in names:
        path = out / Path(name).name
        if path.suffix == ".png" and path.is_file():
            path.unlink()


def prepare_output(out: Path, config: Any) -> None:
    """Create ``out``, remove the panels of an earlier report there (:func:`clear_old_panels`)
    and write ``out/config.json`` (the resolved config dataclass ``config``)."""
    out.mkdir(parents=True, exist_ok=True)
    clear_old_panels(out)
    save_config(config, out / "config.json")


def study_panel(context: ReportContext, study: ExplainedStudy, j: int) -> Panel:
    """The :class:`Panel` of image ``j`` of ``study``."""
    heat = study.heatmaps
    return Panel(
        image=study.images[j], maps=heat.maps[j], model_names=context.model_names,
        image_probabilities=heat.image_probabilities[j],
        study_probabilities=study.study_probabilities, weights=study.weights,
        ensemble=heat.ensemble_maps[j], ensemble_probability=study.ensemble_probability,
        prediction=study.prediction, label=study.label, study_id=study.study_id,
        image_name=f"{Path(study.image_paths[j]).name} ({j + 1}/{len(study.image_paths)})",
        weights_source=context.weights_source, synthetic=context.synthetic, note=study.note,
        attention_maps=[heat.attention(j, k) for k in range(len(context.model_names))],
        attention_heads=[heat.attention_head(k) for k in range(len(context.model_names))])


def panel_row(context: ReportContext, study: ExplainedStudy, j: int,
              png: str) -> dict[str, Any]:
    """The ``panels.csv`` row of image ``j`` of ``study`` (drawn to ``png``): the study, the
    image, the reason, label, ensemble probability and prediction, then per member its
    weight, study probability and image probability."""
    row: dict[str, Any] = {"study_id": study.study_id, "image": Path(study.image_paths[j]).name,
                           "png": png, "reason": study.reason, "label": study.label,
                           "ensemble_probability": study.ensemble_probability,
                           "prediction": study.prediction, "deferral": study.note}
    for k, m in enumerate(context.model_names):
        row[f"{m}.weight"] = float(study.weights[k])
        row[f"{m}.p_study"] = float(study.study_probabilities[k])
        row[f"{m}.p_image"] = float(study.heatmaps.image_probabilities[j, k])
    return row


def study_summary(context: ReportContext, study: ExplainedStudy) -> str:
    """One line for the index: images, ensemble probability, prediction, truth and weights."""
    verdict = "correct" if study.prediction == study.label else "WRONG"
    weights = ", ".join(f"{m} {study.weights[k]:.2f}"
                        for k, m in enumerate(context.model_names))
    return (f"{len(study.image_paths)} image(s); ensemble p(abnormal)="
            f"{study.ensemble_probability:.3f} -> {LABEL_NAMES[study.prediction]}, true "
            f"{LABEL_NAMES[study.label]} ({verdict}); {context.weights_source} weights: "
            + weights + (f"; {study.note}" if study.note else ""))


def write_study(out: Path, order: int, context: ReportContext,
                study: ExplainedStudy) -> tuple[IndexEntry, list[dict[str, Any]]]:
    """Render one PNG panel per image of ``study`` (the ``order``-th shown) into ``out``.

    Returns:
        The study's index entry and its ``panels.csv`` rows (one per image).
    """
    names, rows = [], []
    for j, image_path in enumerate(study.image_paths):
        name = panel_file_name(order, study.study_id, image_path)
        render_panel(study_panel(context, study, j), out / name, dpi=context.dpi)
        names.append(name)
        rows.append(panel_row(context, study, j, name))
    entry = IndexEntry(study.study_id, study.reason, study_summary(context, study), names)
    return entry, rows


def report_notes(run: Path, context: ReportContext) -> list[str]:
    """The paragraphs under the index's title: a synthetic-data warning when so, then what
    the run, the weights and the maps are."""
    notes = []
    if context.synthetic:
        notes.append("SYNTHETIC data: these images are generated, not radiographs of patients; "
                     "the panels say nothing about clinical performance.")
    notes.append(f"Run {run}, {context.weights_source} ensemble weights. Heatmaps: Grad-CAM of "
                 "the abnormal class, aligned with each original image; the ensemble map is "
                 "the weight-average of the normalised member maps. A member with spatial "
                 "attention has its attention map (sigmoid values, not rescaled) beside its "
                 "Grad-CAM map; a part-attention member's is the map of its head for the "
                 "study's body part.")
    return notes


def write_report(out: Path, run: Path, context: ReportContext, entries: Sequence[IndexEntry],
                 rows: Sequence[dict[str, Any]]) -> None:
    """Write ``out/index.html`` (every study's panels, see :func:`write_index`) and
    ``out/panels.csv`` (``rows``, see :func:`panel_row`) for the panels of pretraining run
    ``run``."""
    write_index(out, entries, title=f"Grad-CAM panels: {run.name}",
                notes=report_notes(run, context))
    atomic_write_bytes(out / "panels.csv", pd.DataFrame(rows).to_csv(index=False).encode())
