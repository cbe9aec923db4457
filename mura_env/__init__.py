"""mura-rl's data and environment package.

Importing it registers the Gymnasium environment ``MuraWeighting-v0`` (single env and native
vector env), so that after ``import mura_env``::

    gymnasium.make("MuraWeighting-v0", logits=...)
    gymnasium.make_vec("MuraWeighting-v0", num_envs=4096, logits=...)

work, and ``gymnasium.make("mura_env:MuraWeighting-v0", ...)`` works from a fresh interpreter.
Heavy modules (torch, the env itself) are imported lazily by their entry points.
"""

from __future__ import annotations

import gymnasium

from mura_env.constants import BODY_PARTS, MURA_DIRNAME, SPLITS

__version__ = "0.1.0"

ENV_ID = "MuraWeighting-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(
        id=ENV_ID,
        entry_point="mura_env.env:MuraWeightingEnv",
        vector_entry_point="mura_env.vector_env:MuraWeightingVectorEnv",
    )

__all__ = ["BODY_PARTS", "ENV_ID", "MURA_DIRNAME", "SPLITS", "__version__"]
