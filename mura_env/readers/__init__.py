"""Radiologist reads as data, shared by the deferral and worklist tasks: simulated readers with the
MURA paper's per-part kappas, reads from a CSV, reads joined to a study table
(:mod:`~mura_env.readers.reads`)."""

from mura_env.readers.reads import (
    CSV_COLUMNS,
    DEFAULT_READER,
    DEFAULT_SHARING,
    MURA_MODEL_KAPPAS,
    RADIOLOGIST_KAPPAS,
    READ_COLUMNS,
    READER_PROFILES,
    VALID_PREVALENCE,
    VALID_STUDY_COUNTS,
    Rates,
    ReaderFormatError,
    SimulatedReader,
    attach_reads,
    equal_rate_for_kappa,
    error_correlation,
    error_events,
    kappa_for,
    load_reader_csv,
    missing_reader_message,
    normalise_study,
    resolve_reader,
    study_uniforms,
)

__all__ = [
    "CSV_COLUMNS", "DEFAULT_READER", "DEFAULT_SHARING", "MURA_MODEL_KAPPAS",
    "RADIOLOGIST_KAPPAS", "READER_PROFILES", "READ_COLUMNS", "Rates",
    "ReaderFormatError", "SimulatedReader", "VALID_PREVALENCE", "VALID_STUDY_COUNTS",
    "attach_reads", "equal_rate_for_kappa", "error_correlation", "error_events",
    "kappa_for", "load_reader_csv", "missing_reader_message", "normalise_study",
    "resolve_reader", "study_uniforms",
]
