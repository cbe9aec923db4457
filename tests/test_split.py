"""Patient-level train/tune split: no patient on both sides, stratified, deterministic."""

from __future__ import annotations

import pandas as pd
import pytest

from mura_env.constants import BODY_PARTS
from mura_env.data.split import split_train_tune
from mura_env.synthetic.plan import plan_dataset


@pytest.fixture(scope="module")
def studies() -> pd.DataFrame:
    plan = plan_dataset(0.2, 4)
    return pd.DataFrame({
        "study_id": [f"{r.split}/{r.body_part}/{r.patient}/{r.study}" for r in plan.itertuples()],
        "patient_id": "patient" + plan["patient"].astype(str),
        "body_part": plan["body_part"], "label": plan["label"], "split": plan["split"],
    })


def test_no_patient_on_both_sides(studies: pd.DataFrame) -> None:
    split = split_train_tune(studies, tune_fraction=0.2, seed=0)
    assert set(split) == {"train", "tune", "valid"}
    assert (split[studies["split"] == "valid"] == "valid").all()
    assert (pd.DataFrame({"p": studies["patient_id"], "s": split}).groupby("p")["s"].nunique()
            == 1).all()


def test_stratified_by_body_part_and_label(studies: pd.DataFrame) -> None:
    split = split_train_tune(studies, tune_fraction=0.2, seed=0)
    train_part = studies[studies["split"] == "train"]
    share = (split[train_part.index] == "tune").groupby(
        [train_part["body_part"], train_part["label"]]).mean()
    assert len(share) == 2 * len(BODY_PARTS)
    assert share.between(0.12, 0.28).all(), share


def test_same_seed_same_split_other_seed_other_split(studies: pd.DataFrame) -> None:
    a = split_train_tune(studies, tune_fraction=0.2, seed=1)
    b = split_train_tune(studies, tune_fraction=0.2, seed=1)
    c = split_train_tune(studies, tune_fraction=0.2, seed=2)
    assert a.equals(b)
    assert not a.equals(c)


def test_fraction_outside_zero_to_one_half_is_rejected(studies: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="tune_fraction"):
        split_train_tune(studies, tune_fraction=0.9)


def test_fraction_must_be_one_over_n_folds(studies: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="not 1/n"):
        split_train_tune(studies, tune_fraction=0.3)
    share = (split_train_tune(studies, tune_fraction=0.25) == "tune").sum() / (
        studies["split"] == "train").sum()
    assert 0.2 < share < 0.3
