"""Classical ensembling baselines on the same frozen logits as the RL agents.

Every baseline is fitted on one :class:`~mura_env.logits.study_set.StudySet` (the ``tune`` split for
all but the upper references) and predicts on another (``valid``), giving per study an
abnormality probability and, where the method is a weighting of the members, the weights:

* :class:`UniformAverage`: plain averaging (the env's zero action).
* :class:`BestSingle`: the member with the best tune accuracy.
* :class:`BestSinglePerPart`: the best member of each body part on tune.
* :class:`Stacking`: scikit-learn logistic regression on the env's observation (no weights).
* :class:`SupervisedGating`: a softmax gating network over the members' logits (and the body
  part), trained with cross-entropy on the mixture instead of reward.
* :class:`KnoraEliminate`: per-study competence weighting in the spirit of DESlib's KNORA-E:
  the members right on the most consecutive nearest tune studies (same body part) vote.

Upper references (``reference = True``), not methods one could deploy:

* :class:`Oracle`: a member that is right, whenever one is.
* :class:`BestFixedWeightsOnSplit`: the best fixed env action per body part, searched on the
  evaluation split itself.

Weights become probabilities through :mod:`mura_env.weighting.mapping`, with the threshold of the
:class:`~mura_env.weighting.mapping.EnsembleMapping` given to ``fit`` (default: the env's). All
probabilities are float64 ``[n]``; all weights float64 ``[n, K]`` with rows summing to 1.
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
from mura_env.logits.study_set import StudySet
from mura_env.weighting.mapping import EnsembleMapping, ensemble_probability

#: ``(probabilities float64 [n], weights float64 [n, K] or None)``.
Prediction = tuple[np.ndarray, "np.ndarray | None"]


class Baseline:
    """Base class: ``fit(studies, mapping) -> self``, ``predict(studies) -> Prediction``.

    Attributes:
        name: short name used in tables.
        reference: True for upper references (fitted on, or peeking at, the evaluated split).
        seeded: True when the fitted model depends on a ``seed`` (benchmarks run it per seed).
        mapping: the :class:`~mura_env.weighting.mapping.EnsembleMapping` given to ``fit``.
    """

    name = "baseline"
    reference = False
    seeded = False

    def fit(self, studies: StudySet, mapping: EnsembleMapping | None = None) -> Baseline:
        """Fit on ``studies`` (the tune split) for ``mapping`` (None: the env's default);
        returns self."""
        self.model_names = studies.model_names
        self.mapping = mapping or EnsembleMapping()
        return self

    def predict(self, studies: StudySet) -> Prediction:  # pragma: no cover
        """``(probabilities float64 [n], weights float64 [n, K] or None)`` for ``studies``."""
        raise NotImplementedError

    def _check(self, studies: StudySet) -> None:
        if getattr(self, "model_names", None) is None:
            raise RuntimeError(f"{self.name}: call fit() before predict().")
        if tuple(studies.model_names) != tuple(self.model_names):
            raise ValueError(f"{self.name} was fitted on models {list(self.model_names)}, "
                             f"got {list(studies.model_names)}.")

    def _member_correct(self, studies: StudySet) -> np.ndarray:
        """bool ``[n, K]``: member k alone is right on study i (at the mapping's threshold)."""
        return studies.member_correct(self.mapping.threshold)

    @staticmethod
    def _mix(studies: StudySet, weights: np.ndarray) -> Prediction:
        weights = np.asarray(weights, dtype=np.float64)
        return ensemble_probability(weights, studies.probabilities), weights


class UniformAverage(Baseline):
    """Plain average of the members' abnormality probabilities."""

    name = "uniform"

    def predict(self, studies: StudySet) -> Prediction:
        """Weights ``1/K`` for every study."""
        self._check(studies)
        k = studies.n_models
        return self._mix(studies, np.full((studies.n_studies, k), 1.0 / k))


class BestSingle(Baseline):
    """The single member with the best accuracy on the fitting split (ties: first)."""

    name = "best_single"

    def fit(self, studies: StudySet, mapping: EnsembleMapping | None = None) -> BestSingle:
        """Pick ``self.best`` (a model index) by tune accuracy."""
        super().fit(studies, mapping)
        self.best = int(np.argmax(self._member_correct(studies).mean(axis=0)))
        return self

    def predict(self, studies: StudySet) -> Prediction:
        """One-hot weights on the chosen member."""
        self._check(studies)
        w = np.zeros((studies.n_studies, studies.n_models))
        w[:, self.best] = 1.0
        return self._mix(studies, w)


class BestSinglePerPart(Baseline):
    """The member with the best accuracy per body part on the fitting split; body parts
    missing there use the best member overall."""

    name = "best_single_per_part"

    def fit(self, studies: StudySet, mapping: EnsembleMapping | None = None
            ) -> BestSinglePerPart:
        """Fill ``self.best`` ``[7]`` (model index per body part, ``BODY_PARTS`` order)."""
        super().fit(studies, mapping)
        correct = self._member_correct(studies)
        overall = int(np.argmax(correct.mean(axis=0)))
        self.best = np.full(len(BODY_PARTS), overall, dtype=np.int64)
        for b in range(len(BODY_PARTS)):
            rows = studies.body_part_index == b
            if rows.any():
                self.best[b] = int(np.argmax(correct[rows].mean(axis=0)))
        return self

    def predict(self, studies: StudySet) -> Prediction:
        """One-hot weights on each study's body-part member."""
        self._check(studies)
        w = np.zeros((studies.n_studies, studies.n_models))
        w[np.arange(studies.n_studies), self.best[studies.body_part_index]] = 1.0
        return self._mix(studies, w)


class Stacking(Baseline):
    """Logistic regression (scikit-learn, standardised inputs) on the env's observation: the
    ``2K`` logits and the one-hot body part. It gives probabilities, not member weights."""

    name = "stacking"

    def __init__(self, C: float = 1.0) -> None:
        self.C = C

    def fit(self, studies: StudySet, mapping: EnsembleMapping | None = None) -> Stacking:
        """Fit the regression on the fitting split's observations and labels."""
        super().fit(studies, mapping)
        if len(np.unique(studies.labels)) < 2:
            raise ValueError("stacking needs both normal and abnormal studies to fit on.")
        self.model = make_pipeline(StandardScaler(),
                                   LogisticRegression(C=self.C, max_iter=2000))
        self.model.fit(studies.observations, studies.labels)
        return self

    def predict(self, studies: StudySet) -> Prediction:
        """``(P(abnormal) [n], None)``."""
        self._check(studies)
        return self.model.predict_proba(studies.observations)[:, 1].astype(np.float64), None


class _GatingNet(nn.Module):
    def __init__(self, n_in: int, k: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, k))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(obs), dim=-1)


class SupervisedGating(Baseline):
    """A softmax gating network over the members' logits and the one-hot body part, trained
    by plain cross-entropy on the weighted mixture (no reward, no environment).

    Full-batch AdamW with OneCycleLR, ``epochs`` steps, seeded.
    """

    name = "supervised_gating"
    seeded = True

    def __init__(self, hidden: int = 32, epochs: int = 300, lr: float = 0.02,
                 weight_decay: float = 0.01, seed: int = 0) -> None:
        self.hidden, self.epochs, self.lr = hidden, epochs, lr
        self.weight_decay, self.seed = weight_decay, seed

    def fit(self, studies: StudySet, mapping: EnsembleMapping | None = None
            ) -> SupervisedGating:
        """Train the gate with binary cross-entropy of ``sum_k w_k q_k`` against the label."""
        super().fit(studies, mapping)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.net = _GatingNet(studies.observations.shape[1], studies.n_models,
                                  self.hidden)
        obs = torch.tensor(studies.observations)
        q = torch.tensor(studies.probabilities, dtype=torch.float32)
        y = torch.tensor(studies.labels, dtype=torch.float32)
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.lr,
                                weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr,
                                                    total_steps=self.epochs)
        for _ in range(self.epochs):
            p = (self.net(obs) * q).sum(-1).clamp(1e-6, 1 - 1e-6)  # differentiable
            loss = nn.functional.binary_cross_entropy(p, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        self.net.eval()
        return self

    def predict(self, studies: StudySet) -> Prediction:
        """The gate's weights per study and the mixture."""
        self._check(studies)
        with torch.no_grad():
            w = self.net(torch.tensor(studies.observations)).double().numpy()
        return self._mix(studies, w)


class KnoraEliminate(Baseline):
    """A KNORA-Eliminate-like per-study competence weighting (after Ko et al. 2008 and
    DESlib's ``KNORAE``), fitted on the tune split.

    For each study, its ``k`` nearest tune studies of the same body part (Euclidean distance
    on the standardised ``2K`` logits), nearest first, form its region of competence. Each
    member's competence is the number of consecutive neighbours, from the nearest, it gets
    right; the members with the highest competence get equal weight (all ``k`` right: the
    members right on the whole region; as in KNORA-E, the region shrinks until some member is
    right on all of it). If no member gets even the nearest neighbour right, all members get
    equal weight. Body parts with fewer than ``k`` tune studies use all tune studies.

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

    def fit(self, studies: StudySet, mapping: EnsembleMapping | None = None
            ) -> KnoraEliminate:
        """Store the tune logits (standardised), body parts and members' correctness."""
        super().fit(studies, mapping)
        n_logits = 2 * studies.n_models
        self.scaler = StandardScaler().fit(studies.observations[:, :n_logits])
        self.features = self.scaler.transform(studies.observations[:, :n_logits])
        self.parts = studies.body_part_index
        self.correct = self._member_correct(studies)
        return self

    def _neighbours(self, studies: StudySet) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per body part present: ``(rows [m], neighbours int [m, k'])``, the rows of
        ``studies`` of that part and their tune neighbours, nearest first."""
        n_logits = 2 * studies.n_models
        x = self.scaler.transform(studies.observations[:, :n_logits])
        out = []
        for part in np.unique(studies.body_part_index):
            rows = np.flatnonzero(studies.body_part_index == part)
            pool = np.flatnonzero(self.parts == part)
            if len(pool) < self.k:
                pool = np.arange(len(self.parts))
            search = NearestNeighbors(n_neighbors=min(self.k, len(pool))).fit(
                self.features[pool])
            _, index = search.kneighbors(x[rows])
            out.append((rows, pool[index]))
        return out

    @staticmethod
    def competence_weights(neighbour_correct: np.ndarray) -> np.ndarray:
        """Equal weights on the most competent members.

        Args:
            neighbour_correct: bool ``[m, k, K]``: member K is right on the j-th nearest
                neighbour of study i.

        Returns:
            float64 ``[m, K]``: ``1 / count`` on the members with the longest run of right
            neighbours from the nearest (all members when every run is 0).
        """
        k = neighbour_correct.shape[1]
        runs = np.where(neighbour_correct.all(axis=1), k, neighbour_correct.argmin(axis=1))
        chosen = runs == runs.max(axis=1, keepdims=True)
        return chosen / chosen.sum(axis=1, keepdims=True)

    def predict(self, studies: StudySet) -> Prediction:
        """Equal weights on the selected members of each study."""
        self._check(studies)
        w = np.zeros((studies.n_studies, studies.n_models))
        for rows, neighbours in self._neighbours(studies):
            w[rows] = self.competence_weights(self.correct[neighbours])
        return self._mix(studies, w)


class Oracle(Baseline):
    """Upper reference: whenever some member is right, follow the most confident right member
    (one-hot weights); otherwise the uniform average. Accuracy = share of studies some member
    gets right. Needs no fitting (``fit`` only records the models)."""

    name = "oracle"
    reference = True

    def predict(self, studies: StudySet) -> Prediction:
        """Uses ``studies.labels``: this is a reference, not a method."""
        self._check(studies)
        q = studies.probabilities
        correct = self._member_correct(studies)
        margin = np.where(correct, np.abs(q - self.mapping.threshold), -np.inf)
        best = np.argmax(margin, axis=1)
        w = np.full(q.shape, 1.0 / studies.n_models)
        some = correct.any(axis=1)
        w[some] = 0.0
        w[np.flatnonzero(some), best[some]] = 1.0
        return self._mix(studies, w)


class BestFixedWeightsOnSplit(Baseline):
    """Upper reference: per body part, the fixed env action with the best accuracy on the
    evaluated split itself (searched there; ``fit`` is ignored apart from the models).

    Actions are searched on the grid ``{-1, -0.5, 0, 0.5, 1}^K`` (``K <= 5``) or ``n_random``
    seeded random actions plus the grid's corners and zero (larger ``K``); ties go to the
    action closest to zero (uniform)."""

    name = "best_fixed_weights_on_valid"
    reference = True

    def __init__(self, n_random: int = 5000, seed: int = 0) -> None:
        self.n_random, self.seed = n_random, seed

    def _candidates(self, k: int) -> np.ndarray:
        if k <= 5:
            return np.array(list(itertools.product((-1.0, -0.5, 0.0, 0.5, 1.0), repeat=k)))
        rng = np.random.default_rng(self.seed)
        eye = np.eye(k) * 2 - 1
        return np.vstack([np.zeros((1, k)), eye, rng.uniform(-1, 1, (self.n_random, k))])

    def predict(self, studies: StudySet) -> Prediction:
        """Per body part: the searched action's weights (uses ``studies.labels``)."""
        self._check(studies)
        candidates = self._candidates(studies.n_models)
        candidates = candidates[np.argsort(np.abs(candidates).sum(axis=1), kind="stable")]
        candidate_weights = self.mapping.weights(candidates)  # [C, K]
        w = np.zeros((studies.n_studies, studies.n_models))
        self.actions: dict[str, np.ndarray] = {}
        for part in np.unique(studies.body_part_index):
            rows = np.flatnonzero(studies.body_part_index == part)
            p = ensemble_probability(candidate_weights[None], studies.probabilities[rows, None])
            right = (p > self.mapping.threshold) == studies.labels[rows, None].astype(bool)
            best = int(np.argmax(right.mean(axis=0)))
            self.actions[BODY_PARTS[part]] = candidates[best]
            w[rows] = candidate_weights[best]
        return self._mix(studies, w)


def all_baselines(seed: int = 0) -> list[Baseline]:
    """One of each baseline, in table order (deployable methods first, then the references)."""
    return [UniformAverage(), BestSingle(), BestSinglePerPart(), Stacking(),
            SupervisedGating(seed=seed), KnoraEliminate(), Oracle(), BestFixedWeightsOnSplit()]


def fit_baselines(tune: StudySet, mapping: EnsembleMapping | None = None,
                  seed: int = 0) -> list[Baseline]:
    """Every baseline of :func:`all_baselines` fitted on ``tune`` for ``mapping``."""
    return [b.fit(tune, mapping) for b in all_baselines(seed)]


def describe(baseline: Any) -> str:
    """One line saying what ``baseline`` is (its docstring's first sentence)."""
    doc = (type(baseline).__doc__ or "").strip().split("\n\n")[0]
    return " ".join(doc.split())
