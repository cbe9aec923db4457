"""Contact sheet of a synthetic MURA-format data set: normal and abnormal examples per body part."""

from __future__ import annotations

import io
import os
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from mura_env.common.atomic import atomic_write_bytes
from mura_env.constants import BODY_PARTS, MURA_DIRNAME
from mura_env.synthetic.dataset import read_manifest, sample_study
from mura_env.synthetic.plan import plan_dataset, study_relpath


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType
        return ImageFont.load_default()


def contact_sheet(out: str | os.PathLike[str], path: str | os.PathLike[str],
                  per_row: tuple[int, int] = (2, 3), tile: int = 150) -> Path:
    """Write a PNG contact sheet: per body part, normal and abnormal examples (train split).

    Args:
        out: the folder given to :func:`generate` (holding ``MURA-v1.1``).
        path: where to write the PNG.
        per_row: how many (normal, abnormal) studies to show per body part.
        tile: size in pixels of each thumbnail.

    Returns:
        The path of the PNG written.

    Raises:
        FileNotFoundError: no synthetic data set (no ``SYNTHETIC.json``) under ``out``.
    """
    manifest = read_manifest(out)
    if manifest is None:
        raise FileNotFoundError(f"no synthetic data set at {out}; run generate() first")
    plan = plan_dataset(manifest["scale"], manifest["seed"])
    seed = manifest["seed"]
    n_cols = sum(per_row)
    label_w, head_h = 90, 34
    sheet = Image.new("L", (label_w + n_cols * tile, head_h + len(BODY_PARTS) * (tile + 16)), 255)
    draw = ImageDraw.Draw(sheet)
    draw.text((6, 6), "SYNTHETIC data (mura-rl) - procedurally drawn, not radiographs of people. "
              "Left: normal studies; right: abnormal (finding named).", fill=0, font=_font(13))
    for part_index, part in enumerate(BODY_PARTS):
        y = head_h + part_index * (tile + 16)
        draw.text((6, y + tile // 2), part, fill=0, font=_font(13))
        col = 0
        for label, n_examples in ((0, per_row[0]), (1, per_row[1])):
            rows = plan[(plan["body_part"] == part) & (plan["label"] == label)
                        & (plan["split"] == "train")].head(n_examples)
            for row in rows.to_dict("records"):
                spec = sample_study(part, label, row["n_images"], seed, row["study_index"])
                view = spec.shows.index(True) + 1
                img = Image.open(Path(out) / MURA_DIRNAME / study_relpath(row) / f"image{view}.png")
                img.thumbnail((tile - 4, tile - 4))
                x = label_w + col * tile
                sheet.paste(img, (x + (tile - img.width) // 2, y + (tile - img.height) // 2))
                draw.text((x + 2, y + tile), spec.kind, fill=0, font=_font(11))
                col += 1
    sheet_path = Path(path)
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", optimize=True)
    atomic_write_bytes(sheet_path, buf.getvalue())
    return sheet_path
