"""The ensemble weights Grad-CAM panels show: uniform, or a trained agent's per study (and, for
a deferral agent, which studies it hands to the reader)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from experiments.common.gradcam_report import deferral_notes
from mura_env.logits import LogitsTable
from mura_env.logits.study_set import StudySet
from mura_env.readers import resolve_reader
from mura_env.weighting.mapping import DEFAULT_THRESHOLD, ensemble_probability


class GradCamInputError(ValueError):
    """A run folder, study id, agent or data set the user passed cannot be used (the message
    says what was expected and how to fix it)."""


@dataclass(frozen=True)
class Weighting:
    """The ensemble weights of every study of a run's logits table, and their decision rule.

    Attributes:
        studies: every study of the table (table order), with the ``K`` weighted members.
        weights: float64 ``(S, K)``, rows summing to 1.
        threshold: prediction = ensemble probability > threshold.
        source: where the weights come from: ``"uniform"`` or ``"<algo> agent"``.
        notes: object ``(S,)``, a deferral agent's decision per study, or None.
    """

    studies: StudySet
    weights: np.ndarray
    threshold: float
    source: str
    notes: np.ndarray | None = None

    @property
    def model_names(self) -> tuple[str, ...]:
        """The ``K`` weighted members, in weight order."""
        return self.studies.model_names

    @cached_property
    def ensemble_probabilities(self) -> np.ndarray:
        """float64 ``(S,)``: each study's ensemble probability
        (:mod:`mura_env.weighting.mapping`)."""
        return ensemble_probability(self.weights, self.studies.probabilities)


def uniform_weighting(table: LogitsTable) -> Weighting:
    """Weights ``1/K`` for every study of ``table`` and member, with the default threshold."""
    studies = StudySet.from_table(table)
    weights = np.full((studies.n_studies, studies.n_models), 1.0 / studies.n_models)
    return Weighting(studies, weights, DEFAULT_THRESHOLD, "uniform")


def load_agent_weighting(agent_dir: Path, table: LogitsTable) -> Weighting:
    """The weights of the agent in ``agent_dir`` for every study of ``table`` (its members),
    with the threshold of the mapping it was trained with.

    Raises:
        GradCamInputError: malformed weights; AgentMismatchError, FileNotFoundError,
            ValueError (unchanged): the agent cannot be loaded or fits another logits table.
    """
    from agents.core.saved import load_agent

    agent = load_agent(agent_dir)
    agent.check_table(table)
    studies = StudySet.from_table(table.select(models=agent.model_names))
    weights = np.asarray(agent.weights(studies.observations), dtype=np.float64)
    expected = (studies.n_studies, studies.n_models)
    if weights.shape != expected or not np.isfinite(weights).all() \
            or (weights < -1e-9).any() or not np.allclose(weights.sum(1), 1.0, atol=1e-4):
        raise GradCamInputError(
            f"agent {agent_dir} returned weights of shape {weights.shape} that are not "
            f"non-negative rows summing to 1; expected {expected}")
    notes = None
    if agent.deferral:
        try:
            reads = table.reads(resolve_reader(table.reader_ids, agent.config.reader))
        except KeyError as e:
            raise GradCamInputError(f"the deferral agent {agent_dir} needs the run's logits "
                                    f"table to carry its reader: {e.args[0]}") from None
        notes = deferral_notes(agent.deferred(studies.observations), reads, studies.labels)
    return Weighting(studies, weights, agent.mapping.threshold, f"{agent.algo} agent", notes)
