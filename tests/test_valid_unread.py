"""Valid is never read while agents train or baselines fit.

A copy of reference table 0 with every ``valid`` logit set to NaN (hidden) trains every agent
and fits every baseline exactly as the original does: same parameters, same tune curves and
metrics. Only scoring on valid refuses the hidden logits, with a clear error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from agents.core.algos import ALGOS
from agents.core.evaluate import evaluate_baseline, evaluate_policy
from agents.core.families import NATIVE, NATIVE_PPO
from agents.core.train import train_agent
from agents.weighting.baselines import all_baselines
from agents.weighting.reporting import baseline_evaluations
from mura_env import ENV_ID
from mura_env.logits import LogitsTable
from mura_env.logits.reference import load_reference_table
from mura_env.logits.study_set import StudySet
from mura_env.weighting.config import WeightingConfig
from mura_env.weighting.env import MuraWeightingEnv

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_budget(algo: str) -> tuple[int, int, int]:
    """``(env steps, env copies, eval_every)`` of a tiny run with at least two evaluations:
    softmax-pg on 64 envs; native PPO on 8 envs (two rollouts of 32 steps); an SB3 agent on one
    env, for two rollouts or past its warm-up."""
    spec = ALGOS[algo]
    if spec.family is NATIVE:
        return 512, 64, 256
    if spec.family is NATIVE_PPO:
        return 512, 8, 256
    kwargs = spec.sb3_kwargs
    steps = max(64, 2 * kwargs.get("n_steps", 0), kwargs.get("learning_starts", 0) + 20)
    return steps, 1, steps // 2


HIDDEN = "valid logits are NaN in"




@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, LogitsTable]:
    """``original``: reference table 0; ``hidden``: its copy with every valid logit NaN and
    every valid label flipped (so neither can leak into training), saved and loaded back."""
    original = load_reference_table(0)
    logits = np.array(original.logits)
    valid = original.studies["split"].eq("valid").to_numpy()
    assert valid.any() and original.studies["split"].eq("tune").any()
    logits[valid] = np.nan
    studies = original.studies.copy()
    studies.loc[valid, "label"] = 1 - studies.loc[valid, "label"]
    copy = LogitsTable.from_arrays(studies, original.model_names, logits,
                                   model_configs=original.model_configs,
                                   data_fingerprint=original.data_fingerprint)
    path = copy.save(tmp_path_factory.mktemp("hidden") / "hidden_valid.parquet")
    hidden = LogitsTable.load(path)
    assert hidden.hidden_rows().tolist() == valid.tolist()
    return {"original": original, "hidden": hidden}


def _assert_same(a: Any, b: Any, where: str) -> None:
    """Recursively assert that two fitted objects hold identical state (arrays, tensors,
    torch modules' state dicts, scikit-learn attributes, plain values)."""
    if isinstance(a, torch.nn.Module):
        _assert_same(a.state_dict(), b.state_dict(), where)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    elif hasattr(a, "__dict__") and not isinstance(a, type):
        assert type(a) is type(b), where
        _assert_same(vars(a), vars(b), where)
    else:
        np.testing.assert_equal(a, b, err_msg=where)


def _parameters(model: Any) -> dict[str, torch.Tensor]:
    """The trained parameters: a native agent's (a torch module) or the SB3 policy's state
    dict."""
    module = model if isinstance(model, torch.nn.Module) else model.policy
    return module.state_dict()


#: Every agent the registry trains on ``MuraWeighting-v0`` (it has a budget there).
WEIGHTING_ALGOS = [name for name, spec in ALGOS.items() if ENV_ID in spec.timesteps]


@pytest.mark.parametrize("algo", WEIGHTING_ALGOS)
def test_every_agent_trains_identically_without_valid(algo: str, tables, tmp_path: Path
                                                      ) -> None:
    steps, n_envs, every = tiny_budget(algo)
    trained = {
        name: train_agent(algo, WeightingConfig(logits=table), tmp_path / name,
                          total_timesteps=steps, seed=3, eval_split="tune", eval_every=every,
                          n_envs=n_envs, tensorboard=False)
        for name, table in tables.items()}
    original, hidden = trained["original"], trained["hidden"]
    _assert_same(_parameters(original.model), _parameters(hidden.model), algo)
    curves = [[{k: v for k, v in row.items() if k != "wall_time"} for row in t.history]
              for t in (original, hidden)]
    assert len(curves[0]) >= 2 and all(np.isfinite(row["kappa"]) for row in curves[0])
    np.testing.assert_equal(curves[0], curves[1])
    assert original.env_steps == hidden.env_steps

    scores = {name: evaluate_policy(t.policy, WeightingConfig(logits=tables[name]),
                                    split="tune", n_bootstrap=20)
              for name, t in trained.items()}
    np.testing.assert_array_equal(scores["original"].predictions, scores["hidden"].predictions)
    assert scores["original"].metrics.equals(scores["hidden"].metrics)

    on_valid = evaluate_policy(original.policy, WeightingConfig(logits=tables["original"]),
                               split="valid", n_bootstrap=0)
    assert 0.0 <= on_valid.value("accuracy") <= 1.0
    with pytest.raises(ValueError, match=HIDDEN):
        evaluate_policy(hidden.policy, WeightingConfig(logits=tables["hidden"]),
                        split="valid", n_bootstrap=0)


def test_every_baseline_fits_identically_without_valid(tables) -> None:
    tune = {name: StudySet.select(table, "tune") for name, table in tables.items()}
    fitted = {name: [b.fit(studies) for b in all_baselines(seed=1) if not b.reference]
              for name, studies in tune.items()}
    assert {"uniform", "stacking", "supervised_gating", "knora_e"} <= {
        b.name for b in fitted["original"]}
    for original, hidden in zip(fitted["original"], fitted["hidden"], strict=True):
        _assert_same(vars(original), vars(hidden), original.name)
        scored = [evaluate_baseline(b, tune[name], n_bootstrap=20)
                  for name, b in (("original", original), ("hidden", hidden))]
        np.testing.assert_array_equal(scored[0].probabilities, scored[1].probabilities,
                                      err_msg=original.name)
        assert scored[0].metrics.equals(scored[1].metrics), original.name


def test_only_scoring_on_valid_refuses_the_hidden_logits(tables) -> None:
    original, hidden = tables["original"], tables["hidden"]
    n_valid = int(original.studies["split"].eq("valid").sum())
    assert StudySet.select(original, "valid").n_studies == n_valid
    with pytest.raises(ValueError, match=f"{HIDDEN} {n_valid} of {n_valid} studies") as err:
        StudySet.select(hidden, "valid")
    assert "scoring on valid needs the real table" in str(err.value)
    with pytest.raises(ValueError, match=HIDDEN):
        MuraWeightingEnv(logits=hidden, split="valid")
    assert MuraWeightingEnv(logits=hidden, split="tune").n_studies == \
        MuraWeightingEnv(logits=original, split="tune").n_studies

    references = [b for b in all_baselines() if b.reference]  # defined on valid
    assert references
    for reference in references:
        reference.fit(StudySet.select(original, "tune"))
        ev = evaluate_baseline(reference, StudySet.select(original, "valid"), n_bootstrap=0)
        assert ev.split == "valid" and 0.0 <= ev.value("accuracy") <= 1.0
    with pytest.raises(ValueError, match=HIDDEN):  # the comparison's baseline scores
        baseline_evaluations(WeightingConfig(logits=hidden), n_bootstrap=0)
