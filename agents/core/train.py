"""Train any registered agent on any env of ``mura_env`` into a run folder (see
:mod:`agents.core.saved`).

One entry point for every family (:mod:`agents.core.families`) and env (``MuraWeighting-v0``,
``MuraDeferral-v0``), used by ``experiments.train_agent``, the benchmark, the deferral
experiment and the time-to-quality benchmark: the same budgets and env copies (the registry's,
:mod:`agents.core.algos`) wherever it is called. Both families log the same TensorBoard tags, step
= env
steps: ``rollout/ep_rew_mean`` and ``eval/accuracy``, ``eval/kappa`` (on ``eval_split``,
``tune`` by default, the split the agent learns on: ``valid`` is kept for final scores; the
curves are for monitoring only, nothing is selected on them; the saved model is the last one).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.core.algos import ALGOS, AlgoSpec, as_spec
from agents.core.evaluate import Policy, sweep_answers
from agents.core.saved import MANIFEST, SavedAgent, reads_digest, table_digest, write_manifest
from agents.triage.rollout import policy_triage_scores
from agents.weighting.softmax_pg import SoftmaxPGConfig
from agents.worklist.rollout import policy_shift_scores
from mura_env import TRIAGE_ENV_ID, WORKLIST_ENV_ID
from mura_env.logits import LogitsTable
from mura_env.weighting.config import WeightingConfig


@dataclass
class TrainedAgent:
    """What :func:`train_agent` returns.

    Attributes:
        agent: the trained agent as :func:`agents.core.saved.load_agent` would give it back from
            ``run_dir``, holding the model in memory.
        model: the trained policy object (a :class:`~agents.weighting.softmax_pg.SoftmaxPGAgent` or
            an SB3 model), as it stood when training ended (the same object as ``agent.model``).
        env_steps: env steps used; wall_time: training seconds (without evaluations);
        history: one dict per evaluation (``env_steps``, ``wall_time``, ``ep_rew_mean``,
            ``accuracy``, ``kappa``).
        hyperparameters: the resolved settings (``total_timesteps``, ``n_envs``,
            ``eval_every``, ``learning_rate`` and the algorithm's own), also in ``agent.json``.
    """

    agent: SavedAgent
    model: Any
    env_steps: int
    wall_time: float
    history: list[dict[str, Any]] = field(default_factory=list)
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    @property
    def policy(self) -> Policy:
        """Deterministic policy: observations float32 ``[n, 2K + 7]`` -> actions ``[n, K]``
        (``[n, K + 1]`` for a deferral agent)."""
        return self.agent.predict


#: Files of an earlier run that a reused run folder loses before training (besides the model
#: files of every algorithm and the TensorBoard files in ``tb/``).
STALE_RUN_FILES = ("metrics.json", "metrics.csv", "baselines.csv")


def resolve_hyperparameters(
    algo: str | AlgoSpec,
    config: WeightingConfig | None = None,
    *,
    total_timesteps: int | None = None,
    eval_every: int | None = None,
    n_envs: int | None = None,
    learning_rate: float | None = None,
    softmax_pg: SoftmaxPGConfig | None = None,
) -> dict[str, Any]:
    """The settings :func:`train_agent` will use, with every default filled in.

    Args:
        algo: a name in :data:`agents.core.algos.ALGOS`, or its entry.
        config: the env configuration trained on (None: ``MuraWeighting-v0``'s defaults); its
            env id picks the registry's budget and env copies.
        others: as :func:`train_agent` (None: the default).

    Returns:
        ``{"total_timesteps", "eval_every", "n_envs", "learning_rate", "algorithm"}`` (plain
        JSON values); ``algorithm`` is the family's resolved settings (the native agent's
        whole config, or the SB3 constructor arguments).

    Raises:
        UnknownAlgoError: ``algo`` is not registered. ValueError: a count below 1, or
        softmax-pg with one env (its advantages are normalised over the batch).
    """
    spec = as_spec(algo)
    config = config if config is not None else WeightingConfig()
    env_id = config.env_id
    total = spec.default_timesteps(env_id) if total_timesteps is None else int(total_timesteps)
    every = max(1, total // 10) if eval_every is None else int(eval_every)
    copies = spec.default_n_envs(env_id) if n_envs is None else int(n_envs)
    for name, value in (("total_timesteps", total), ("eval_every", every), ("n_envs", copies)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}.")
    algorithm = spec.family.algorithm_settings(spec, config, copies, learning_rate, softmax_pg)
    return {"total_timesteps": total, "eval_every": every, "n_envs": copies,
            "learning_rate": algorithm["learning_rate"], "algorithm": algorithm}


def _clear_earlier_run(run_dir: Path) -> None:
    """Remove what an earlier agent run left in ``run_dir``: every algorithm's model file,
    :data:`STALE_RUN_FILES` and TensorBoard's files in ``tb/`` (nothing else)."""
    for name in {a.model_file for a in ALGOS.values()} | set(STALE_RUN_FILES):
        (run_dir / name).unlink(missing_ok=True)
    tb = run_dir / "tb"
    if tb.is_dir():
        for old in [*tb.glob("events.out.tfevents.*"), tb / "progress.csv"]:
            old.unlink(missing_ok=True)


def train_agent(
    algo: str | AlgoSpec,
    config: WeightingConfig,
    run_dir: str | os.PathLike[str] | None,
    *,
    total_timesteps: int | None = None,
    seed: int = 0,
    eval_split: str = "tune",
    eval_every: int | None = None,
    learning_rate: float | None = None,
    n_envs: int | None = None,
    softmax_pg: SoftmaxPGConfig | None = None,
    settings: dict[str, Any] | None = None,
    tensorboard: bool = True,
    progress: bool = False,
) -> TrainedAgent:
    """Train ``algo`` on the env of ``config`` (its ``split`` is the training split) and save
    it into ``run_dir``.

    Args:
        algo: a name in :data:`agents.core.algos.ALGOS`, or its entry (looked up once).
        config: the env configuration (``logits``: the table, or None for reference table
            ``reference_table``; ``split``: trained on; ``reward``, ``action_scale``,
            ``temperature``, ``threshold``, ``models``, ...).
            Its ``sampling`` is ignored (softmax-pg and SB3 draw studies at random), except on
            ``MuraWorklist-v0``, where it says how shifts are made (``sweep``: the next
            ``shift_size`` studies in table order).
        run_dir: output folder (created), or None to keep nothing on disk; gets
            ``agent.json``, the model and ``tb/``. A
            folder that already holds an agent run is reused: once the settings are checked,
            its model files, metrics files and TensorBoard event files are removed, so
            neither a stale model nor old curves survive.
        total_timesteps: env steps (answered studies); None: the registry default.
        seed: seeds the agent and the env.
        eval_split: the split monitored on (``eval/*`` curves; nothing is selected on it).
            Keep ``valid`` out of it: valid is for final scores only.
        eval_every: env steps between evaluations and checkpoints (None: about 10 per run).
        learning_rate: None keeps the algorithm's default.
        n_envs: env copies (softmax-pg: studies per update, default 4096; SB3: default 8).
        softmax_pg: the native agent's hyper-parameters (``num_envs`` is overridden by
            ``n_envs`` when given).
        settings: the settings already resolved by :func:`resolve_hyperparameters` for this
            algo and env (then ``total_timesteps``, ``eval_every``, ``learning_rate``,
            ``n_envs`` and ``softmax_pg`` are not read).
        tensorboard: write TensorBoard events into ``run_dir/tb``.
        progress: show progress bars.

    Returns:
        A :class:`TrainedAgent`.

    Raises:
        UnknownAlgoError, ValueError: bad settings (see :func:`resolve_hyperparameters`) or
            unknown model names; raised before anything in ``run_dir`` is touched.
    """
    spec = as_spec(algo)
    table = config.load_table()
    config = config.replace(logits=table, sampling=config.training_sampling)
    if settings is None:
        settings = resolve_hyperparameters(spec, config, total_timesteps=total_timesteps,
                                           eval_every=eval_every, n_envs=n_envs,
                                           learning_rate=learning_rate, softmax_pg=softmax_pg)
    manifest = start_manifest(spec, config, table, seed, settings)  # checks names, reader
    hooks = TrainingHooks(spec, None if run_dir is None else Path(run_dir), manifest, config,
                          eval_split)
    if hooks.run_dir is not None:
        hooks.run_dir.mkdir(parents=True, exist_ok=True)
        if (hooks.run_dir / MANIFEST).is_file():  # an earlier agent run in this folder
            _clear_earlier_run(hooks.run_dir)
        write_manifest(hooks.run_dir, manifest)
    tb_dir = hooks.run_dir / "tb" if tensorboard and hooks.run_dir is not None else None
    model, result = spec.family.train(spec, config, settings, seed, tb_dir, hooks.evaluate,
                                      settings["eval_every"], hooks.checkpoint, progress)
    manifest.update(env_steps=int(result["env_steps"]), finished=True,
                    wall_time=float(result["wall_time"]))
    if hooks.run_dir is not None:
        write_manifest(hooks.run_dir, manifest)
    agent = SavedAgent(algo=spec.name, run_dir=hooks.run_dir,
                       model_names=tuple(manifest["model_names"]),
                       data_fingerprint=table.data_fingerprint,
                       table_digest=manifest["table_digest"], config=config.replace(logits=None),
                       model=model, manifest=manifest, models_digest=manifest["models_digest"])
    return TrainedAgent(agent=agent, model=model, env_steps=int(result["env_steps"]),
                        wall_time=float(result["wall_time"]), history=result["history"],
                        hyperparameters=settings)


def start_manifest(spec: AlgoSpec, config: WeightingConfig, table: LogitsTable, seed: int,
                   settings: dict[str, Any]) -> dict[str, Any]:
    """The ``agent.json`` of a run about to train (see :mod:`agents.core.saved`): what it trains on
    and with which settings; for a deferral agent also its reader and a digest of its reads."""
    selected = table.select(models=config.models)
    manifest = {"algo": spec.name, "model_file": spec.model_file,
                "model_names": list(selected.model_names),
                "data_fingerprint": table.data_fingerprint, "table_digest": table_digest(table),
                "models_digest": table_digest(selected), "env_id": config.env_id,
                "env_config": config.to_dict(), "train_split": config.split, "seed": seed,
                "hyperparameters": settings, "env_steps": 0, "finished": False}
    reader = config.problem_class()(config).reader
    if reader is not None:  # the reader it defers to, checked when loaded
        manifest.update(reader=reader, reads_digest=reads_digest(table, reader))
    return manifest


#: Envs whose policies are scored on whole episodes rather than one sweep of the studies:
#: env id -> ``scores(policy, config, split) -> {name: value}``.
EPISODE_SCORES: dict[str, Callable[[Any, WeightingConfig, str], dict[str, float]]] = {
    WORKLIST_ENV_ID: policy_shift_scores,
    TRIAGE_ENV_ID: policy_triage_scores,
}


def policy_scores(policy: Any, config: WeightingConfig, split: str) -> dict[str, float]:
    """The scores of a deterministic ``policy`` (an object with SB3's ``predict``) answering
    every study of ``split`` once (:func:`agents.core.evaluate.sweep_answers`): ``accuracy`` and
    ``kappa``, and for a deferral env the team's, with its ``deferral_rate`` (the problem's
    :meth:`~mura_env.weighting.problem.WeightingProblem.answer_scores`). On ``MuraWorklist-v0`` the
    studies of fixed shifts of ``split`` instead
    (:func:`agents.worklist.rollout.policy_shift_scores`); on ``MuraTriage-v0`` fixed shifts of
    the reading room (:func:`agents.triage.rollout.policy_triage_scores`: costs, waits and the
    reads' ``accuracy``)."""
    episode_scores = EPISODE_SCORES.get(config.env_id)
    if episode_scores is not None:
        return episode_scores(policy, config, split)
    problem, answers = sweep_answers(policy, config, split)
    return problem.answer_scores(answers)


@dataclass
class TrainingHooks:
    """The checkpoint and evaluation callbacks every agent family calls during training.

    Attributes:
        spec: the agent's registry entry; run_dir: its run folder (None: nothing saved);
        manifest: its ``agent.json`` (updated with the env steps of each checkpoint);
        config: the env trained on; eval_split: the split the curves are scored on.
    """

    spec: AlgoSpec
    run_dir: Path | None
    manifest: dict[str, Any]
    config: WeightingConfig
    eval_split: str

    def checkpoint(self, model: Any, steps: int) -> None:
        """Save the model atomically, then record its env steps in the manifest."""
        if self.run_dir is None:
            return
        self.spec.family.save(model, self.run_dir / self.spec.model_file, steps)
        self.manifest["env_steps"] = int(steps)  # written right after the model file
        write_manifest(self.run_dir, self.manifest)

    def evaluate(self, model: Any) -> dict[str, float]:
        """:func:`policy_scores` of the model's deterministic policy on ``eval_split``."""
        return policy_scores(model, self.config, self.eval_split)
