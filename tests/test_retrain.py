"""Retraining a run's members: the losses, whole-study batches, and ``experiments.retrain``
end to end on a tiny pretraining run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.tensorboard import SummaryWriter

import experiments.pretrain_backbones.__main__ as pretrain_backbones
import experiments.retrain.__main__ as retrain
import mura_env  # noqa: F401  (registers the envs)
from backbones.retraining import (
    RetrainLoss,
    answer_rewards,
    hard_example_weights,
    reinforce_loss,
)
from backbones.run_members import load_members
from backbones.study_batches import StudyBatchSampler, WithIndex, study_means
from mura_env.data import load_mura
from mura_env.logits import LogitsTable
from mura_env.rewards import make_reward

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------------------- losses


def test_reinforce_raises_the_probability_of_a_rewarded_answer() -> None:
    # three studies; answers 1, 0, 1; only the first two are rewarded above their baseline
    logit = torch.tensor([0.0, 0.5, -0.5], requires_grad=True)
    answers = torch.tensor([1, 0, 1])
    rewards = torch.tensor([1.0, 1.0, 0.0])
    baseline = torch.tensor([0.5, 0.5, 0.5])
    optimizer = torch.optim.SGD([logit], lr=0.5)
    before = torch.sigmoid(logit).detach().clone()
    reinforce_loss(torch.sigmoid(logit), answers, rewards, baseline).backward()
    optimizer.step()
    after = torch.sigmoid(logit).detach()
    assert after[0] > before[0]  # answer 1 rewarded: P(1) up
    assert after[1] < before[1]  # answer 0 rewarded: P(1) down, P(0) up
    assert after[2] < before[2]  # answer 1 punished below baseline: P(1) down
    # the baseline carries no gradient, and advantage 0 means no update
    logit.grad = None
    reinforce_loss(torch.sigmoid(logit), answers, baseline, baseline).backward()
    assert logit.grad is not None and torch.all(logit.grad == 0)


def test_answer_rewards_come_from_the_env_reward() -> None:
    p = torch.tensor([0.2, 0.9])
    labels = torch.tensor([1, 0])
    r0, r1 = answer_rewards(make_reward("correct"), p, labels)
    assert r0.tolist() == [0.0, 1.0] and r1.tolist() == [1.0, 0.0]
    r0, r1 = answer_rewards(make_reward("cost_sensitive", miss_cost=3.0), p, labels)
    assert r0.tolist() == [-3.0, 0.0] and r1.tolist() == [0.0, -1.0]


def test_hard_example_weights_favour_errors_at_the_scale_of_cross_entropy() -> None:
    wrong = np.array([True, False, False, True])
    images = np.array([2, 1, 3, 4])
    w = hard_example_weights(wrong, images, boost=2.0)
    assert w[0] / w[1] == pytest.approx(3.0) and w[1] == pytest.approx(w[2])
    assert (w * images).sum() / images.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(hard_example_weights(wrong, images, 0.0), 1.0)
    with pytest.raises(ValueError):
        hard_example_weights(wrong, images, -1.0)


def test_hard_examples_loss_weights_each_study() -> None:
    torch.manual_seed(0)
    logits = torch.randn(5, 2)
    labels = torch.tensor([1, 1, 0, 0, 1])
    parts = torch.tensor([0, 0, 3, 3, 5])
    studies = torch.tensor([0, 0, 1, 1, 2])
    cw = torch.rand(7, 2) + 0.5
    ce, _ = RetrainLoss("ce", cw)(logits, labels, parts, studies)
    same, _ = RetrainLoss("hard-examples", cw, study_weights=torch.ones(3))(
        logits, labels, parts, studies)
    torch.testing.assert_close(same, ce)
    weights = torch.tensor([3.0, 1.0, 1.0])
    hard, _ = RetrainLoss("hard-examples", cw, study_weights=weights)(
        logits, labels, parts, studies)
    each = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    torch.testing.assert_close(hard, (each * cw[parts, labels] * weights[studies]).mean())


def test_reinforce_loss_scores_studies_and_mixes_cross_entropy() -> None:
    torch.manual_seed(0)
    logits = torch.randn(6, 2, requires_grad=True)
    labels = torch.tensor([1, 1, 0, 1, 0, 0])
    parts = torch.tensor([0, 0, 1, 2, 2, 2])
    studies = torch.tensor([4, 4, 7, 9, 9, 9])
    cw = torch.ones(7, 2)
    reward = make_reward("correct")
    pure, figures = RetrainLoss("reinforce", cw, reward=reward, ce_weight=0.0,
                                generator=torch.Generator().manual_seed(1))(
        logits, labels, parts, studies)
    mixed, _ = RetrainLoss("reinforce", cw, reward=reward, ce_weight=1.0,
                           generator=torch.Generator().manual_seed(1))(
        logits, labels, parts, studies)
    ce, _ = RetrainLoss("ce", cw)(logits, labels, parts, studies)
    torch.testing.assert_close(mixed, pure + ce)
    assert 0.0 <= figures["reward"] <= 1.0
    # the policy gradient flows into every image of a study through its mean probability
    pure.backward()
    assert logits.grad is not None


def test_study_batches_hold_whole_studies_once_per_epoch() -> None:
    image_studies = np.array([5, 5, 5, 2, 9, 9, 1, 1, 1, 1, 1, 3])
    sampler = StudyBatchSampler(image_studies, batch_size=4, seed=0)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert sorted(i for b in batches for i in b) == list(range(len(image_studies)))
        for batch in batches:
            assert len(batch) <= 4 or len(set(image_studies[batch])) == 1
            for study in set(image_studies[batch]):  # whole studies only
                assert set(np.flatnonzero(image_studies == study)) <= set(batch)
        assert batches == sampler.batches(epoch) and len(sampler) == len(batches)
    orders = {tuple(map(tuple, sampler.batches(e))) for e in range(6)}
    assert len(orders) > 1  # the order changes with the epoch
    values = torch.tensor([1.0, 3.0, 2.0, 5.0])
    means, ids = study_means(values, torch.tensor([7, 7, 2, 7]))
    assert ids.tolist() == [2, 7] and means.tolist() == [2.0, 3.0]
    assert WithIndex([("a", 1), ("b", 2)])[1] == ("b", 2, 1)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny pretraining run: a part-attention specialist and a plain member, each on a
    patient-level subset of train."""
    out = tmp_path_factory.mktemp("retrain") / "run"
    argv = ["--synthetic-dir", str(out.parent / "syn"), "--scale", "0.003", "--seed", "3",
            "--out", str(out), "--models", "attention_resnet_parts", "attention_resnet",
            "--image-size", "32", "--epochs", "1", "--batch-size", "16",
            "--train-studies", "16", "--focus", "SHOULDER,ELBOW", "", "--focus-share", "0.5",
            "--cache-dir", str(out.parent / "cache"), "--no-progress"]
    assert pretrain_backbones.main(argv) == 0
    return out


def _retrain(run: Path, out: Path, *extra: str) -> int:
    return retrain.main(["--run", str(run), "--out", str(out), "--epochs", "1",
                         "--batch-size", "16", "--cache-dir", str(run.parent / "cache"),
                         "--device", "cpu", "--no-progress", *extra])


@pytest.mark.parametrize("method", ["ce", "hard-examples", "reinforce"])
def test_retrain_writes_a_run_folder_every_command_takes(run: Path, tmp_path: Path,
                                                         method: str) -> None:
    out = tmp_path / method
    assert _retrain(run, out, "--method", method) == 0
    for name in ("config.json", "logits.parquet", "logits.manifest.json", "metrics.csv",
                 "diversity.json"):
        assert (out / name).is_file(), name
    source = LogitsTable.load(run / "logits.parquet")
    table = LogitsTable.load(out / "logits.parquet")
    assert list(table.model_names) == list(source.model_names)
    assert list(table.studies["study_id"]) == list(source.studies["study_id"])
    assert not np.allclose(table.logits, source.logits)  # the members changed
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == method and config["source_run"] == str(run)
    assert "tune" not in config["splits"]["members_fit"]
    assert "tune" not in config["splits"]["checkpoint"]
    members = load_members(out, table, tuple(table.model_names), torch.device("cpu"))
    assert [m.name for m in members] == list(table.model_names)
    recorded = table.model_configs["attention_resnet_parts"]
    assert recorded["retrain"]["method"] == method
    assert recorded["focus_parts"] == ["SHOULDER", "ELBOW"]
    assert not list(out.parent.glob(".*partial*"))
    # the env takes the new table as it takes a pretraining run's
    env = gymnasium.make("MuraWeighting-v0", logits=str(out / "logits.parquet"))
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2 * len(table.model_names) + 7,)
    env.close()


def test_retraining_reads_only_each_members_train_studies(run: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    seen: list[pd.DataFrame] = []
    real = retrain.CachedImages

    def recording(cache, images, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(images)
        return real(cache, images, *args, **kwargs)

    cfg = retrain.resolve(retrain.parse_config(retrain.RetrainConfig, [
        "--run", str(run), "--out", str(tmp_path / "x"), "--epochs", "1", "--batch-size", "16",
        "--cache-dir", str(run.parent / "cache"), "--method", "hard-examples",
        "--no-progress"]))
    source = retrain.read_source(cfg, torch.device("cpu"))
    data = load_mura(run.parent / "syn", seed=3)
    chosen = set()
    for rows in source.train_rows.values():
        assert rows.sum() == 16
        chosen |= set(data.studies.loc[rows, "study_id"])
    monkeypatch.setattr(retrain, "CachedImages", recording)
    with SummaryWriter(str(tmp_path / "tb")) as writer:
        retrain.retrain_members(cfg, source, torch.device("cpu"), writer)
    used = pd.concat(seen)
    assert set(used["split"]) == {"train"}
    assert set(used["study_id"]) <= chosen


def test_retrain_refuses_unusable_runs_and_leaves_nothing(run: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture
                                                          ) -> None:
    moved = tmp_path / "moved"
    shutil.copytree(run, moved, ignore=shutil.ignore_patterns("*.pth", "tb"))
    config = json.loads((moved / "config.json").read_text())
    config["synthetic_dir"] = str(tmp_path / "no-such-data")
    (moved / "config.json").write_text(json.dumps(config))
    assert _retrain(moved, tmp_path / "a") == 2
    assert "cannot read the run's images" in capsys.readouterr().err
    assert _retrain(tmp_path / "nothing", tmp_path / "b") == 2
    assert "no such folder" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    assert _retrain(run, tmp_path / "taken") == 2
    assert "exists already" in capsys.readouterr().err

    def crash(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("interrupted")

    monkeypatch.setattr(retrain, "retrain_one_epoch", crash)
    with pytest.raises(RuntimeError, match="interrupted"):
        _retrain(run, tmp_path / "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["moved", "taken"]
