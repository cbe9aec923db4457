"""Stable-Baselines3 agents (PPO, A2C, SAC, ...) and sb3-contrib's (MaskablePPO,
RecurrentPPO) on the envs of ``mura_env``.

The env is the registered single env, vectorised by SB3's ``make_vec_env`` (``DummyVecEnv``
with a ``Monitor`` per copy, so SB3 logs ``rollout/ep_rew_mean``). Logging is SB3's own
TensorBoard logger (``stable_baselines3.common.logger.configure``, the machinery behind
``tensorboard_log``) writing straight into the run's ``tb/`` folder. :class:`EvalCallback`
adds ``eval/<metric>`` at a fixed env-step interval (at rollout boundaries, after SB3's update)
and saves the model each time, atomically, so a killed run leaves its last checkpoint loadable;
its final evaluation and save come after the last update.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import sb3_contrib
import stable_baselines3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import Logger, configure
from tqdm import tqdm

from agents.core.spec import AlgoSpec
from mura_env.common.atomic import atomic_write
from mura_env.weighting.config import WeightingConfig


class EvalCallback(BaseCallback):
    """Every ``eval_every`` env steps (and at the end): record ``eval/<name>`` for each item
    of ``eval_fn(model)`` in SB3's logger, dump it at the current step, and call
    ``checkpoint_fn(model, num_timesteps)``. Evaluation and checkpoint time is summed in
    ``self.overhead`` (seconds) so callers can report training time alone.

    Evaluations happen at the start of a rollout (``_on_rollout_start``), that is after SB3
    has trained on every step counted so far, and once more at the end of training, after the
    last update. (Evaluating in ``_on_step`` would score, and save, a policy that has not yet
    been trained on the rollout being collected: one rollout stale.) So the curve's steps
    are rollout boundaries: the first evaluation at or after each multiple of ``eval_every``.
    """

    def __init__(self, eval_fn: Callable[[BaseAlgorithm], dict[str, float]] | None,
                 eval_every: int,
                 checkpoint_fn: Callable[[BaseAlgorithm, int], None] | None = None) -> None:
        super().__init__()
        self.eval_fn, self.eval_every, self.checkpoint_fn = eval_fn, int(eval_every), \
            checkpoint_fn
        self.next_eval = self.eval_every
        self.overhead = 0.0
        self.start = time.perf_counter()
        self.history: list[dict[str, Any]] = []

    def _on_training_start(self) -> None:
        self.start = time.perf_counter()

    def _evaluate(self) -> None:
        t0 = time.perf_counter()
        row: dict[str, Any] = {"env_steps": int(self.num_timesteps),
                               "wall_time": t0 - self.start - self.overhead}
        buf = self.model.ep_info_buffer
        row["ep_rew_mean"] = (float(np.mean([e["r"] for e in buf])) if buf
                              else float("nan"))
        if self.eval_fn is not None:
            scores = self.eval_fn(self.model)
            row.update(scores)
            for key, val in scores.items():
                self.logger.record(f"eval/{key}", float(val))
            self.logger.dump(self.num_timesteps)
        self.history.append(row)
        if self.checkpoint_fn is not None:
            self.checkpoint_fn(self.model, int(self.num_timesteps))
        self.overhead += time.perf_counter() - t0

    def _on_rollout_start(self) -> None:
        if self.num_timesteps >= self.next_eval:
            self.next_eval = self.num_timesteps + self.eval_every
            self._evaluate()

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        # after the last update: always, unless nothing was collected since the last one
        if not self.history or self.history[-1]["env_steps"] != self.num_timesteps:
            self._evaluate()


class TqdmCallback(BaseCallback):
    """A tqdm bar over env steps (SB3's own progress bar needs ``rich``)."""

    def __init__(self, total: int, desc: str) -> None:
        super().__init__()
        self.total, self.desc, self.bar = total, desc, None

    def _on_training_start(self) -> None:
        self.bar = tqdm(total=self.total, desc=self.desc, unit="step")

    def _on_step(self) -> bool:
        self.bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


#: Constructor arguments recorded as an SB3 agent's resolved hyper-parameters (those its class
#: takes).
HYPERPARAMETER_NAMES = ("learning_rate", "n_steps", "batch_size", "n_epochs", "gamma",
                        "gae_lambda", "clip_range", "ent_coef", "vf_coef", "max_grad_norm",
                        "normalize_advantage", "buffer_size", "learning_starts", "tau",
                        "train_freq", "gradient_steps", "target_update_interval")


def sb3_class(spec: AlgoSpec) -> type[BaseAlgorithm]:
    """The class of an ``sb3`` family registry entry: ``stable_baselines3``'s (e.g. ``PPO``),
    else ``sb3_contrib``'s (e.g. ``MaskablePPO``)."""
    name = spec.sb3_class or ""
    return getattr(stable_baselines3, name, None) or getattr(sb3_contrib, name)


def sb3_settings(spec: AlgoSpec, learning_rate: float | None = None) -> dict[str, Any]:
    """The constructor arguments :func:`train_sb3` gives ``spec``'s SB3 class, so what is
    recorded is what is used: each of :data:`HYPERPARAMETER_NAMES` the class takes, at its
    signature default, then the registry's ``sb3_kwargs``, then ``learning_rate`` if given.
    Plain JSON
    values; keys sorted."""
    params = inspect.signature(sb3_class(spec).__init__).parameters
    out = {name: params[name].default for name in HYPERPARAMETER_NAMES if name in params
           and params[name].default is not inspect.Parameter.empty}
    out.update(spec.sb3_kwargs)
    if learning_rate is not None:
        out["learning_rate"] = float(learning_rate)
    return dict(sorted(out.items()))


def make_sb3_env(config: WeightingConfig, n_envs: int, seed: int) -> Any:
    """``n_envs`` Monitor-wrapped single envs of ``config`` (its
    :meth:`~mura_env.weighting.config.WeightingConfig.env_class`) in a DummyVecEnv, seeded ``seed,
    seed + 1, ...`` (SB3's ``make_vec_env``)."""
    return make_vec_env(config.env_class(), n_envs=n_envs, seed=seed,
                        env_kwargs={"config": config})


def save_sb3(model: BaseAlgorithm, path: str | os.PathLike[str]) -> Path:
    """Save an SB3 model to ``path`` (a ``.zip``) atomically."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            model.save(f)
    return atomic_write(path, write)


def load_sb3(spec: AlgoSpec, path: str | os.PathLike[str]) -> BaseAlgorithm:
    """Load an SB3 model of ``spec``'s class from ``path`` on the CPU.

    SB3 reads the tensors (policy and optimizer state) with ``torch.load(...,
    weights_only=True)``, but the zip's ``data`` part (constructor arguments, spaces,
    schedules) is cloudpickle, so only load model files you trust (your own runs).

    Raises:
        FileNotFoundError: no such file. ValueError: not an SB3 model file of this class.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No {spec.name} model file at {path}.")
    try:
        return sb3_class(spec).load(str(path), device="cpu")
    except Exception as e:  # zipfile, cloudpickle and torch raise many kinds on a bad file
        raise ValueError(f"{path} cannot be read as a {spec.sb3_class} model ({e!r}); "
                         f"expected a .zip written by {spec.sb3_class}.save.") from e


def train_sb3(
    spec: AlgoSpec,
    config: WeightingConfig,
    total_timesteps: int,
    seed: int,
    tb_dir: str | os.PathLike[str] | None,
    n_envs: int = 8,
    algorithm: dict[str, Any] | None = None,
    eval_fn: Callable[[BaseAlgorithm], dict[str, float]] | None = None,
    eval_every: int = 10_000,
    checkpoint_fn: Callable[[BaseAlgorithm, int], None] | None = None,
    progress: bool = False,
) -> tuple[BaseAlgorithm, dict[str, Any]]:
    """Train ``spec``'s SB3 algorithm with its policy (``spec.sb3_policy``) on the single env
    of ``config``
    (``MuraWeighting-v0``, ``MuraDeferral-v0``...).

    Args:
        spec: an ``sb3`` family entry of :data:`agents.core.algos.ALGOS`.
        config: the training env's configuration (its ``split`` is trained on).
        total_timesteps: env steps (answered studies).
        seed: seeds SB3 (torch, the policy's sampling) and the envs.
        tb_dir: folder for SB3's TensorBoard (and CSV) logs, or None for none.
        n_envs: env copies (PPO/A2C collect from all; SAC too, one gradient step per
            ``train_freq`` steps of each).
        algorithm: the constructor arguments already resolved by :func:`sb3_settings` (what
            ``agent.json`` records); None: :func:`sb3_settings` of ``spec``.
        eval_fn, eval_every, checkpoint_fn: see :class:`EvalCallback`.
        progress: show a tqdm bar.

    Returns:
        ``(model, {"env_steps", "wall_time", "history"})``; wall times exclude evaluation
        and checkpoints.
    """
    env = make_sb3_env(config, n_envs, seed)
    settings = sb3_settings(spec) if algorithm is None else algorithm
    model = sb3_class(spec)(spec.sb3_policy, env, seed=seed, device="cpu", verbose=0,
                            **settings)
    # without a folder, a logger that writes nothing (SB3's default makes a /tmp folder)
    model.set_logger(configure(str(tb_dir), ["tensorboard", "csv"]) if tb_dir is not None
                     else Logger(folder=None, output_formats=[]))
    callback = EvalCallback(eval_fn, eval_every, checkpoint_fn)
    callbacks: list[BaseCallback] = [callback]
    if progress:
        callbacks.append(TqdmCallback(int(total_timesteps), spec.name))
    start = time.perf_counter()
    model.learn(total_timesteps=int(total_timesteps), callback=CallbackList(callbacks),
                log_interval=spec.sb3_log_interval)
    wall = time.perf_counter() - start - callback.overhead
    if tb_dir is not None:
        model.logger.close()
    return model, {"env_steps": int(model.num_timesteps), "wall_time": wall,
                   "history": callback.history}
