"""Renders one synthetic radiograph (8-bit grayscale) from an anatomy, a view and findings.

Bones are drawn as projected cylinders and ellipsoids: the path length through the cortical
shell is longer near the edges, so the cortex comes out brighter than the marrow, as on a real
radiograph. Everything is vectorised numpy inside each shape's bounding box, which keeps a
512-pixel image at a few milliseconds.

Findings drawn here (:class:`Finding`), each with its own visual scale and contrast:

* ``hardware``: a plate with screws or an intramedullary nail; large and very bright;
* ``fracture``: a thin dark line across a long bone, sometimes displaced;
* ``lesion``: a lytic lesion, a low-contrast dark blob inside a bone.

The other three kinds of :data:`mura_env.synthetic.dataset.FINDING_MIX` change the anatomy
before it is drawn: ``narrowing`` (joint-space narrowing, through the anatomy's ``gap``),
``swelling`` (wider, denser soft tissue) and ``osteopenia`` (less dense bone, thinner cortex).

``growth_plate`` is a normal variant (a straight faint line near a bone end) that looks a bit
like a fracture; it appears in normal and abnormal studies alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mura_env.synthetic.anatomy import Anatomy, Capsule, Ellipse, Shape

MARROW = 0.35  # attenuation of marrow relative to cortex
METAL = 2.6  # attenuation of orthopaedic hardware relative to cortex


@dataclass
class Finding:
    """One finding on bone ``bone`` of the anatomy (normalised units, see module docstring).

    ``kind`` is ``fracture``, ``lesion``, ``hardware`` or ``growth_plate``; ``t`` the position
    along the bone (0-1); ``angle`` the fracture line's tilt (radians); ``width`` its gap in
    pixels at full size; ``offset`` the displacement in bone radii; ``depth`` a lesion's
    contrast (0-1); ``size`` a lesion's radius in bone radii; ``variant`` 0 = plate, 1 = nail.
    """

    kind: str
    bone: int
    t: float = 0.5
    angle: float = 0.0
    width: float = 2.0
    offset: float = 0.0
    depth: float = 0.5
    size: float = 0.5
    side: float = 0.0
    variant: int = 0


@dataclass
class View:
    """How a study is imaged in one view: canvas, projection and exposure.

    ``height``/``width`` in pixels; ``rotation`` radians; ``squash`` scales the across-limb
    axis (a lateral view overlaps the bones); ``mirror`` flips left/right; ``zoom`` and
    ``shift`` place the part; ``gain``, ``gamma``, ``low``, ``high`` map attenuation to grey;
    ``noise`` the Gaussian noise sigma; ``gradient`` an exposure ramp; ``collimation`` a
    (top, bottom, left, right) band width in pixels per side (0 = none) at grey ``collim_level``;
    ``marker`` the laterality letter at corner ``marker_corner`` (0-3).
    """

    height: int
    width: int
    rotation: float
    squash: float
    mirror: bool
    zoom: float
    shift: tuple[float, float]
    gain: float
    gamma: float
    low: float
    high: float
    noise: float
    gradient: tuple[float, float]
    collimation: tuple[int, int, int, int]
    collim_level: float
    marker: str
    marker_corner: int


# 5x7 bitmaps of the laterality letters.
_LETTERS = {
    "L": ["10000", "10000", "10000", "10000", "10000", "10000", "11111"],
    "R": ["11110", "10001", "10001", "11110", "10100", "10010", "10001"],
}


class _Frame:
    """Maps normalised (u, v) to pixel (x, y) for one view."""

    def __init__(self, view: View):
        self.scale = max(view.height, view.width) / 2 * view.zoom
        self.cx = view.width / 2 + view.shift[0] * self.scale
        self.cy = view.height / 2 + view.shift[1] * self.scale
        # Python floats, not numpy scalars: they keep float32 arrays float32 (NEP 50).
        self.cos, self.sin = math.cos(view.rotation), math.sin(view.rotation)
        self.vscale = view.squash * (-1.0 if view.mirror else 1.0)

    def point(self, p: tuple[float, float]) -> tuple[float, float]:
        u, v = float(p[0]), float(p[1]) * self.vscale
        return (self.cx + self.scale * (self.cos * u - self.sin * v),
                self.cy + self.scale * (self.sin * u + self.cos * v))


def _bbox(xs: list[float], ys: list[float], pad: float, h: int, w: int) -> tuple[int, ...] | None:
    x0, x1 = max(int(min(xs) - pad), 0), min(int(max(xs) + pad) + 2, w)
    y0, y1 = max(int(min(ys) - pad), 0), min(int(max(ys) + pad) + 2, h)
    if x0 >= x1 or y0 >= y1:
        return None
    return x0, x1, y0, y1


def _profile(d2: np.ndarray, radius: np.ndarray | float, cortex: float,
             uniform: bool) -> np.ndarray:
    """Normalised path length through a cylinder (solid or with a cortical shell)."""
    r2 = np.square(radius)
    outer = np.sqrt(np.maximum(r2 - d2, 0.0))
    if uniform:
        return outer / radius
    inner = np.sqrt(np.maximum(r2 * (1 - cortex) ** 2 - d2, 0.0))
    return (outer - inner + MARROW * inner) / radius


def _add_to(canvas: np.ndarray, box: tuple[int, ...], values: np.ndarray,
            combine_max: bool) -> None:
    """Add ``values`` to ``canvas`` inside ``box = (x0, x1, y0, y1)``, or keep the larger of the
    two when ``combine_max`` (overlapping soft tissue does not pile up)."""
    x0, x1, y0, y1 = box
    region = canvas[y0:y1, x0:x1]
    if combine_max:
        np.maximum(region, values, out=region)
    else:
        region += values


def _fracture_lines(
    dx: np.ndarray, dy: np.ndarray, along: tuple[float, float], radius: float,
    fractures: list[Finding], frame: _Frame,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The fracture and growth-plate lines of a long bone.

    Args:
        dx, dy: pixel offsets from the bone's start ``p0`` (arrays that broadcast together).
        along: ``(ex, ey)``, the pixel vector from ``p0`` to ``p1``.
        radius: the bone's radius in pixels.
        fractures: its ``fracture`` and ``growth_plate`` findings.
        frame: the view's frame.

    Returns:
        ``(dx, dy, dark)``: the offsets with the part beyond each displaced fracture shifted
        across the bone, and the darkening factor of the lines (None when there is none).
    """
    ex, ey = along
    length = max(math.hypot(ex, ey), 1e-6)
    ux, uy = ex / length, ey / length  # unit vector along the bone
    dark = None
    for finding in fractures:
        # The line crosses the bone at t, tilted by finding.angle from the perpendicular.
        fx, fy = float(finding.t) * ex, float(finding.t) * ey
        nx = ux * math.cos(finding.angle) - uy * math.sin(finding.angle)
        ny = ux * math.sin(finding.angle) + uy * math.cos(finding.angle)
        signed = (dx - fx) * nx + (dy - fy) * ny  # distance to the line, + on the p1 side
        if finding.offset:
            distal = (signed > 0).astype(np.float32)
            displacement = float(finding.offset) * radius
            dx = dx - distal * (-uy * displacement)
            dy = dy - distal * (ux * displacement)
        gap = np.abs(signed) < finding.width * frame.scale / 256 / 2 + 0.5
        line = np.where(gap, 0.15 if finding.kind == "fracture" else 0.55, 1.0)
        dark = line if dark is None else dark * line
    return dx, dy, dark


def _with_lesions(attenuation: np.ndarray, dx: np.ndarray, dy: np.ndarray,
                  along: tuple[float, float], radius: float,
                  findings: list[Finding]) -> np.ndarray:
    """``attenuation`` of a long bone less its lytic lesions: a Gaussian hole per ``lesion``
    finding, at ``t`` along the bone and ``side`` radii across it (offsets as in
    :func:`_fracture_lines`)."""
    ex, ey = along
    length = max(math.hypot(ex, ey), 1e-6)
    ux, uy = ex / length, ey / length
    for finding in findings:
        if finding.kind == "lesion":
            cx = float(finding.t) * ex - uy * float(finding.side) * radius
            cy = float(finding.t) * ey + ux * float(finding.side) * radius
            sigma2 = (float(finding.size) * radius) ** 2
            hole = np.exp(-(np.square(dx - cx) + np.square(dy - cy)) / (2 * sigma2))
            attenuation = attenuation * (1 - float(finding.depth) * hole)
    return attenuation


def _draw_capsule(canvas: np.ndarray, frame: _Frame, capsule: Capsule, findings: list[Finding],
                  combine_max: bool = False) -> None:
    """Draw a long bone (or soft-tissue sleeve) with its fractures and lesions on ``canvas``."""
    h, w = canvas.shape
    (ax, ay), (bx, by) = frame.point(capsule.p0), frame.point(capsule.p1)
    radius = float(capsule.r) * frame.scale
    fractures = [finding for finding in findings
                 if finding.kind in ("fracture", "growth_plate")]
    shift = max((abs(finding.offset) * radius for finding in fractures), default=0.0)
    box = _bbox([ax, bx], [ay, by], radius * (1 + capsule.flare) + shift + 2, h, w)
    if box is None:
        return
    x0, x1, y0, y1 = box
    dx = np.arange(x0, x1, dtype=np.float32)[None, :] - ax
    dy = np.arange(y0, y1, dtype=np.float32)[:, None] - ay
    ex, ey = bx - ax, by - ay
    length = max(math.hypot(ex, ey), 1e-6)
    dx, dy, dark = _fracture_lines(dx, dy, (ex, ey), radius, fractures, frame)
    t = np.clip((dx * ex + dy * ey) / (length * length), 0.0, 1.0)
    d2 = np.square(dx - t * ex) + np.square(dy - t * ey)
    r_t = radius * (1 + capsule.flare * np.clip((np.abs(2 * t - 1) - 0.6) / 0.4, 0.0, 1.0))
    attenuation = _profile(d2, r_t, capsule.cortex, capsule.uniform) * float(capsule.density)
    if dark is not None:
        attenuation = attenuation * dark
    attenuation = _with_lesions(attenuation, dx, dy, (ex, ey), radius, findings)
    _add_to(canvas, box, attenuation, combine_max)


def _draw_ellipse(canvas: np.ndarray, frame: _Frame, ellipse: Ellipse,
                  combine_max: bool = False) -> None:
    """Draw a round bone (or soft-tissue mass) on ``canvas``."""
    h, w = canvas.shape
    cx, cy = frame.point(ellipse.c)
    a, b = float(ellipse.a) * frame.scale, float(ellipse.b) * frame.scale
    box = _bbox([cx], [cy], max(a, b) + 2, h, w)
    if box is None:
        return
    x0, x1, y0, y1 = box
    dx = np.arange(x0, x1, dtype=np.float32)[None, :] - cx
    dy = np.arange(y0, y1, dtype=np.float32)[:, None] - cy
    angle = float(ellipse.angle) + math.atan2(frame.sin, frame.cos)
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    rho2 = np.square((dx * cos_a + dy * sin_a) / a) + np.square((-dx * sin_a + dy * cos_a) / b)
    attenuation = _profile(rho2, 1.0, ellipse.cortex, ellipse.uniform) * float(ellipse.density)
    _add_to(canvas, box, attenuation, combine_max)


def _draw(canvas: np.ndarray, frame: _Frame, shape: Shape, findings: list[Finding],
          combine_max: bool = False) -> None:
    """Draw ``shape`` (with ``findings`` when it is a long bone) on ``canvas``."""
    if isinstance(shape, Capsule):
        _draw_capsule(canvas, frame, shape, findings, combine_max)
    else:
        _draw_ellipse(canvas, frame, shape, combine_max)


def _hardware(bone: Capsule, finding: Finding) -> list[Capsule]:
    """Metal shapes for a hardware finding on ``bone``: a plate with screws, or a nail."""
    p0, p1 = np.array(bone.p0), np.array(bone.p1)
    axis = p1 - p0
    normal = np.array([-axis[1], axis[0]]) / max(np.linalg.norm(axis), 1e-9)
    if finding.variant == 1:
        return [Capsule(tuple(p0 + 0.06 * axis), tuple(p0 + 0.94 * axis), bone.r * 0.55,
                        density=METAL, uniform=True, flare=0.0)]
    t0, t1 = max(finding.t - 0.4, 0.05), min(finding.t + 0.4, 0.95)
    side = 1.0 if finding.side >= 0 else -1.0
    out = [Capsule(tuple(p0 + t0 * axis + side * normal * bone.r * 1.1),
                   tuple(p0 + t1 * axis + side * normal * bone.r * 1.1),
                   bone.r * 0.5, density=METAL, uniform=True, flare=0.0)]
    for t in np.linspace(t0 + 0.04, t1 - 0.04, 4):
        screw_at = p0 + t * axis
        out.append(Capsule(tuple(screw_at + side * normal * bone.r * 1.3),
                           tuple(screw_at - side * normal * bone.r * 1.1),
                           bone.r * 0.2, density=METAL, uniform=True, flare=0.0))
    return out


def _marker(img: np.ndarray, view: View) -> None:
    """Burn the view's laterality letter into ``img`` (grey levels 0-1) at its corner."""
    h, w = img.shape
    cell = max(2, max(h, w) // 110)
    bitmap = np.array([[pixel == "1" for pixel in row] for row in _LETTERS[view.marker]])
    glyph = np.kron(bitmap, np.ones((cell, cell), dtype=bool))
    gh, gw = glyph.shape
    margin = max(h, w) // 30
    y = margin if view.marker_corner < 2 else h - margin - gh
    x = margin if view.marker_corner % 2 == 0 else w - margin - gw
    box = img[y - cell:y + gh + cell, x - cell:x + gw + cell]
    box[...] = 0.05
    img[y:y + gh, x:x + gw][glyph] = 0.98


def render(anatomy: Anatomy, view: View, findings: list[Finding],
           rng: np.random.Generator) -> np.ndarray:
    """Draw one radiograph.

    Args:
        anatomy: the study's bones and soft tissue (normalised frame).
        view: canvas, projection and exposure of this view.
        findings: findings shown in this view (may be empty).
        rng: source of the noise (seeded per image for determinism).

    Returns:
        ``uint8`` array of shape ``(view.height, view.width)``.
    """
    img = _to_grey(_attenuation(anatomy, view, findings), view)
    img += rng.standard_normal((view.height, view.width), dtype=np.float32) * view.noise
    _collimate(img, view)
    _marker(img, view)
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


def _attenuation(anatomy: Anatomy, view: View, findings: list[Finding]) -> np.ndarray:
    """Float32 ``(height, width)`` attenuation of the view: soft tissue (overlaps not piled up,
    weighted 0.45), bones with their findings, and the metal of hardware findings."""
    frame = _Frame(view)
    soft = np.zeros((view.height, view.width), dtype=np.float32)
    for shape in anatomy.soft:
        _draw(soft, frame, shape, [], combine_max=True)
    bone = np.zeros((view.height, view.width), dtype=np.float32)
    metal: list[Capsule] = []
    for bone_index, shape in enumerate(anatomy.bones):
        bone_findings = [finding for finding in findings if finding.bone == bone_index]
        _draw(bone, frame, shape, bone_findings)
        for finding in bone_findings:
            if finding.kind == "hardware" and isinstance(shape, Capsule):
                metal += _hardware(shape, finding)
    for piece in metal:
        _draw(bone, frame, piece, [])
    return soft * 0.45 + bone


def _to_grey(attenuation: np.ndarray, view: View) -> np.ndarray:
    """Grey levels (about 0-1, float32) of ``attenuation`` under the view's exposure: a lookup
    table (gain, gamma, low and high levels) plus the exposure ramp."""
    h, w = attenuation.shape
    grid = np.linspace(0.0, 4.0, 1024, dtype=np.float32)
    lut = view.low + (view.high - view.low) * (1 - np.exp(-view.gain * grid)) ** view.gamma
    img = lut[np.minimum((attenuation * (1023 / 4.0)).astype(np.int32), 1023)]
    gy = np.linspace(-1, 1, h, dtype=np.float32)[:, None] * view.gradient[0]
    gx = np.linspace(-1, 1, w, dtype=np.float32)[None, :] * view.gradient[1]
    img += gy + gx
    return img


def _collimate(img: np.ndarray, view: View) -> None:
    """Set the view's collimation bands (top, bottom, left, right) of ``img`` to its level."""
    h, w = img.shape
    top, bottom, left, right = view.collimation
    level = view.collim_level
    if top:
        img[:top] = level
    if bottom:
        img[h - bottom:] = level
    if left:
        img[:, :left] = level
    if right:
        img[:, w - right:] = level
