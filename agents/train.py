"""Train any registered agent on a logits table into a run folder (see :mod:`agents.saved`).

One entry point for both families, used by ``experiments.train_agent``, ``experiments.compare``
and the time-to-quality benchmark. Both families log the same TensorBoard tags, step = env
steps: ``rollout/ep_rew_mean`` and ``eval/accuracy``, ``eval/kappa`` (on ``eval_split``,
for monitoring only: nothing is selected on it; the saved model is the last one).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.algos import ALGOS, get_algo
from agents.evaluate import Policy, evaluate_policy, mapping_kwargs
from agents.saved import MANIFEST, SavedAgent, load_agent, table_digest, write_manifest
from agents.softmax_pg import SoftmaxPGAgent, SoftmaxPGConfig, check_batch_size, train_softmax_pg
from mura_env.logits import LogitsTable
from mura_env.vector_env import MuraWeightingVectorEnv


@dataclass
class TrainedAgent:
    """What :func:`train_agent` returns.

    Attributes:
        agent: the saved agent, loaded back from ``run_dir``.
        model: the trained policy object in memory (a
            :class:`~agents.softmax_pg.SoftmaxPGAgent` or an SB3 model), as it stood when
            training ended; ``agent.model`` is its copy read back from disk.
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
        """Deterministic policy: observations float32 ``[n, 2K + 7]`` -> actions ``[n, K]``."""
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
    table: LogitsTable,
    run_dir: str | os.PathLike[str],
    *,
    total_timesteps: int | None = None,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    train_split: str = "tune",
    eval_split: str = "valid",
    eval_every: int | None = None,
    learning_rate: float | None = None,
    n_envs: int | None = None,
    softmax_pg: SoftmaxPGConfig | None = None,
    tensorboard: bool = True,
    progress: bool = False,
) -> TrainedAgent:
    """Train ``algo`` on ``table``'s ``train_split`` and save it into ``run_dir``.

    Args:
        algo: a name in :data:`agents.algos.ALGOS`.
        table: the logits table.
        run_dir: output folder (created); gets ``agent.json``, the model and ``tb/``. A
            folder that already holds an agent run is reused: once the settings are checked,
            its model files, metrics files and TensorBoard event files are removed, so
            neither a stale model nor old curves survive.
        total_timesteps: env steps (answered studies); None: the registry default.
        seed: seeds the agent and the env.
        env_kwargs: other ``MuraWeighting-v0`` arguments (``reward``, ``action_scale``,
            ``temperature``, ``threshold``, ``studies_per_episode``, ...).
        train_split, eval_split: the splits trained on and monitored on.
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
    hyper = resolve_hyperparameters(algo, total_timesteps=total_timesteps,
                                    eval_every=eval_every, n_envs=n_envs,
                                    learning_rate=learning_rate, softmax_pg=softmax_pg)
    total, every = hyper["total_timesteps"], hyper["eval_every"]
    env_kwargs = dict(env_kwargs or {})
    for bad in ("logits", "split", "sampling"):
        env_kwargs.pop(bad, None)
    mapping = mapping_kwargs(env_kwargs)
    selected = table.select(models=mapping.get("models"))
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if (run_dir / MANIFEST).is_file():  # an earlier agent run in this folder
        _clear_earlier_run(run_dir)
    model_path = run_dir / spec.model_file
    manifest = {"algo": spec.name, "model_file": spec.model_file,
                "model_names": list(selected.model_names),
                "data_fingerprint": table.data_fingerprint, "table_digest": table_digest(table),
                "models_digest": table_digest(selected),
                "env_kwargs": {k: (list(v) if isinstance(v, tuple) else v)
                               for k, v in env_kwargs.items()},
                "train_split": train_split, "seed": seed, "hyperparameters": hyper,
                "env_steps": 0, "finished": False}
    write_manifest(run_dir, manifest)
    tb_dir = run_dir / "tb" if tensorboard else None

    def checkpoint(model: Any, steps: int) -> None:
        """Save the model atomically, then record its env steps in the manifest."""
        if spec.family == "native":
            model.save(model_path, {"env_steps": int(steps)})
        else:
            from agents.sb3 import save_sb3
            save_sb3(model, model_path)
        manifest["env_steps"] = int(steps)  # written right after the model file
        write_manifest(run_dir, manifest)

    def eval_fn(policy_owner: Any) -> dict[str, float]:
        ev = evaluate_policy(lambda o: policy_owner.predict(o, deterministic=True)[0], table,
                             split=eval_split, n_bootstrap=0, **mapping)
        return {"accuracy": ev.value("accuracy"), "kappa": ev.value("kappa")}

    if spec.family == "native":
        cfg = SoftmaxPGConfig(**hyper["algorithm"])
        env = MuraWeightingVectorEnv(cfg.num_envs, logits=table, split=train_split, **env_kwargs)
        import torch
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            agent = SoftmaxPGAgent(env.problem.n_models, cfg)
        writer = None
        if tb_dir is not None:
            from torch.utils.tensorboard import SummaryWriter
            writer = SummaryWriter(str(tb_dir))
        try:
            result = train_softmax_pg(
                agent, env, total, seed=seed, writer=writer, eval_fn=eval_fn, eval_every=every,
                checkpoint_fn=checkpoint, progress=progress)
        finally:
            if writer is not None:
                writer.close()
        model: Any = agent
    else:
        from agents.sb3 import train_sb3
        model, result = train_sb3(
            spec, {"logits": table, "split": train_split, **env_kwargs}, total, seed, tb_dir,
            n_envs=hyper["n_envs"], learning_rate=learning_rate, eval_fn=eval_fn,
            eval_every=every, checkpoint_fn=checkpoint, progress=progress)
    manifest.update(env_steps=int(result["env_steps"]), finished=True,
                    wall_time=float(result["wall_time"]))
    write_manifest(run_dir, manifest)
    return TrainedAgent(agent=load_agent(run_dir), model=model,
                        env_steps=int(result["env_steps"]),
                        wall_time=float(result["wall_time"]), history=result["history"],
                        hyperparameters=hyper)
