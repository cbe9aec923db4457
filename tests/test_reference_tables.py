"""The shipped reference logits tables: default table of the env, picking one by number,
clear errors for a missing or corrupt table, provenance."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from env_fixtures import tiny_table

import mura_env  # noqa: F401  (registers MuraWeighting-v0)
import mura_env.logits.reference as reference_mod
from mura_env.logits import LogitsTable, LogitsTableError, MissingLogitsError, manifest_path
from mura_env.logits.reference import (
    REFERENCE_DATA_SEEDS,
    load_reference_table,
    reference_index,
    reference_indices,
    reference_origin,
    reference_table_path,
    remake_command,
)
from mura_env.weighting.config import WeightingConfig
from mura_env.weighting.env import MuraWeightingEnv
from mura_env.weighting.problem import WeightingProblem
from mura_env.weighting.vector_env import MuraWeightingVectorEnv


def _tune_logits(table: LogitsTable) -> np.ndarray:
    return table.select(split="tune").logits


@pytest.fixture()
def reference_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private reference folder with tables 0 and 2 that differ (seeds 10 and 12)."""
    folder = tmp_path / "reference"
    monkeypatch.setattr(reference_mod, "REFERENCE_DIR", folder)
    for index in (0, 2):
        tiny_table(seed=10 + index).save(folder / f"reference_{index}.parquet")
    return folder


def test_paths_indices_and_remake_command(reference_dir: Path) -> None:
    assert reference_table_path(2) == reference_dir / "reference_2.parquet"
    (reference_dir / "reference_x.parquet").write_bytes(b"")  # not a reference table name
    assert reference_indices() == [0, 2]
    n_draws = len(REFERENCE_DATA_SEEDS)
    for backbone_seed in (0, 1, 4):
        for draw, data_seed in enumerate(REFERENCE_DATA_SEEDS):
            index = reference_index(backbone_seed, draw)
            assert reference_origin(index) == (backbone_seed, data_seed)
            assert remake_command(index) == (
                "python -m experiments.pretrain_backbones --profile reference "
                f"--seed {backbone_seed} --export-reference")
    assert sorted(reference_index(s, d) for s in range(3) for d in range(n_draws)) == list(
        range(3 * n_draws))  # one table number per (backbone seed, draw), none left out
    with pytest.raises(ValueError, match="no reference table"):
        reference_index(0, n_draws)


@pytest.mark.parametrize("bad", [-1, 1.0, "0", True, None])
def test_a_bad_index_is_a_value_error(bad) -> None:
    for call in (reference_table_path, remake_command, load_reference_table):
        with pytest.raises(ValueError, match="integer >= 0"):
            call(bad)


def test_every_shipped_table_loads_with_tune_and_valid_studies() -> None:
    indices = reference_indices()
    assert 0 in indices
    for index in indices:
        table = load_reference_table(index)
        assert {"tune", "valid"} <= set(table.studies["split"])
        assert not table.hidden_rows().any()


def test_default_make_uses_shipped_table_zero() -> None:
    table = load_reference_table(0)
    env = gym.make("MuraWeighting-v0").unwrapped
    np.testing.assert_array_equal(env.problem.studies.observations[:, : 2 * table.n_models],
                                  _tune_logits(table).reshape(env.n_studies, -1))
    assert env.model_names == table.model_names


def test_the_keyword_picks_the_table_everywhere(reference_dir: Path) -> None:
    zero, two = load_reference_table(0), load_reference_table(2)
    assert not np.array_equal(_tune_logits(zero), _tune_logits(two))
    made = {
        "default": gym.make("MuraWeighting-v0").unwrapped.problem,
        "make": gym.make("MuraWeighting-v0", reference_table=2).unwrapped.problem,
        "make_vec": gym.make_vec("MuraWeighting-v0", num_envs=3, reference_table=2).problem,
        "env": MuraWeightingEnv(reference_table=2).problem,
        "vector": MuraWeightingVectorEnv(2, reference_table=2).problem,
        "problem": WeightingProblem(reference_table=2),
        "config": WeightingProblem(WeightingConfig(reference_table=2)),
    }
    for name, problem in made.items():
        expected = zero if name == "default" else two
        observed = problem.studies.observations[:, : 2 * expected.n_models]
        np.testing.assert_array_equal(observed, _tune_logits(expected).reshape(
            len(observed), -1), err_msg=name)
    assert made["make"].config.reference_table == 2


def test_a_missing_table_names_the_file_and_the_command(reference_dir: Path) -> None:
    with pytest.raises(MissingLogitsError) as err:
        gym.make("MuraWeighting-v0", reference_table=1)
    msg = str(err.value)
    assert str(reference_dir / "reference_1.parquet") in msg and remake_command(1) in msg
    assert "[0, 2]" in msg  # the tables that are there
    manifest_path(reference_dir / "reference_2.parquet").unlink()
    with pytest.raises(MissingLogitsError) as err:
        load_reference_table(2)
    msg = str(err.value)
    assert "reference_2.manifest.json" in msg and remake_command(2) in msg


def test_a_corrupt_table_names_the_file_and_the_command(reference_dir: Path) -> None:
    path = reference_dir / "reference_0.parquet"
    path.write_bytes(b"garbage, not parquet" * 10)
    with pytest.raises(LogitsTableError) as err:
        load_reference_table(0)
    msg = str(err.value)
    assert str(path) in msg and remake_command(0) in msg and "corrupt" in msg
    with pytest.raises(LogitsTableError, match="--seed 0 --export-reference"):
        gym.make("MuraWeighting-v0")

    path = reference_dir / "reference_2.parquet"
    manifest_path(path).write_text("{broken json")
    with pytest.raises(LogitsTableError, match=f"--seed {reference_origin(2)[0]} "
                                               "--export-reference"):
        load_reference_table(2)


def test_provenance_round_trips_through_a_reference_table(reference_dir: Path) -> None:
    provenance = {"commit": "abc123", "profile": "reference", "seed": 2,
                  "member_metrics": {"m0": {"tune_kappa": 0.4}}, "remake": remake_command(2)}
    table = tiny_table(seed=5)
    saved = LogitsTable.from_arrays(table.studies, table.model_names, table.logits,
                                    provenance=provenance)
    saved.save(reference_table_path(2))
    manifest = json.loads(manifest_path(reference_table_path(2)).read_text())
    assert manifest["provenance"] == provenance
    assert load_reference_table(2).provenance == provenance
    assert load_reference_table(0).provenance is None
