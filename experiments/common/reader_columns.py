"""Reader columns of a logits table: the simulated radiologists' (with the studies' difficulty
from the synthetic generator), or reads from a CSV, each with the provenance the table's
manifest records of it."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mura_env.logits import LogitsTable
from mura_env.readers import (
    DEFAULT_SHARING,
    READER_PROFILES,
    SimulatedReader,
    load_reader_csv,
)

#: Where a simulated reader's rates come from, as the manifest says it.
PROFILE_SOURCE = ("mura_env.readers.RADIOLOGIST_KAPPAS: per-part kappas of the MURA paper's "
                  "radiologists (Rajpurkar et al. 2017, arXiv:1712.06957)")


def simulated_reader_provenance(reader: SimulatedReader, shares: bool) -> dict[str, Any]:
    """What the manifest records of a simulated reader: id, seed, sharing (the one used:
    0 when the table has no difficulty), rates per body part and their source."""
    out: dict[str, Any] = {
        "reader_id": reader.reader_id, "kind": "simulated", "seed": reader.seed,
        "sharing": float(reader.sharing) if shares else 0.0,
        "sensitivity": {p: round(float(v), 6) for p, v in reader.sensitivity.items()},
        "specificity": {p: round(float(v), 6) for p, v in reader.specificity.items()},
        "source": PROFILE_SOURCE if reader.reader_id in READER_PROFILES else "custom rates"}
    if reader.sharing > 0 and not shares:
        out["fallback"] = ("the table has no difficulty column (no latent, as for real MURA): "
                           "errors independent of difficulty (sharing 0)")
    return out


def generator_origin(table: LogitsTable) -> tuple[float, int] | None:
    """``(scale, data seed)`` of the synthetic data set the table's studies come from, as its
    provenance records them (``scale``, ``data_seed``), or None when it does not say or says
    the data was not synthetic (``synthetic``: False, e.g. real MURA)."""
    provenance = table.provenance or {}
    scale, seed = provenance.get("scale"), provenance.get("data_seed")
    if scale is None or seed is None or provenance.get("synthetic") is False:
        return None
    return float(scale), int(seed)


def with_generator_difficulty(table: LogitsTable) -> LogitsTable:
    """``table`` with the ``difficulty`` column of its studies, from the plan of the synthetic
    data set its provenance names (:func:`mura_env.synthetic.difficulty.plan_difficulty`; no
    image is drawn), and that origin under ``difficulty`` in its provenance.

    Raises:
        ValueError: the provenance names no synthetic data set (``scale`` and ``data_seed``),
            or a study of the table is not in that data set.
    """
    from mura_env.synthetic.difficulty import plan_difficulty

    origin = generator_origin(table)
    if origin is None:
        raise ValueError("the table's provenance does not name the synthetic data set its "
                         "studies come from (keys scale and data_seed), so its studies have no "
                         "known difficulty; real MURA has none.")
    scale, seed = origin
    out = table.with_difficulty(plan_difficulty(scale, seed, set(table.studies["study_id"])))
    out.provenance = {**(table.provenance or {}), "difficulty": {
        "source": "mura_env.synthetic.difficulty.plan_difficulty", "scale": scale,
        "data_seed": seed}}
    return out


def with_simulated_readers(table: LogitsTable, profiles: Sequence[str] = tuple(READER_PROFILES),
                           seed: int = 0, sharing: float = DEFAULT_SHARING,
                           replace: bool = False) -> LogitsTable:
    """``table`` with one reader column per simulated radiologist of ``profiles`` (keys of
    :data:`mura_env.readers.READER_PROFILES`) and their provenance under ``readers``.

    A table without a ``difficulty`` column whose provenance names its synthetic data set
    gets one first (:func:`with_generator_difficulty`); a table with no known difficulty
    (real MURA, or studies that are not in that data set: a warning says so) gets independent
    reads (sharing 0), and its provenance says so. ``replace`` drops columns of those readers
    already there (else adding one again raises).
    """
    if table.difficulty is None and generator_origin(table) is not None:
        try:
            table = with_generator_difficulty(table)
        except ValueError as e:
            warnings.warn(f"no difficulty for the table's studies ({e}); the simulated "
                          "readers' errors will be independent of difficulty.", stacklevel=2)
    if replace:
        table = _without(table, list(profiles))
    records = dict((table.provenance or {}).get("readers") or {})
    out = table
    for name in profiles:
        reader = SimulatedReader.profile(name, seed=seed, sharing=sharing)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the fallback is recorded in the provenance
            out = out.with_simulated_reader(reader)
        records[name] = simulated_reader_provenance(reader, reader.shares_difficulty(table.studies))
    out.provenance = {**(table.provenance or {}), "readers": records}
    out.provenance.pop("reader", None)
    return out


def with_csv_reads(table: LogitsTable, csv: Path, replace: bool = False) -> LogitsTable:
    """``table`` with the reads of ``csv`` (:func:`mura_env.readers.load_reader_csv`) and
    their provenance; ``replace`` drops columns of the CSV's readers already there."""
    reads = load_reader_csv(csv)
    if replace:
        table = _without(table, list(reads["reader_id"].unique()))
    out = table.with_reads(reads)
    records = dict((table.provenance or {}).get("readers") or {})
    for reader_id in sorted(reads["reader_id"].unique()):
        records[reader_id] = {"reader_id": reader_id, "kind": "csv", "file": str(csv)}
    out.provenance = {**(table.provenance or {}), "readers": records}
    return out


def without_readers(table: LogitsTable, reader_ids: Sequence[str]) -> LogitsTable:
    """``table`` without the reader columns (and provenance entries) of ``reader_ids``."""
    out = _without(table, list(reader_ids))
    provenance = dict(out.provenance or {})
    records = {k: v for k, v in (provenance.get("readers") or {}).items() if k not in reader_ids}
    if "readers" in provenance:
        provenance["readers"] = records
    if (provenance.get("reader") or {}).get("reader_id") in reader_ids:
        provenance.pop("reader")
    out.provenance = provenance
    return out


def _without(table: LogitsTable, reader_ids: list[str]) -> LogitsTable:
    """``table`` without the reader columns of ``reader_ids``."""
    drop = [f"reader_{r}" for r in reader_ids if r in table.reader_ids]
    return LogitsTable(table.studies.drop(columns=drop), table.model_names, table.logits,
                       model_configs=table.model_configs,
                       data_fingerprint=table.data_fingerprint, created_at=table.created_at,
                       package_version=table.package_version, provenance=table.provenance)
