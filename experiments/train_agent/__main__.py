"""Train one agent on any registered env of ``mura_env`` and score it against the classical
methods of that env.

``python -m experiments.train_agent [--env ID] --algo NAME
[--logits PATH] [--total-timesteps N | --steps ALGO=N] [--seed N] [--reward ...]
[--env-kwargs key=value ...] [--defer-cost C] [--out DIR]``

``--env`` is any env that ``import mura_env`` registers (``MuraWeighting-v0`` by default,
``MuraDeferral-v0``, ``MuraWorklist-v0``, and any env registered later): its typed config
(:func:`mura_env.env_config_class`) is built from the named flags (``--reward``,
``--action-scale``, ...) where it has those arguments, then from ``--env-kwargs key=value``
(RL Zoo3's convention; values are Python literals, else strings: ``capacity=0.05
scenario=emergency readers="('radiologist_1',)"``), which win. ``--defer-cost C`` is a shortcut
for ``--env MuraDeferral-v0 --env-kwargs defer_cost=C``.

The logits table defaults to the newest ``runs/pretrain/*/logits.parquet``, else the shipped
reference table 0. The agent trains on the ``tune`` split (which the backbones never trained
on) and is scored on ``valid``; nothing is selected on valid (the saved model is the last one).
How it is scored depends on the env: on ``MuraWeighting-v0`` by MURA's metrics with 95%
bootstrap intervals beside every weighting baseline (fitted on tune); on ``MuraDeferral-v0`` by
the team's accuracy, kappa and deferral rate beside the classical deferral methods at the same
cost; on ``MuraWorklist-v0`` by the system's accuracy, kappa and reads on fixed valid shifts
beside the classical worklist methods on the same shifts; on any other env by its
:func:`agents.core.train.policy_scores` alone.

Writes ``runs/agents/<algo>_<seed>_<time>/`` (or ``--out``): ``agent.json`` and the model (see
:mod:`agents.core.saved`), ``config.json`` (resolved configuration; ``hyperparameters`` holds
the algorithm's own settings, ``env_id`` and ``env_config`` the env's), ``metrics.json`` (the
agent's valid scores), ``baselines.csv`` (the agent and every classical method on valid),
``fitted.json`` (fingerprints of what the agent and each method fitted), for the weighting env
also ``metrics.csv`` (the full table with 95% bootstrap intervals), and ``tb/`` (TensorBoard:
``rollout/ep_rew_mean``, and ``eval/accuracy``, ``eval/kappa`` on tune). ``config.json``
records which split each step used (``splits``). Ends by printing the agent beside the
classical methods.

Synthetic data: results on it say nothing about clinical performance.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd

from agents.core.algos import ALGOS, get_algo, parse_steps
from agents.core.evaluate import evaluate_policy
from agents.core.fingerprint import fitted_fingerprint
from agents.core.train import TrainedAgent, policy_scores, resolve_hyperparameters, train_agent
from agents.deferral.methods import DeferralData, fit_deferral_methods
from agents.triage import rollout as triage_rollout
from agents.triage.rollout import (
    evaluation_episodes,
    play_policy,
    play_rule,
    start_episodes,
    triage_scores,
)
from agents.triage.rules import fit_rules
from agents.weighting.reporting import SPLIT_USE, baseline_evaluations, kind_of, summary_row
from agents.weighting.softmax_pg import SoftmaxPGConfig
from agents.worklist.methods import WorklistData, fit_worklist_methods, simulate
from agents.worklist.rollout import EVAL_SEED, EVAL_SHIFTS, evaluation_shifts, rollout, shift_scores
from experiments.common.logits_source import resolve_table
from experiments.common.options import (
    BudgetOptions,
    EnvOptions,
    LogitsOptions,
    ReportOptions,
)
from mura_env import (
    DEFERRAL_ENV_ID,
    ENV_ID,
    TRIAGE_ENV_ID,
    WORKLIST_ENV_ID,
    env_config_class,
    registered_env_ids,
)
from mura_env.common.atomic import atomic_write_bytes
from mura_env.common.config_cli import parse_config, save_config
from mura_env.deferral.config import DeferralConfig
from mura_env.logits import LogitsTableError, MissingLogitsError
from mura_env.triage.config import TriageConfig
from mura_env.triage.problem import TriageProblem
from mura_env.weighting.config import WeightingConfig
from mura_env.worklist.config import WorklistConfig


@dataclass
class TrainAgentConfig(LogitsOptions, EnvOptions, BudgetOptions, ReportOptions):
    """Train an agent on any registered env and compare it with that env's classical
    methods."""

    env: str = field(default=ENV_ID, metadata={
        "help": "registered env id", "choices": tuple(registered_env_ids())})
    env_kwargs: tuple[str, ...] = field(default=(), metadata={
        "help": "env arguments as key=value (values: Python literals, else strings), e.g. "
                "scenario=emergency capacity=0.05; they win over the named flags"})
    algo: str = field(default="softmax-pg", metadata={
        "help": "agent to train", "choices": tuple(ALGOS)})
    total_timesteps: int | None = field(default=None, metadata={
        "help": "env steps (answered studies) of this run (the same as --steps ALGO=N); "
                "default: the registry's budget of the algo on its env"})
    seed: int = field(default=0, metadata={"help": "seed of the agent and the env"})
    out: Path | None = field(default=None, metadata={
        "help": "run folder (default runs/agents/<algo>_<seed>_<time>)"})
    learning_rate: float | None = field(default=None, metadata={
        "help": "learning rate (default: the algorithm's own)"})
    n_envs: int | None = field(default=None, metadata={
        "help": "env copies (default: 4096 for softmax-pg, 8 for SB3)"})
    per_study: bool = field(default=False, metadata={
        "help": "softmax-pg only: add the small per-study network on the logits"})
    defer_cost: float | None = field(default=None, metadata={
        "help": "shortcut for --env MuraDeferral-v0 --env-kwargs defer_cost=C (the table "
                "needs a reader column)"})
    reader: str | None = field(default=None, metadata={
        "help": "the deferral env's reader id (default: the table's only reader)"})
    eval_every: int | None = field(default=None, metadata={
        "help": "env steps between evaluations/checkpoints (default: total / 10)"})
    tensorboard: bool = field(default=True, metadata={"help": "write TensorBoard events"})


def run_steps(cfg: TrainAgentConfig) -> int | None:
    """The run's env steps: ``--total-timesteps``, else a ``--steps`` entry for its algo, else
    None (the registry's budget).

    Raises:
        ValueError: both name a budget, or a malformed ``--steps`` entry.
    """
    steps = parse_steps(cfg.steps, [cfg.algo])
    if cfg.total_timesteps is not None and steps:
        raise ValueError("give the budget once: --total-timesteps or --steps, not both.")
    return cfg.total_timesteps if cfg.total_timesteps is not None else steps.get(cfg.algo)


def parse_env_kwargs(entries: tuple[str, ...]) -> dict[str, Any]:
    """``{key: value}`` from ``key=value`` entries (``key:value``, RL Zoo3's spelling, too); a
    value is read as a Python literal (``0.05``, ``True``, ``('a', 'b')``), else kept as a
    string.

    Raises:
        ValueError: an entry without ``=`` (or ``:``) or with an empty key, or a key given
            twice.
    """
    out: dict[str, Any] = {}
    for entry in entries:
        key, sep, text = str(entry).partition("=")
        if not sep:
            key, sep, text = str(entry).partition(":")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--env-kwargs takes key=value entries, got {entry!r}.")
        if key in out:
            raise ValueError(f"--env-kwargs gives {key!r} twice.")
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key] = text
    return out


def env_settings(cfg: TrainAgentConfig) -> tuple[str, dict[str, Any]]:
    """The env id and its keyword arguments from ``--env``, ``--env-kwargs``, ``--defer-cost``
    and ``--reader`` (the named env flags are read by the config class itself).

    Raises:
        ValueError: ``--defer-cost`` with another env than the deferral env, or given twice.
    """
    env_id, kwargs = cfg.env, parse_env_kwargs(cfg.env_kwargs)
    for name in ("defer_cost", "reader"):
        value = getattr(cfg, name)
        if value is None:
            continue
        if name == "defer_cost" and env_id == ENV_ID:
            env_id = DEFERRAL_ENV_ID
        if name in kwargs:
            raise ValueError(f"give {name} once: --{name.replace('_', '-')} or --env-kwargs.")
        kwargs[name] = value
    if cfg.defer_cost is not None and env_id != DEFERRAL_ENV_ID:
        raise ValueError(f"--defer-cost is a shortcut for --env {DEFERRAL_ENV_ID}, not "
                         f"{env_id}.")
    return env_id, kwargs


def named_env_options(cfg: TrainAgentConfig) -> SimpleNamespace:
    """The command's named env flags that are set (``--reward``, ``--action-scale``, ...):
    what an env's config class reads where it has the argument."""
    names = {f.name for f in dataclasses.fields(EnvOptions)}
    return SimpleNamespace(**{n: getattr(cfg, n) for n in names})


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    cfg = parse_config(TrainAgentConfig, argv)
    try:
        table, source = resolve_table(cfg.logits)
    except (MissingLogitsError, LogitsTableError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    native = SoftmaxPGConfig(per_study=cfg.per_study)
    try:
        env_id, kwargs = env_settings(cfg)
        env_config = env_config_class(env_id).from_options(named_env_options(cfg), logits=table,
                                                           **kwargs)
        env_config.problem_class()(env_config)  # a table without the reader fails here, named
        spec = get_algo(cfg.algo)
        settings = resolve_hyperparameters(
            spec, env_config, total_timesteps=run_steps(cfg), eval_every=cfg.eval_every,
            n_envs=cfg.n_envs, learning_rate=cfg.learning_rate, softmax_pg=native)
    except (ValueError, KeyError, TypeError) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    out = cfg.out or Path("runs/agents") / f"{cfg.algo}_{cfg.seed}_{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    cfg = dataclasses.replace(cfg, env=env_id, logits=source, out=out,
                              total_timesteps=settings["total_timesteps"],
                              n_envs=settings["n_envs"], eval_every=settings["eval_every"],
                              learning_rate=settings["learning_rate"])
    save_config(cfg, out / "config.json", {
        "hyperparameters": settings, "splits": SPLIT_USE, "env_id": env_id,
        "env_config": env_config.to_dict()})
    print(f"training {cfg.algo} (seed {cfg.seed}) on {env_id}, {source} -> {out}")
    trained = train_agent(spec, env_config, out, seed=cfg.seed, settings=settings,
                          tensorboard=cfg.tensorboard, progress=cfg.progress)
    finish = FINISHERS.get(env_id, finish_scores)
    return finish(cfg, trained, env_config, out, source)


def write_summary(out: Path, summary: dict[str, Any], frame: pd.DataFrame | None,
                  trained: TrainedAgent, methods: Iterable[tuple[str, str, Any]] = ()) -> None:
    """Write ``metrics.json`` (``summary``), when given ``baselines.csv`` (``frame``), and
    ``fitted.json``: the fingerprint (:func:`agents.core.fingerprint.fitted_fingerprint`) of
    the trained agent and of every classical method fitted beside it (``(name, kind,
    method)``), what two runs that differ only on valid must share (upper references aside)."""
    atomic_write_bytes(out / "metrics.json", (json.dumps(summary, indent=2) + "\n").encode())
    if frame is not None:
        atomic_write_bytes(out / "baselines.csv", frame.to_csv(index=False).encode())
    fitted = {"agent": fitted_fingerprint(trained.model),
              "methods": {name: {"kind": kind, "fitted": fitted_fingerprint(method)}
                          for name, kind, method in methods}}
    atomic_write_bytes(out / "fitted.json", (json.dumps(fitted, indent=2) + "\n").encode())


def run_summary(cfg: TrainAgentConfig, trained: TrainedAgent, source: Path) -> dict[str, Any]:
    """What every ``metrics.json`` records about the run besides the scores."""
    return {"algo": cfg.algo, "seed": cfg.seed, "env_id": cfg.env,
            "env_steps": trained.env_steps, "wall_time": trained.wall_time,
            "logits": str(source)}


def print_comparison(header: str, frame: pd.DataFrame, cfg: TrainAgentConfig,
                     trained: TrainedAgent, out: Path) -> int:
    """Print ``header`` (the valid setting), ``frame`` (the agent beside the classical
    methods) and the run's budget and folder; returns 0, the exit status."""
    print(f"{header} (SYNTHETIC data; nothing clinical):")
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"{cfg.algo}: {trained.env_steps} env steps, {trained.wall_time:.1f} s; wrote {out}/")
    return 0


def finish_weighting(cfg: TrainAgentConfig, trained: TrainedAgent, env_config: WeightingConfig,
                     out: Path, source: Path) -> int:
    """Score a weighting agent on valid (MURA's metrics with bootstrap intervals) beside every
    weighting baseline fitted on tune; writes ``metrics.json``, ``metrics.csv`` and
    ``baselines.csv``."""
    ev = evaluate_policy(trained.policy, env_config, "valid", name=cfg.algo,
                         n_bootstrap=cfg.n_bootstrap, seed=cfg.seed)
    summary = {**ev.summary(), **run_summary(cfg, trained, source)}
    baselines = baseline_evaluations(env_config, cfg.n_bootstrap)
    rows = [summary_row(ev, kind="agent")] + [
        summary_row(b_ev, kind=kind_of(baseline)) for baseline, b_ev in baselines]
    frame = pd.DataFrame(rows)
    write_summary(out, summary, frame, trained,
                  [(b_ev.name, kind_of(b), b) for b, b_ev in baselines])
    atomic_write_bytes(out / "metrics.csv", ev.metrics.to_csv(index=False).encode())
    show = frame[["method", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "kappa",
                  "kappa_ci_low", "kappa_ci_high", "auroc"]]
    print(f"valid split, {len(ev.labels)} studies (SYNTHETIC data; nothing clinical):")
    print(show.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"{cfg.algo}: {trained.env_steps} env steps, {trained.wall_time:.1f} s of training; "
          f"wrote {out}/")
    return 0


def finish_deferral(cfg: TrainAgentConfig, trained: TrainedAgent, env_config: DeferralConfig,
                    out: Path, source: Path) -> int:
    """Score a deferral agent on valid beside the classical deferral methods (fitted on tune
    at the same cost); writes ``metrics.json`` and ``baselines.csv``."""
    scores = policy_scores(trained.model, env_config, "valid")
    summary = {"split": "valid", **scores, "defer_cost": env_config.defer_cost,
               **run_summary(cfg, trained, source)}
    table = env_config.load_table()
    tune, valid = (DeferralData.from_table(table, s, env_config.reader) for s in ("tune", "valid"))
    methods = fit_deferral_methods(tune, env_config.defer_cost)
    rows = [{"method": cfg.algo, "kind": "agent", **scores}] + [
        {"method": method.name, "kind": method.kind,
         **method.decide(valid).scores(valid.studies.labels, valid.reads)}
        for method in methods]
    frame = pd.DataFrame(rows)
    write_summary(out, summary, frame, trained, [(m.name, m.kind, m) for m in methods])
    return print_comparison(f"valid split, {valid.studies.n_studies} studies, defer_cost "
                            f"{env_config.defer_cost:g}", frame, cfg, trained, out)


def finish_worklist(cfg: TrainAgentConfig, trained: TrainedAgent, env_config: WorklistConfig,
                    out: Path, source: Path) -> int:
    """Score a worklist agent on fixed valid shifts (system accuracy, kappa, reads per reader)
    beside the classical worklist methods fitted on tune and run on the same shifts; writes
    ``metrics.json`` and ``baselines.csv``."""
    problem, rows = evaluation_shifts(env_config, "valid", EVAL_SHIFTS, EVAL_SEED)
    scores = shift_scores(rollout(trained.model, problem, rows), problem.n_readers)
    summary = {"split": "valid", "n_shifts": EVAL_SHIFTS, **scores,
               **run_summary(cfg, trained, source)}
    table = env_config.load_table()
    tune, valid = (WorklistData.from_table(table, s, problem.readers) for s in ("tune", "valid"))
    methods = fit_worklist_methods(tune, env_config.read_cost, problem.capacities,
                                   env_config.shift_size)
    probabilities = methods[0].probabilities(valid)
    rows_out = [{"method": cfg.algo, "kind": "agent", "accuracy": scores["accuracy"],
                 "kappa": scores["kappa"]}]
    for method in methods:
        result = simulate(method, valid, rows, problem.capacities, probabilities)
        rows_out.append({"method": method.name, "kind": method.kind,
                         "accuracy": result["accuracy"], "kappa": result["kappa"]})
    frame = pd.DataFrame(rows_out)
    write_summary(out, summary, frame, trained, [(m.name, m.kind, m) for m in methods])
    return print_comparison(f"valid split, {EVAL_SHIFTS} shifts of {env_config.shift_size} "
                            f"studies, scenario {env_config.scenario}, capacity "
                            f"{env_config.capacity}", frame, cfg, trained, out)


#: Tune shifts the triage rules are fitted on in a train_agent run, and their seed.
TRIAGE_TUNE_SHIFTS, TRIAGE_TUNE_SEED = 10, 1_000


def finish_triage(cfg: TrainAgentConfig, trained: TrainedAgent, env_config: TriageConfig,
                  out: Path, source: Path) -> int:
    """Score a triage agent on fixed valid shifts (cost per shift, waits, reads' accuracy)
    beside the triage rules fitted on tune and played on the same shifts; writes
    ``metrics.json`` and ``baselines.csv``."""
    n_shifts, seed = triage_rollout.EVAL_SHIFTS, triage_rollout.EVAL_SEED
    problem, episodes = evaluation_episodes(env_config, "valid", n_shifts, seed)
    scores = triage_scores(problem, play_policy(trained.model, problem, episodes))
    summary = {"split": "valid", "n_shifts": n_shifts, **scores,
               **run_summary(cfg, trained, source)}
    tune_problem = TriageProblem(env_config.replace(split="tune"))

    def tune_shifts() -> list:
        return [e.shift for e in start_episodes(tune_problem, TRIAGE_TUNE_SHIFTS,
                                                TRIAGE_TUNE_SEED)]

    rules = fit_rules(tune_problem.probability, tune_problem.studies.labels, tune_shifts)
    keys = ("cost_per_shift", "mean_wait_abnormal", "p90_wait_abnormal", "mean_wait_normal",
            "accuracy")
    rows = [{"method": cfg.algo, "kind": "agent", **{k: scores[k] for k in keys}}]
    for name, rule in rules.items():
        played = play_rule(rule, start_episodes(problem, n_shifts, seed))
        rule_scores = triage_scores(problem, played)
        rows.append({"method": name, "kind": "reference" if name == "clairvoyant" else "rule",
                     **{k: rule_scores[k] for k in keys}})
    frame = pd.DataFrame(rows)
    write_summary(out, summary, frame, trained,
                  [(r["method"], r["kind"], rules[r["method"]]) for r in rows[1:]])
    return print_comparison(f"valid split, {n_shifts} shifts of {env_config.minutes:g} minutes, "
                            f"profile {env_config.profile}, load {env_config.load:g}", frame,
                            cfg, trained, out)


def finish_scores(cfg: TrainAgentConfig, trained: TrainedAgent, env_config: WeightingConfig,
                  out: Path, source: Path) -> int:
    """Score an agent of any other env by :func:`agents.core.train.policy_scores` on valid;
    writes ``metrics.json``."""
    scores = policy_scores(trained.model, env_config, "valid")
    write_summary(out, {"split": "valid", **scores, **run_summary(cfg, trained, source)}, None,
                  trained)
    print(f"valid split of {cfg.env} (SYNTHETIC data; nothing clinical): {scores}")
    print(f"{cfg.algo}: {trained.env_steps} env steps, {trained.wall_time:.1f} s; wrote {out}/")
    return 0


#: How an agent of each env is scored on valid and compared (other envs: :func:`finish_scores`).
FINISHERS: dict[str, Callable[..., int]] = {ENV_ID: finish_weighting,
                                             DEFERRAL_ENV_ID: finish_deferral,
                                             WORKLIST_ENV_ID: finish_worklist,
                                             TRIAGE_ENV_ID: finish_triage}


if __name__ == "__main__":
    sys.exit(main())
