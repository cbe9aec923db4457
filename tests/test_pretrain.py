"""``python -m experiments.pretrain_backbones`` end to end on a tiny synthetic data set."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

import experiments.pretrain_backbones.__main__ as pretrain_backbones
from backbones.registry import UnknownModelError
from backbones.train_config import TrainConfig, parse_args
from mura_env.constants import BODY_PARTS
from mura_env.data import load_mura
from mura_env.logits import LogitsTable
from mura_env.logits.reference import REFERENCE_DATA_SEEDS


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run on a tiny synthetic draw (generator seed 3) that also scores a second draw (4)."""
    out = tmp_path_factory.mktemp("pretrain") / "run"
    argv = ["--synthetic-dir", str(out.parent / "syn"), "--scale", "0.001",
            "--data-seed", "3", "--score-data-seeds", "3", "4", "--out", str(out),
            "--models", "attention_resnet", "resnet18", "--image-size", "32", "48",
            "--epochs", "1", "--batch-size", "16",
            "--cache-dir", str(out.parent / "cache"), "--no-progress"]
    assert pretrain_backbones.main(argv) == 0
    return out


def test_run_folder_has_every_output(run: Path) -> None:
    for name in ("config.json", "logits.parquet", "logits.manifest.json", "metrics.csv",
                 "diversity.json"):
        assert (run / name).is_file(), name
    for model in ("attention_resnet", "resnet18"):
        assert (run / model / "checkpoint.pth").is_file()
        assert not (run / model / "best.pth").exists()  # the member is the last epoch
        assert any((run / model / "tb").glob("events.out.tfevents.*"))
    config = json.loads((run / "config.json").read_text())
    assert config["models"] == ["attention_resnet", "resnet18"]
    assert config["image_size"] == [32, 48]
    assert config["splits"]["backbones_fit"] == "train"
    assert "tune" not in config["splits"]["checkpoint"]


def test_logits_for_every_study_of_tune_and_valid(run: Path) -> None:
    table = LogitsTable.load(run / "logits.parquet")
    data = load_mura(run.parent / "syn", seed=3)
    scored = data.studies[data.studies["split"].isin(["tune", "valid"])]
    assert list(table.model_names) == ["attention_resnet", "resnet18"]
    assert table.logits.shape == (len(scored), 2, 2)
    assert set(table.studies["split"]) == {"tune", "valid"}
    assert list(table.studies["study_id"]) == list(scored["study_id"])
    assert table.data_fingerprint == data.fingerprint
    configs = table.model_configs
    assert configs["resnet18"]["image_size"] == 48
    assert len(configs["resnet18"]["checkpoint_sha256"]) == 64


def test_another_draw_is_scored_by_the_same_members_without_training(run: Path) -> None:
    trained_on = LogitsTable.load(run / "logits.parquet")
    folder = run / "draws" / "data_seed_4"
    other = LogitsTable.load(folder / "logits.parquet")
    data = load_mura(run.parent / "syn_seed4", seed=4)  # generated beside the training draw
    scored = data.studies[data.studies["split"].isin(["tune", "valid"])]
    assert list(other.studies["study_id"]) == list(scored["study_id"])
    assert other.data_fingerprint == data.fingerprint != trained_on.data_fingerprint
    assert other.model_configs == trained_on.model_configs  # same checkpoints
    for name in ("metrics.csv", "diversity.json", "provenance.json"):
        assert (folder / name).is_file(), name
    commits = set()
    for table_folder, data_seed in ((run, 3), (folder, 4)):
        provenance = json.loads((table_folder / "provenance.json").read_text())
        assert (provenance["seed"], provenance["data_seed"]) == (0, data_seed)
        assert provenance["train_data_seed"] == 3
        commits.add(provenance["commit"])
    assert len(commits) == 1  # the commit the run started from, for every table it wrote
    # the other draw's decode caches hold its tune and valid images only
    n_scored_images = int(data.images["split"].isin(["tune", "valid"]).sum())
    cached = [json.loads(p.read_text()) for p in (run.parent / "cache").glob("*.json")]
    assert sorted(len(c["paths"]) for c in cached if "syn_seed4" in c["paths"][0]) == [
        n_scored_images] * 2


def test_scored_draws_must_include_the_training_draw(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must include the draw the members train on"):
        pretrain_backbones.resolve_profile(pretrain_backbones.PretrainConfig(
            data_seed=1, score_data_seeds=(2, 3), out=tmp_path))
    with pytest.raises(ValueError, match="real MURA"):
        pretrain_backbones.resolve_profile(pretrain_backbones.PretrainConfig(
            data_root=tmp_path, score_data_seeds=(0, 1), out=tmp_path))


def test_metrics_table(run: Path) -> None:
    metrics = pd.read_csv(run / "metrics.csv")
    assert set(metrics["model"]) == {"attention_resnet", "resnet18"}
    assert set(metrics["split"]) == {"tune", "valid"}
    assert {"accuracy", "kappa"} <= set(metrics["metric"])
    assert "ALL" in set(metrics["body_part"]) and metrics["body_part"].nunique() > 1
    report = json.loads((run / "diversity.json").read_text())
    assert 0 <= report["disagreement"] <= 1
    assert report["oracle_accuracy"] >= max(report["member_accuracy"].values())


def test_unknown_model_lists_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError, match="valid models: .*attention_resnet"):
        pretrain_backbones.main(["--models", "vgg99", "--out", str(tmp_path / "x")])


def test_member_training_config(tmp_path: Path) -> None:
    cfg = pretrain_backbones.resolve_profile(pretrain_backbones.PretrainConfig(
        out=tmp_path / "run", models=("attention_resnet", "resnet18"), image_size=(32, 48),
        epochs=(3,), batch_size=16, lr=0.002, seed=5, cache_dir=tmp_path / "cache",
        skip_bad_images=True, progress=False, device="cpu", workers=1))
    config = pretrain_backbones.train_config(cfg, tmp_path / "data", "resnet18", 48, 3)
    assert isinstance(config, TrainConfig)
    assert config == parse_args([
        "--data-root", str(tmp_path / "data"), "--model", "resnet18", "--image-size", "48",
        "--batch-size", "16", "--epochs", "3", "--lr", "0.002", "--seed", "5",
        "--split-seed", "5", "--device", "cpu", "--workers", "1", "--focus-share", "0.8",
        "--output-dir", str(tmp_path / "run" / "resnet18"), "--tune-fraction", "0.2",
        "--cache-dir", str(tmp_path / "cache"), "--skip-bad-images", "--no-progress"])

    checkpoint = tmp_path / "run" / "resnet18" / "checkpoint.pth"
    resumed = replace(cfg, resume=True)
    assert pretrain_backbones.train_config(resumed, tmp_path, "resnet18", 48, 3).resume is None
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"")
    assert pretrain_backbones.train_config(resumed, tmp_path, "resnet18", 48, 3).resume == str(
        checkpoint)
    assert pretrain_backbones.train_config(cfg, tmp_path, "resnet18", 48, 3).resume is None


def test_reference_profile_makes_specialists_scored_on_every_draw(tmp_path: Path) -> None:
    cfg = pretrain_backbones.resolve_profile(pretrain_backbones.PretrainConfig(
        profile="reference", seed=2, out=tmp_path / "run"))
    assert cfg.data_seed == REFERENCE_DATA_SEEDS[0]  # every backbone seed trains on draw 0
    assert cfg.score_data_seeds == REFERENCE_DATA_SEEDS and len(REFERENCE_DATA_SEEDS) >= 2
    assert cfg.scale == 1.0 and cfg.train_studies is not None
    members = {m: pretrain_backbones.train_config(cfg, tmp_path, m, 64, 1)
               for m in cfg.models or ()}
    focus = [set(c.focus_parts) for c in members.values()]
    assert all(focus) and set().union(*focus) == set(BODY_PARTS)
    assert sum(len(f) for f in focus) == len(BODY_PARTS)  # each part has one specialist
    assert {c.seed for c in members.values()} == {2}
    assert {c.split_seed for c in members.values()} == {0}


def test_focus_flag_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown --focus body part"):
        pretrain_backbones.resolve_profile(pretrain_backbones.PretrainConfig(
            models=("resnet18",), focus=("WRIST,KNEE",), out=tmp_path))
    with pytest.raises(ValueError, match="one per model"):
        pretrain_backbones.resolve_profile(pretrain_backbones.PretrainConfig(
            models=("resnet18", "attention_resnet"), focus=("WRIST", "HAND", "FINGER"),
            out=tmp_path))


def test_focus_share_is_per_member(tmp_path: Path) -> None:
    cfg = pretrain_backbones.resolve_profile(pretrain_backbones.PretrainConfig(
        profile="reference", out=tmp_path / "run"))
    profile = pretrain_backbones.PROFILES["reference"]
    expected = [entry[3] if len(entry) > 3 else profile["focus_share"]
                for entry in profile["models"].values()]
    assert cfg.focus_share == tuple(expected)
    shares = [pretrain_backbones.train_config(cfg, tmp_path, m, 64, 1).focus_share
              for m in cfg.models or ()]
    assert shares == expected
    one_each = pretrain_backbones.resolve_profile(replace(cfg, focus_share=(0.5, 0.6, 0.7)))
    assert [pretrain_backbones.train_config(one_each, tmp_path, m, 64, 1).focus_share
            for m in cfg.models or ()] == [0.5, 0.6, 0.7]
    assert pretrain_backbones.resolve_profile(replace(cfg, focus_share=(0.5,))).focus_share == (
        0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="--focus-share takes one value or one per model"):
        pretrain_backbones.resolve_profile(replace(cfg, focus_share=(0.5, 0.6)))


def test_export_reference_takes_only_the_reference_profiles_settings(tmp_path: Path) -> None:
    cfg = pretrain_backbones.PretrainConfig(profile="reference", export_reference=True,
                                            out=tmp_path)
    assert pretrain_backbones.resolve_profile(cfg).export_reference
    for change in ({"epochs": (3,)}, {"train_studies": 100}, {"profile": "quick"},
                   {"score_data_seeds": (0,)}, {"focus_share": (0.9,)}):
        with pytest.raises(ValueError, match="--export-reference"):
            pretrain_backbones.resolve_profile(replace(cfg, **change))


def test_a_focus_needs_a_training_subset(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--focus needs --train-studies"):
        pretrain_backbones.resolve_profile(pretrain_backbones.PretrainConfig(
            models=("resnet18",), focus=("WRIST",), out=tmp_path))


def test_full_profile_trains_a_step_and_writes_logits_at_full_size_on_the_cpu(
        _mini_source: Path, tmp_path: Path) -> None:
    """The GPU users' path (``--profile full``: 320 px, the large models) runs on the CPU:
    one epoch over a few training studies and a logits pass, for every full-profile model."""
    out = tmp_path / "full"
    argv = ["--profile", "full", "--data-root", str(_mini_source), "--out", str(out),
            "--epochs", "1", "--batch-size", "4", "--train-studies", "2", "--device", "cpu",
            "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    assert pretrain_backbones.main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    models = list(pretrain_backbones.PROFILES["full"]["models"])
    assert config["models"] == models
    assert config["image_size"] == [size for size, _ in
                                    pretrain_backbones.PROFILES["full"]["models"].values()]
    table = LogitsTable.load(out / "logits.parquet")
    assert list(table.model_names) == models
    assert set(table.studies["split"]) == {"tune", "valid"}
