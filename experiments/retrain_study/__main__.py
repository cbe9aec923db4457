"""``python -m experiments.retrain_study``: does retraining the members toward the ensemble's
mistakes help? Every retraining method against ``ce`` at equal epochs, over backbone seeds.

For each pretraining run of ``--runs`` (one per backbone seed; the reference profile's
specialists, made by ``python -m experiments.pretrain_backbones --profile reference --seed S
--score-data-seeds 0 --out runs/pretrain/reference-seedS``) and each method of ``--methods``,
``python -m experiments.retrain`` fine-tunes the run's members for ``--epochs`` epochs on
``train`` (seeded with the backbone seed); a finished retraining folder is reused, so an
interrupted study continues.

Then, on each retrained table (and on the pretrained one, ``none``, for reference), fitted on
``tune`` only: the ``uniform`` average, ``stacking`` (logistic regression on the members'
logits) and ``softmax-pg`` (the native agent, ``--agent-seeds`` seeds at its registry
budget); and each member alone. Everything is scored once on ``valid``: the members' kappa
and the ensembles' accuracy and kappa, and the paired differences of every method against
``ce`` (same backbone seed, same resampled studies), with the joint-bootstrap interval and the
Student-t interval over the backbone seeds (:mod:`experiments.common.paired`). Writes
``retrain.md``, ``scores.csv``, ``differences.csv``, ``runs.csv``, ``fitted.csv`` (the
fingerprint of each ensemble fitted on tune) and ``config.json`` into
``--out``.

Synthetic data: results on it say nothing about clinical performance.
"""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from agents.core.algos import budgets
from agents.core.fingerprint import fitted_fingerprint
from agents.weighting.baselines import Stacking, UniformAverage
from backbones.retraining import METHODS
from backbones.runs import RUN_LOGITS, load_run_table
from experiments.common.benchmark.runs import Job, run_job
from experiments.common.commands import run_command
from experiments.common.paired import (
    method_from_answers,
    paired_report,
    points,
    shared_valid,
    write_results,
)
from experiments.common.provenance import machine_description
from mura_env.common.config_cli import parse_config
from mura_env.evaluation.statistics import MethodRuns, coverage_note
from mura_env.logits import LogitsTable
from mura_env.logits.study_set import StudySet
from mura_env.weighting.config import WeightingConfig

#: The ensembles fitted on tune for every retrained table.
ENSEMBLES = ("uniform", "stacking", "softmax-pg")
#: The pretrained members as they are (no retraining), shown for reference.
PRETRAINED = "none"
#: The control every method is compared with.
CONTROL = "ce"


@dataclass
class RetrainStudyConfig:
    """Retraining methods against ce over backbone seeds (see the module docstring)."""

    runs: tuple[Path, ...] = field(default=tuple(
        Path(f"runs/pretrain/reference-seed{s}") for s in range(3)), metadata={
        "help": "pretraining run folders, one per backbone seed"})
    methods: tuple[str, ...] = field(default=METHODS, metadata={
        "help": "retraining methods (ce is the control and always runs)"})
    epochs: int = field(default=1, metadata={"help": "retraining epochs of every method"})
    agent_seeds: int = field(default=5, metadata={"help": "softmax-pg seeds per table"})
    agent_steps: int | None = field(default=None, metadata={
        "help": "softmax-pg env steps per run (default: the registry's budget)"})
    retrain_root: Path = field(default=Path("runs/retrain"), metadata={
        "help": "where the retraining runs go (reused when finished)"})
    cache_dir: Path = field(default=Path("data/cache"), metadata={"help": "image decode cache"})
    out: Path = field(default=Path("benchmarks/results/retrain"), metadata={
        "help": "results folder (replaced)"})
    n_bootstrap: int = field(default=2000, metadata={"help": "bootstrap draws"})
    progress: bool = field(default=False, metadata={"help": "show progress bars"})


def retrain_argv(cfg: RetrainStudyConfig, run: Path, method: str, seed: int) -> list[str]:
    """The ``experiments.retrain`` arguments of ``method`` on ``run`` (backbone seed
    ``seed``)."""
    argv = ["--run", str(run), "--method", method, "--epochs", str(cfg.epochs),
            "--seed", str(seed), "--cache-dir", str(cfg.cache_dir),
            "--out", str(retrain_folder(cfg, run, method, seed))]
    return argv + ([] if cfg.progress else ["--no-progress"])


def retrain_folder(cfg: RetrainStudyConfig, run: Path, method: str, seed: int) -> Path:
    """Where ``method``'s retraining of ``run`` goes."""
    return cfg.retrain_root / f"{run.name}-{method}-seed{seed}-e{cfg.epochs}"


def backbone_seed(run: Path) -> int:
    """The backbone seed of a pretraining run folder (its config.json ``seed``)."""
    return int(json.loads((run / "config.json").read_text()).get("seed", 0))


def retrained_table(cfg: RetrainStudyConfig, run: Path, method: str) -> tuple[LogitsTable,
                                                                                float]:
    """``method``'s retrained table of ``run`` (retraining unless its folder is finished)
    and the retraining's wall seconds.

    Raises:
        RuntimeError: the retraining refused its input (its message is on stderr).
    """
    seed = backbone_seed(run)
    folder = retrain_folder(cfg, run, method, seed)
    if not (folder / RUN_LOGITS).is_file():
        argv = retrain_argv(cfg, run, method, seed)
        print(f"python -m experiments.retrain {shlex.join(argv)}", flush=True)
        if run_command("experiments.retrain", argv) != 0:
            raise RuntimeError(f"retraining {run} with {method} failed")
    seconds = float(json.loads((folder / "config.json").read_text())["wall_seconds"])
    return LogitsTable.load(folder / RUN_LOGITS), seconds


def valid_answers(table: LogitsTable, t: int, agent_seeds: int, steps: int, root: Path
                  ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, str]]:
    """Valid answers of each member and ensemble on ``table`` (table index ``t``), fitted on
    tune: name -> ``(predictions int64 [S, n], probabilities float64 [S, n])`` (``S`` =
    ``agent_seeds`` for softmax-pg, else 1); and each ensemble's fingerprint of what it
    fitted (:func:`agents.core.fingerprint.fitted_fingerprint`; softmax-pg: of its seeds'
    agents)."""
    valid = table.studies["split"].to_numpy() == "valid"
    p = table.abnormal_probabilities()[valid]
    out = {f"member {name}": ((p[:, k] > 0.5)[None].astype(np.int64), p[:, k][None])
           for k, name in enumerate(table.model_names)}
    tune, valid_set = (StudySet.select(table, split) for split in ("tune", "valid"))
    mapping = WeightingConfig(logits=table).mapping
    fitted = {}
    for baseline in (UniformAverage(), Stacking()):
        prob = baseline.fit(tune, mapping).predict(valid_set)[0]
        out[baseline.name] = ((prob > mapping.threshold).astype(np.int64)[None], prob[None])
        fitted[baseline.name] = fitted_fingerprint(baseline)
    agent = [run_job(Job(table=t, method="softmax-pg", seed=s, steps=steps), table, root)[0]
             for s in range(agent_seeds)]
    out["softmax-pg"] = (np.stack([r.predictions for r in agent]),
                         np.stack([r.probabilities for r in agent]))
    fitted["softmax-pg"] = fitted_fingerprint([r.fitted for r in agent])
    return out, fitted


def method_runs(answers: dict[str, list[dict[str, tuple[np.ndarray, np.ndarray]]]]
                ) -> list[MethodRuns]:
    """One :class:`MethodRuns` per (retraining method, answerer): ``answers[method][t]`` are
    table ``t``'s answers (:func:`valid_answers`); names ``"<method>: <answerer>"``."""
    out = []
    for method, per_table in answers.items():
        for name in per_table[0]:
            predictions = np.stack([a[name][0] for a in per_table])
            probabilities = np.stack([a[name][1] for a in per_table])
            out.append(method_from_answers(f"{method}: {name}", predictions, probabilities))
    return out


def report_markdown(cfg: RetrainStudyConfig, scores: pd.DataFrame, diffs: pd.DataFrame,
                    members: list[str], methods: list[str], runs: pd.DataFrame) -> str:
    """The study's report: members' kappa and ensembles' accuracy and kappa per method, and
    every method minus ``ce``, in points with both intervals."""
    value = scores.set_index(["method", "figure"])
    diff = diffs.set_index(["method", "figure"])

    def cell(name: str, key: str) -> str:
        r = value.loc[(name, key)]
        return points(r["value"], r["ci_low"], r["ci_high"])

    def dcell(name: str, key: str) -> str:
        if (name, key) not in diff.index:
            return "(control)"
        r = diff.loc[(name, key)]
        return (f"{points(r['difference'], r['ci_low'], r['ci_high'], True)}; seeds' t "
                f"[{100 * r['seed_ci_low']:+.1f}, {100 * r['seed_ci_high']:+.1f}]")

    n = len(cfg.runs)
    lines = [f"# Retraining the members: every method against ce ({n} backbone seeds, valid)",
             "", f"Each method fine-tunes the reference run's three specialists for "
             f"{cfg.epochs} epoch{'s' * (cfg.epochs != 1)} on their own train studies; the "
             "ensembles are fitted on tune; everything is scored once on valid. Points "
             "(x 100): mean over the backbone seeds (softmax-pg: and its agent seeds) with "
             "the joint-bootstrap 95% CI; differences are paired on the backbone seed and the "
             "resampled studies, with the Student-t 95% CI over the seeds after it.", "",
             "## Members' kappa", "",
             "| method | " + " | ".join(members) + " |", "|---" * (len(members) + 1) + "|"]
    for method in methods:
        lines.append(f"| {method} | " + " | ".join(
            cell(f"{method}: member {m}", "kappa") for m in members) + " |")
    for method in methods:
        if method == CONTROL:
            continue
        lines.append(f"| {method} - ce | " + " | ".join(
            dcell(f"{method}: member {m}", "kappa") for m in members) + " |")
    lines += ["", "## Ensembles (fitted on tune)", "",
              "| method | " + " | ".join(f"{e} accuracy | {e} kappa" for e in ENSEMBLES)
              + " |", "|---" * (2 * len(ENSEMBLES) + 1) + "|"]
    for method in methods:
        lines.append(f"| {method} | " + " | ".join(
            f"{cell(f'{method}: {e}', 'accuracy')} | {cell(f'{method}: {e}', 'kappa')}"
            for e in ENSEMBLES) + " |")
    lines += ["", "| difference | " + " | ".join(f"{e} accuracy | {e} kappa"
                                                 for e in ENSEMBLES) + " |",
              "|---" * (2 * len(ENSEMBLES) + 1) + "|"]
    for method in methods:
        if method == CONTROL:
            continue
        lines.append(f"| {method} - ce | " + " | ".join(
            f"{dcell(f'{method}: {e}', 'accuracy')} | {dcell(f'{method}: {e}', 'kappa')}"
            for e in ENSEMBLES) + " |")
    timed = runs[runs["method"] != PRETRAINED]
    lines += ["", "Retraining wall time per run (all members, logits included): "
              + ", ".join(f"{r.method} seed {r.backbone_seed}: {r.seconds:.0f} s"
                          for r in timed.itertuples())
              + f"; longest {timed['seconds'].max():.0f} s."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the study; returns the exit status (2: unusable runs)."""
    cfg = parse_config(RetrainStudyConfig, argv, __doc__)
    started = time.perf_counter()
    unknown = sorted(set(cfg.methods) - set(METHODS))
    if unknown:
        print(f"error: unknown methods {unknown}; valid: {', '.join(METHODS)}", file=sys.stderr)
        return 2
    methods = [CONTROL, *(m for m in cfg.methods if m != CONTROL)]
    tables: dict[str, list[LogitsTable]] = {PRETRAINED: [], **{m: [] for m in methods}}
    rows = []
    try:
        for run in cfg.runs:
            tables[PRETRAINED].append(load_run_table(run))
            for method in methods:
                table, seconds = retrained_table(cfg, run, method)
                tables[method].append(table)
                rows.append({"backbone_seed": backbone_seed(run), "method": method,
                             "seconds": round(seconds, 1),
                             "folder": str(retrain_folder(cfg, run, method,
                                                          backbone_seed(run)))})
        valid = shared_valid(tables[PRETRAINED])
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    steps = cfg.agent_steps or budgets(["softmax-pg"])["softmax-pg"]
    answers: dict[str, list[dict[str, tuple[np.ndarray, np.ndarray]]]] = {}
    fitted_rows = []
    with tempfile.TemporaryDirectory() as root:
        for method, per_table in tables.items():
            answers[method] = []
            for t, table in enumerate(per_table):
                table_answers, fitted = valid_answers(table, t, cfg.agent_seeds, steps,
                                                      Path(root))
                answers[method].append(table_answers)
                fitted_rows += [{"method": method, "table": t, "ensemble": name,
                                 "fitted": value} for name, value in fitted.items()]
    all_methods = [PRETRAINED, *methods]
    members = list(tables[CONTROL][0].model_names)
    runs = method_runs(answers)
    answerers = [*(f"member {m}" for m in members), *ENSEMBLES]
    pairs = [(f"{m}: {a}", f"{CONTROL}: {a}") for m in all_methods if m != CONTROL
             for a in answerers]
    scores, diffs = paired_report(runs, valid, pairs, ("accuracy", "kappa"), cfg.n_bootstrap)
    runs_frame = pd.DataFrame(rows)
    text = (report_markdown(cfg, scores, diffs, members, all_methods, runs_frame) + "\n"
            + coverage_note(valid.n_tables, valid.n_seeds, valid.n_sets) + "\n")
    write_results(cfg.out, {"retrain.md": text, "scores.csv": scores.to_csv(index=False),
                            "differences.csv": diffs.to_csv(index=False),
                            "runs.csv": runs_frame.to_csv(index=False),
                            "fitted.csv": pd.DataFrame(fitted_rows).to_csv(index=False)}, cfg, {
        "retrain_commands": ["python -m experiments.retrain "
                             + shlex.join(retrain_argv(cfg, r, m, backbone_seed(r)))
                             for r in cfg.runs for m in methods],
        "softmax_pg_steps": steps, "machine": machine_description("cpu"),
        "seconds": round(time.perf_counter() - started, 1)})
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
