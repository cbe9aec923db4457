"""Whole shifts of ``MuraWorklist-v0`` answered by a policy: the evaluation of worklist agents.

The shifts of an evaluation are fixed by ``(config, split, n_shifts, seed)``
(:func:`evaluation_shifts`), so every agent and every classical method
(:mod:`agents.worklist.methods`) answers the same studies in the same order. A rollout steps
:class:`mura_env.worklist.problem.ShiftState` through the env's own problem, so its answers
are the env's.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from sklearn.metrics import cohen_kappa_score

from mura_env.worklist.config import WorklistConfig
from mura_env.worklist.problem import ShiftState, WorklistProblem

#: Shifts of a tune evaluation during training (the curves) and their seed.
EVAL_SHIFTS = 64
EVAL_SEED = 12_345


def evaluation_shifts(config: WorklistConfig, split: str, n_shifts: int, seed: int
                      ) -> tuple[WorklistProblem, np.ndarray]:
    """The problem of ``config`` on ``split`` and ``n_shifts`` shifts drawn by its scenario
    with ``numpy.random.default_rng(seed)``.

    Returns:
        ``(problem, rows int64 [n_shifts, shift_size])``.
    """
    problem = WorklistProblem(config.replace(split=split, sampling="random"))
    rows, _ = problem.new_shifts(n_shifts, np.random.default_rng(seed))
    return problem, rows


def predict_takes(policy: Any, name: str) -> bool:
    """Whether ``policy.predict`` takes the argument ``name`` (``state``: SB3's policies and
    the project's agents; ``action_masks``: sb3-contrib's MaskablePPO and native PPO)."""
    try:
        return name in inspect.signature(policy.predict).parameters
    except (TypeError, ValueError):
        return False


def rollout(policy: Any, problem: WorklistProblem, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Answer the shifts ``rows`` (int64 ``[S, N]``) with ``policy``'s deterministic actions.

    Args:
        policy: anything with SB3's ``predict(obs [S, obs], deterministic=True)`` returning
            ``(actions, state)``: actions ``[S, K + R]`` (int ``[S]`` for
            ``action="routing"``). A ``predict`` that takes ``state`` and ``episode_start``
            gets its state carried from study to study of the shifts (a recurrent policy's
            memory); one that takes ``action_masks`` gets the routing action's masks.
        problem: the worklist problem the shifts index into.
        rows: the shifts' study rows, in arrival order.

    Returns:
        Arrays ``[S, N]``: ``answered_by`` (int64, reader index or -1), ``prediction`` (int8,
        the answer that counts), ``label`` (int8), ``correct``, ``ensemble_correct`` (bool),
        ``reward`` (float64), ``study_index`` (int64).
    """
    state = ShiftState.start(rows.copy(), problem.capacities, problem.studies.body_part_index)
    keys = ("answered_by", "prediction", "label", "correct", "ensemble_correct", "reward",
            "study_index")
    out: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    masked = problem.routing and predict_takes(policy, "action_masks")
    carries_state = predict_takes(policy, "state")
    memory = None
    first, later = np.ones(len(rows), dtype=bool), np.zeros(len(rows), dtype=bool)
    for position in range(rows.shape[1]):
        extra: dict[str, Any] = {"action_masks": problem.action_masks(state)} if masked else {}
        if carries_state:
            extra.update(state=memory, episode_start=first if position == 0 else later)
        actions, memory = policy.predict(problem.observe(state), deterministic=True, **extra)
        step = problem.answer(state, problem.check_actions(np.asarray(actions), len(rows)))
        for k in keys:
            out[k].append(step[k])
    return {k: np.stack(v, axis=1) for k, v in out.items()}


def shift_scores(answers: dict[str, np.ndarray], n_readers: int) -> dict[str, float]:
    """The system's ``accuracy`` and Cohen's ``kappa`` over every study of every shift, the
    mean ``reward`` per study, and ``reads_<r>``: the share of studies reader ``r`` answered
    (from :func:`rollout`'s arrays)."""
    label, prediction = answers["label"].ravel(), answers["prediction"].ravel()
    scores = {"accuracy": float((label == prediction).mean()),
              "kappa": float(cohen_kappa_score(label, prediction)),
              "reward": float(answers["reward"].mean())}
    for r in range(n_readers):
        scores[f"reads_{r}"] = float((answers["answered_by"] == r).mean())
    return scores


def policy_shift_scores(policy: Any, config: WorklistConfig, split: str,
                        n_shifts: int = EVAL_SHIFTS, seed: int = EVAL_SEED) -> dict[str, float]:
    """:func:`shift_scores` of ``policy`` on ``n_shifts`` fixed shifts of ``split``."""
    problem, rows = evaluation_shifts(config, split, n_shifts, seed)
    return shift_scores(rollout(policy, problem, rows), problem.n_readers)
