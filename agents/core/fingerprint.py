"""A fingerprint of what a method has fitted: one sha256 over its learned state.

Commands write the fingerprint of every fitted method and trained agent into their run
folders, so that two runs can be compared without their models: equal fingerprints, equal
fitted state. Valid-blindness is checked this way at the command level (two tables that differ
only on ``valid`` must give equal fingerprints).

:func:`fitted_fingerprint` walks an object: NumPy arrays (dtype, shape, bytes), torch tensors
and modules (their ``state_dict``), Stable-Baselines3 models (their policy's ``state_dict``),
scikit-learn estimators and plain objects (their attributes), dicts, lists, tuples and
scalars. Attributes that measure time (names holding ``time`` or ``seconds``) and callables
are left out: they say how long a fit took, not what it learned.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

#: Attribute names (substrings) that are measurements of the run, not fitted state.
SKIPPED_ATTRIBUTES = ("time", "seconds")
#: How deep nested objects are followed.
MAX_DEPTH = 12


def fitted_fingerprint(obj: Any) -> str:
    """The sha256 (hex) of ``obj``'s fitted state (see the module docstring)."""
    h = hashlib.sha256()
    _feed(h, obj, 0, set())
    return h.hexdigest()


def _feed(h: Any, obj: Any, depth: int, seen: set[int]) -> None:
    """Add ``obj`` to the hash ``h``; objects already seen (cycles) and anything deeper than
    :data:`MAX_DEPTH` count by their type alone."""
    if obj is None or isinstance(obj, (bool, int, str, bytes)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
        return
    if isinstance(obj, float):
        h.update(f"float:{'nan' if math.isnan(obj) else repr(obj)};".encode())
        return
    if isinstance(obj, np.generic):
        _feed(h, obj.item(), depth, seen)
        return
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            _feed(h, obj.tolist(), depth, seen)
            return
        h.update(f"ndarray:{obj.dtype.str}:{obj.shape};".encode())
        h.update(np.ascontiguousarray(obj).tobytes())
        return
    if depth > MAX_DEPTH or id(obj) in seen:
        h.update(f"<{type(obj).__name__}>;".encode())
        return
    seen = seen | {id(obj)}
    torch_state = _torch_state(obj)
    if torch_state is not None:
        _feed(h, torch_state, depth + 1, seen)
        return
    if isinstance(obj, dict):
        h.update(b"dict{")
        for key in sorted(obj, key=repr):
            if isinstance(key, str) and any(s in key for s in SKIPPED_ATTRIBUTES):
                continue
            h.update(f"{key!r}:".encode())
            _feed(h, obj[key], depth + 1, seen)
        h.update(b"}")
        return
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else obj
        h.update(f"{type(obj).__name__}[".encode())
        for item in items:
            _feed(h, item, depth + 1, seen)
        h.update(b"]")
        return
    if callable(obj) and not hasattr(obj, "__dict__"):
        return
    attributes = {k: v for k, v in getattr(obj, "__dict__", {}).items()
                  if not callable(v) or hasattr(v, "__dict__")}
    h.update(f"{type(obj).__qualname__}(".encode())
    _feed(h, attributes, depth + 1, seen)
    h.update(b")")


def _torch_state(obj: Any) -> dict[str, Any] | None:
    """The tensors of a torch tensor, module or Stable-Baselines3 model as NumPy arrays
    (``{name: array}``), or None for anything else (torch is only looked at when loaded)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        return None
    if isinstance(obj, torch.Tensor):
        return {"tensor": obj.detach().cpu().numpy()}
    policy = getattr(obj, "policy", None)
    if isinstance(policy, torch.nn.Module) and hasattr(obj, "learn"):  # an SB3 model
        obj = policy
    if isinstance(obj, torch.nn.Module):
        return {k: v.detach().cpu().numpy() for k, v in obj.state_dict().items()}
    return None
