"""Classical ensembling baselines on the same frozen logits as the RL agents.

Every baseline is fitted on one :class:`~mura_env.env.WeightingProblem` (the ``tune`` split for
all but the upper references) and predicts on another (``valid``), giving per study an
abnormality probability and, where the method is a weighting of the members, the weights:

* :class:`UniformAverage`: plain averaging (the env's zero action).
* :class:`BestSingle`: the member with the best tune accuracy.
* :class:`BestSinglePerPart`: the best member of each body part on tune.
* :class:`Stacking`: scikit-learn logistic regression on the env's observation (no weights).
* :class:`SupervisedGating`: the original design's softmax gating network over the members'
  logits (and the body part), trained with cross-entropy on the mixture instead of reward.
* :class:`KnoraEliminate`: per-study competence weighting in the spirit of DESlib's KNORA-E:
  the members right on all ``k`` nearest tune studies (same body part, logit space) vote.

Upper references (``reference = True``), not methods one could deploy:

* :class:`Oracle`: a member that is right, whenever one is.
* :class:`BestFixedWeightsOnSplit`: the best fixed env action per body part, searched on the
  evaluation split itself.

All probabilities are float64 ``[n]``; all weights float64 ``[n, K]`` with rows summing to 1.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from mura_env.constants import BODY_PARTS
from mura_env.env import WeightingProblem

Prediction = tuple[np.ndarray, "np.ndarray | None"]


def softmax_weights(actions: np.ndarray, coef: float) -> np.ndarray:
    """The env's mapping from actions float ``[..., K]`` in [-1, 1] to weights
    ``softmax(coef * action)`` (float64, same shape)."""
    z = coef * np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _mix(pb: WeightingProblem, weights: np.ndarray) -> Prediction:
    weights = np.asarray(weights, dtype=np.float64)
    return np.minimum((weights * pb.probabilities).sum(axis=1), 1.0), weights


def _member_correct(pb: WeightingProblem) -> np.ndarray:
    """bool ``[n, K]``: member k's own prediction (``q > threshold``) is right on study i."""
    return (pb.probabilities > pb.threshold) == pb.labels[:, None].astype(bool)


class Baseline:
    """Base class: ``fit(problem) -> self``, ``predict(problem) -> (probabilities, weights)``.

    Attributes:
        name: short name used in tables.
        reference: True for upper references (fitted on, or peeking at, the evaluated split).
    """

    name = "baseline"
    reference = False

    def fit(self, problem: WeightingProblem) -> Baseline:
        """Fit on ``problem`` (the tune split); returns self."""
        self.model_names = problem.model_names
        return self

    def predict(self, problem: WeightingProblem) -> Prediction:  # pragma: no cover
        """``(probabilities float64 [n], weights float64 [n, K] or None)`` for ``problem``."""
        raise NotImplementedError

    def _check(self, problem: WeightingProblem) -> None:
        if getattr(self, "model_names", None) is None:
            raise RuntimeError(f"{self.name}: call fit() before predict().")
        if tuple(problem.model_names) != tuple(self.model_names):
            raise ValueError(f"{self.name} was fitted on models {list(self.model_names)}, "
                             f"got {list(problem.model_names)}.")


class UniformAverage(Baseline):
    """Plain average of the members' abnormality probabilities."""

    name = "uniform"

    def predict(self, problem: WeightingProblem) -> Prediction:
        """Weights ``1/K`` for every study."""
        self._check(problem)
        k = problem.n_models
        return _mix(problem, np.full((problem.n_studies, k), 1.0 / k))


class BestSingle(Baseline):
    """The single member with the best accuracy on the fitting split (ties: first)."""

    name = "best_single"

    def fit(self, problem: WeightingProblem) -> BestSingle:
        """Pick ``self.best`` (a model index) by tune accuracy."""
        super().fit(problem)
        self.best = int(np.argmax(_member_correct(problem).mean(axis=0)))
        return self

    def predict(self, problem: WeightingProblem) -> Prediction:
        """One-hot weights on the chosen member."""
        self._check(problem)
        w = np.zeros((problem.n_studies, problem.n_models))
        w[:, self.best] = 1.0
        return _mix(problem, w)


class BestSinglePerPart(Baseline):
    """The member with the best accuracy per body part on the fitting split; body parts
    missing there use the best member overall."""

    name = "best_single_per_part"

    def fit(self, problem: WeightingProblem) -> BestSinglePerPart:
        """Fill ``self.best`` ``[7]`` (model index per body part, ``BODY_PARTS`` order)."""
        super().fit(problem)
        correct = _member_correct(problem)
        overall = int(np.argmax(correct.mean(axis=0)))
        self.best = np.full(len(BODY_PARTS), overall, dtype=np.int64)
        for b in range(len(BODY_PARTS)):
            rows = problem.body_part_index == b
            if rows.any():
                self.best[b] = int(np.argmax(correct[rows].mean(axis=0)))
        return self

    def predict(self, problem: WeightingProblem) -> Prediction:
        """One-hot weights on each study's body-part member."""
        self._check(problem)
        w = np.zeros((problem.n_studies, problem.n_models))
        w[np.arange(problem.n_studies), self.best[problem.body_part_index]] = 1.0
        return _mix(problem, w)


class Stacking(Baseline):
    """Logistic regression (scikit-learn, standardised inputs) on the env's observation: the
    ``2K`` logits and the one-hot body part. It gives probabilities, not member weights."""

    name = "stacking"

    def __init__(self, C: float = 1.0) -> None:
        self.C = C

    def fit(self, problem: WeightingProblem) -> Stacking:
        """Fit the regression on the fitting split's observations and labels."""
        super().fit(problem)
        if len(np.unique(problem.labels)) < 2:
            raise ValueError("stacking needs both normal and abnormal studies to fit on.")
        self.model = make_pipeline(StandardScaler(),
                                   LogisticRegression(C=self.C, max_iter=2000))
        self.model.fit(problem.observations, problem.labels)
        return self

    def predict(self, problem: WeightingProblem) -> Prediction:
        """``(P(abnormal) [n], None)``."""
        self._check(problem)
        return self.model.predict_proba(problem.observations)[:, 1].astype(np.float64), None


class _GatingNet(nn.Module):
    def __init__(self, n_in: int, k: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, k))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(obs), dim=-1)


class SupervisedGating(Baseline):
    """The original design's "agent": a softmax gating network over the members' logits and
    the one-hot body part, trained by plain cross-entropy on the weighted mixture.

    Full-batch AdamW with OneCycleLR (as in the original), ``epochs`` steps, seeded.
    """

    name = "supervised_gating"

    def __init__(self, hidden: int = 32, epochs: int = 300, lr: float = 0.02,
                 weight_decay: float = 0.01, seed: int = 0) -> None:
        self.hidden, self.epochs, self.lr = hidden, epochs, lr
        self.weight_decay, self.seed = weight_decay, seed

    def fit(self, problem: WeightingProblem) -> SupervisedGating:
        """Train the gate with binary cross-entropy of ``sum_k w_k q_k`` against the label."""
        super().fit(problem)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.net = _GatingNet(problem.observations.shape[1], problem.n_models,
                                  self.hidden)
        obs = torch.tensor(problem.observations)
        q = torch.tensor(problem.probabilities, dtype=torch.float32)
        y = torch.tensor(problem.labels, dtype=torch.float32)
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.lr,
                                weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr,
                                                    total_steps=self.epochs)
        for _ in range(self.epochs):
            p = (self.net(obs) * q).sum(-1).clamp(1e-6, 1 - 1e-6)
            loss = nn.functional.binary_cross_entropy(p, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        self.net.eval()
        return self

    def predict(self, problem: WeightingProblem) -> Prediction:
        """The gate's weights per study and the mixture."""
        self._check(problem)
        with torch.no_grad():
            w = self.net(torch.tensor(problem.observations)).double().numpy()
        return _mix(problem, w)


class KnoraEliminate(Baseline):
    """A KNORA-Eliminate-like per-study competence weighting (after Ko et al. 2008 and
    DESlib's ``KNORAE``), fitted on the tune split.

    For each study, its ``k`` nearest tune studies of the same body part (Euclidean distance
    on the standardised ``2K`` logits) form its region of competence; the members right on all
    of them get equal weight. If no member is, ``k`` shrinks by one until one is; if none is
    even for one neighbour, all members get equal weight. Body parts with fewer than ``k``
    tune studies use all tune studies.

    Two differences from DESlib's KNORA-E: the selected members are combined by a soft vote
    (the equal-weight average of their abnormal probabilities, the same combination every
    method here uses, thresholded at the env's threshold) rather than a majority vote of their
    labels; and neighbours are searched within the study's own body part (among all tune
    studies only when that part has fewer than ``k``).
    """

    name = "knora_e"

    def __init__(self, k: int = 7) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}.")
        self.k = int(k)

    def fit(self, problem: WeightingProblem) -> KnoraEliminate:
        """Store the tune logits (standardised), body parts and members' correctness."""
        super().fit(problem)
        kk = 2 * problem.n_models
        self.scaler = StandardScaler().fit(problem.observations[:, :kk])
        self.features = self.scaler.transform(problem.observations[:, :kk])
        self.parts = problem.body_part_index
        self.correct = _member_correct(problem)
        return self

    def predict(self, problem: WeightingProblem) -> Prediction:
        """Equal weights on the selected members of each study."""
        self._check(problem)
        kk = 2 * problem.n_models
        x = self.scaler.transform(problem.observations[:, :kk])
        w = np.zeros((problem.n_studies, problem.n_models))
        for b in np.unique(problem.body_part_index):
            rows = np.flatnonzero(problem.body_part_index == b)
            pool = np.flatnonzero(self.parts == b)
            if len(pool) < self.k:
                pool = np.arange(len(self.parts))
            k = min(self.k, len(pool))
            nn_ = NearestNeighbors(n_neighbors=k).fit(self.features[pool])
            _, idx = nn_.kneighbors(x[rows])
            for i, neighbours in zip(rows, pool[idx], strict=True):
                chosen = np.ones(problem.n_models, dtype=bool)
                for m in range(k, 0, -1):
                    sel = self.correct[neighbours[:m]].all(axis=0)
                    if sel.any():
                        chosen = sel
                        break
                w[i] = chosen / chosen.sum()
        return _mix(problem, w)


class Oracle(Baseline):
    """Upper reference: whenever some member is right, follow the most confident right member
    (one-hot weights); otherwise the uniform average. Accuracy = share of studies some member
    gets right. Needs no fitting (``fit`` only records the models)."""

    name = "oracle (upper reference)"
    reference = True

    def predict(self, problem: WeightingProblem) -> Prediction:
        """Uses ``problem.labels``: this is a reference, not a method."""
        self._check(problem)
        q = problem.probabilities
        correct = _member_correct(problem)
        margin = np.where(correct, np.abs(q - problem.threshold), -np.inf)
        best = np.argmax(margin, axis=1)
        w = np.full(q.shape, 1.0 / problem.n_models)
        some = correct.any(axis=1)
        w[some] = 0.0
        w[np.flatnonzero(some), best[some]] = 1.0
        return _mix(problem, w)


class BestFixedWeightsOnSplit(Baseline):
    """Upper reference: per body part, the fixed env action with the best accuracy on the
    evaluated split itself (searched there; ``fit`` is ignored apart from the models).

    Actions are searched on the grid ``{-1, -0.5, 0, 0.5, 1}^K`` (``K <= 5``) or ``n_random``
    seeded random actions plus the grid's corners and zero (larger ``K``); ties go to the
    action closest to zero (uniform)."""

    name = "best_fixed_weights_on_valid (upper reference)"
    reference = True

    def __init__(self, n_random: int = 5000, seed: int = 0) -> None:
        self.n_random, self.seed = n_random, seed

    def _candidates(self, k: int) -> np.ndarray:
        if k <= 5:
            return np.array(list(itertools.product((-1.0, -0.5, 0.0, 0.5, 1.0), repeat=k)))
        rng = np.random.default_rng(self.seed)
        eye = np.eye(k) * 2 - 1
        return np.vstack([np.zeros((1, k)), eye, rng.uniform(-1, 1, (self.n_random, k))])

    def predict(self, problem: WeightingProblem) -> Prediction:
        """Per body part: the searched action's weights (uses ``problem.labels``)."""
        self._check(problem)
        cand = self._candidates(problem.n_models)
        order = np.argsort(np.abs(cand).sum(axis=1), kind="stable")
        cand = cand[order]
        cand_w = softmax_weights(cand, problem.coef)  # [C, K]
        w = np.zeros((problem.n_studies, problem.n_models))
        self.actions: dict[str, np.ndarray] = {}
        for b in np.unique(problem.body_part_index):
            rows = np.flatnonzero(problem.body_part_index == b)
            p = problem.probabilities[rows] @ cand_w.T  # [n_b, C]
            acc = ((p > problem.threshold) == problem.labels[rows, None].astype(bool)).mean(0)
            best = int(np.argmax(acc))
            self.actions[BODY_PARTS[b]] = cand[best]
            w[rows] = cand_w[best]
        return _mix(problem, w)


def all_baselines(seed: int = 0) -> list[Baseline]:
    """One of each baseline, in table order (deployable methods first, then the references)."""
    return [UniformAverage(), BestSingle(), BestSinglePerPart(), Stacking(),
            SupervisedGating(seed=seed), KnoraEliminate(), Oracle(), BestFixedWeightsOnSplit()]


def fit_baselines(tune: WeightingProblem, seed: int = 0) -> list[Baseline]:
    """Every baseline of :func:`all_baselines` fitted on ``tune``."""
    return [b.fit(tune) for b in all_baselines(seed)]


def describe(baseline: Any) -> str:
    """One line saying what ``baseline`` is (its docstring's first sentence)."""
    doc = (type(baseline).__doc__ or "").strip().split("\n\n")[0]
    return " ".join(doc.split())
