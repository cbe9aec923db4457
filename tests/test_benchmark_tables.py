"""experiments.common.tables: grouping tables by their valid studies (one study set per
synthetic data draw), the orders that align their runs, and the tables it refuses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_benchmark import standin_table

from experiments.common.tables import (
    TableSetError,
    TableSource,
    table_info,
    valid_sets,
    with_table_info,
)
from mura_env.logits import LogitsTable


def _source(name: str, table: LogitsTable) -> TableSource:
    return TableSource(name, table)


def _rebuilt(table: LogitsTable, studies: pd.DataFrame, rows: np.ndarray | None = None,
             provenance: dict | None = None) -> LogitsTable:
    """``table`` with its study rows taken in the order ``rows`` and the columns of
    ``studies`` (same rows as ``table``)."""
    rows = np.arange(len(table)) if rows is None else rows
    return LogitsTable.from_arrays(studies.iloc[rows].reset_index(drop=True),
                                   list(table.model_names), np.asarray(table.logits)[rows],
                                   provenance=provenance)


def test_tables_are_grouped_by_data_draw_and_aligned_with_their_sets_first_table() -> None:
    first, other_draw = standin_table(0), standin_table(1, draw=1)
    same_draw = standin_table(2)
    reversed_rows = np.r_[np.flatnonzero(same_draw.studies["split"] != "valid"),
                          np.flatnonzero(same_draw.studies["split"] == "valid")[::-1]]
    shuffled = _rebuilt(same_draw, same_draw.studies, reversed_rows)
    sources = [_source("a", first), _source("b", other_draw), _source("c", shuffled),
               _source("d", standin_table(3, draw=1))]
    aligned = valid_sets(sources)
    sets = aligned.sets
    assert sets.study_set.tolist() == [0, 1, 0, 1]
    assert (sets.n_tables, sets.n_sets, aligned.n_studies) == (4, 2, 140)
    ids = [s.table.studies.query("split == 'valid'")["study_id"].to_numpy() for s in sources]
    for t, g_first in enumerate([0, 1, 0, 1]):
        # valid_rows_t[order_t] are the first table of the set's valid studies, in its order
        np.testing.assert_array_equal(ids[t][aligned.orders[t]], ids[g_first])
    np.testing.assert_array_equal(aligned.orders[2], np.arange(140)[::-1])
    np.testing.assert_array_equal(aligned.orders[0], np.arange(140))
    valid0 = first.studies.query("split == 'valid'")
    valid1 = other_draw.studies.query("split == 'valid'")
    np.testing.assert_array_equal(sets.labels[0], valid0["label"])
    np.testing.assert_array_equal(sets.labels[2], valid0["label"])
    np.testing.assert_array_equal(sets.labels[1], valid1["label"])
    assert (sets.labels[0] != sets.labels[1]).all()  # another draw: other studies
    np.testing.assert_array_equal(sets.body_parts[3], valid1["body_part"])


def test_one_table_or_tables_of_one_draw_make_one_set() -> None:
    one = valid_sets([_source("a", standin_table(0))])
    assert one.sets.study_set.tolist() == [0] and one.sets.n_sets == 1
    three = valid_sets([_source(str(t), standin_table(t)) for t in range(3)])
    assert three.sets.study_set.tolist() == [0, 0, 0]


def test_another_number_of_valid_studies_is_refused() -> None:
    sources = [_source("a.parquet", standin_table(0)),
               _source("b.parquet", standin_table(1, valid_per_part=19, draw=1))]
    with pytest.raises(TableSetError, match="same number of valid studies") as error:
        valid_sets(sources)
    assert "b.parquet: 133 valid studies, a.parquet: 140" in str(error.value)


@pytest.mark.parametrize("column", ["label", "body_part"])
def test_the_same_ids_with_other_labels_or_parts_are_refused(column: str) -> None:
    table = standin_table(1)
    studies = table.studies.copy()
    valid = np.flatnonzero(studies["split"] == "valid")
    if column == "label":
        studies.loc[valid[:2], "label"] = 1 - studies.loc[valid[:2], "label"]
    else:
        studies.loc[valid[0], "body_part"] = studies.loc[valid[-1], "body_part"]
    changed = _rebuilt(table, studies)
    with pytest.raises(TableSetError, match="same valid study ids as a.parquet, but other "
                                            "labels or body parts"):
        valid_sets([_source("a.parquet", standin_table(0)), _source("b.parquet", changed)])


def test_a_table_without_valid_studies_is_refused() -> None:
    table = standin_table(0)
    keep = np.flatnonzero(table.studies["split"] != "valid")
    with pytest.raises(TableSetError, match="needs valid studies"):
        valid_sets([_source("a", _rebuilt(table, table.studies, keep))])


def test_table_info_reads_the_seeds_from_the_provenance() -> None:
    bare = _rebuilt(standin_table(0), standin_table(0).studies)  # no provenance
    sources = [_source("x/reference_0.parquet", standin_table(4, draw=2)), _source("y", bare)]
    info = table_info(sources)
    assert info["table_label"].tolist() == ["x/reference_0.parquet", "y"]
    assert info["table_seed"].tolist() == [4, None]
    assert info["data_seed"].tolist() == [2, None]
    frame = pd.DataFrame({"method": ["m", "m"], "table": [1, 0], "accuracy": [0.5, 0.6]})
    out = with_table_info(frame, sources)
    assert out.columns.tolist() == ["method", "table", "table_label", "table_seed",
                                    "data_seed", "accuracy"]
    assert out["table_label"].tolist() == ["y", "x/reference_0.parquet"]
    csv = out.to_csv(index=False).splitlines()
    assert csv[1] == "m,1,y,,,0.5" and csv[2] == "m,0,x/reference_0.parquet,4,2,0.6"


def _with_checkpoints(table: LogitsTable, digest: str) -> LogitsTable:
    """``table`` as if its members came from the checkpoints ``digest``-0, -1, -2."""
    configs = {m: {"checkpoint_sha256": f"{digest}-{k}"}
               for k, m in enumerate(table.model_names)}
    return LogitsTable.from_arrays(table.studies, list(table.model_names), table.logits,
                                   model_configs=configs)


def test_tables_of_one_backbone_training_share_its_seed() -> None:
    one_training = [_with_checkpoints(standin_table(0, draw=d), "seed0") for d in (0, 1)]
    other = _with_checkpoints(standin_table(1), "seed1")
    bare = standin_table(2)
    sources = [_source(str(i), t) for i, t in enumerate([*one_training, other, bare, bare])]
    sets = valid_sets(sources).sets
    # the two draws of one training, another training, a table without checkpoints and its
    # exact copy (one unit: the same logits)
    assert sets.seed_unit[0] == sets.seed_unit[1]
    assert len({sets.seed_unit[0], sets.seed_unit[2], sets.seed_unit[3]}) == 3
    assert sets.seed_unit[3] == sets.seed_unit[4] and sets.n_seeds == 3
    assert sets.study_set.tolist() == [0, 1, 0, 0, 0]
