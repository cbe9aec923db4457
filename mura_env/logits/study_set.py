"""A set of studies as arrays: what every weighting method (agent or baseline) sees.

:class:`StudySet` is the selection of a logits table (a split, some body parts, some models)
turned into the arrays the env observes and the baselines fit on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from mura_env.constants import BODY_PARTS
from mura_env.logits import LogitsTable

#: Observation bound of a logit: logits are clipped to [-LOGIT_BOUND, LOGIT_BOUND] in the
#: observation (softmax saturates long before); probabilities use the unclipped logits.
LOGIT_BOUND = 100.0


def _read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def check_no_hidden_logits(table: LogitsTable) -> None:
    """Refuse a selection of studies any of whose logits are hidden (NaN).

    Args:
        table: the selected studies (e.g. ``table.select(split="valid")``).

    Raises:
        ValueError: naming each split with hidden logits and how many of its studies have
            them; those studies cannot be used (observed, fitted on or scored).
    """
    hidden = table.hidden_rows()
    if not hidden.any():
        return
    splits = table.studies["split"].to_numpy()
    counts = {split: (int((hidden & (splits == split)).sum()), int((splits == split).sum()))
              for split in dict.fromkeys(splits[hidden])}
    names = " and ".join(counts)
    detail = "; ".join(f"{split} logits are NaN in {n_hidden} of {n_total} studies"
                       for split, (n_hidden, n_total) in counts.items())
    raise ValueError(
        f"Cannot use the {names} split{'s' if len(counts) > 1 else ''} of this logits table: "
        f"{detail} (e.g. study {table.studies['study_id'].iloc[int(np.argmax(hidden))]!r}). "
        "NaN logits are hidden (missing) in this table, so these studies cannot be observed, "
        f"fitted on or scored; scoring on {names} needs the real table (with all its logits). "
        "Splits without NaN logits can still be used.")


@dataclass(frozen=True)
class StudySet:
    """``n`` studies and ``K`` ensemble members, as read-only arrays.

    Attributes:
        model_names: the ``K`` member names, in action order.
        observations: float32 ``[n, 2K + 7]``: logits flattened member by member (each
            clipped to ``±LOGIT_BOUND``), then the one-hot body part in ``BODY_PARTS`` order.
        probabilities: float64 ``[n, K]``: each member's ``softmax(logits)[1]``.
        labels: int64 ``[n]``, 0 normal, 1 abnormal.
        body_part_index: int64 ``[n]``, index into ``BODY_PARTS``.
        body_parts: str ``[n]``, the body part names.
        study_ids: object ``[n]``, the study ids.
        split: the split name(s) of the studies, comma-joined (``""`` when empty).
    """

    model_names: tuple[str, ...]
    observations: np.ndarray
    probabilities: np.ndarray
    labels: np.ndarray
    body_part_index: np.ndarray
    body_parts: np.ndarray
    study_ids: np.ndarray
    split: str

    @classmethod
    def from_table(cls, table: LogitsTable) -> StudySet:
        """Every study of ``table`` (use :meth:`LogitsTable.select` first to pick some).

        Raises:
            ValueError: some of the studies have hidden (NaN) logits, e.g. the ``valid``
                studies of a table whose valid logits are withheld (see
                :func:`check_no_hidden_logits`).
        """
        check_no_hidden_logits(table)
        n, k = len(table), table.n_models
        part_index = table.studies["body_part"].map(
            {b: i for i, b in enumerate(BODY_PARTS)}).to_numpy(dtype=np.int64)
        obs = np.zeros((n, 2 * k + len(BODY_PARTS)), dtype=np.float32)
        obs[:, : 2 * k] = np.clip(table.logits.reshape(n, 2 * k), -LOGIT_BOUND, LOGIT_BOUND)
        obs[np.arange(n), 2 * k + part_index] = 1.0
        splits = table.studies["split"].unique().tolist() if n else []
        return cls(
            model_names=tuple(table.model_names),
            observations=_read_only(obs),
            probabilities=_read_only(np.ascontiguousarray(table.abnormal_probabilities())),
            labels=_read_only(table.studies["label"].to_numpy(dtype=np.int64)),
            body_part_index=_read_only(part_index),
            body_parts=_read_only(np.array(BODY_PARTS)[part_index]),
            study_ids=_read_only(table.studies["study_id"].to_numpy(dtype=object)),
            split=",".join(splits),
        )

    @classmethod
    def select(cls, table: LogitsTable, split: str | Sequence[str] | None = None,
               models: Sequence[str] | None = None,
               body_parts: Sequence[str] | None = None) -> StudySet:
        """The studies of ``split`` and ``body_parts`` with the members ``models`` (None: all).

        Raises:
            ValueError: unknown names, no study left (the message says which selection), or
                selected studies with hidden (NaN) logits.
        """
        selected = table.select(split=split, body_parts=body_parts, models=models)
        if len(selected) == 0:
            raise ValueError(
                f"No studies left in the logits table for split={split!r}, "
                f"body_parts={body_parts!r}: {table!r}. Pick another split or body parts.")
        return cls.from_table(selected)

    @property
    def n_studies(self) -> int:
        """``n``, the number of studies."""
        return len(self.labels)

    @property
    def n_models(self) -> int:
        """``K``, the number of members."""
        return len(self.model_names)

    def rows(self, index: np.ndarray) -> StudySet:
        """The studies at ``index`` (int positions or a bool mask ``[n]``), in that order."""
        taken = {name: _read_only(np.ascontiguousarray(getattr(self, name)[index]))
                 for name in ("observations", "probabilities", "labels", "body_part_index",
                              "body_parts", "study_ids")}
        return replace(self, **taken)

    def member_correct(self, threshold: float) -> np.ndarray:
        """bool ``[n, K]``: member k's own prediction (``q > threshold``) is right on study i."""
        return (self.probabilities > threshold) == self.labels[:, None].astype(bool)
