"""The benchmark's settings: its config, the agents' budgets (and how they were fixed), what
``--quick`` sets, and its jobs (:class:`~experiments.common.benchmark.runs.Job`: one per
table x agent x seed, one per table x seed of baselines)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from agents.core.algos import ALGOS, WEIGHTING, get_algo
from experiments.common.benchmark.runs import Job
from experiments.common.job_pool import PooledRunOptions
from experiments.common.options import BudgetOptions, EnvOptions

#: The agents the benchmark runs by default (``--algos`` runs any registered one).
DEFAULT_ALGOS = ("softmax-pg", "ppo", "a2c", "sac")
#: SAC's budget here: a compute cap, a twelfth of the registry's (its tune plateau), so that the
#: whole benchmark fits in 10 minutes on 2 CPU cores with 2 workers (with 12,288 env steps, 6
#: tables x 3 seeds took 631 s there: SAC about 33 s per run, A2C 27 s). It is the default of
#: ``--steps``.
SAC_BENCHMARK_STEPS = 6_144
#: How the agents' budgets were fixed; shown in benchmark.md.
BUDGET_RULE = (
    "softmax-pg, PPO and A2C get the registry's budgets (agents.core.algos): "
    "their tune plateaus (the first evaluation within 0.5 accuracy points of a run's best "
    "tune accuracy, largest over the reference tables of the time and 2 seeds; valid not "
    "looked at). SAC gets a compute cap, "
    f"{SAC_BENCHMARK_STEPS:,} env steps instead of its tune plateau's "
    f"{ALGOS['sac'].default_timesteps():,}, so that the whole benchmark runs in under 10 "
    "minutes on 2 CPU cores; its row is not at its plateau.")
#: What ``--quick`` sets: a smoke test of the whole pipeline, not a result.
QUICK_SETTINGS = {"curve_points": 2, "n_bootstrap": 200}
#: ``--quick`` budgets (``--steps`` still overrides them), and that of any other agent.
QUICK_STEPS = {"softmax-pg": 8192, "ppo": 2048, "a2c": 400, "sac": 300}
QUICK_OTHER_STEPS = 2048
#: Rough relative cost per job, to start the longest jobs first.
_COST = {"sac": 4, "a2c": 3, "ppo": 2, "baselines": 1, "softmax-pg": 0}


@dataclass
class BenchmarkConfig(BudgetOptions, PooledRunOptions, EnvOptions):
    """Every weighting agent (over seeds) and every baseline over every reference table."""

    tables: tuple[Path, ...] | None = field(default=None, metadata={
        "help": "logits tables (default: every shipped reference table, "
                "mura_env.logits.reference)"})
    seeds: int = field(default=2, metadata={
        "help": "seeds per agent and seeded baseline (2: the 10 reference tables x 2 seeds fit "
                "in 10 minutes on 2 CPU cores)"})
    out: Path | None = field(default=None, metadata={
        "help": "output folder, must not exist yet (default runs/benchmark/<time>)"})
    algos: tuple[str, ...] = field(default=DEFAULT_ALGOS, metadata={
        "help": "agents to run (any of agents.core.algos.ALGOS)"})
    curve_points: int = field(default=8, metadata={
        "help": "tune evaluations per agent run (its training curve)"})


def resolve(cfg: BenchmarkConfig) -> BenchmarkConfig:
    """``cfg`` with ``--quick`` applied and checked.

    Raises:
        ValueError: an unknown algo, or a count below 1.
    """
    if cfg.quick:
        cfg = replace(cfg, **QUICK_SETTINGS)
    for algo in cfg.algos:
        get_algo(algo)
    agent_budgets(cfg)
    for name in ("seeds", "curve_points", "n_bootstrap", "workers", "threads"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1.")
    return cfg


def make_jobs(cfg: BenchmarkConfig, n_tables: int) -> list[Job]:
    """Every agent run and every baseline fit, the costliest first."""
    steps = agent_budgets(cfg)
    env = EnvOptions(**{f.name: getattr(cfg, f.name) for f in fields(EnvOptions)})
    jobs = [Job(t, algo, seed, steps[algo], cfg.curve_points, env)
            for t in range(n_tables) for algo in cfg.algos for seed in range(cfg.seeds)]
    jobs += [Job(t, "baselines", seed, env=env) for t in range(n_tables)
             for seed in range(cfg.seeds)]
    return sorted(jobs, key=lambda j: -_COST.get(j.method, 1))


def agent_budgets(cfg: BenchmarkConfig) -> dict[str, int]:
    """Env steps per run of each agent of ``cfg.algos``: ``--steps`` where it names the agent,
    else the ``--quick`` budgets (:data:`QUICK_STEPS`) with ``--quick``, else SAC's cap
    (:data:`SAC_BENCHMARK_STEPS`) and the registry's budgets.

    Raises:
        ValueError: a malformed ``--steps`` entry. UnknownAlgoError: an unknown agent.
    """
    defaults = ({a: QUICK_STEPS.get(a, QUICK_OTHER_STEPS) for a in cfg.algos} if cfg.quick
                else {"sac": SAC_BENCHMARK_STEPS})
    return cfg.budgets(cfg.algos, WEIGHTING, defaults)
