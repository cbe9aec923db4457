"""PNG plots of ``experiments.compare``: reward curves read back from TensorBoard, weight maps."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)

from mura_env.common.atomic import atomic_write  # noqa: E402

CURVE_TAGS = ("rollout/ep_rew_mean", "eval/accuracy")


def read_scalars(tb_dir: str | os.PathLike[str], tag: str) -> pd.DataFrame:
    """All values of one scalar ``tag`` in the TensorBoard event files of ``tb_dir``.

    Returns:
        DataFrame with int ``step`` and float ``value`` columns, sorted by step (empty when
        the tag is absent); NaN values are dropped.
    """
    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    acc.Reload()
    if tag not in acc.Tags().get("scalars", []):
        return pd.DataFrame({"step": pd.Series(dtype=np.int64),
                             "value": pd.Series(dtype=np.float64)})
    events = acc.Scalars(tag)
    df = pd.DataFrame({"step": [e.step for e in events], "value": [e.value for e in events]})
    return df[np.isfinite(df["value"])].sort_values("step").reset_index(drop=True)


def _save(fig: plt.Figure, path: Path) -> Path:
    out = atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110,
                                                     bbox_inches="tight"))
    plt.close(fig)
    return out


def plot_reward_curves(runs: Mapping[str, Sequence[str | os.PathLike[str]]],
                       path: str | os.PathLike[str],
                       tags: Sequence[str] = CURVE_TAGS) -> Path:
    """One panel per tag: the curves of every run, coloured by algorithm, x = env steps (log).

    Args:
        runs: algorithm name -> the ``tb/`` folders of its runs (one per seed).
        path: the PNG to write.
        tags: scalar tags to plot, one panel each.

    Returns:
        ``path``.
    """
    fig, axes = plt.subplots(1, len(tags), figsize=(5.5 * len(tags), 4), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, tag in zip(axes[0], tags, strict=False):
        for i, (algo, dirs) in enumerate(runs.items()):
            for j, d in enumerate(dirs):
                df = read_scalars(d, tag)
                if len(df):
                    ax.plot(df["step"], df["value"], color=colours[i % len(colours)],
                            alpha=0.8, lw=1.2, label=algo if j == 0 else None)
        ax.set_xscale("log")
        ax.set_xlabel("env steps (answered studies)")
        ax.set_title(tag)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Training curves read back from TensorBoard (SYNTHETIC data)", fontsize=10)
    return _save(fig, Path(path))


def plot_weight_heatmaps(weights: Mapping[str, pd.DataFrame],
                         path: str | os.PathLike[str]) -> Path:
    """A grid of heatmaps, one per method: mean ensemble weight per body part (rows) and model
    (columns), annotated.

    Args:
        weights: method name -> DataFrame indexed by body part (``"ALL"`` included or not),
            one column per model, values in [0, 1].
        path: the PNG to write.

    Returns:
        ``path``.
    """
    names = list(weights)
    cols = min(4, max(1, len(names)))
    rows = -(-len(names) // cols) if names else 1
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, name in zip(axes.ravel(), names, strict=False):
        df = weights[name]
        df = df.drop(index="ALL", errors="ignore")
        ax.axis("on")
        ax.imshow(df.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(df.shape[1]), [c.replace("_", "\n") for c in df.columns],
                      fontsize=7)
        ax.set_yticks(range(df.shape[0]), df.index, fontsize=7)
        for (r, c), v in np.ndenumerate(df.to_numpy(dtype=float)):
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if v < 0.5 else "black")
        ax.set_title(name.replace(" (", "\n("), fontsize=8)
    fig.subplots_adjust(hspace=0.6, wspace=0.55)
    fig.suptitle("Mean ensemble weight per body part on valid (SYNTHETIC data)", fontsize=10)
    return _save(fig, Path(path))
