"""Radiologist reads as data: simulated readers, reads from a CSV, reads joined to a study table.

A *read* is one reader's 0/1 call (1 = abnormal) on one study. Reads come either from a
:class:`SimulatedReader` (per-body-part sensitivity and specificity, drawn deterministically
per study) or from a CSV of real reads (:func:`load_reader_csv`); :func:`attach_reads` adds
them to a study table as one ``reader_<id>`` column per reader.

The three radiologists of the MURA paper
----------------------------------------
The MURA paper (Rajpurkar et al. 2017, "MURA: Large Dataset for Abnormality Detection in
Musculoskeletal Radiographs", arXiv:1712.06957; the kappa figure, also on
stanfordmlgroup.github.io/competitions/mura) gives, per body part, the Cohen's kappa of three
radiologists (and of its model) against the majority vote of three other radiologists on 207
test studies. :data:`RADIOLOGIST_KAPPAS` holds those figures; :data:`READER_PROFILES` turns each
radiologist into per-part rates: equal sensitivity and specificity, solved by bisection
(:func:`equal_rate_for_kappa`) so that the expected kappa (:func:`kappa_for`) at the part's
abnormal prevalence in the real MURA-v1.1 valid split (:data:`VALID_PREVALENCE`) is the
paper's. FINGER is hard for every radiologist; the paper's model beats radiologist 1 on HAND;
which reader to ask, per part, is a real question. The default reader
(:data:`DEFAULT_READER`) is radiologist 3, the best overall (kappa 0.778).

Shared difficulty
-----------------
Real radiologists and models miss the same subtle findings. A simulated reader's errors share
the study's *difficulty* (a number in [0, 1], uniform within each body part and label: the
share of such studies that are easier; the synthetic generator's latent,
:mod:`mura_env.synthetic.difficulty`, stored as the ``difficulty`` column of a logits table)
through one parameter, ``sharing`` (rho, in [0, 1)). With z = Phi^-1(difficulty) and e =
Phi^-1(u) (u the reader's own uniform for the study, :func:`study_uniforms`), the read is wrong
when ``rho * z + sqrt(1 - rho^2) * e > Phi^-1(1 - error rate)``: rho = 0 is an independent
reader, rho -> 1 misses exactly the hardest studies. rho z + sqrt(1 - rho^2) e is standard
normal for every rho, so each (part, label)'s error rate, and so the per-part kappa, stays the
profile's (calibrated). :data:`DEFAULT_SHARING` is the default; a study table without a
``difficulty`` column (real MURA: there is no latent) falls back to rho = 0 with a warning.

"""

from __future__ import annotations

import csv
import hashlib
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.stats import norm

from mura_env.constants import BODY_PARTS, DIFFICULTY_COLUMN, MURA_DIRNAME

#: Real MURA-v1.1 valid split, body part -> (normal studies, abnormal studies); the same
#: counts as ``mura_env.synthetic.plan.REAL_COUNTS`` (copied so this module stays light).
VALID_STUDY_COUNTS: dict[str, tuple[int, int]] = {
    "ELBOW": (92, 66), "FINGER": (92, 83), "FOREARM": (69, 64), "HAND": (101, 66),
    "HUMERUS": (68, 67), "SHOULDER": (99, 95), "WRIST": (140, 97),
}

#: Body part -> share of abnormal studies in the real MURA-v1.1 valid split.
VALID_PREVALENCE: dict[str, float] = {
    part: VALID_STUDY_COUNTS[part][1] / sum(VALID_STUDY_COUNTS[part]) for part in BODY_PARTS
}

#: Per-part Cohen's kappa of the three radiologists of the MURA paper (Rajpurkar et al. 2017,
#: arXiv:1712.06957, the kappa figure; stanfordmlgroup.github.io/competitions/mura) against
#: the majority vote of three other radiologists; ``overall`` is the whole test set.
RADIOLOGIST_KAPPAS: dict[str, dict[str, float]] = {
    "radiologist_1": {"ELBOW": 0.850, "FINGER": 0.304, "FOREARM": 0.796, "HAND": 0.661,
                      "HUMERUS": 0.867, "SHOULDER": 0.864, "WRIST": 0.791, "overall": 0.731},
    "radiologist_2": {"ELBOW": 0.710, "FINGER": 0.403, "FOREARM": 0.802, "HAND": 0.927,
                      "HUMERUS": 0.733, "SHOULDER": 0.791, "WRIST": 0.931, "overall": 0.763},
    "radiologist_3": {"ELBOW": 0.719, "FINGER": 0.410, "FOREARM": 0.798, "HAND": 0.789,
                      "HUMERUS": 0.933, "SHOULDER": 0.864, "WRIST": 0.931, "overall": 0.778},
}
#: The same figure's kappas of the paper's model, for comparison.
MURA_MODEL_KAPPAS: dict[str, float] = {
    "ELBOW": 0.710, "FINGER": 0.389, "FOREARM": 0.737, "HAND": 0.851, "HUMERUS": 0.600,
    "SHOULDER": 0.729, "WRIST": 0.931, "overall": 0.705,
}
#: The reader a deferral uses when a table has several and none is named: the best overall.
DEFAULT_READER = "radiologist_3"
#: Default ``sharing`` of the simulated readers (see the module docstring).
DEFAULT_SHARING = 0.7

#: Columns of a reads table (:func:`load_reader_csv`, input of :func:`attach_reads`).
READ_COLUMNS: tuple[str, ...] = ("study_id", "reader_id", "read")
#: Columns a reader CSV must have.
CSV_COLUMNS: tuple[str, ...] = ("study", "reader", "read")

_STUDY_ID_RE = re.compile(
    r"^(?:train|valid)/XR_(?P<part>[A-Z]+)/patient\d+/study\d+_(?:positive|negative)$"
)


class Rates(NamedTuple):
    """A reader's sensitivity (P(read 1 | label 1)) and specificity (P(read 0 | label 0))."""

    sensitivity: float
    specificity: float


class ReaderFormatError(ValueError):
    """A reader CSV that does not follow the expected format (file, line and what was wanted)."""


def kappa_for(sensitivity: float, specificity: float, prevalence: float) -> float:
    """Expected Cohen's kappa between a reader and the true labels.

    Args:
        sensitivity: P(read 1 | label 1), in [0, 1].
        specificity: P(read 0 | label 0), in [0, 1].
        prevalence: share of label-1 (abnormal) studies, in (0, 1).

    Returns:
        kappa = (p_o - p_e) / (1 - p_e), with p_o the expected agreement and p_e the agreement
        expected by chance from the two marginals (float in [-1, 1]).
    """
    for name, value in (("sensitivity", sensitivity), ("specificity", specificity)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    if not 0.0 < prevalence < 1.0:
        raise ValueError(f"prevalence must lie in (0, 1), got {prevalence!r}")
    p = prevalence
    agree = p * sensitivity + (1.0 - p) * specificity
    read_pos = p * sensitivity + (1.0 - p) * (1.0 - specificity)
    chance = p * read_pos + (1.0 - p) * (1.0 - read_pos)
    return float((agree - chance) / (1.0 - chance))


def equal_rate_for_kappa(kappa: float, prevalence: float, tol: float = 1e-12) -> float:
    """The rate r, used as both sensitivity and specificity, whose expected kappa is ``kappa``.

    Args:
        kappa: target kappa, in [0, 1].
        prevalence: share of abnormal studies, in (0, 1).
        tol: bisection stops when the bracket on r is narrower than this.

    Returns:
        r in [0.5, 1] (float). ``kappa_for(r, r, prevalence)`` rises from 0 at r = 0.5 to 1 at
        r = 1, so bisection on that interval finds it.
    """
    if not 0.0 <= kappa <= 1.0:
        raise ValueError(f"kappa must lie in [0, 1], got {kappa!r}")
    low, high = 0.5, 1.0
    while high - low > tol:
        mid = 0.5 * (low + high)
        if kappa_for(mid, mid, prevalence) < kappa:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


#: Reader profile -> body part -> :class:`Rates` (equal sensitivity and specificity giving
#: the profile's :data:`RADIOLOGIST_KAPPAS` at :data:`VALID_PREVALENCE`).
READER_PROFILES: dict[str, dict[str, Rates]] = {
    name: {part: Rates(rate, rate) for part in BODY_PARTS
           for rate in [equal_rate_for_kappa(kappas[part], VALID_PREVALENCE[part])]}
    for name, kappas in RADIOLOGIST_KAPPAS.items()
}


def study_uniforms(study_ids: pd.Series | list[str], seed: int, stream: str = "") -> np.ndarray:
    """One uniform in (0, 1) per study, fixed by (seed, stream, study_id) alone.

    Args:
        study_ids: study ids (str).
        seed: int.
        stream: a name giving another, independent sequence (e.g. a reader's id); "" for
            ``sha256(f"{seed}/{study_id}")``, else ``sha256(f"{seed}/{stream}/{study_id}")``.

    Returns:
        float64 array (n,): (the first 8 bytes of the hash + 0.5) over 2**64.
    """
    prefix = f"{seed}/" if not stream else f"{seed}/{stream}/"
    return np.array(
        [(int.from_bytes(hashlib.sha256(f"{prefix}{sid}".encode()).digest()[:8], "big") + 0.5)
         / 2.0**64 for sid in study_ids],
        dtype=np.float64,
    )


def error_events(error_rate: np.ndarray, noise: np.ndarray, difficulty: np.ndarray | None,
                 sharing: float) -> np.ndarray:
    """Which reads are wrong, with errors that share the studies' difficulty.

    Args:
        error_rate: float ``[n]``, each study's error probability (1 - sensitivity for an
            abnormal study, 1 - specificity for a normal one).
        noise: float ``[n]`` in (0, 1), the reader's own uniform per study.
        difficulty: float ``[n]`` in [0, 1], uniform within each (body part, label); None
            with ``sharing`` 0.
        sharing: rho in [0, 1).

    Returns:
        bool ``[n]``: ``rho z + sqrt(1 - rho^2) Phi^-1(noise) > Phi^-1(1 - error_rate)``,
        with z = Phi^-1(difficulty) (clipped to 1e-9 of 0 and 1). The left side is standard
        normal, so P(wrong) is ``error_rate`` over uniform difficulties, whatever rho.
    """
    if not 0.0 <= sharing < 1.0:
        raise ValueError(f"sharing must lie in [0, 1), got {sharing!r}")
    rate = np.asarray(error_rate, dtype=np.float64)
    if sharing == 0.0:
        return np.asarray(noise) >= 1.0 - rate
    if difficulty is None:
        raise ValueError("sharing > 0 needs the studies' difficulty")
    z = norm.ppf(np.clip(np.asarray(difficulty, dtype=np.float64), 1e-9, 1.0 - 1e-9))
    latent = sharing * z + math.sqrt(1.0 - sharing * sharing) * norm.ppf(noise)
    return latent > norm.ppf(1.0 - rate)


@dataclass(frozen=True)
class SimulatedReader:
    """A simulated radiologist: per-body-part sensitivity and specificity, and errors that
    share the studies' difficulty.

    Attributes:
        sensitivity: body part -> P(read 1 | label 1).
        specificity: body part -> P(read 0 | label 0).
        seed: reads are drawn from (seed, reader_id, study_id); another seed is another
            reader with the same rates.
        reader_id: name of the reader (column ``reader_<id>`` after :func:`attach_reads`).
        sharing: rho in [0, 1), how much the reader's errors follow the studies'
            ``difficulty`` (module docstring); 0 for independent errors.
    """

    sensitivity: Mapping[str, float]
    specificity: Mapping[str, float]
    seed: int = 0
    reader_id: str = "simulated"
    sharing: float = 0.0

    def __post_init__(self) -> None:
        for name in ("sensitivity", "specificity"):
            rates = getattr(self, name)
            for part, value in rates.items():
                if part not in BODY_PARTS:
                    raise ValueError(f"{name}: unknown body part {part!r}; expected one of "
                                     f"{', '.join(BODY_PARTS)}")
                if not 0.0 <= float(value) <= 1.0:
                    raise ValueError(f"{name}[{part!r}] must lie in [0, 1], got {value!r}")
        if set(self.sensitivity) != set(self.specificity):
            raise ValueError("sensitivity and specificity must name the same body parts")
        if not 0.0 <= float(self.sharing) < 1.0:
            raise ValueError(f"sharing must lie in [0, 1), got {self.sharing!r}")

    @classmethod
    def profile(cls, name: str = DEFAULT_READER, seed: int = 0,
                sharing: float = DEFAULT_SHARING) -> SimulatedReader:
        """The reader of profile ``name`` (a key of :data:`READER_PROFILES`), with that id.

        Raises:
            KeyError: an unknown profile (the message lists them).
        """
        if name not in READER_PROFILES:
            raise KeyError(f"unknown reader profile {name!r}; expected one of "
                           f"{list(READER_PROFILES)}")
        rates = READER_PROFILES[name]
        return cls(sensitivity={p: r.sensitivity for p, r in rates.items()},
                   specificity={p: r.specificity for p, r in rates.items()},
                   seed=seed, reader_id=name, sharing=sharing)

    @classmethod
    def default(cls, seed: int = 0, sharing: float = DEFAULT_SHARING) -> SimulatedReader:
        """The default reader: profile :data:`DEFAULT_READER` (radiologist 3)."""
        return cls.profile(DEFAULT_READER, seed=seed, sharing=sharing)

    def expected_kappa(self, part: str, prevalence: float) -> float:
        """This reader's expected kappa on ``part`` at this abnormal ``prevalence`` (float)."""
        return kappa_for(self.sensitivity[part], self.specificity[part], prevalence)

    def shares_difficulty(self, studies: pd.DataFrame) -> bool:
        """Whether reads of ``studies`` follow their difficulty: ``sharing`` > 0 and a
        ``difficulty`` column."""
        return self.sharing > 0.0 and DIFFICULTY_COLUMN in studies.columns

    def reads(self, studies: pd.DataFrame) -> np.ndarray:
        """This reader's read of each study.

        Args:
            studies: columns ``study_id`` (str), ``body_part`` (str), ``label`` (0/1) and,
                for ``sharing`` > 0, ``difficulty`` (float in [0, 1]). Without it (real
                MURA has no latent) the reads are independent of difficulty (sharing 0) and
                a warning says so.

        Returns:
            int8 array (n,), in the table's row order: the label, or the other label where
            :func:`error_events` says the read is wrong (error rate 1 - sensitivity for
            label 1, 1 - specificity for label 0). The same (seed, reader_id, study_id,
            difficulty) always gets the same read, whatever the table or row order.
        """
        missing = [c for c in ("study_id", "body_part", "label") if c not in studies.columns]
        if missing:
            raise ValueError(f"studies lack column(s) {missing}")
        labels = studies["label"].to_numpy()
        if not np.isin(labels, (0, 1)).all():
            raise ValueError("studies' label must be 0 or 1")
        unknown = sorted(set(studies["body_part"]) - set(self.sensitivity))
        if unknown:
            raise ValueError(f"reader {self.reader_id!r} has no rates for body part(s) {unknown}")
        parts = studies["body_part"]
        hit_rate = np.where(labels == 1, parts.map(self.sensitivity).to_numpy(dtype=float),
                            parts.map(self.specificity).to_numpy(dtype=float))
        sharing, difficulty = float(self.sharing), None
        if sharing > 0.0 and not self.shares_difficulty(studies):
            warnings.warn(f"reader {self.reader_id!r}: the studies have no {DIFFICULTY_COLUMN!r} "
                          "column (real MURA has no latent difficulty), so its errors are "
                          "independent of difficulty (sharing 0).", stacklevel=2)
            sharing = 0.0
        elif sharing > 0.0:
            difficulty = studies[DIFFICULTY_COLUMN].to_numpy(dtype=np.float64)
            if not (np.isfinite(difficulty).all() and (difficulty >= 0).all()
                    and (difficulty <= 1).all()):
                raise ValueError(f"studies' {DIFFICULTY_COLUMN!r} must lie in [0, 1]")
        noise = study_uniforms(studies["study_id"], self.seed, self.reader_id)
        wrong = error_events(1.0 - hit_rate, noise, difficulty, sharing)
        return np.where(wrong, 1 - labels, labels).astype(np.int8)


def normalise_study(raw: str) -> str | None:
    """A study path as in MURA's CSVs -> the study_id of a logits table, or None if malformed.

    ``MURA-v1.1/valid/XR_WRIST/patient11185/study1_positive/`` becomes
    ``valid/XR_WRIST/patient11185/study1_positive``; an id already in that form is kept.
    """
    path = raw.strip().replace("\\", "/").rstrip("/")
    if path.startswith(MURA_DIRNAME + "/"):
        path = path[len(MURA_DIRNAME) + 1:]
    match = _STUDY_ID_RE.match(path)
    if match is None or match["part"] not in BODY_PARTS:
        return None
    return path


def _read_csv_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) for each data row of a reader CSV; checks the header and row widths."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or not any(cell.strip() for cell in header):
                raise ReaderFormatError(f"{path}, line 1: file is empty; expected a header "
                                        f"{','.join(CSV_COLUMNS)} and one row per read")
            names = [cell.strip() for cell in header]
            missing = [c for c in CSV_COLUMNS if c not in names]
            if missing:
                raise ReaderFormatError(f"{path}, line 1: header {','.join(names)!r} lacks "
                                        f"column(s) {missing}; expected {','.join(CSV_COLUMNS)}")
            rows = []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(names):
                    raise ReaderFormatError(f"{path}, line {reader.line_num}: expected "
                                            f"{len(names)} fields ({','.join(names)}), "
                                            f"found {len(row)}")
                rows.append((reader.line_num, dict(zip(names, row, strict=True))))
    except UnicodeDecodeError as e:
        raise ReaderFormatError(f"{path}: not a UTF-8 text CSV ({e})") from None
    if not rows:
        raise ReaderFormatError(f"{path}, line 2: no reads after the header; expected rows "
                                f"{','.join(CSV_COLUMNS)}")
    return rows


def load_reader_csv(path: str | Path) -> pd.DataFrame:
    """Read a CSV of reader reads.

    Args:
        path: CSV with a header holding ``study`` (a study path as in MURA's CSVs, e.g.
            ``MURA-v1.1/valid/XR_WRIST/patient11185/study1_positive/``, or already a study_id),
            ``reader`` (non-empty name) and ``read`` (0 or 1); other columns are ignored.

    Returns:
        DataFrame with columns ``study_id`` (str, as in logits tables, e.g.
        ``valid/XR_WRIST/patient11185/study1_positive``), ``reader_id`` (str), ``read`` (int8),
        in file order.

    Raises:
        ReaderFormatError: empty file, missing column, bad study path, empty reader, read not
            0/1, or a (study, reader) pair listed twice; the message names the file and line.
    """
    path = Path(path)
    seen: dict[tuple[str, str], int] = {}
    out: list[tuple[str, str, int]] = []
    for line_no, row in _read_csv_rows(path):
        study_id = normalise_study(row["study"])
        if study_id is None:
            raise ReaderFormatError(
                f"{path}, line {line_no}: study {row['study']!r} is not a study path; expected "
                f"'{MURA_DIRNAME}/<train|valid>/XR_<PART>/patientNNNNN/studyK_positive/' "
                "(or _negative)")
        reader_id = row["reader"].strip()
        if not reader_id:
            raise ReaderFormatError(f"{path}, line {line_no}: reader is empty; expected a name")
        read = row["read"].strip()
        if read not in ("0", "1"):
            raise ReaderFormatError(f"{path}, line {line_no}: read {row['read']!r} is not "
                                    "0 or 1 (1 = abnormal)")
        key = (study_id, reader_id)
        if key in seen:
            raise ReaderFormatError(f"{path}, line {line_no}: study {study_id!r} is read by "
                                    f"{reader_id!r} twice (first at line {seen[key]}); "
                                    "expected one read per (study, reader)")
        seen[key] = line_no
        out.append((study_id, reader_id, int(read)))
    reads = pd.DataFrame(out, columns=list(READ_COLUMNS))
    reads["read"] = reads["read"].astype(np.int8)
    return reads


def attach_reads(studies: pd.DataFrame, reads: pd.DataFrame) -> pd.DataFrame:
    """Add one column per reader to a study table.

    Args:
        studies: a study table with a ``study_id`` column (str).
        reads: columns ``study_id``, ``reader_id``, ``read`` (0/1), one row per
            (study, reader); reads of studies not in ``studies`` are ignored.

    Returns:
        a copy of ``studies`` (same rows, order and index) with an int8 column
        ``reader_<id>`` per reader, in order of first appearance in ``reads``.

    Raises:
        ValueError: a column is missing, a read is not 0/1, a (study, reader) pair is
            repeated, a ``reader_<id>`` column already exists, or a reader has no read of
            some study (the message lists those studies).
    """
    missing = [c for c in READ_COLUMNS if c not in reads.columns]
    if missing or "study_id" not in studies.columns:
        raise ValueError(f"reads need columns {list(READ_COLUMNS)} (missing {missing}) and "
                         "studies a study_id column")
    if not reads["read"].isin((0, 1)).all():
        raise ValueError("reads' read must be 0 or 1")
    repeated = reads.duplicated(["study_id", "reader_id"])
    if repeated.any():
        first = reads.loc[repeated].iloc[0]
        raise ValueError(f"{int(repeated.sum())} repeated (study, reader) pair(s), e.g. "
                         f"({first['study_id']!r}, {first['reader_id']!r})")
    out = studies.copy()
    for reader_id in pd.unique(reads["reader_id"]):
        column = f"reader_{reader_id}"
        if column in out.columns:
            raise ValueError(f"studies already have a column {column!r}")
        own = reads.loc[reads["reader_id"] == reader_id]
        mapped = out["study_id"].map(dict(zip(own["study_id"], own["read"], strict=True)))
        unread = out.loc[mapped.isna(), "study_id"].tolist()
        if unread:
            shown = ", ".join(repr(s) for s in unread[:10])
            more = f" and {len(unread) - 10} more" if len(unread) > 10 else ""
            raise ValueError(f"reader {reader_id!r} has no read of {len(unread)} study(ies): "
                             f"{shown}{more}")
        out[column] = mapped.astype(np.int8)
    return out


def missing_reader_message(reader_ids: tuple[str, ...], reader_id: str | None) -> str:
    """Why a logits table with readers ``reader_ids`` cannot serve reader ``reader_id`` (None:
    any reader), and the two ways to add reads."""
    have = list(reader_ids)
    what = "no reader column" if reader_id is None else f"no reader {reader_id!r}"
    return (f"The logits table has {what} (readers: {have or 'none'}). Add reads in one of two "
            "ways: table.with_reads(mura_env.readers.load_reader_csv('reads.csv')) for real "
            "reads (CSV columns study,reader,read), or table.with_simulated_reader() for a "
            "simulated radiologist (mura_env.readers.SimulatedReader; python -m "
            "experiments.attach_reader adds all three).")


def resolve_reader(reader_ids: tuple[str, ...], reader: str | None) -> str:
    """The reader a deferral uses: ``reader``; when None, :data:`DEFAULT_READER` if the table
    has it, else the table's only reader.

    Args:
        reader_ids: the table's readers (``LogitsTable.reader_ids``).
        reader: the reader asked for, or None.

    Returns:
        The chosen reader id (str), one of ``reader_ids``.

    Raises:
        KeyError: no reader column, several (none of them the default) and ``reader`` is
            None, or none named ``reader`` (the message says how to add reads or which ids
            there are).
    """
    if reader is None and DEFAULT_READER in reader_ids:
        return DEFAULT_READER
    if reader is None and len(reader_ids) > 1:
        raise KeyError(f"The logits table has several readers {list(reader_ids)}; pick one "
                       "(reader=<id>, or --reader <id> on the command line).")
    chosen = reader if reader is not None else (reader_ids[0] if reader_ids else None)
    if chosen not in reader_ids:
        raise KeyError(missing_reader_message(reader_ids, chosen))
    return chosen


def error_correlation(reader_wrong: np.ndarray, other_wrong: np.ndarray,
                      groups: np.ndarray) -> float:
    """Correlation between two sets of errors on the same studies, within groups.

    Args:
        reader_wrong: bool ``[n]``, a reader's wrong reads.
        other_wrong: bool ``[n]``, another's (e.g. an ensemble member's) wrong answers.
        groups: ``[n]`` labels (e.g. body parts); each error indicator is centred on its
            group's mean first, so that a reader who is weak on FINGER and a member that is
            strong there do not count as errors that avoid each other.

    Returns:
        Pearson's r of the centred indicators (float; NaN when either is constant).
    """
    a = np.asarray(reader_wrong, dtype=np.float64).copy()
    b = np.asarray(other_wrong, dtype=np.float64).copy()
    groups = np.asarray(groups)
    for group in np.unique(groups):
        rows = groups == group
        a[rows] -= a[rows].mean()
        b[rows] -= b[rows].mean()
    scale = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b / scale) if scale > 0 else float("nan")
