"""Argument checks shared by the envs' configs and constructors."""

from __future__ import annotations

from typing import Any

import numpy as np


def whole_number(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as a Python ``int`` if it is an integer (``int`` or a NumPy integer, not a
    ``bool``) of at least ``minimum``; otherwise ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)
