"""The one registry of agents: the native softmax policy gradient and SB3's algorithms.

``ALGOS[name]`` is an :class:`AlgoSpec`; :func:`get_algo` looks one up with a clear error.
Training goes through :func:`agents.core.train.train_agent`, loading through
:func:`agents.core.saved.load_agent`, whatever the family and whatever the env
(``MuraWeighting-v0`` or ``MuraDeferral-v0``). Adding a Stable-Baselines3 algorithm is one
entry in :data:`ALGOS`. ``--steps ALGO=N`` on every command overrides a budget
(:func:`parse_steps`).

Default budgets (:meth:`AlgoSpec.default_timesteps`) come from tune curves only, never from
``valid``: each
agent trained longer than needed on the three reference tables of an earlier reference profile
(2,691 tune studies, 3 members; one data draw) with seeds 0 and 1 (softmax-pg 400k env steps, PPO
41k, A2C 150k; SAC, the slowest, 100k with seed 0 on tables 0 and 2), its deterministic
policy scored on ``tune`` every 2,048 to 10,240 env steps. A run's plateau is
:func:`plateau_step` (the first evaluation within 0.5 accuracy points of the run's best tune
accuracy); the budget is the smallest multiple of 8,192 env steps above the largest plateau
over the runs. Plateaus found: softmax-pg 41k to 188k env steps (it creeps up slowly on table 0),
PPO 6k to 14k, A2C 20k to 113k, SAC 65k to 70k (about 2 minutes of training per run on 2 CPU
cores; ``experiments.benchmark`` caps it lower to fit its time budget). On
``MuraDeferral-v0`` the budgets are the same but softmax-pg's, fixed beforehand from its tune
team accuracy on reference table 0. On ``MuraWorklist-v0`` (episodes of a whole shift; PPO
only) PPO's budget is 32,768 env steps (about 330 shifts), fixed beforehand; it is not a
plateau: on reference table 0 its tune system accuracy was still rising (0.838 after 16,384 steps,
0.854 after 49,152). ``experiments.worklist`` runs it at 8,192, what fits its 10 minutes beside
native PPO.
sb3-contrib's MaskablePPO and RecurrentPPO take PPO's worklist budget. Native PPO's worklist
budget, 1,048,576 env steps (64 updates of 256 envs x 64 steps), is the largest tune plateau of
``benchmarks/native_ppo_curves.py`` (the routing action with gains observed; reference tables 0,
3, 6, 9 x capacities 5% and 10% x seeds 0, 1; plateaus 655,360 to 1,048,576); its budget on the
one-study envs is fixed beforehand. Its budget in the reading room (``MuraTriage-v0``),
1,310,720 env steps (decisions; 160 updates of 128 envs x 64 steps), is the largest tune plateau
of ``benchmarks/triage_curves.py`` (reference tables 0 and 5 x arrival profiles steady and surge at
load 0.9, seed 0, 1,572,864 steps each; a plateau is the first evaluation within 2% of the run's
lowest cost; 655,360 steady, 1,179,648 and 1,310,720 surge). MaskablePPO's there is PPO's
worklist budget, fixed beforehand, not a plateau.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from agents.core.families import NATIVE, NATIVE_PPO, SB3
from agents.core.spec import AlgoSpec
from mura_env import DEFERRAL_ENV_ID as DEFERRAL
from mura_env import ENV_ID as WEIGHTING
from mura_env import TRIAGE_ENV_ID as TRIAGE
from mura_env import WORKLIST_ENV_ID as WORKLIST

#: Native PPO on an env whose actions never change what comes next (each step's reward is its
#: whole return): no discount.
BANDIT = {"gamma": 0.0}
#: Native PPO's budget on the one-study envs: fixed beforehand (64 updates of 1,024 envs x 32
#: steps), not from tune curves.
NATIVE_PPO_BUDGET = 2_097_152
#: Native PPO's budget on the worklist: where its tune curves flatten (see the module docstring).
NATIVE_PPO_WORKLIST_BUDGET = 1_048_576
#: Native PPO's budget on the reading room: where its tune curves flatten (module docstring).
NATIVE_PPO_TRIAGE_BUDGET = 1_310_720
#: Native PPO's settings on the reading room: the slot actor (every waiting study scored by one
#: shared network), observations unnormalised (already on unit scales), a discount for a shift
#: of about 300 decisions.
NATIVE_PPO_TRIAGE = {"slot_policy": True, "norm_obs": False, "gamma": 0.99,
                     "learning_rate": 1e-3, "num_steps": 64}

ALGOS: dict[str, AlgoSpec] = {
    # tune plateau (largest 188,416), 48 updates of 4,096 studies; on the deferral env, 192
    # updates of 2,048 studies (its team accuracy on tune, reference table 0)
    "softmax-pg": AlgoSpec("softmax-pg", NATIVE, {WEIGHTING: 196_608, DEFERRAL: 393_216},
                           {WEIGHTING: 4096, DEFERRAL: 2048},
                           description="native REINFORCE over per-body-part softmax preferences"),
    # tune plateau (largest 14,336), 8 rollouts of 8 envs x 256 steps
    "ppo": AlgoSpec("ppo", SB3, {WEIGHTING: 16_384, WORKLIST: 32_768}, sb3_class="PPO",
                    sb3_kwargs={"n_steps": 256, "batch_size": 256},
                    description="Stable-Baselines3 PPO"),
    # tune plateau (largest 112,640)
    "a2c": AlgoSpec("a2c", SB3, {WEIGHTING: 114_688}, sb3_class="A2C",
                    sb3_log_interval=20, description="Stable-Baselines3 A2C"),
    # tune plateau (largest 70,000); a smaller replay buffer and 500 warm-up steps (one
    # gradient step per n_envs studies)
    "sac": AlgoSpec("sac", SB3, {WEIGHTING: 73_728}, sb3_class="SAC",
                    sb3_kwargs={"learning_starts": 500, "buffer_size": 100_000},
                    sb3_log_interval=1000, description="Stable-Baselines3 SAC"),
    # no tune plateau measured: SAC's budget and settings
    "td3": AlgoSpec("td3", SB3, {WEIGHTING: 73_728}, sb3_class="TD3",
                    sb3_kwargs={"learning_starts": 500, "buffer_size": 100_000},
                    sb3_log_interval=1000, description="Stable-Baselines3 TD3"),
    # sb3-contrib, on the worklist only: PPO's budget and rollout there
    "maskable-ppo": AlgoSpec("maskable-ppo", SB3, {WORKLIST: 32_768, TRIAGE: 32_768},
                             sb3_class="MaskablePPO",
                             sb3_kwargs={"n_steps": 256, "batch_size": 256},
                             description="sb3-contrib MaskablePPO (the env's action masks)"),
    "recurrent-ppo": AlgoSpec("recurrent-ppo", SB3, {WORKLIST: 32_768},
                              sb3_class="RecurrentPPO", sb3_policy="MlpLstmPolicy",
                              sb3_kwargs={"n_steps": 256, "batch_size": 256},
                              description="sb3-contrib RecurrentPPO (an LSTM policy)"),
    "native-ppo": AlgoSpec(
        "native-ppo", NATIVE_PPO, {WEIGHTING: NATIVE_PPO_BUDGET, DEFERRAL: NATIVE_PPO_BUDGET,
                                   WORKLIST: NATIVE_PPO_WORKLIST_BUDGET,
                                   TRIAGE: NATIVE_PPO_TRIAGE_BUDGET},
        {WORKLIST: 256, TRIAGE: 128},
        settings={WEIGHTING: BANDIT, DEFERRAL: BANDIT,
                  WORKLIST: {"gamma": 1.0, "learning_rate": 3e-3, "num_steps": 64,
                             "num_minibatches": 16, "update_epochs": 2},
                  TRIAGE: NATIVE_PPO_TRIAGE},
        description="native PPO on the vector env (GAE, clipped losses, obs normalisation)"),
}


class UnknownAlgoError(KeyError):
    """An ``--algo`` name that is not in :data:`ALGOS`."""

    def __str__(self) -> str:
        return str(self.args[0])


def get_algo(name: str) -> AlgoSpec:
    """The :class:`AlgoSpec` of ``name``; raises :class:`UnknownAlgoError` listing the valid
    names."""
    try:
        return ALGOS[name]
    except KeyError:
        raise UnknownAlgoError(
            f"Unknown algo {name!r}; valid: {', '.join(ALGOS)}.") from None


def as_spec(algo: str | AlgoSpec) -> AlgoSpec:
    """``algo`` itself when it is already a registry entry, else :func:`get_algo` of the
    name (so a caller that looked the name up once passes the entry down)."""
    return algo if isinstance(algo, AlgoSpec) else get_algo(algo)


#: Accuracy below a run's best tune accuracy that still counts as its plateau.
PLATEAU_TOLERANCE = 0.005


def plateau_step(env_steps: Sequence[int], accuracy: Sequence[float],
                 tolerance: float = PLATEAU_TOLERANCE) -> int:
    """Where a training curve reaches its plateau: the env steps of the first evaluation whose
    accuracy is within ``tolerance`` of the curve's best.

    Args:
        env_steps: int ``[E]`` env steps of each evaluation, increasing.
        accuracy: float ``[E]`` the (tune) accuracy at each.
        tolerance: accuracy points below the best still on the plateau.

    Returns:
        The env steps of that evaluation; the last one's means the curve was still rising.

    Raises:
        ValueError: empty or mismatched curves.
    """
    if not len(env_steps) or len(env_steps) != len(accuracy):
        raise ValueError(f"a curve needs as many env steps as accuracies (at least one), got "
                         f"{len(env_steps)} and {len(accuracy)}.")
    best = max(accuracy)
    return int(next(s for s, a in zip(env_steps, accuracy, strict=True) if a >= best - tolerance))


def parse_steps(entries: Sequence[str], algos: Sequence[str] | None = None) -> dict[str, int]:
    """Budget overrides from ``--steps`` entries such as ``"ppo=32768"``.

    Args:
        entries: ``ALGO=N`` strings (``N`` env steps, an integer >= 1; ``_`` separators
            allowed); a later entry for the same algo wins.
        algos: if given, the algos a command runs: an override for another one is refused.

    Returns:
        ``{algo: env steps}`` for the algos named.

    Raises:
        ValueError: a malformed entry, an unknown or unused algo, or a count below 1.
    """
    out: dict[str, int] = {}
    for entry in entries:
        name, sep, value = str(entry).partition("=")
        try:
            steps = int(value.replace("_", ""))
        except ValueError:
            steps = 0
        if not sep or steps < 1:
            raise ValueError(f"--steps takes ALGO=N with N env steps >= 1 (e.g. ppo=32768), "
                             f"got {entry!r}.")
        get_algo(name.strip())
        if algos is not None and name.strip() not in algos:
            raise ValueError(f"--steps names {name.strip()!r}, which this run does not train "
                             f"(it trains {', '.join(algos)}).")
        out[name.strip()] = steps
    return out


def budgets(algos: Sequence[str], env_id: str = WEIGHTING,
            overrides: Mapping[str, int] | None = None) -> dict[str, int]:
    """Env steps per training run of each of ``algos`` on ``env_id``: the registry's
    default (:meth:`AlgoSpec.default_timesteps`) unless ``overrides`` (:func:`parse_steps`)
    names the algo.

    Raises:
        UnknownAlgoError: an algo that is not registered.
    """
    overrides = overrides or {}
    return {a: int(overrides.get(a, get_algo(a).default_timesteps(env_id))) for a in algos}
