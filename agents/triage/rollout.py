"""Whole shifts of ``MuraTriage-v0`` played by a policy or a rule: the evaluation of triage
schedulers.

The shifts of an evaluation are fixed by ``(config, split, n_shifts, seed)``
(:func:`evaluation_episodes`), so every agent and every rule (:mod:`agents.triage.rules`) plays
the same arrivals of the same studies with the same reading times. A policy's shifts are played
through the env's own problem (:func:`play_policy`, all shifts batched per decision round), a
rule's through the room directly (:func:`play_rule`); both are scored by :func:`triage_scores`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from agents.triage.rules import run_shift
from agents.worklist.rollout import predict_takes
from mura_env.triage.config import COST_PER_REWARD, TriageConfig
from mura_env.triage.metrics import wait_summary
from mura_env.triage.problem import TriageEpisode, TriageProblem

#: Shifts of a tune evaluation during training (the curves) and of a valid score, and their seed.
EVAL_SHIFTS = 16
EVAL_SEED = 12_345


def start_episodes(problem: TriageProblem, n_shifts: int, seed: int) -> list[TriageEpisode]:
    """``n_shifts`` fresh episodes of ``problem``, their shift seeds drawn with
    ``numpy.random.default_rng(seed)`` (the same episodes for the same seed)."""
    seeds = np.random.default_rng(seed).integers(2**63 - 1, size=n_shifts)
    return [problem.start(int(s)) for s in seeds]


def evaluation_episodes(config: TriageConfig, split: str, n_shifts: int, seed: int
                        ) -> tuple[TriageProblem, list[TriageEpisode]]:
    """The problem of ``config`` on ``split`` and its :func:`start_episodes`."""
    problem = TriageProblem(config.replace(split=split))
    return problem, start_episodes(problem, n_shifts, seed)


def play_policy(policy: Any, problem: TriageProblem, episodes: Sequence[TriageEpisode]
                ) -> list[TriageEpisode]:
    """Play ``episodes`` (fresh, changed in place) to their end with ``policy``'s deterministic
    actions, one batched ``predict`` per decision round over the episodes still going.

    Args:
        policy: anything with SB3's ``predict(obs [E, obs], deterministic=True)`` returning
            ``(actions int [E], state)``; one whose ``predict`` takes ``action_masks`` gets
            them (bool ``[E, Q]``). A closed slot is handled as the problem's
            ``masked_action`` says.
        problem: the problem the episodes were started by.

    Returns:
        The episodes.
    """
    masked = predict_takes(policy, "action_masks")
    obs = np.zeros((len(episodes), *problem.observation_space.shape), np.float32)
    going = [e for e in episodes if not e.done]
    while going:
        batch = obs[:len(going)]
        for i, episode in enumerate(going):
            problem.observe(episode, batch[i])
        extra = {"action_masks": np.stack([problem.action_masks(e) for e in going])} \
            if masked else {}
        actions, _ = policy.predict(batch, deterministic=True, **extra)
        actions = np.asarray(actions).reshape(len(going))
        for episode, action in zip(going, actions, strict=True):
            problem.act(episode, problem.check_action(episode, action))
        going = [e for e in going if not e.done]
    return list(episodes)


def play_rule(rule: Any, episodes: Sequence[TriageEpisode]) -> list[TriageEpisode]:
    """Play ``episodes`` (fresh, changed in place) to their end with ``rule``
    (:func:`agents.triage.rules.run_shift`); returns them."""
    for episode in episodes:
        run_shift(episode.shift, rule)
        episode.reader = None
    return list(episodes)


def triage_scores(problem: TriageProblem, episodes: Sequence[TriageEpisode]
                  ) -> dict[str, float]:
    """Scores of played episodes: :func:`mura_env.triage.metrics.wait_summary` (waits of
    abnormal and normal studies, the rooms' waiting cost per shift, the classifier's missed
    abnormal studies), ``cost_per_shift`` (waiting plus wrong reads, mean), ``reward`` (the
    mean return, ``-cost_per_shift / 60``), ``accuracy`` (share of reads that agree with the
    label), ``utilisation`` (reading minutes over the radiologists' minutes until each shift's
    last read ends, mean)."""
    shifts = [e.shift for e in episodes]
    summary = wait_summary(shifts)
    costs = [problem.shift_cost(s) for s in shifts]
    total = float(np.mean([c["total"] for c in costs]))
    correct = sum(c["read_accuracy"] * len(s.labels) for c, s in zip(costs, shifts, strict=True))
    busy = [np.nansum(s.room.taken) / (problem.n_readers * max(
        float(np.nanmax(s.room.start + s.room.taken)), 1e-9)) for s in shifts]
    return {**summary, "waiting_cost_per_shift": summary.pop("cost_per_shift"),
            "cost_per_shift": total, "reward": -total / COST_PER_REWARD,
            "accuracy": float(correct / sum(len(s.labels) for s in shifts)),
            "utilisation": float(np.mean(busy))}


def policy_triage_scores(policy: Any, config: TriageConfig, split: str,
                         n_shifts: int = EVAL_SHIFTS, seed: int = EVAL_SEED) -> dict[str, float]:
    """:func:`triage_scores` of ``policy`` on ``n_shifts`` fixed shifts of ``split``."""
    problem, episodes = evaluation_episodes(config, split, n_shifts, seed)
    return triage_scores(problem, play_policy(policy, problem, episodes))
