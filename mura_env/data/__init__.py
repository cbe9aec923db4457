"""MURA-v1.1 on disk: the reader (:mod:`~mura_env.data.reader`), the patient-level
train/tune split (:mod:`~mura_env.data.split`) and the per-split counts
(:mod:`~mura_env.data.summary`).

Importing it loads neither the env modules nor torch.
"""

from mura_env.data.reader import (
    MuraData,
    MuraFormatError,
    data_fingerprint,
    load_mura,
    resolve_mura_root,
)
from mura_env.data.split import split_train_tune
from mura_env.data.summary import summarize

__all__ = ["MuraData", "MuraFormatError", "data_fingerprint", "load_mura",
           "resolve_mura_root", "split_train_tune", "summarize"]
