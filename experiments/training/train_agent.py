"""Train one weighting agent on frozen logits and score it against the classical baselines.

``python -m experiments.train_agent --algo {softmax-pg,ppo,a2c,sac} [--logits PATH]
[--total-timesteps N] [--seed N] [--reward ...] [--defer-cost C] [--out DIR]``

With ``--defer-cost`` the agent trains on ``MuraDeferral-v0`` instead (it also decides which
studies go to the table's reader); it is then scored on valid by the team's accuracy, kappa
and deferral rate, beside the classical deferral methods fitted on tune at the same cost.

The logits table defaults to the newest ``runs/pretrain/*/logits.parquet``, else the shipped
reference table 0. The agent trains on the ``tune`` split (which the backbones never trained
on) and is scored on ``valid``; nothing is selected on valid (the saved model is the last one).

Writes ``runs/agents/<algo>_<seed>_<time>/`` (or ``--out``): ``agent.json`` and the model
(see :mod:`agents.saved`), ``config.json`` (resolved configuration; ``hyperparameters`` holds
the algorithm's own settings), ``metrics.json`` (top level ``split``, ``accuracy``, ``kappa``,
``auroc``, ``per_body_part``, ... on valid),
``metrics.csv`` (the full table with 95% bootstrap intervals), ``baselines.csv`` (the agent and
every baseline on valid) and ``tb/`` (TensorBoard: ``rollout/ep_rew_mean``, and
``eval/accuracy``, ``eval/kappa`` on tune). ``config.json`` records which split each step used
(``splits``). Ends by printing the agent beside the baselines.

Synthetic data: results on it say nothing about clinical performance.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from agents.algos import ALGOS, parse_steps
from agents.evaluate import evaluate_policy
from agents.reporting import SPLIT_USE, baseline_evaluations, kind_of, summary_row
from agents.softmax_pg import SoftmaxPGConfig
from agents.train import policy_scores, resolve_hyperparameters, train_agent
from experiments.common.logits_source import resolve_table
from experiments.common.options import (
    BudgetOptions,
    EnvOptions,
    LogitsOptions,
    ReportOptions,
)
from mura_env.common.atomic import atomic_write_bytes
from mura_env.common.config_cli import parse_config, save_config
from mura_env.config import WeightingConfig
from mura_env.deferral.config import DeferralConfig
from mura_env.logits import LogitsTableError, MissingLogitsError


@dataclass
class TrainAgentConfig(LogitsOptions, EnvOptions, BudgetOptions, ReportOptions):
    """Train a weighting agent on MuraWeighting-v0 and compare it with the baselines."""

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
        "help": "train on MuraDeferral-v0 with this deferral cost (default: MuraWeighting-v0); "
                "the table needs a reader column"})
    reader: str | None = field(default=None, metadata={
        "help": "with --defer-cost: the reader id (default: the table's only reader)"})
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


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    cfg = parse_config(TrainAgentConfig, argv)
    try:
        table, source = resolve_table(cfg.logits)
    except (MissingLogitsError, LogitsTableError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    native = SoftmaxPGConfig(per_study=cfg.per_study)
    config_class = WeightingConfig if cfg.defer_cost is None else DeferralConfig
    try:
        env_config = config_class.from_options(cfg, logits=table)
        env_config.problem_class()(env_config)  # a table without the reader fails here, named
        settings = resolve_hyperparameters(
            cfg.algo, env_config, total_timesteps=run_steps(cfg), eval_every=cfg.eval_every,
            n_envs=cfg.n_envs, learning_rate=cfg.learning_rate, softmax_pg=native)
    except (ValueError, KeyError) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    out = cfg.out or Path("runs/agents") / f"{cfg.algo}_{cfg.seed}_{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    cfg = dataclasses.replace(cfg, logits=source, out=out,
                              total_timesteps=settings["total_timesteps"],
                              n_envs=settings["n_envs"], eval_every=settings["eval_every"],
                              learning_rate=settings["learning_rate"])
    save_config(cfg, out / "config.json", {"hyperparameters": settings, "splits": SPLIT_USE})
    print(f"training {cfg.algo} (seed {cfg.seed}) on {env_config.env_id}, {source} -> {out}")
    trained = train_agent(cfg.algo, env_config, out, seed=cfg.seed, settings=settings,
                          tensorboard=cfg.tensorboard, progress=cfg.progress)
    if cfg.defer_cost is not None:
        return finish_deferral(cfg, trained, env_config, out, source)
    ev = evaluate_policy(trained.policy, env_config, "valid", name=cfg.algo,
                         n_bootstrap=cfg.n_bootstrap, seed=cfg.seed)
    summary = {**ev.summary(), "algo": cfg.algo, "seed": cfg.seed,
               "env_steps": trained.env_steps, "wall_time": trained.wall_time,
               "logits": str(source)}
    atomic_write_bytes(out / "metrics.json", (json.dumps(summary, indent=2) + "\n").encode())
    atomic_write_bytes(out / "metrics.csv", ev.metrics.to_csv(index=False).encode())
    rows = [summary_row(ev, kind="agent")] + [
        summary_row(b_ev, kind=kind_of(baseline))
        for baseline, b_ev in baseline_evaluations(env_config, cfg.n_bootstrap)]
    frame = pd.DataFrame(rows)
    atomic_write_bytes(out / "baselines.csv", frame.to_csv(index=False).encode())
    show = frame[["method", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "kappa",
                  "kappa_ci_low", "kappa_ci_high", "auroc"]]
    print(f"valid split, {len(ev.labels)} studies (SYNTHETIC data; nothing clinical):")
    print(show.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"{cfg.algo}: {trained.env_steps} env steps, {trained.wall_time:.1f} s of training; "
          f"wrote {out}/")
    return 0


def finish_deferral(cfg: TrainAgentConfig, trained: Any, env_config: DeferralConfig, out: Path,
                    source: Path) -> int:
    """Score a deferral agent on valid beside the classical deferral methods (fitted on tune
    at the same cost); writes ``metrics.json`` and ``baselines.csv``."""
    from agents.deferral_methods import DeferralData, fit_deferral_methods

    scores = policy_scores(trained.model, env_config, "valid")
    summary = {"split": "valid", **scores, "algo": cfg.algo, "seed": cfg.seed,
               "defer_cost": env_config.defer_cost, "env_steps": trained.env_steps,
               "wall_time": trained.wall_time, "logits": str(source)}
    atomic_write_bytes(out / "metrics.json", (json.dumps(summary, indent=2) + "\n").encode())
    table = env_config.load_table()
    tune, valid = (DeferralData.from_table(table, s, env_config.reader) for s in ("tune", "valid"))
    rows = [{"method": cfg.algo, "kind": "agent", **scores}] + [
        {"method": method.name, "kind": method.kind,
         **method.decide(valid).scores(valid.studies.labels, valid.reads)}
        for method in fit_deferral_methods(tune, env_config.defer_cost)]
    frame = pd.DataFrame(rows)
    atomic_write_bytes(out / "baselines.csv", frame.to_csv(index=False).encode())
    print(f"valid split, {valid.studies.n_studies} studies, defer_cost "
          f"{env_config.defer_cost:g} (SYNTHETIC data; nothing clinical):")
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"{cfg.algo}: {trained.env_steps} env steps, {trained.wall_time:.1f} s; wrote {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
