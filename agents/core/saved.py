"""Agent run folders: what ``experiments.train_agent`` writes and how to load it back.

A run folder holds ``agent.json`` (the manifest below, written before training starts and
rewritten at the end), the model (``model.pt`` for softmax-pg, ``model.zip`` for SB3; rewritten
atomically at every evaluation, so a killed run leaves its last checkpoint loadable),
``config.json``, ``metrics.json`` and ``tb/``.

``agent.json``: ``algo``, ``model_file``, ``model_names`` (the members it weights: all the
table's, or the ``models=`` subset it was trained with), ``data_fingerprint`` (of the data
set behind the logits table), ``table_digest`` (of the whole table), ``models_digest`` (of the
table restricted to ``model_names``), ``env_id`` (``MuraWeighting-v0``, or
``MuraDeferral-v0`` for a deferral agent; absent in older manifests: weighting),
``reader`` and ``reads_digest`` (a deferral agent's reader and its reads, checked against a
table it is used with), ``env_config`` (the env's
:class:`~mura_env.weighting.config.WeightingConfig` or
:class:`~mura_env.deferral.config.DeferralConfig` it trained with, without ``logits``: the
action mapping ``action_scale``, ``temperature``, ``threshold``, the ``models``, the reward,
the ``defer_cost``...), ``hyperparameters`` (resolved:
``total_timesteps``, ``n_envs``, ``eval_every``, ``learning_rate`` and the algorithm's own),
``env_steps`` (of the last checkpoint; written just after the model file, so a run killed
between the two writes shows the previous count) and ``finished``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

from agents.core.algos import get_algo
from mura_env import ENV_ID, env_config_class
from mura_env.common.atomic import atomic_write_bytes
from mura_env.logits import LogitsTable
from mura_env.weighting.config import WeightingConfig
from mura_env.weighting.mapping import EnsembleMapping

MANIFEST = "agent.json"


class AgentMismatchError(ValueError):
    """A saved agent is used with a logits table other than the one it was trained on."""


def table_digest(table: LogitsTable) -> str:
    """sha256 (hex) of a table's study ids, models and logits: equal digests, equal tables."""
    h = hashlib.sha256()
    h.update("\n".join(table.studies["study_id"].astype(str)).encode())
    h.update(("\n" + "\n".join(table.model_names)).encode())
    h.update(np.ascontiguousarray(table.logits, dtype=np.float32).tobytes())
    return h.hexdigest()


def reads_digest(table: LogitsTable, reader: str) -> str:
    """sha256 (hex) of reader ``reader``'s reads of the table's studies (with their ids)."""
    h = hashlib.sha256()
    h.update("\n".join(table.studies["study_id"].astype(str)).encode())
    h.update(np.ascontiguousarray(table.reads(reader), dtype=np.int8).tobytes())
    return h.hexdigest()


def write_manifest(run_dir: str | os.PathLike[str], manifest: dict[str, Any]) -> Path:
    """Write ``agent.json`` into ``run_dir`` atomically; returns its path."""
    data = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    return atomic_write_bytes(Path(run_dir) / MANIFEST, data.encode())


@dataclass
class SavedAgent:
    """A trained agent loaded from its run folder.

    Attributes:
        algo: registry name (``softmax-pg``, ``ppo``, ...).
        run_dir: the folder it came from.
        model_names: the ``K`` ensemble members, in action order.
        data_fingerprint: data set behind the table it was trained on (or None).
        table_digest: :func:`table_digest` of that table.
        models_digest: :func:`table_digest` of that table restricted to ``model_names`` (None
            in manifests written before it existed).
        config: the env configuration it was trained with (``logits`` None).
        model: the policy object (a :class:`~agents.weighting.softmax_pg.SoftmaxPGAgent` or an SB3
            model; both have ``predict(obs, deterministic=True) -> (actions, state)``).
        manifest: the whole ``agent.json``.
    """

    algo: str
    run_dir: Path
    model_names: tuple[str, ...]
    data_fingerprint: str | None
    table_digest: str
    config: WeightingConfig
    model: Any
    manifest: dict[str, Any] = field(default_factory=dict)
    models_digest: str | None = None

    def predict(self, observations: np.ndarray) -> np.ndarray:
        """Deterministic actions: float32 ``[n, 2K + 7]`` observations -> float32 ``[n, K]``
        (``[n, K + 1]`` for a deferral agent: the defer score last)."""
        obs = np.asarray(observations, dtype=np.float32)
        actions, _ = self.model.predict(obs, deterministic=True)
        return np.asarray(actions, dtype=np.float32).reshape(len(obs), -1)

    @property
    def mapping(self) -> EnsembleMapping:
        """The action -> weights -> prediction mapping it was trained with."""
        return self.config.mapping

    @property
    def deferral(self) -> bool:
        """True for an agent that can defer (it trained with a reader: its actions end with a
        defer score)."""
        return self.manifest.get("reader") is not None

    def weights(self, observations: np.ndarray) -> np.ndarray:
        """The env's ensemble weights for the deterministic actions: float32 ``[n, 2K + 7]``
        -> float64 ``[n, K]``, rows summing to 1."""
        return self.mapping.weights(self.predict(observations)[:, :len(self.model_names)])

    def deferred(self, observations: np.ndarray) -> np.ndarray:
        """bool ``[n]``: the deterministic policy hands the study to the reader (always False
        for a weighting agent)."""
        actions = self.predict(observations)
        if not self.deferral:
            return np.zeros(len(actions), dtype=bool)
        return actions[:, len(self.model_names)] > 0

    def check_table(self, table: LogitsTable) -> None:
        """Refuse a table the agent was not trained on.

        Accepted: the very table it was trained on, or that table restricted to the agent's
        ``model_names`` (for an agent trained on a ``models=`` subset). Observations for the
        agent then come from ``StudySet.select(table, split, models=agent.model_names)``.

        Raises:
            AgentMismatchError: another data set (data fingerprints differ), a table missing
                some of the agent's models, or other logits (e.g. backbones retrained on the
                same data).
        """
        where = f"The agent in {self.run_dir} ({self.algo})"
        if (self.data_fingerprint and table.data_fingerprint
                and self.data_fingerprint != table.data_fingerprint):
            raise AgentMismatchError(
                f"{where} was trained on logits of another data set (data fingerprint "
                f"{self.data_fingerprint[:12]}..., this table's is "
                f"{str(table.data_fingerprint)[:12]}...). Use the logits table it was trained "
                "on, or train an agent on this one with `python -m experiments.train_agent "
                "--logits PATH`.")
        missing = [m for m in self.model_names if m not in table.model_names]
        if missing:
            raise AgentMismatchError(
                f"{where} weights the models {list(self.model_names)}, but this table has "
                f"{list(table.model_names)} (missing {missing}). Train an agent on this table.")
        same_table = table_digest(table) == self.table_digest
        same_members = self.models_digest is not None and table_digest(
            table.select(models=list(self.model_names))) == self.models_digest
        if not (same_table or same_members):
            raise AgentMismatchError(
                f"{where} was trained on another logits table (same models, other logits or "
                "studies). Use the table it was trained on (see its config.json), or train an "
                "agent on this one.")
        reader = self.manifest.get("reader")
        if self.deferral and reader is not None and (
                reader not in table.reader_ids
                or reads_digest(table, reader) != self.manifest.get("reads_digest")):
            raise AgentMismatchError(
                f"{where} defers to reader {reader!r}, whose reads this table does not hold "
                f"(readers: {list(table.reader_ids)}). Use the table it was trained on, with "
                "its reader column.")


def load_model(algo: str, path: str | os.PathLike[str], env_id: str = ENV_ID) -> Any:
    """Load the policy object saved at ``path`` for registry entry ``algo`` trained on
    ``env_id`` (its family's :meth:`~agents.core.families.AgentFamily.load`)."""
    spec = get_algo(algo)
    return spec.family.load(spec, path, env_id)


def load_agent(run_dir: str | os.PathLike[str], table: LogitsTable | None = None
               ) -> SavedAgent:
    """Load the agent of a run folder written by ``experiments.train_agent``.

    Works on a finished run and on one killed mid-training (its last checkpoint).

    Args:
        run_dir: the run folder.
        table: if given, the logits table the agent will be used with; it is checked with
            :meth:`SavedAgent.check_table`.

    Raises:
        FileNotFoundError: no folder, no ``agent.json``, or no model file yet.
        ValueError: an ``agent.json`` that is not one, or a model file that cannot be read.
        AgentMismatchError: ``table`` is not the one the agent was trained on.
    """
    run_dir = Path(run_dir)
    path = run_dir / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"No agent run at {run_dir}: expected {MANIFEST} written by "
            "`python -m experiments.train_agent` (pass the run folder, e.g. "
            "runs/agents/ppo_0_<time>).")
    try:
        manifest = json.loads(path.read_text())
        algo = manifest["algo"]
        model_file = run_dir / manifest["model_file"]
        names = tuple(manifest["model_names"])
        digest = manifest["table_digest"]
        env_id = manifest.get("env_id", ENV_ID)
        config = env_config_class(env_id).from_dict(manifest["env_config"])
    except (ValueError, KeyError, TypeError, gymnasium.error.Error) as e:
        raise ValueError(f"{path} is not a valid agent manifest ({e!r}).") from e
    if not model_file.is_file():
        raise FileNotFoundError(
            f"The agent run {run_dir} has no model file {model_file.name} yet (the run "
            "stopped before its first checkpoint). Train again.")
    agent = SavedAgent(algo=algo, run_dir=run_dir, model_names=names,
                       data_fingerprint=manifest.get("data_fingerprint"), table_digest=digest,
                       config=config,
                       model=load_model(algo, model_file, env_id),
                       manifest=manifest,
                       models_digest=manifest.get("models_digest"))
    if table is not None:
        agent.check_table(table)
    return agent
