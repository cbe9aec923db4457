"""Train any registered agent on a logits table into a run folder (see :mod:`agents.saved`).

One entry point for both families, used by ``experiments.train_agent``, ``experiments.compare``
and the time-to-quality benchmark. Both families log the same TensorBoard tags, step = env
steps: ``rollout/ep_rew_mean`` and ``eval/accuracy``, ``eval/kappa`` (on ``eval_split``,
for monitoring only: nothing is selected on it; the saved model is the last one).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.algos import ALGOS, get_algo
from agents.evaluate import Policy, evaluate_policy, mapping_kwargs
from agents.saved import MANIFEST, SavedAgent, load_agent, table_digest, write_manifest
from agents.softmax_pg import SoftmaxPGAgent, SoftmaxPGConfig, train_softmax_pg
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
            folder that already holds an agent run is reused: its model files and ``tb/`` are
            removed first, so neither a stale model nor old curves survive.
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
    """
    spec = get_algo(algo)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    env_kwargs = dict(env_kwargs or {})
    for bad in ("logits", "split", "sampling"):
        env_kwargs.pop(bad, None)
    total = int(total_timesteps or spec.default_timesteps)
    every = int(eval_every or max(1, total // 10))
    mapping = mapping_kwargs(env_kwargs)
    model_path = run_dir / spec.model_file
    if (run_dir / MANIFEST).is_file():  # an earlier agent run in this folder
        for other in {a.model_file for a in ALGOS.values()}:
            (run_dir / other).unlink(missing_ok=True)
        shutil.rmtree(run_dir / "tb", ignore_errors=True)
    selected = table.select(models=mapping.get("models"))
    manifest = {"algo": spec.name, "model_file": spec.model_file,
                "model_names": list(selected.model_names),
                "data_fingerprint": table.data_fingerprint, "table_digest": table_digest(table),
                "models_digest": table_digest(selected),
                "env_kwargs": {k: (list(v) if isinstance(v, tuple) else v)
                               for k, v in env_kwargs.items()},
                "train_split": train_split, "seed": seed, "env_steps": 0, "finished": False}
    write_manifest(run_dir, manifest)
    tb_dir = run_dir / "tb" if tensorboard else None

    def checkpointed(steps: int) -> None:
        manifest["env_steps"] = int(steps)  # the model file on disk has this many steps
        write_manifest(run_dir, manifest)

    def eval_fn(policy_owner: Any) -> dict[str, float]:
        ev = evaluate_policy(lambda o: policy_owner.predict(o, deterministic=True)[0], table,
                             split=eval_split, n_bootstrap=0, **mapping)
        return {"accuracy": ev.value("accuracy"), "kappa": ev.value("kappa")}

    if spec.family == "native":
        cfg = softmax_pg or SoftmaxPGConfig()
        if n_envs is not None:
            cfg = dataclasses.replace(cfg, num_envs=int(n_envs))
        if learning_rate is not None:
            cfg = dataclasses.replace(cfg, learning_rate=float(learning_rate))
        hyper = {"n_envs": cfg.num_envs, "learning_rate": cfg.learning_rate,
                 "softmax_pg": dataclasses.asdict(cfg)}
        manifest["hyperparameters"] = {"total_timesteps": total, "eval_every": every, **hyper}
        write_manifest(run_dir, manifest)
        env = MuraWeightingVectorEnv(cfg.num_envs, logits=table, split=train_split, **env_kwargs)
        import torch
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            agent = SoftmaxPGAgent(env.problem.n_models, cfg)
        writer = None
        if tb_dir is not None:
            from torch.utils.tensorboard import SummaryWriter
            writer = SummaryWriter(str(tb_dir))
        def save_native(a: SoftmaxPGAgent, steps: int) -> None:
            a.save(model_path, {"env_steps": steps})
            checkpointed(steps)

        try:
            result = train_softmax_pg(
                agent, env, total, seed=seed, writer=writer, eval_fn=eval_fn, eval_every=every,
                checkpoint_fn=save_native, progress=progress)
        finally:
            if writer is not None:
                writer.close()
        model: Any = agent
    else:
        from agents.sb3 import save_sb3, train_sb3
        manifest["hyperparameters"] = {"total_timesteps": total, "eval_every": every,
                                       "n_envs": n_envs or 8, "learning_rate": learning_rate}
        write_manifest(run_dir, manifest)  # SB3's own defaults are added when it ends

        def save_model(m: Any, steps: int) -> None:
            save_sb3(m, model_path)
            checkpointed(steps)

        model, result = train_sb3(
            spec, {"logits": table, "split": train_split, **env_kwargs}, total, seed, tb_dir,
            n_envs=n_envs or 8, learning_rate=learning_rate, eval_fn=eval_fn, eval_every=every,
            checkpoint_fn=save_model, progress=progress)
        hyper = {"n_envs": n_envs or 8, "learning_rate": result["hyperparameters"].get(
            "learning_rate"), spec.name: result["hyperparameters"]}
    hyper = {"total_timesteps": total, "eval_every": every, **hyper}
    manifest.update(env_steps=int(result["env_steps"]), finished=True,
                    wall_time=float(result["wall_time"]), hyperparameters=hyper)
    write_manifest(run_dir, manifest)
    return TrainedAgent(agent=load_agent(run_dir), model=model,
                        env_steps=int(result["env_steps"]),
                        wall_time=float(result["wall_time"]), history=result["history"],
                        hyperparameters=hyper)
