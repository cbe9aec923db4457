"""``experiments.benchmark`` end to end on small stand-in reference tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from env_fixtures import studies_frame
from scipy.stats import t as t_dist

import experiments.benchmark.__main__ as benchmark
from agents.core.algos import plateau_step
from agents.weighting.baselines import all_baselines
from experiments.common.benchmark import pipeline as benchmark_pipeline
from experiments.common.benchmark.config import DEFAULT_ALGOS
from mura_env.constants import BODY_PARTS
from mura_env.logits import LogitsTable

FIGURES = ("accuracy", "kappa", "auroc", "sensitivity", "specificity")


def standin_table(table_seed: int, tune_per_part: int = 24, valid_per_part: int = 20,
                  draw: int = 0) -> LogitsTable:
    """A small reference-like table: tune and valid studies over the 7 body parts (the same
    studies whatever ``table_seed``), 3 members, member ``k`` good on body parts ``k``,
    ``k + 3``, ``k + 6``; ``table_seed`` draws the logits (another backbone training).
    ``draw`` > 0 stands for another synthetic data draw: other valid studies (other ids,
    labels flipped where ``draw`` is odd: the same counts per part and label). Provenance:
    ``seed`` = ``table_seed``, ``data_seed`` = ``draw``."""
    parts, labels, splits = [], [], []
    for split, per_part in (("tune", tune_per_part), ("valid", valid_per_part)):
        for part in BODY_PARTS:
            parts += [part] * per_part
            labels += [(i + draw * (split == "valid")) % 2 for i in range(per_part)]
            splits += [split] * per_part
    rng = np.random.default_rng([7, table_seed] if not draw else [7, table_seed, draw])
    part_index = np.array([BODY_PARTS.index(p) for p in parts])
    sign = np.where(np.array(labels) == 1, 1.0, -1.0)
    logits = np.zeros((len(parts), 3, 2), dtype=np.float32)
    for k in range(3):
        good = part_index % 3 == k
        logits[:, k, 1] = sign * (np.where(good, 1.5, 0.3) + rng.normal(0, 1.2, len(parts)))
    studies = studies_frame(parts, labels, splits)
    if draw:
        valid = studies["split"] == "valid"
        studies.loc[valid, "study_id"] = f"draw{draw}/" + studies.loc[valid, "study_id"]
    return LogitsTable.from_arrays(studies, [f"backbone{k}" for k in range(3)], logits,
                                   provenance={"seed": table_seed, "data_seed": draw})


#: The stand-in tables: backbone seeds 0 and 1 on data draw 0, seed 2 on data draw 1.
STANDIN = ((0, 0), (1, 0), (2, 1))


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("standin_tables")
    return [standin_table(t, draw=d).save(folder / f"reference_{t}.parquet")
            for t, d in STANDIN]


def _args(tables: list[Path], out: Path, *extra: str) -> list[str]:
    return ["--tables", *map(str, tables), "--out", str(out), "--quick", "--workers", "1",
            "--no-progress", *extra]


@pytest.fixture(scope="module")
def finished(tables: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "run"
    assert benchmark.main(_args(tables, out, "--seeds", "2")) == 0
    return out


def test_writes_every_file_with_every_method(finished: Path) -> None:
    for name in ("benchmark.md", "benchmark.csv", "per_table.csv", "runs.csv", "curves.csv",
                 "config.json",
                 *benchmark_plots()):
        assert (finished / name).stat().st_size > 0, name
    frame = pd.read_csv(finished / "benchmark.csv")
    assert frame["method"].tolist() == [*DEFAULT_ALGOS, *(b.name for b in all_baselines())]
    kinds = dict(zip(frame["method"], frame["kind"], strict=True))
    assert kinds["oracle"] == kinds["best_fixed_weights_on_valid"] == "reference"
    assert {kinds[a] for a in DEFAULT_ALGOS} == {"agent"} and kinds["stacking"] == "baseline"
    text = (finished / "benchmark.md").read_text()
    assert "oracle (upper reference)" in text and "P(improve over stacking)" in text
    assert "gained over the last quarter" in text and "intervals that exclude zero" in text
    config = json.loads((finished / "config.json").read_text())
    assert config["splits"]["final_scores"] == "valid"
    assert {v for k, v in config["splits"].items() if k != "final_scores"} == {"tune"}
    assert config["sizes"]["n_valid"] == 7 * 20 and config["sizes"]["n_tune"] == [7 * 24] * 3
    assert config["sizes"]["study_sets"] == [0, 0, 1]
    assert "2 study sets" in text and "seed-level 95% CI" in text and "## Per table" in text
    assert not [p for p in finished.parent.iterdir() if p.name.startswith(".")]


def benchmark_plots() -> list[str]:
    from experiments.common.benchmark.report import PLOTS
    return list(PLOTS)


def test_intervals_contain_the_point_estimates(finished: Path) -> None:
    frame = pd.read_csv(finished / "benchmark.csv")
    keys = [*FIGURES, *(f"kappa_{p}" for p in BODY_PARTS),
            *(f"{m}_vs_{ref}" for m in ("accuracy", "kappa", "poi")
              for ref in ("uniform", "stacking"))]
    for key in keys:
        low, value, high = frame[f"{key}_ci_low"], frame[key], frame[f"{key}_ci_high"]
        ok = (low <= value + 1e-12) & (value <= high + 1e-12)
        assert ok.all(), (key, frame.loc[~ok, "method"].tolist())


def test_uniform_against_itself_is_exactly_even(finished: Path) -> None:
    row = pd.read_csv(finished / "benchmark.csv").set_index("method").loc["uniform"]
    for metric in ("accuracy", "kappa"):
        assert row[[f"{metric}_vs_uniform", f"{metric}_vs_uniform_ci_low",
                    f"{metric}_vs_uniform_ci_high"]].tolist() == [0.0, 0.0, 0.0]
    assert row[["poi_vs_uniform", "poi_vs_uniform_ci_low",
                "poi_vs_uniform_ci_high"]].tolist() == [0.5, 0.5, 0.5]


def test_runs_and_curves(finished: Path) -> None:
    runs = pd.read_csv(finished / "runs.csv")
    counts = runs.groupby("method").size()
    for algo in DEFAULT_ALGOS:
        assert counts[algo] == 3 * 2  # tables x seeds
    assert counts["supervised_gating"] == 6 and counts["uniform"] == 3
    assert counts["best_fixed_weights_on_valid"] == 3  # deterministic: one run per table
    frame = pd.read_csv(finished / "benchmark.csv").set_index("method")
    means = runs.groupby("method")["accuracy"].mean()
    assert np.allclose(frame.loc[means.index, "accuracy"], means)
    curves = pd.read_csv(finished / "curves.csv")
    assert list(dict.fromkeys(curves["method"])) == list(DEFAULT_ALGOS)
    assert curves["accuracy"].between(0, 1).all()


@pytest.mark.parametrize("stage", ["baseline fit", "report"])
def test_a_failure_partway_leaves_no_output(stage: str, tables: list[Path], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from agents.weighting.baselines import KnoraEliminate

    def broken(*args, **kwargs):
        raise RuntimeError(f"{stage} broke")

    if stage == "baseline fit":
        monkeypatch.setattr(KnoraEliminate, "fit", broken)
    else:  # after the CSVs, plots and agent runs are written
        monkeypatch.setattr(benchmark_pipeline, "to_markdown", broken)
    out = tmp_path / "parent" / "run"
    with pytest.raises(RuntimeError, match=f"{stage} broke"):
        benchmark.main(_args(tables, out, "--seeds", "1", "--algos", "softmax-pg"))
    assert not out.exists()
    assert list(out.parent.iterdir()) == []


def test_missing_or_corrupt_tables_are_named_before_any_work(tables: list[Path], tmp_path: Path,
                                                            capsys, monkeypatch) -> None:
    import mura_env.logits.reference as reference

    missing = tmp_path / "nowhere.parquet"
    out = tmp_path / "run"
    assert benchmark.main(_args([tables[0], missing], out)) == 2
    assert str(missing) in capsys.readouterr().err
    monkeypatch.setattr(reference, "REFERENCE_DIR", tmp_path / "reference")
    assert benchmark.main(["--out", str(out), "--quick"]) == 2
    err = capsys.readouterr().err
    assert "reference_0.parquet" in err and reference.remake_command(0) in err
    folder = tmp_path / "reference"
    folder.mkdir()
    standin_table(0).save(folder / "reference_0.parquet")
    with open(folder / "reference_0.parquet", "r+b") as f:
        f.seek(100)
        f.write(b"corrupt")
    assert benchmark.main(["--out", str(out), "--quick"]) == 2
    err = capsys.readouterr().err
    assert "reference_0.parquet" in err and reference.remake_command(0) in err
    assert not out.exists() and not list(tmp_path.glob(".run.partial-*"))


def test_tables_with_other_valid_studies_are_refused(tables: list[Path], tmp_path: Path,
                                                     capsys) -> None:
    other = standin_table(1, valid_per_part=19).save(tmp_path / "other.parquet")
    assert benchmark.main(_args([tables[0], other], tmp_path / "run")) == 2
    assert "same number of valid studies" in capsys.readouterr().err
    relabelled = standin_table(1).studies.copy()
    relabelled["label"] = np.where(relabelled["split"] == "valid", 1 - relabelled["label"],
                                   relabelled["label"])
    same_ids = LogitsTable.from_arrays(relabelled, ["backbone0", "backbone1", "backbone2"],
                                       standin_table(1).logits).save(tmp_path / "same.parquet")
    assert benchmark.main(_args([tables[0], same_ids], tmp_path / "run")) == 2
    assert "other labels or body parts" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    (tmp_path / "taken").mkdir()
    assert benchmark.main(_args(tables, tmp_path / "taken")) == 2
    assert "exists already" in capsys.readouterr().err


def test_per_table_rows_and_table_level_intervals(finished: Path) -> None:
    frame = pd.read_csv(finished / "benchmark.csv").set_index("method")
    per_table = pd.read_csv(finished / "per_table.csv")
    methods = [*DEFAULT_ALGOS, *(b.name for b in all_baselines())]
    assert len(per_table) == len(methods) * 3  # one row per method x table
    assert per_table["method"].tolist() == [m for m in methods for _ in range(3)]
    assert per_table["table"].tolist() == [0, 1, 2] * len(methods)
    assert per_table.columns[:6].tolist() == ["method", "kind", "table", "table_label",
                                              "table_seed", "data_seed"]
    first = per_table.drop_duplicates("table")
    assert first["table_label"].str.endswith(
        ("reference_0.parquet", "reference_1.parquet", "reference_2.parquet")).all()
    assert first["table_seed"].tolist() == [t for t, _ in STANDIN]
    assert first["data_seed"].tolist() == [d for _, d in STANDIN]
    assert first["study_set"].tolist() == [0, 0, 1]
    for key in ("accuracy", "kappa", "accuracy_vs_uniform", "kappa_vs_stacking"):
        ok = ((per_table[f"{key}_ci_low"] <= per_table[key] + 1e-12)
              & (per_table[key] <= per_table[f"{key}_ci_high"] + 1e-12))
        assert ok.all(), key
    runs = pd.read_csv(finished / "runs.csv")
    means = runs.groupby(["method", "table"])["accuracy"].mean()
    got = per_table.set_index(["method", "table"])["accuracy"]
    np.testing.assert_allclose(got.loc[means.index], means)
    # the seed-level interval: a t interval over the three table means
    for method in ("ppo", "stacking"):
        table_means = got.loc[method].to_numpy()
        half = t_dist.ppf(0.975, 2) * table_means.std(ddof=1) / np.sqrt(3)
        assert frame.loc[method, "accuracy_seed_ci_low"] == pytest.approx(
            table_means.mean() - half)
        assert frame.loc[method, "accuracy_seed_ci_high"] == pytest.approx(
            table_means.mean() + half)
        diff = per_table[per_table["method"] == method]["accuracy_vs_uniform"].to_numpy()
        half = t_dist.ppf(0.975, 2) * diff.std(ddof=1) / np.sqrt(3)
        assert frame.loc[method, "accuracy_vs_uniform_seed_ci_high"] == pytest.approx(
            diff.mean() + half)
    assert (frame.loc["uniform", ["accuracy_vs_uniform_seed_ci_low",
                                  "accuracy_vs_uniform_seed_ci_high"]] == 0).all()
    uniform = per_table[per_table["method"] == "uniform"]
    assert (uniform[["accuracy_vs_uniform", "accuracy_vs_uniform_ci_low",
                     "accuracy_vs_uniform_ci_high"]] == 0).all().all()


def test_plateau_step_is_the_first_evaluation_near_the_best() -> None:
    steps = [1000, 2000, 3000, 4000, 5000]
    assert plateau_step(steps, [0.5, 0.8, 0.81, 0.812, 0.79]) == 3000
    assert plateau_step(steps, [0.1, 0.2, 0.3, 0.4, 0.5]) == 5000  # still rising
    with pytest.raises(ValueError, match="as many env steps"):
        plateau_step([], [])


def test_an_exact_copy_of_a_table_changes_no_interval(tables: list[Path],
                                                       tmp_path: Path) -> None:
    copy = tmp_path / "copy_of_table_2.parquet"
    LogitsTable.load(tables[2]).save(copy)
    frames = []
    for name, given in (("three", tables), ("with_copy", [*tables, copy])):
        out = tmp_path / name
        assert benchmark.main(_args(given, out, "--seeds", "2", "--algos", "softmax-pg",
                                    "--steps", "softmax-pg=1024")) == 0
        frames.append(pd.read_csv(out / "benchmark.csv").set_index("method"))
    once, twice = frames
    intervals = [c for c in once if c.endswith(("_ci_low", "_ci_high"))]
    assert any(c.endswith("_seed_ci_low") for c in intervals)
    pd.testing.assert_frame_equal(once[intervals], twice[intervals], rtol=1e-12)
    pd.testing.assert_series_equal(once["accuracy"], twice["accuracy"], rtol=1e-12)
