"""Procedural anatomy of the synthetic radiographs: one bone layout per MURA body part.

Shapes live in a normalised frame: ``u`` runs along the limb (image long axis), ``v`` across it,
both in units of half the image's long side, centred on the image. Each body part's template
returns the bones, the soft-tissue envelope and which bones are long bones (the places where
fractures, lesions and hardware go). ``gap`` scales the joint spaces (joint-space narrowing
shrinks it). All randomness comes from the ``rng`` passed in, so a study's anatomy is a pure
function of its seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Capsule:
    """A long bone (or soft-tissue sleeve): a segment ``p0``-``p1`` with radius ``r``.

    ``cortex`` is the cortical shell's share of the radius, ``density`` scales attenuation,
    ``flare`` widens the ends (metaphyses), ``uniform`` makes it a solid (metal, soft tissue).
    """

    p0: tuple[float, float]
    p1: tuple[float, float]
    r: float
    cortex: float = 0.3
    density: float = 1.0
    flare: float = 0.25
    uniform: bool = False


@dataclass
class Ellipse:
    """A round bone (carpal, humeral head, condyle): centre ``c``, semi-axes ``a`` (along u)
    and ``b`` (along v), rotated by ``angle`` radians."""

    c: tuple[float, float]
    a: float
    b: float
    angle: float = 0.0
    cortex: float = 0.3
    density: float = 1.0
    uniform: bool = False


Shape = Capsule | Ellipse


@dataclass
class Anatomy:
    """A body part's layout: ``bones`` and ``soft`` shapes; ``long_bones`` index into ``bones``."""

    bones: list[Shape]
    soft: list[Shape]
    long_bones: list[int] = field(default_factory=list)


def _j(rng: np.random.Generator, x: float, rel: float = 0.08) -> float:
    """Jitter ``x`` by a relative amount (anatomical variation between patients)."""
    return float(x * (1.0 + rel * rng.uniform(-1, 1)))


def _chain(
    rng: np.random.Generator, start: tuple[float, float], angle: float, lengths: list[float],
    radii: list[float], gap: float,
) -> list[Capsule]:
    """Bones in a row along ``angle`` (a finger, a limb), separated by joint spaces ``gap``."""
    d = np.array([np.cos(angle), np.sin(angle)])
    p = np.array(start, dtype=float)
    out = []
    for length, r in zip(lengths, radii, strict=True):
        length, r = _j(rng, length), _j(rng, r)
        q = p + d * length
        out.append(Capsule(tuple(p), tuple(q), r))
        p = q + d * (gap + r * 0.9)
    return out


def finger(rng: np.random.Generator, gap: float) -> Anatomy:
    """A finger: metacarpal head, proximal, middle and distal phalanx along u."""
    g = 0.07 * gap
    bones = _chain(rng, (-1.05, _j(rng, 0.01, 1)), _j(rng, 0.0, 1) * 0.05,
                   [0.32, 0.55, 0.38, 0.22], [0.13, 0.11, 0.095, 0.08], g)
    soft = [Capsule((-1.1, bones[0].p0[1]), bones[-1].p1, 0.23, uniform=True, density=0.35)]
    return Anatomy(bones, soft, long_bones=[1, 2, 3])


def hand(rng: np.random.Generator, gap: float) -> Anatomy:
    """A hand: distal radius/ulna, carpal cluster, five rays of metacarpal + phalanges."""
    g = 0.035 * gap
    bones: list[Shape] = [
        Capsule((-1.3, -0.1), (-0.9, -0.09), _j(rng, 0.1)),
        Capsule((-1.3, 0.12), (-0.92, 0.12), _j(rng, 0.06)),
    ]
    for k in range(8):
        row, col = divmod(k, 4)
        bones.append(Ellipse((-0.78 + 0.13 * row + 0.01 * rng.normal(), -0.15 + 0.1 * col),
                             _j(rng, 0.055), _j(rng, 0.045), rng.uniform(0, np.pi)))
    long_bones = []
    soft: list[Shape] = [Ellipse((-0.45, 0.0), 0.42, 0.33, uniform=True, density=0.3)]
    for k, spread in enumerate((-0.62, -0.2, 0.0, 0.18, 0.36)):
        angle = _j(rng, spread, 0.1) * (0.9 if k else 1.0)
        start = (-0.55 + (0.12 if k == 0 else 0.0), -0.16 + 0.085 * k)
        n_phal = 2 if k == 0 else 3
        lengths = [0.36 if k else 0.26] + [0.22, 0.15, 0.1][:n_phal]
        radii = [0.045, 0.038, 0.032, 0.028][: n_phal + 1]
        chain = _chain(rng, start, angle, lengths, radii, g)
        long_bones += list(range(len(bones), len(bones) + len(chain)))
        bones += chain
        soft.append(Capsule(chain[0].p1, chain[-1].p1, 0.07, uniform=True, density=0.35))
    return Anatomy(bones, soft, long_bones)


def wrist(rng: np.random.Generator, gap: float) -> Anatomy:
    """A wrist: distal radius and ulna, eight carpals, metacarpal bases."""
    g = 0.05 * gap
    radius = Capsule((-1.2, -0.14), (-0.3, -0.12), _j(rng, 0.17), flare=0.45)
    ulna = Capsule((-1.2, 0.22), (-0.35 - g, 0.21), _j(rng, 0.09))
    bones: list[Shape] = [radius, ulna]
    x0 = -0.3 + radius.r + g + 0.07
    for k in range(8):
        row, col = divmod(k, 4)
        bones.append(Ellipse((x0 + 0.17 * row + 0.015 * rng.normal(), -0.24 + 0.15 * col),
                             _j(rng, 0.075), _j(rng, 0.065), rng.uniform(0, np.pi)))
    for k in range(5):
        v = -0.3 + 0.14 * k
        bones.append(Capsule((x0 + 0.34 + g, v), (1.2, v * 1.3), _j(rng, 0.055)))
    soft = [Capsule((-1.3, 0.03), (1.3, 0.0), 0.5, uniform=True, density=0.3)]
    return Anatomy(bones, soft, long_bones=[0, 1, 10, 11, 12, 13, 14])


def forearm(rng: np.random.Generator, gap: float) -> Anatomy:
    """A forearm: radius and ulna side by side, joint ends at both edges."""
    g = 0.06 * gap
    bones: list[Shape] = [
        Capsule((-0.85, _j(rng, -0.13)), (0.85, _j(rng, -0.16)), _j(rng, 0.075)),
        Capsule((-0.88, _j(rng, 0.12)), (0.82, _j(rng, 0.11)), _j(rng, 0.065)),
        Ellipse((-1.0 - g, 0.0), 0.09, 0.28),
        Ellipse((1.0 + g, 0.0), 0.08, 0.26),
    ]
    soft = [Capsule((-1.2, 0.0), (1.2, 0.0), 0.36, uniform=True, density=0.3)]
    return Anatomy(bones, soft, long_bones=[0, 1])


def humerus(rng: np.random.Generator, gap: float) -> Anatomy:
    """A humerus: one thick shaft, humeral head and glenoid at one end, condyles at the other."""
    g = 0.06 * gap
    shaft = Capsule((-0.72, _j(rng, 0.0, 1) * 0.03), (0.78, 0.0), _j(rng, 0.11), flare=0.35)
    bones: list[Shape] = [
        shaft,
        Ellipse((-0.82, 0.02), _j(rng, 0.19), _j(rng, 0.22)),
        Ellipse((-1.05 - g, 0.05), 0.06, 0.2, density=0.8),
        Ellipse((0.88, 0.0), _j(rng, 0.09), _j(rng, 0.2)),
        Capsule((1.0 + g, -0.1), (1.3, -0.12), 0.07),
        Capsule((1.0 + g, 0.12), (1.3, 0.14), 0.07),
    ]
    soft = [Capsule((-1.2, 0.0), (1.2, 0.0), 0.42, uniform=True, density=0.32)]
    return Anatomy(bones, soft, long_bones=[0])


def elbow(rng: np.random.Generator, gap: float) -> Anatomy:
    """An elbow: distal humerus with condyles, proximal radius and ulna at a flexion angle."""
    g = 0.06 * gap
    flex = rng.uniform(-0.45, 0.45)
    c, s = np.cos(flex), np.sin(flex)
    joint = np.array([0.0, 0.0])

    def rot(u: float, v: float) -> tuple[float, float]:
        return (float(joint[0] + c * u - s * v), float(joint[1] + s * u + c * v))

    bones: list[Shape] = [
        Capsule((-1.2, 0.0), (-0.25, 0.0), _j(rng, 0.13), flare=0.5),
        Ellipse((-0.14, 0.0), _j(rng, 0.12), _j(rng, 0.26)),
        Capsule(rot(0.05 + g, -0.13), rot(1.2, -0.16), _j(rng, 0.075)),
        Capsule(rot(0.0 + g, 0.11), rot(1.2, 0.14), _j(rng, 0.085)),
        Ellipse(rot(-0.02 + g, 0.2), 0.08, 0.07),
    ]
    soft = [Capsule((-1.3, 0.0), (0.0, 0.0), 0.4, uniform=True, density=0.3),
            Capsule((0.0, 0.0), rot(1.3, 0.0), 0.37, uniform=True, density=0.3)]
    return Anatomy(bones, soft, long_bones=[0, 2, 3])


def shoulder(rng: np.random.Generator, gap: float) -> Anatomy:
    """A shoulder: humeral head and shaft, glenoid, scapula, clavicle and acromion."""
    g = 0.07 * gap
    head_r = _j(rng, 0.27)
    bones: list[Shape] = [
        Ellipse((0.05 + g, 0.12), head_r, head_r * 1.05),
        Capsule((0.2 + g, 0.28), (1.25, 0.42), _j(rng, 0.15), flare=0.1),
        Ellipse((-head_r - 0.04, 0.1), 0.07, 0.24, density=1.1),
        Ellipse((-0.55, 0.45), 0.4, 0.6, angle=0.3, density=0.45, cortex=0.12),
        Capsule((-1.2, -0.62), (0.25, -0.42), _j(rng, 0.07)),
        Capsule((-0.35, -0.3), (0.25, -0.25), 0.055),
    ]
    soft = [Ellipse((0.0, 0.1), 0.95, 0.85, uniform=True, density=0.3)]
    return Anatomy(bones, soft, long_bones=[1, 4])


#: Template per body part.
TEMPLATES: dict[str, Callable[[np.random.Generator, float], Anatomy]] = {
    "ELBOW": elbow,
    "FINGER": finger,
    "FOREARM": forearm,
    "HAND": hand,
    "HUMERUS": humerus,
    "SHOULDER": shoulder,
    "WRIST": wrist,
}
