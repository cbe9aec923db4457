"""mura-rl's data and environment package.

Importing it registers the Gymnasium environments ``MuraWeighting-v0`` (weight the ensemble),
``MuraDeferral-v0`` (weight it, or hand the study to a radiologist), ``MuraWorklist-v0`` (a
reading shift: radiologists of limited capacity) and ``MuraTriage-v0`` (a reading room in time:
which waiting study a free radiologist reads next), each with a single env and a native vector
env, so that after ``import mura_env``::

    gymnasium.make("MuraWeighting-v0", logits=...)
    gymnasium.make_vec("MuraWeighting-v0", num_envs=4096, logits=...)
    gymnasium.make("MuraDeferral-v0", defer_cost=0.1)
    gymnasium.make("MuraWorklist-v0", scenario="emergency", capacity=0.1)
    gymnasium.make("MuraTriage-v0", profile="surge", load=0.9)

work, and ``gymnasium.make("mura_env:MuraWeighting-v0", ...)`` works from a fresh interpreter.
Without ``logits=``, the env loads a reference table shipped with the package
(:mod:`mura_env.logits.reference`; ``reference_table=0`` by default).
Worker processes that multiprocessing's forkserver starts (Stable-Baselines3's
``SubprocVecEnv`` default on Linux and macOS) import this package first, so
``make_vec_env("MuraWeighting-v0", vec_env_cls=SubprocVecEnv)`` finds the id there too.
Heavy modules (torch, the env itself) are imported lazily by their entry points.
"""

from __future__ import annotations

import multiprocessing

import gymnasium

from mura_env.constants import BODY_PARTS, MURA_DIRNAME, SPLITS
from mura_env.version import __version__

ENV_ID = "MuraWeighting-v0"
DEFERRAL_ENV_ID = "MuraDeferral-v0"
WORKLIST_ENV_ID = "MuraWorklist-v0"
TRIAGE_ENV_ID = "MuraTriage-v0"

for _id, _single, _vector in (
        (ENV_ID, "mura_env.weighting.env:MuraWeightingEnv",
        "mura_env.weighting.vector_env:MuraWeightingVectorEnv"),
        (DEFERRAL_ENV_ID, "mura_env.deferral.env:MuraDeferralEnv",
         "mura_env.deferral.env:MuraDeferralVectorEnv"),
        (WORKLIST_ENV_ID, "mura_env.worklist.env:MuraWorklistEnv",
         "mura_env.worklist.env:MuraWorklistVectorEnv"),
        (TRIAGE_ENV_ID, "mura_env.triage.env:MuraTriageEnv",
         "mura_env.triage.env:MuraTriageVectorEnv")):
    if _id not in gymnasium.registry:
        gymnasium.register(id=_id, entry_point=_single, vector_entry_point=_vector)


def registered_env_ids() -> list[str]:
    """The sorted ids of every env in ``gymnasium.registry`` whose entry point (a
    ``"module:attr"`` string or a callable) lies in this package: what other RL libraries can
    make by id after ``import mura_env``."""
    ids = []
    for env_id, spec in gymnasium.registry.items():
        entry = spec.entry_point
        module = entry.split(":")[0] if isinstance(entry, str) else getattr(entry, "__module__", "")
        if module == __name__ or module.startswith(__name__ + "."):
            ids.append(env_id)
    return sorted(ids)


def env_config_class(env_id: str) -> type:
    """The typed configuration class of the registered env ``env_id`` (e.g.
    :class:`~mura_env.weighting.config.WeightingConfig` for ``MuraWeighting-v0``): the
    ``config_class`` of the problem its single env runs. Imports the env's module.

    Raises:
        ValueError: ``env_id`` is not one of :func:`registered_env_ids`.
    """
    from gymnasium.envs.registration import load_env_creator

    if env_id not in registered_env_ids():
        raise ValueError(f"unknown env {env_id!r}; the envs of mura_env are: "
                         f"{', '.join(registered_env_ids())}.")
    entry = gymnasium.spec(env_id).entry_point
    env_class = load_env_creator(entry) if isinstance(entry, str) else entry
    return env_class.problem_class.config_class


def _preload_in_forkserver_workers() -> None:
    """Add this package to the modules the forkserver imports before it forks workers (where
    the platform has a forkserver), keeping the ones already listed (``__main__`` by default)."""
    try:
        from multiprocessing import forkserver
    except ImportError:  # pragma: no cover - platforms without forkserver
        return
    current = list(getattr(forkserver._forkserver, "_preload_modules", None) or ["__main__"])
    if __name__ not in current:
        multiprocessing.set_forkserver_preload([*current, __name__])


_preload_in_forkserver_workers()

__all__ = ["BODY_PARTS", "DEFERRAL_ENV_ID", "ENV_ID", "MURA_DIRNAME", "SPLITS", "TRIAGE_ENV_ID",
           "WORKLIST_ENV_ID", "__version__", "env_config_class", "registered_env_ids"]
