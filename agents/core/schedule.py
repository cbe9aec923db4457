"""What the native agents' training loops share: when to evaluate and checkpoint, what each
evaluation records, the TensorBoard writer around a run, and reading an agent file.

:class:`EvaluationSchedule` is called once per update by
:func:`agents.weighting.softmax_pg.train_softmax_pg` and
:func:`agents.core.native_ppo.train_native_ppo`; :func:`train_with_writer` runs either with a
``SummaryWriter``; :func:`read_agent_file` reads what their ``save`` wrote.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


def logged_evaluation(agent: torch.nn.Module, eval_fn: Callable[[Any], dict[str, float]] | None,
                      writer: Any | None, steps: int) -> dict[str, float]:
    """``eval_fn(agent)`` with ``agent`` in eval mode (back in train mode after), its scores
    logged under ``eval/<name>`` at ``steps`` when ``writer`` is given; ``{}`` without
    ``eval_fn``."""
    if eval_fn is None:
        return {}
    agent.eval()
    scores = eval_fn(agent)
    agent.train()
    if writer is not None:
        for key, val in scores.items():
            writer.add_scalar(f"eval/{key}", val, steps)
    return scores


@dataclass
class EvaluationSchedule:
    """Evaluations every ``eval_every`` env steps and after the last update, each followed by
    a checkpoint; the training clock leaves their time out.

    Attributes:
        eval_every: env steps between evaluations.
        eval_fn: ``eval_fn(agent) -> {name: number}`` or None; writer: TensorBoard or None;
        checkpoint_fn: ``checkpoint_fn(agent, env_steps)`` or None.
        history: one dict per evaluation: ``env_steps``, ``wall_time`` (training seconds so
            far), ``ep_rew_mean`` and the evaluation's scores.
    """

    eval_every: int
    eval_fn: Callable[[Any], dict[str, float]] | None = None
    writer: Any | None = None
    checkpoint_fn: Callable[[Any, int], None] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    start: float = field(default_factory=time.perf_counter)
    eval_time: float = 0.0

    def __post_init__(self) -> None:
        self.next_eval = self.eval_every

    def training_seconds(self) -> float:
        """Seconds since the start, without evaluations and checkpoints."""
        return time.perf_counter() - self.start - self.eval_time

    def after_update(self, agent: torch.nn.Module, steps: int, last: bool, ep_rew: float
                     ) -> None:
        """Evaluate and checkpoint ``agent`` if ``steps`` reached the next evaluation or this
        was the ``last`` update."""
        if steps < self.next_eval and not last:
            return
        self.next_eval = steps + self.eval_every
        row = {"env_steps": steps, "wall_time": self.training_seconds(), "ep_rew_mean": ep_rew}
        t0 = time.perf_counter()
        row.update(logged_evaluation(agent, self.eval_fn, self.writer, steps))
        self.history.append(row)
        if self.checkpoint_fn is not None:
            self.checkpoint_fn(agent, steps)
        self.eval_time += time.perf_counter() - t0

    def result(self, steps: int, updates: int) -> dict[str, Any]:
        """``{"env_steps", "updates", "wall_time", "history"}``: what a loop returns."""
        return {"env_steps": steps, "updates": updates, "wall_time": self.training_seconds(),
                "history": self.history}


def train_with_writer(train: Callable[..., dict[str, Any]], agent: Any, env: Any,
                      settings: dict[str, Any], seed: int, tb_dir: Path | None,
                      evaluate: Callable[[Any], dict[str, float]], eval_every: int,
                      checkpoint: Callable[[Any, int], None], progress: bool
                      ) -> dict[str, Any]:
    """``train(agent, env, settings["total_timesteps"], seed=..., writer=..., eval_fn=...,
    eval_every=..., checkpoint_fn=..., progress=...)`` with a TensorBoard ``SummaryWriter`` on
    ``tb_dir`` (None: no writer), closed afterwards; returns what ``train`` returns."""
    writer = None
    if tb_dir is not None:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(str(tb_dir))
    try:
        return train(agent, env, settings["total_timesteps"], seed=seed, writer=writer,
                     eval_fn=evaluate, eval_every=eval_every, checkpoint_fn=checkpoint,
                     progress=progress)
    finally:
        if writer is not None:
            writer.close()


def read_agent_file(path: str | os.PathLike[str], kind: str, writer: str,
                    keys: tuple[str, ...]) -> dict[str, Any]:
    """The payload of an agent file (``torch.load(..., weights_only=True)``).

    Args:
        path: the file; kind: the agent in words (for messages); writer: the method that
            writes such files; keys: the keys the payload must have.

    Raises:
        FileNotFoundError: no such file. ValueError: unreadable, or not such a payload.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No {kind} agent file at {path}.")
    expected = f"expected a file written by {writer}, with the keys {', '.join(keys)}"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch's unpickler raises many kinds on a corrupt file
        raise ValueError(f"{path} cannot be read as a {kind} agent file ({e}); "
                         f"{expected}.") from e
    if not isinstance(payload, dict) or not set(keys) <= set(payload):
        raise ValueError(f"{path} is not a {kind} agent file; {expected}.")
    return payload
