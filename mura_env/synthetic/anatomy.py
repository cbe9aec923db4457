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


def _jitter(rng: np.random.Generator, value: float, rel: float = 0.08) -> float:
    """``value`` changed by up to ``rel`` of itself (anatomical variation between patients)."""
    return float(value * (1.0 + rel * rng.uniform(-1, 1)))


def _chain(
    rng: np.random.Generator, start: tuple[float, float], angle: float, lengths: list[float],
    radii: list[float], gap: float,
) -> list[Capsule]:
    """Bones in a row along ``angle`` (a finger, a limb), separated by joint spaces ``gap``."""
    direction = np.array([np.cos(angle), np.sin(angle)])
    bone_start = np.array(start, dtype=float)
    out = []
    for length, radius in zip(lengths, radii, strict=True):
        length, radius = _jitter(rng, length), _jitter(rng, radius)
        bone_end = bone_start + direction * length
        out.append(Capsule(tuple(bone_start), tuple(bone_end), radius))
        bone_start = bone_end + direction * (gap + radius * 0.9)
    return out


def finger(rng: np.random.Generator, gap: float) -> Anatomy:
    """A finger: metacarpal head, proximal, middle and distal phalanx along u."""
    joint_gap = 0.07 * gap
    bones = _chain(rng, (-1.05, _jitter(rng, 0.01, 1)), _jitter(rng, 0.0, 1) * 0.05,
                   [0.32, 0.55, 0.38, 0.22], [0.13, 0.11, 0.095, 0.08], joint_gap)
    soft = [Capsule((-1.1, bones[0].p0[1]), bones[-1].p1, 0.23, uniform=True, density=0.35)]
    return Anatomy(bones, soft, long_bones=[1, 2, 3])


def hand(rng: np.random.Generator, gap: float) -> Anatomy:
    """A hand: distal radius/ulna, carpal cluster, five rays of metacarpal + phalanges."""
    joint_gap = 0.035 * gap
    bones: list[Shape] = [
        Capsule((-1.3, -0.1), (-0.9, -0.09), _jitter(rng, 0.1)),
        Capsule((-1.3, 0.12), (-0.92, 0.12), _jitter(rng, 0.06)),
    ]
    for carpal in range(8):
        row, col = divmod(carpal, 4)
        bones.append(Ellipse((-0.78 + 0.13 * row + 0.01 * rng.normal(), -0.15 + 0.1 * col),
                             _jitter(rng, 0.055), _jitter(rng, 0.045), rng.uniform(0, np.pi)))
    long_bones = []
    soft: list[Shape] = [Ellipse((-0.45, 0.0), 0.42, 0.33, uniform=True, density=0.3)]
    for ray, spread in enumerate((-0.62, -0.2, 0.0, 0.18, 0.36)):  # ray 0 is the thumb
        angle = _jitter(rng, spread, 0.1) * (0.9 if ray else 1.0)
        start = (-0.55 + (0.12 if ray == 0 else 0.0), -0.16 + 0.085 * ray)
        n_phalanges = 2 if ray == 0 else 3
        lengths = [0.36 if ray else 0.26] + [0.22, 0.15, 0.1][:n_phalanges]
        radii = [0.045, 0.038, 0.032, 0.028][: n_phalanges + 1]
        chain = _chain(rng, start, angle, lengths, radii, joint_gap)
        long_bones += list(range(len(bones), len(bones) + len(chain)))
        bones += chain
        soft.append(Capsule(chain[0].p1, chain[-1].p1, 0.07, uniform=True, density=0.35))
    return Anatomy(bones, soft, long_bones)


def wrist(rng: np.random.Generator, gap: float) -> Anatomy:
    """A wrist: distal radius and ulna, eight carpals, metacarpal bases."""
    joint_gap = 0.05 * gap
    radius = Capsule((-1.2, -0.14), (-0.3, -0.12), _jitter(rng, 0.17), flare=0.45)
    ulna = Capsule((-1.2, 0.22), (-0.35 - joint_gap, 0.21), _jitter(rng, 0.09))
    bones: list[Shape] = [radius, ulna]
    carpal_u = -0.3 + radius.r + joint_gap + 0.07
    for carpal in range(8):
        row, col = divmod(carpal, 4)
        bones.append(Ellipse((carpal_u + 0.17 * row + 0.015 * rng.normal(), -0.24 + 0.15 * col),
                             _jitter(rng, 0.075), _jitter(rng, 0.065), rng.uniform(0, np.pi)))
    for metacarpal in range(5):
        v = -0.3 + 0.14 * metacarpal
        bones.append(Capsule((carpal_u + 0.34 + joint_gap, v), (1.2, v * 1.3),
                             _jitter(rng, 0.055)))
    soft = [Capsule((-1.3, 0.03), (1.3, 0.0), 0.5, uniform=True, density=0.3)]
    return Anatomy(bones, soft, long_bones=[0, 1, 10, 11, 12, 13, 14])


def forearm(rng: np.random.Generator, gap: float) -> Anatomy:
    """A forearm: radius and ulna side by side, joint ends at both edges."""
    joint_gap = 0.06 * gap
    bones: list[Shape] = [
        Capsule((-0.85, _jitter(rng, -0.13)), (0.85, _jitter(rng, -0.16)), _jitter(rng, 0.075)),
        Capsule((-0.88, _jitter(rng, 0.12)), (0.82, _jitter(rng, 0.11)), _jitter(rng, 0.065)),
        Ellipse((-1.0 - joint_gap, 0.0), 0.09, 0.28),
        Ellipse((1.0 + joint_gap, 0.0), 0.08, 0.26),
    ]
    soft = [Capsule((-1.2, 0.0), (1.2, 0.0), 0.36, uniform=True, density=0.3)]
    return Anatomy(bones, soft, long_bones=[0, 1])


def humerus(rng: np.random.Generator, gap: float) -> Anatomy:
    """A humerus: one thick shaft, humeral head and glenoid at one end, condyles at the other."""
    joint_gap = 0.06 * gap
    shaft = Capsule((-0.72, _jitter(rng, 0.0, 1) * 0.03), (0.78, 0.0), _jitter(rng, 0.11),
                    flare=0.35)
    bones: list[Shape] = [
        shaft,
        Ellipse((-0.82, 0.02), _jitter(rng, 0.19), _jitter(rng, 0.22)),
        Ellipse((-1.05 - joint_gap, 0.05), 0.06, 0.2, density=0.8),
        Ellipse((0.88, 0.0), _jitter(rng, 0.09), _jitter(rng, 0.2)),
        Capsule((1.0 + joint_gap, -0.1), (1.3, -0.12), 0.07),
        Capsule((1.0 + joint_gap, 0.12), (1.3, 0.14), 0.07),
    ]
    soft = [Capsule((-1.2, 0.0), (1.2, 0.0), 0.42, uniform=True, density=0.32)]
    return Anatomy(bones, soft, long_bones=[0])


def elbow(rng: np.random.Generator, gap: float) -> Anatomy:
    """An elbow: distal humerus with condyles, proximal radius and ulna at a flexion angle."""
    joint_gap = 0.06 * gap
    flex = rng.uniform(-0.45, 0.45)
    cos_flex, sin_flex = np.cos(flex), np.sin(flex)
    joint = np.array([0.0, 0.0])

    def flexed(u: float, v: float) -> tuple[float, float]:
        """(u, v) of the forearm side, turned about the joint by the flexion angle."""
        return (float(joint[0] + cos_flex * u - sin_flex * v),
                float(joint[1] + sin_flex * u + cos_flex * v))

    bones: list[Shape] = [
        Capsule((-1.2, 0.0), (-0.25, 0.0), _jitter(rng, 0.13), flare=0.5),
        Ellipse((-0.14, 0.0), _jitter(rng, 0.12), _jitter(rng, 0.26)),
        Capsule(flexed(0.05 + joint_gap, -0.13), flexed(1.2, -0.16), _jitter(rng, 0.075)),
        Capsule(flexed(0.0 + joint_gap, 0.11), flexed(1.2, 0.14), _jitter(rng, 0.085)),
        Ellipse(flexed(-0.02 + joint_gap, 0.2), 0.08, 0.07),
    ]
    soft = [Capsule((-1.3, 0.0), (0.0, 0.0), 0.4, uniform=True, density=0.3),
            Capsule((0.0, 0.0), flexed(1.3, 0.0), 0.37, uniform=True, density=0.3)]
    return Anatomy(bones, soft, long_bones=[0, 2, 3])


def shoulder(rng: np.random.Generator, gap: float) -> Anatomy:
    """A shoulder: humeral head and shaft, glenoid, scapula, clavicle and acromion."""
    joint_gap = 0.07 * gap
    head_r = _jitter(rng, 0.27)
    bones: list[Shape] = [
        Ellipse((0.05 + joint_gap, 0.12), head_r, head_r * 1.05),
        Capsule((0.2 + joint_gap, 0.28), (1.25, 0.42), _jitter(rng, 0.15), flare=0.1),
        Ellipse((-head_r - 0.04, 0.1), 0.07, 0.24, density=1.1),
        Ellipse((-0.55, 0.45), 0.4, 0.6, angle=0.3, density=0.45, cortex=0.12),
        Capsule((-1.2, -0.62), (0.25, -0.42), _jitter(rng, 0.07)),
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
