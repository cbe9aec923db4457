"""Classical deferral methods: when should the ensemble hand a study to the reader?

Every method is fitted on the ``tune`` studies for one ``defer_cost`` (the reward given up by a
deferral, as in ``MuraDeferral-v0`` with the ``correct`` reward: a study scores 1 when the
answer that counts is right, minus ``defer_cost`` when it was deferred) and then decides, for
new studies, which to defer. A kept study is answered by the method's ensemble, a deferred one
by the reader's read.

The ensemble of the classical methods is :class:`~agents.weighting.baselines.Stacking` (the
strongest fixed combiner of the weighting benchmark), so thresholding starts from a good ensemble.
Its probabilities are cross-fitted (:func:`out_of_fold_probabilities`): each method's rule
(thresholds, gain predictor) is fitted on *out-of-fold* tune probabilities, each tune study
scored by a stacking model fitted on the other folds (folds grouped by patient, stratified by
body part and label), because stacking is over-confident on the studies it was fitted on;
decisions on new studies use the stacking ensemble fitted on all of tune. The methods:

* :class:`NeverDefer` (the ensemble alone) and :class:`AlwaysDefer` (the reader alone);
* :class:`GlobalThreshold`: defer when ``|p - 0.5| < t``, ``t`` chosen on tune for the cost;
* :class:`PerPartThreshold`: one such ``t`` per body part;
* :class:`GainPredictor`: multinomial logistic regression on the observation (and the
  ensemble's probability and confidence) predicting ``g = reader right - ensemble right``
  in {-1, 0, 1}; defer when ``P(g = 1) - P(g = -1) > defer_cost``;
* :class:`OracleDeferral` (upper reference): defer exactly when the reader is right and the
  ensemble wrong (and ``defer_cost < 1``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from agents.core.evaluate import sweep_answers
from agents.weighting.baselines import Stacking
from agents.weighting.reporting import kind_of
from mura_env.deferral.config import DeferralConfig
from mura_env.deferral.problem import defer_reward, team_answer, team_scores
from mura_env.logits import LogitsTable
from mura_env.logits.study_set import StudySet
from mura_env.readers import resolve_reader
from mura_env.rewards import correct_reward


@dataclass(frozen=True)
class DeferralData:
    """Studies with one reader's reads: what a deferral method fits on and decides for.

    Attributes:
        studies: the :class:`~mura_env.logits.study_set.StudySet` (``n`` studies).
        reads: int8 ``[n]``, the reader's read of each study (1 = abnormal).
        patient_ids: object ``[n]``, each study's patient (the cross-fitting folds keep a
            patient's studies together); None: every study is its own patient.
        reader: the id of the reader whose reads these are ("" when not from a table).
    """

    studies: StudySet
    reads: np.ndarray
    patient_ids: np.ndarray | None = None
    reader: str = ""

    @classmethod
    def from_table(cls, table: LogitsTable, split: str, reader: str | None = None
                   ) -> DeferralData:
        """The studies of ``split`` and the reads of ``reader`` (None: radiologist_3 when the
        table has it, else its only reader).

        Raises:
            KeyError: no such reader, or several and ``reader`` is None (see
                :func:`mura_env.readers.resolve_reader`).
        """
        selected = table.select(split=split)
        reader = resolve_reader(table.reader_ids, reader)
        return cls(StudySet.from_table(selected), selected.reads(reader),
                   selected.studies["patient_id"].to_numpy(dtype=object), reader)

    def reader_correct(self) -> np.ndarray:
        """bool ``[n]``: the read is right."""
        return self.reads == self.studies.labels

    def groups(self) -> np.ndarray:
        """``[n]``: the patient of each study (``patient_ids``, or int64 ``0..n-1`` when
        unknown), what the cross-fitting folds group by."""
        if self.patient_ids is None:
            return np.arange(self.studies.n_studies, dtype=np.int64)
        return self.patient_ids


@dataclass(frozen=True)
class Decision:
    """A method's answer on ``n`` studies: ``probability`` float64 ``[n]`` (its ensemble's
    abnormality probability), ``deferred`` bool ``[n]`` and, when the ensemble's own
    prediction is not ``probability > 0.5`` (an env with another threshold), that prediction
    (int ``[n]``; None: ``probability > 0.5``)."""

    probability: np.ndarray
    deferred: np.ndarray
    ensemble_prediction: np.ndarray | None = None

    def team_prediction(self, reads: np.ndarray) -> np.ndarray:
        """int8 ``[n]``: the answer that counts (:func:`mura_env.deferral.problem.team_answer`:
        the read where deferred, else the ensemble's prediction)."""
        ensemble = (self.probability > 0.5 if self.ensemble_prediction is None
                    else self.ensemble_prediction)
        return team_answer(self.deferred, reads, ensemble)

    def scores(self, labels: np.ndarray, reads: np.ndarray) -> dict[str, float]:
        """The team's ``accuracy`` and Cohen's ``kappa`` against ``labels`` (int ``[n]``) with
        the reader's ``reads``, and the ``deferral_rate``
        (:func:`mura_env.deferral.problem.team_scores`)."""
        return team_scores(labels, self.team_prediction(reads), self.deferred)


#: Folds of the cross-fitted stacking probabilities.
N_FOLDS = 5


@dataclass(frozen=True)
class OutOfFold:
    """Cross-fitted stacking probabilities of ``n`` studies split into ``n_folds`` folds.

    Attributes:
        probabilities: float64 ``[n]``, each study's P(abnormal) from the
            :class:`~agents.weighting.baselines.Stacking` model fitted on the other folds.
        fold: int64 ``[n]``, the fold (``0..n_folds - 1``) each study is scored in.
        train_index: one sorted int64 array per fold: the indices of the studies its model
            was fitted on (every study outside the fold).
    """

    probabilities: np.ndarray
    fold: np.ndarray
    train_index: tuple[np.ndarray, ...]

    @property
    def n_folds(self) -> int:
        """The number of folds."""
        return len(self.train_index)


def fold_strata(labels: np.ndarray, body_part_index: np.ndarray, n_folds: int) -> np.ndarray:
    """int64 ``[n]``: what the folds are stratified by: body part and label
    (``2 * part + label``) when every such stratum present holds at least ``n_folds`` studies,
    else the label alone when both labels do, else nothing (all 0)."""
    labels = np.asarray(labels, dtype=np.int64)
    for strata in (2 * np.asarray(body_part_index, dtype=np.int64) + labels, labels):
        if np.unique(strata, return_counts=True)[1].min() >= n_folds:
            return strata
    return np.zeros(len(labels), dtype=np.int64)


def assign_folds(labels: np.ndarray, body_part_index: np.ndarray, groups: np.ndarray,
                 n_folds: int = N_FOLDS, seed: int = 0) -> np.ndarray:
    """Seeded folds that keep each group (patient) whole, stratified as :func:`fold_strata`
    allows (body part and label where there are enough studies).

    Args:
        labels: int ``[n]`` (0/1); body_part_index: int ``[n]`` (0..6); groups: ``[n]``, any
            hashable ids (the studies of one id share a fold).
        n_folds: the number of folds (>= 2, at most the number of groups).
        seed: the shuffling seed of :class:`sklearn.model_selection.StratifiedGroupKFold`.

    Returns:
        int64 ``[n]``: each study's fold, ``0..n_folds - 1``.

    Raises:
        ValueError: fewer than 2 folds, or more folds than groups.
    """
    n_groups = len(np.unique(np.asarray(groups).astype(str)))
    if not 2 <= n_folds <= n_groups:
        raise ValueError(f"cross-fitting needs 2 <= n_folds <= the number of patients "
                         f"({n_groups}), got n_folds={n_folds}.")
    strata = fold_strata(labels, body_part_index, n_folds)
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    fold = np.full(len(strata), -1, dtype=np.int64)
    for k, (_, scored) in enumerate(splitter.split(strata, strata, groups)):
        fold[scored] = k
    return fold


def out_of_fold_probabilities(studies: StudySet, groups: np.ndarray | None = None,
                              n_folds: int = N_FOLDS, seed: int = 0) -> OutOfFold:
    """Cross-fitted stacking: every study scored by a :class:`~agents.weighting.baselines.Stacking`
    model fitted on the folds without it (:func:`assign_folds`).

    Args:
        studies: the ``n`` studies (e.g. tune).
        groups: ``[n]``, each study's patient (None: every study its own); no patient is on
            both sides of a fold.
        n_folds, seed: as :func:`assign_folds`.

    Returns:
        :class:`OutOfFold`: probabilities float64 ``[n]``, fold int64 ``[n]`` and each fold's
        training indices.

    Raises:
        ValueError: see :func:`assign_folds`; a fold's training studies with one label only.
    """
    n = studies.n_studies
    groups = np.arange(n) if groups is None else np.asarray(groups)
    fold = assign_folds(studies.labels, studies.body_part_index, groups, n_folds, seed)
    probabilities = np.full(n, np.nan, dtype=np.float64)
    train_index = []
    for k in range(n_folds):
        train, scored = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        model = Stacking().fit(studies.rows(train))
        probabilities[scored] = model.predict(studies.rows(scored))[0]
        train_index.append(train.astype(np.int64))
    return OutOfFold(probabilities, fold, tuple(train_index))


def deferral_gain(data: DeferralData, p: np.ndarray, defer_cost: float) -> np.ndarray:
    """float64 ``[n]``: what deferring each study adds to the ``correct`` reward when the
    ensemble would answer ``p > 0.5`` (``p``: float ``[n]``): the read's reward minus
    ``defer_cost`` minus the ensemble's reward."""
    labels = data.studies.labels
    kept = correct_reward(p, (p > 0.5).astype(np.int8), labels)
    return np.asarray(defer_reward(correct_reward, data.reads, labels, defer_cost) - kept,
                      dtype=np.float64)


def best_prefix_threshold(margin: np.ndarray, gain: np.ndarray) -> float:
    """The threshold ``t`` maximising the total ``gain`` of the studies with ``margin < t``.

    Args:
        margin: float ``[n]``, e.g. ``|p - 0.5|`` (defer the smallest first).
        gain: float ``[n]``, what deferring each study adds to the summed reward.

    Returns:
        ``t``: 0 (defer nothing) when no prefix gains, else a value between the last
        deferred margin and the next one (``inf`` when every study is deferred).
    """
    order = np.argsort(margin, kind="stable")
    sorted_margin, total = margin[order], np.cumsum(gain[order])
    # only cut between distinct margins: studies with equal margins go together
    cut = np.flatnonzero(np.append(sorted_margin[1:] != sorted_margin[:-1], True))
    if len(cut) == 0 or total[cut].max() <= 0.0:
        return 0.0
    best = cut[int(np.argmax(total[cut]))]
    return float(np.inf if best == len(margin) - 1
                 else 0.5 * (sorted_margin[best] + sorted_margin[best + 1]))


def count_threshold(margin: np.ndarray, n_deferred: int) -> float:
    """The threshold ``t`` such that ``margin < t`` holds for (as near as ties allow)
    ``n_deferred`` studies: the least sure ones.

    Args:
        margin: float ``[n]``, e.g. ``|p - 0.5|``; n_deferred: how many to defer, ``0..n``.

    Returns:
        ``t``: 0 for none, ``inf`` for all, else midway between the last deferred margin and
        the next; studies with equal margins go together, to the cut nearest ``n_deferred``
        (the smaller on a tie).
    """
    sorted_margin = np.sort(np.asarray(margin, dtype=np.float64))
    n = len(sorted_margin)
    cuts = np.flatnonzero(np.concatenate([[True], sorted_margin[1:] != sorted_margin[:-1],
                                          [True]]))  # studies deferred at each allowed cut
    best = int(cuts[np.argmin(np.abs(cuts - n_deferred))])
    if best == 0:
        return 0.0
    return float(np.inf if best == n
                 else 0.5 * (sorted_margin[best - 1] + sorted_margin[best]))


def cross_fitted(tune: Any, ensemble: Stacking | None = None,
                 out_of_fold: OutOfFold | None = None) -> tuple[Stacking, OutOfFold]:
    """The two fits a tune-fitted rule needs: a stacking ensemble fitted on all of ``tune``
    (to decide for new studies) and ``tune``'s out-of-fold probabilities (to fit the rule on).

    Args:
        tune: the tune studies (``studies``, a StudySet, and ``groups()``, the patient of each
            study), e.g. :class:`DeferralData`.
        ensemble: an already fitted one to share (None: fit it here).
        out_of_fold: already computed ones to share (None: :func:`out_of_fold_probabilities`,
            :data:`N_FOLDS` folds by patient, seed 0).

    Returns:
        ``(ensemble, out_of_fold)``.

    Raises:
        ValueError: ``out_of_fold`` is not of ``tune``'s size.
    """
    ensemble = ensemble if ensemble is not None else Stacking().fit(tune.studies)
    if out_of_fold is None:
        out_of_fold = out_of_fold_probabilities(tune.studies, tune.groups())
    if len(out_of_fold.probabilities) != tune.studies.n_studies:
        raise ValueError(f"out-of-fold probabilities of {len(out_of_fold.probabilities)} "
                         f"studies for {tune.studies.n_studies} tune studies.")
    return ensemble, out_of_fold


class DeferralMethod:
    """Base class: ``fit(tune, defer_cost) -> self``, ``decide(data) -> Decision``."""

    name = "deferral"
    reference = False

    @property
    def kind(self) -> str:
        """``"reference"`` for upper references, else ``"baseline"`` (as result tables say;
        :func:`agents.weighting.reporting.kind_of`)."""
        return kind_of(self)

    def fit(self, tune: DeferralData, defer_cost: float, ensemble: Stacking | None = None,
            out_of_fold: OutOfFold | None = None) -> DeferralMethod:
        """Cross-fit the ensemble (stacking) on ``tune``, then fit the method's own rule on the
        out-of-fold tune probabilities.

        Args:
            tune: the studies fitted on; defer_cost: the cost of a deferral.
            ensemble: a :class:`~agents.weighting.baselines.Stacking` already fitted on all of
                ``tune`` to share between methods (None: fit one here); it decides for new studies.
            out_of_fold: ``tune``'s :func:`out_of_fold_probabilities` to share between
                methods (None: compute them here, :data:`N_FOLDS` folds by patient, seed 0).

        Raises:
            ValueError: ``out_of_fold`` is not of ``tune``'s size.
        """
        self.defer_cost = float(defer_cost)
        self.ensemble, self.out_of_fold = cross_fitted(tune, ensemble, out_of_fold)
        p = self.out_of_fold.probabilities
        self._fit_rule(tune, p, deferral_gain(tune, p, self.defer_cost))
        return self

    def _fit_rule(self, tune: DeferralData, p: np.ndarray, gain: np.ndarray) -> None:
        """Fit the rule on tune's out-of-fold ensemble probabilities ``p`` and per-study
        deferral ``gain`` (float ``[n]``)."""

    def decide(self, data: DeferralData) -> Decision:
        """The full-tune ensemble's probability and the defer decision for each study of
        ``data`` (new studies, e.g. valid)."""
        p = self.ensemble.predict(data.studies)[0]
        return Decision(p, self._defer(data, p).astype(bool))

    def decide_out_of_fold(self, tune: DeferralData) -> Decision:
        """The decision for the studies fitted on (``tune``, as given to :meth:`fit`) with
        their out-of-fold probabilities: what the rule was fitted on."""
        p = self.out_of_fold.probabilities
        if len(p) != tune.studies.n_studies:
            raise ValueError(f"{self.name} was fitted on {len(p)} studies, got "
                             f"{tune.studies.n_studies}.")
        return Decision(p, self._defer(tune, p).astype(bool))

    def _defer(self, data: DeferralData, p: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


class NeverDefer(DeferralMethod):
    """The ensemble alone."""

    name = "never_defer"

    def _defer(self, data: DeferralData, p: np.ndarray) -> np.ndarray:
        return np.zeros(len(p), dtype=bool)


class AlwaysDefer(DeferralMethod):
    """The reader alone."""

    name = "always_defer"

    def _defer(self, data: DeferralData, p: np.ndarray) -> np.ndarray:
        return np.ones(len(p), dtype=bool)


class GlobalThreshold(DeferralMethod):
    """Defer when the ensemble is unsure: ``|p - 0.5| < t``, one ``t`` fitted on tune."""

    name = "global_threshold"

    def _fit_rule(self, tune: DeferralData, p: np.ndarray, gain: np.ndarray) -> None:
        self.threshold = best_prefix_threshold(np.abs(p - 0.5), gain)

    def _defer(self, data: DeferralData, p: np.ndarray) -> np.ndarray:
        return np.abs(p - 0.5) < self.threshold


class PerPartThreshold(DeferralMethod):
    """:class:`GlobalThreshold` with one ``t`` per body part (0 for a part absent from tune)."""

    name = "per_part_threshold"

    def _fit_rule(self, tune: DeferralData, p: np.ndarray, gain: np.ndarray) -> None:
        parts = tune.studies.body_part_index
        self.thresholds = np.zeros(7)
        for part in np.unique(parts):
            rows = parts == part
            self.thresholds[part] = best_prefix_threshold(np.abs(p[rows] - 0.5), gain[rows])

    def _defer(self, data: DeferralData, p: np.ndarray) -> np.ndarray:
        return np.abs(p - 0.5) < self.thresholds[data.studies.body_part_index]


class GainPredictor(DeferralMethod):
    """Logistic regression predicting the deferral's gain class; defers when the predicted
    gain ``P(reader right, ensemble wrong) - P(ensemble right, reader wrong)`` exceeds the
    cost."""

    name = "gain_predictor"

    @staticmethod
    def _features(studies: StudySet, p: np.ndarray) -> np.ndarray:
        return np.column_stack([studies.observations, p, np.abs(p - 0.5)])

    def _fit_rule(self, tune: DeferralData, p: np.ndarray, gain: np.ndarray) -> None:
        target = np.rint(gain + self.defer_cost).astype(int)  # reader right - ensemble right
        self.classes = np.unique(target)
        if len(self.classes) < 2:
            self.model = None
            return
        self.model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        self.model.fit(self._features(tune.studies, p), target)

    def predicted_gain(self, data: DeferralData, p: np.ndarray) -> np.ndarray:
        """float ``[n]``: ``P(g = 1) - P(g = -1)`` for each study."""
        if self.model is None:
            return np.full(len(p), float(self.classes[0]))
        proba = self.model.predict_proba(self._features(data.studies, p))
        classes = list(self.model.classes_)
        up = proba[:, classes.index(1)] if 1 in classes else 0.0
        down = proba[:, classes.index(-1)] if -1 in classes else 0.0
        return np.asarray(up - down, dtype=np.float64)

    def _defer(self, data: DeferralData, p: np.ndarray) -> np.ndarray:
        return self.predicted_gain(data, p) > self.defer_cost


class OracleDeferral(DeferralMethod):
    """Upper reference: defers exactly the studies where that gains (reader right, ensemble
    wrong, cost below 1), reading the labels of the studies it decides for."""

    name = "oracle_deferral"
    reference = True

    def _defer(self, data: DeferralData, p: np.ndarray) -> np.ndarray:
        ensemble_correct = (p > 0.5) == data.studies.labels.astype(bool)
        return data.reader_correct() & ~ensemble_correct & (self.defer_cost < 1.0)


def all_deferral_methods() -> list[DeferralMethod]:
    """One fresh instance of every classical method, the oracle last."""
    return [NeverDefer(), AlwaysDefer(), GlobalThreshold(), PerPartThreshold(),
            GainPredictor(), OracleDeferral()]


def fit_deferral_methods(tune: DeferralData, defer_cost: float, n_folds: int = N_FOLDS,
                         seed: int = 0) -> list[DeferralMethod]:
    """Every classical method (:func:`all_deferral_methods`) fitted on ``tune`` at
    ``defer_cost``, all sharing one stacking ensemble fitted on all of tune and one
    cross-fitting (:func:`out_of_fold_probabilities` with ``n_folds`` and ``seed``), both
    made with the first method.

    Returns:
        The fitted methods, in :func:`all_deferral_methods` order; each has ``fit_time``
        (seconds of its fit; the shared ensemble's and cross-fitting's count in the first
        one's).
    """
    return fit_with_shared_ensemble(
        all_deferral_methods(), tune, n_folds, seed,
        lambda method, ensemble, out_of_fold: method.fit(tune, defer_cost, ensemble,
                                                         out_of_fold))


def fit_with_shared_ensemble(methods: list[Any], tune: Any, n_folds: int, seed: int,
                             fit: Callable[[Any, Stacking | None, OutOfFold], Any]) -> list[Any]:
    """Fit ``methods`` in order with one stacking ensemble and one cross-fitting between them.

    Args:
        methods: unfitted methods, each getting an ``ensemble`` attribute when fitted.
        tune: the tune studies (``studies`` and ``groups()``).
        n_folds, seed: the cross-fitting (:func:`out_of_fold_probabilities`).
        fit: ``fit(method, ensemble or None, out_of_fold)`` fits one method; the first gets
            no ensemble and fits it.

    Returns:
        ``methods``, each with ``fit_time`` (seconds of its fit; the shared ensemble's and
        cross-fitting's count in the first one's).
    """
    ensemble: Stacking | None = None
    out_of_fold: OutOfFold | None = None
    for method in methods:
        start = time.perf_counter()
        if out_of_fold is None:
            out_of_fold = out_of_fold_probabilities(tune.studies, tune.groups(), n_folds, seed)
        fit(method, ensemble, out_of_fold)
        method.fit_time = time.perf_counter() - start
        ensemble = method.ensemble
    return methods


def policy_decision(policy: Any, config: DeferralConfig, split: str) -> Decision:
    """A trained deferral policy's decision on every study of ``split``, in table order.

    Args:
        policy: anything with ``predict(obs [n, 2K + 7], deterministic=True)`` returning
            actions ``[n, K + 1]``.
        config: the env configuration it was trained with (table, mapping, cost).
        split: the split to decide for (e.g. ``"valid"``: the final scores).

    Returns:
        :class:`Decision`: the ensemble probability of the policy's weights, its defer
        decisions and the ensemble's exact predictions (float64, bool, int64 ``[n]``).
    """
    _, out = sweep_answers(policy, config, split)
    return Decision(out["probability"].astype(np.float64), out["deferred"].copy(),
                    out["ensemble_prediction"].astype(np.int64))

