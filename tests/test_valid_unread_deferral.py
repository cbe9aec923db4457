"""Valid is never read while deferral methods fit or deferral agents train.

A copy of reference table 0 with every ``valid`` logit NaN, every valid label flipped and every
valid read of every reader flipped fits every classical deferral method and trains every
deferral agent exactly as the original does: same thresholds, stacking, out-of-fold
probabilities and gain predictor, same agent parameters, same tune decisions and scores. Only
deciding for valid refuses the hidden logits.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from test_valid_unread import _assert_same, _parameters

from agents.deferral.methods import DeferralData, fit_deferral_methods, policy_decision
from experiments.defer.runs import DeferJob, train_job_agent
from mura_env.logits import LogitsTable
from mura_env.logits.format import READER_PREFIX
from mura_env.logits.reference import load_reference_table

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HIDDEN = "valid logits are NaN in"
#: Env steps of each tiny deferral agent at its default env copies: two softmax-pg updates
#: (2,048 studies each), two PPO rollouts (8 envs x 256 steps).
STEPS = 4096




def hide_valid(table: LogitsTable) -> LogitsTable:
    """A copy of ``table`` whose valid studies tell nothing: logits NaN, labels flipped, every
    reader's reads flipped (and the difficulty reversed, when the table has one)."""
    valid = table.studies["split"].eq("valid").to_numpy()
    logits = np.array(table.logits)
    logits[valid] = np.nan
    studies = table.studies.copy()
    for column in ["label", *(READER_PREFIX + r for r in table.reader_ids)]:
        studies.loc[valid, column] = 1 - studies.loc[valid, column]
    if "difficulty" in studies.columns:
        studies.loc[valid, "difficulty"] = 1.0 - studies.loc[valid, "difficulty"]
    return LogitsTable.from_arrays(studies, table.model_names, logits,
                                   model_configs=table.model_configs,
                                   data_fingerprint=table.data_fingerprint,
                                   provenance=table.provenance)


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, LogitsTable]:
    """``original``: reference table 0; ``hidden``: :func:`hide_valid` of it, saved and
    loaded back."""
    original = load_reference_table(0)
    assert original.reader_ids and original.studies["split"].eq("tune").any()
    path = hide_valid(original).save(tmp_path_factory.mktemp("hidden") / "hidden.parquet")
    hidden = LogitsTable.load(path)
    valid = original.studies["split"].eq("valid").to_numpy()
    assert valid.any() and hidden.hidden_rows().tolist() == valid.tolist()
    for reader in original.reader_ids:
        assert (hidden.reads(reader)[valid] != original.reads(reader)[valid]).all()
    assert (hidden.studies["label"] != original.studies["label"]).to_numpy().tolist() \
        == valid.tolist()
    return {"original": original, "hidden": hidden}


@pytest.fixture(scope="module")
def reader(tables: dict[str, LogitsTable]) -> str:
    """The reader deferred studies go to, named explicitly: the table's last one."""
    return tables["original"].reader_ids[-1]


def _fitted_state(method: Any) -> dict[str, Any]:
    """A fitted method's state without its fitting time."""
    return {k: v for k, v in vars(method).items() if k != "fit_time"}


@pytest.mark.parametrize("cost", [0.05, 0.2])
def test_every_classical_method_fits_identically_without_valid(tables, reader: str,
                                                              cost: float) -> None:
    tune = {name: DeferralData.from_table(table, "tune", reader)
            for name, table in tables.items()}
    _assert_same(vars(tune["original"]), vars(tune["hidden"]), "tune data")
    fitted = {name: fit_deferral_methods(data, cost) for name, data in tune.items()}
    assert {"global_threshold", "per_part_threshold", "gain_predictor"} <= {
        m.name for m in fitted["original"]}
    for original, hidden in zip(fitted["original"], fitted["hidden"], strict=True):
        _assert_same(_fitted_state(original), _fitted_state(hidden), original.name)
        assert np.isfinite(original.out_of_fold.probabilities).all()
        for decide in ("decide", "decide_out_of_fold"):
            got = [getattr(m, decide)(tune[name]) for name, m in
                   (("original", original), ("hidden", hidden))]
            _assert_same(vars(got[0]), vars(got[1]), f"{original.name}.{decide}")
            labels, reads = tune["original"].studies.labels, tune["original"].reads
            assert got[0].scores(labels, reads) == got[1].scores(labels, reads)

    valid = DeferralData.from_table(tables["original"], "valid", reader)
    assert fitted["original"][0].decide(valid).probability.shape == (valid.studies.n_studies,)
    with pytest.raises(ValueError, match=HIDDEN):
        DeferralData.from_table(tables["hidden"], "valid", reader)


@pytest.mark.parametrize("algo", ["softmax-pg", "ppo"])
def test_every_deferral_agent_trains_identically_without_valid(algo: str, tables,
                                                               reader: str) -> None:
    job = DeferJob(0, algo, seed=3, cost=0.1, steps=STEPS, reader=reader)
    trained = {name: train_job_agent(job, table) for name, table in tables.items()}
    original, hidden = trained["original"], trained["hidden"]
    assert original.agent.config.reader == reader
    _assert_same(_parameters(original.model), _parameters(hidden.model), algo)
    curves = [[{k: v for k, v in row.items() if k != "wall_time"} for row in t.history]
              for t in (original, hidden)]
    assert len(curves[0]) >= 2 and all(np.isfinite(row["kappa"]) for row in curves[0])
    np.testing.assert_equal(curves[0], curves[1])
    assert original.env_steps == hidden.env_steps

    configs = {name: t.agent.config.replace(logits=tables[name]) for name, t in trained.items()}
    decisions = {name: policy_decision(t.model, configs[name], "tune")
                 for name, t in trained.items()}
    _assert_same(vars(decisions["original"]), vars(decisions["hidden"]), f"{algo} tune")
    tune = DeferralData.from_table(tables["original"], "tune", reader)
    scores = [d.scores(tune.studies.labels, tune.reads) for d in decisions.values()]
    assert scores[0] == scores[1]

    on_valid = policy_decision(original.model, configs["original"], "valid")
    assert on_valid.deferred.shape == (int(tables["original"].studies["split"].eq(
        "valid").sum()),)
    with pytest.raises(ValueError, match=HIDDEN):
        policy_decision(hidden.model, configs["hidden"], "valid")
