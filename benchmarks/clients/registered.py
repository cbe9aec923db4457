"""The env ids that ``mura_env`` registers, read from Gymnasium's registry (so that envs added
to the package later are covered without a change here)."""

from __future__ import annotations

import gymnasium

import mura_env  # noqa: F401  (registers the envs)


def mura_env_ids() -> list[str]:
    """The sorted ids of every env in ``gymnasium.registry`` whose entry point (a
    ``"module:attr"`` string or a callable) lies in the ``mura_env`` package."""
    ids = []
    for env_id, spec in gymnasium.registry.items():
        entry = spec.entry_point
        module = entry.split(":")[0] if isinstance(entry, str) else getattr(entry, "__module__", "")
        if module == "mura_env" or module.startswith("mura_env."):
            ids.append(env_id)
    return sorted(ids)
