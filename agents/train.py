"""Train any registered agent on a logits table into a run folder (see :mod:`agents.saved`).

One entry point for both families, used by ``experiments.train_agent``, ``experiments.compare``
and the time-to-quality benchmark. Both families log the same TensorBoard tags, step = env
steps: ``rollout/ep_rew_mean`` and ``eval/accuracy``, ``eval/kappa`` (on ``eval_split``,
``tune`` by default, the split the agent learns on: ``valid`` is kept for final scores; the
curves are for monitoring only, nothing is selected on them; the saved model is the last one).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.algos import ALGOS, AlgoSpec, get_algo
from agents.evaluate import Policy, evaluate_policy
from agents.saved import MANIFEST, SavedAgent, reads_digest, table_digest, write_manifest
from agents.softmax_pg import SoftmaxPGAgent, SoftmaxPGConfig, check_batch_size, train_softmax_pg
from mura_env.config import WeightingConfig
from mura_env.deferral.config import DeferralConfig
from mura_env.logits import LogitsTable
from mura_env.readers import resolve_reader
from mura_env.vector_env import MuraWeightingVectorEnv


@dataclass
class TrainedAgent:
    """What :func:`train_agent` returns.

    Attributes:
        agent: the trained agent as :func:`agents.saved.load_agent` would give it back from
            ``run_dir``, holding the model in memory.
        model: the trained policy object (a :class:`~agents.softmax_pg.SoftmaxPGAgent` or an
            SB3 model), as it stood when training ended (the same object as ``agent.model``).
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
    algo: str,
    *,
    total_timesteps: int | None = None,
    eval_every: int | None = None,
    n_envs: int | None = None,
    learning_rate: float | None = None,
    softmax_pg: SoftmaxPGConfig | None = None,
) -> dict[str, Any]:
    """The settings :func:`train_agent` will use, with every default filled in.

    Args: as :func:`train_agent` (None: the default).

    Returns:
        ``{"total_timesteps", "eval_every", "n_envs", "learning_rate", "algorithm"}`` (plain
        JSON values); ``algorithm`` is the whole :class:`SoftmaxPGConfig` for softmax-pg and
        the SB3 constructor arguments (:func:`agents.sb3.sb3_settings`) otherwise.

    Raises:
        UnknownAlgoError: ``algo`` is not registered. ValueError: a count below 1, or
        softmax-pg with one env (its advantages are normalised over the batch).
    """
    spec = get_algo(algo)
    total = spec.default_timesteps if total_timesteps is None else int(total_timesteps)
    every = max(1, total // 10) if eval_every is None else int(eval_every)
    for name, value in (("total_timesteps", total), ("eval_every", every),
                        ("n_envs", 1 if n_envs is None else int(n_envs))):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}.")
    if spec.family == "native":
        cfg = softmax_pg or SoftmaxPGConfig()
        if n_envs is not None:
            cfg = dataclasses.replace(cfg, num_envs=int(n_envs))
        if learning_rate is not None:
            cfg = dataclasses.replace(cfg, learning_rate=float(learning_rate))
        check_batch_size(cfg.num_envs, cfg)
        return {"total_timesteps": total, "eval_every": every, "n_envs": cfg.num_envs,
                "learning_rate": cfg.learning_rate, "algorithm": dataclasses.asdict(cfg)}
    from agents.sb3 import sb3_settings
    settings = sb3_settings(spec, learning_rate)
    return {"total_timesteps": total, "eval_every": every,
            "n_envs": 8 if n_envs is None else int(n_envs),
            "learning_rate": settings["learning_rate"], "algorithm": settings}


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
    algo: str,
    config: WeightingConfig,
    run_dir: str | os.PathLike[str],
    *,
    total_timesteps: int | None = None,
    seed: int = 0,
    eval_split: str = "tune",
    eval_every: int | None = None,
    learning_rate: float | None = None,
    n_envs: int | None = None,
    softmax_pg: SoftmaxPGConfig | None = None,
    tensorboard: bool = True,
    progress: bool = False,
) -> TrainedAgent:
    """Train ``algo`` on the env of ``config`` (its ``split`` is the training split) and save
    it into ``run_dir``.

    Args:
        algo: a name in :data:`agents.algos.ALGOS`.
        config: the env configuration (``logits``: the table, or None for reference table
            ``reference_table``; ``split``: trained on;
            ``reward``, ``action_scale``, ``temperature``, ``threshold``, ``models``, ...).
            Its ``sampling`` is ignored: softmax-pg and SB3 draw studies at random.
        run_dir: output folder (created); gets ``agent.json``, the model and ``tb/``. A
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
        tensorboard: write TensorBoard events into ``run_dir/tb``.
        progress: show progress bars.

    Returns:
        A :class:`TrainedAgent`.

    Raises:
        UnknownAlgoError, ValueError: bad settings (see :func:`resolve_hyperparameters`) or
            unknown model names; raised before anything in ``run_dir`` is touched.
    """
    spec = get_algo(algo)
    settings = resolve_hyperparameters(algo, total_timesteps=total_timesteps,
                                       eval_every=eval_every, n_envs=n_envs,
                                       learning_rate=learning_rate, softmax_pg=softmax_pg)
    table = config.load_table()
    config = config.replace(logits=table, sampling="random")
    manifest = start_manifest(spec, config, table, seed, settings)  # checks names, reader
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if (run_dir / MANIFEST).is_file():  # an earlier agent run in this folder
        _clear_earlier_run(run_dir)
    write_manifest(run_dir, manifest)
    hooks = _TrainingHooks(spec, run_dir, manifest, config, eval_split)
    tb_dir = run_dir / "tb" if tensorboard else None
    train = _train_native if spec.family == "native" else _train_sb3
    model, result = train(spec, config, settings, seed, tb_dir, hooks, progress)
    manifest.update(env_steps=int(result["env_steps"]), finished=True,
                    wall_time=float(result["wall_time"]))
    write_manifest(run_dir, manifest)
    agent = SavedAgent(algo=spec.name, run_dir=run_dir,
                       model_names=tuple(manifest["model_names"]),
                       data_fingerprint=table.data_fingerprint,
                       table_digest=manifest["table_digest"], config=config.replace(logits=None),
                       model=model, manifest=manifest, models_digest=manifest["models_digest"])
    return TrainedAgent(agent=agent, model=model, env_steps=int(result["env_steps"]),
                        wall_time=float(result["wall_time"]), history=result["history"],
                        hyperparameters=settings)


def start_manifest(spec: AlgoSpec, config: WeightingConfig, table: LogitsTable, seed: int,
                   settings: dict[str, Any]) -> dict[str, Any]:
    """The ``agent.json`` of a run about to train (see :mod:`agents.saved`): what it trains on
    and with which settings; for a deferral agent also its reader and a digest of its reads."""
    selected = table.select(models=config.models)
    manifest = {"algo": spec.name, "model_file": spec.model_file,
                "model_names": list(selected.model_names),
                "data_fingerprint": table.data_fingerprint, "table_digest": table_digest(table),
                "models_digest": table_digest(selected), "env_id": config.env_id,
                "env_config": config.to_dict(), "train_split": config.split, "seed": seed,
                "hyperparameters": settings, "env_steps": 0, "finished": False}
    if isinstance(config, DeferralConfig):  # the reader it defers to, checked when loaded
        reader = resolve_reader(table.reader_ids, config.reader)
        manifest.update(reader=reader, reads_digest=reads_digest(table, reader))
    return manifest


@dataclass
class _TrainingHooks:
    """The checkpoint and evaluation callbacks both agent families call during training."""

    spec: AlgoSpec
    run_dir: Path
    manifest: dict[str, Any]
    config: WeightingConfig
    eval_split: str

    def checkpoint(self, model: Any, steps: int) -> None:
        """Save the model atomically, then record its env steps in the manifest."""
        path = self.run_dir / self.spec.model_file
        if self.spec.family == "native":
            model.save(path, {"env_steps": int(steps)})
        else:
            from agents.sb3 import save_sb3
            save_sb3(model, path)
        self.manifest["env_steps"] = int(steps)  # written right after the model file
        write_manifest(self.run_dir, self.manifest)

    def evaluate(self, policy_owner: Any) -> dict[str, float]:
        """Accuracy and kappa of the deterministic policy on ``eval_split`` (for a deferral
        agent: of the team's answers, with its deferral rate)."""
        if isinstance(self.config, DeferralConfig):
            from agents.deferral_train import team_scores

            return team_scores(policy_owner, self.config, self.eval_split)
        ev = evaluate_policy(lambda o: policy_owner.predict(o, deterministic=True)[0],
                             self.config, split=self.eval_split, n_bootstrap=0)
        return {"accuracy": ev.value("accuracy"), "kappa": ev.value("kappa")}


def _train_native(spec: AlgoSpec, config: WeightingConfig, settings: dict[str, Any], seed: int,
                  tb_dir: Path | None, hooks: _TrainingHooks, progress: bool
                  ) -> tuple[SoftmaxPGAgent, dict[str, Any]]:
    """Train softmax-pg on the native vector env of ``config`` (with the defer head of
    :class:`~agents.deferral_pg.DeferralPGAgent` for a deferral config)."""
    import torch

    agent_class: type[SoftmaxPGAgent] = SoftmaxPGAgent
    env_class: type[MuraWeightingVectorEnv] = MuraWeightingVectorEnv
    extra: dict[str, Any] = {}
    if isinstance(config, DeferralConfig):
        from agents.deferral_pg import DeferralPGAgent
        from mura_env.deferral.env import MuraDeferralVectorEnv

        agent_class, env_class = DeferralPGAgent, MuraDeferralVectorEnv
        extra["softmax_scale"] = config.softmax_scale  # the defer head uses the env's mapping
    cfg = agent_class.config_class(**{**settings["algorithm"], **extra})
    env = env_class(cfg.num_envs, config=config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        agent = agent_class(env.problem.n_models, cfg)
    writer = None
    if tb_dir is not None:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(str(tb_dir))
    try:
        result = train_softmax_pg(
            agent, env, settings["total_timesteps"], seed=seed, writer=writer,
            eval_fn=hooks.evaluate, eval_every=settings["eval_every"],
            checkpoint_fn=hooks.checkpoint, progress=progress)
    finally:
        if writer is not None:
            writer.close()
    return agent, result


def _train_sb3(spec: AlgoSpec, config: WeightingConfig, settings: dict[str, Any], seed: int,
               tb_dir: Path | None, hooks: _TrainingHooks, progress: bool
               ) -> tuple[Any, dict[str, Any]]:
    """Train an SB3 algorithm on SB3-vectorised single envs of ``config``."""
    from agents.sb3 import train_sb3

    return train_sb3(spec, config, settings["total_timesteps"], seed, tb_dir,
                     n_envs=settings["n_envs"], learning_rate=settings["learning_rate"],
                     eval_fn=hooks.evaluate, eval_every=settings["eval_every"],
                     checkpoint_fn=hooks.checkpoint, progress=progress)
