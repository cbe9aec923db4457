"""What an agent of the registry is: :class:`AlgoSpec`, its entry in
:data:`agents.core.algos.ALGOS`, and :class:`AgentFamily`, the base of the families that
train, save and load it (:mod:`agents.core.families`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mura_env import ENV_ID as WEIGHTING

if TYPE_CHECKING:
    from agents.weighting.softmax_pg import SoftmaxPGConfig
    from mura_env.weighting.config import WeightingConfig

#: ``checkpoint(model, env_steps)`` and ``evaluate(model) -> {name: value}``, called during
#: training (see :class:`agents.core.train.TrainingHooks`).
Checkpoint = Callable[[Any, int], None]
Evaluate = Callable[[Any], dict[str, float]]


@dataclass(frozen=True)
class AgentFamily:
    """Base class of a family: hyper-parameters, training, saving, loading.

    Attributes:
        name: the family's name (``"native"``, ``"sb3"``).
        model_file: file name of a saved model in a run folder.
        default_n_envs: env copies when neither the registry nor the user says.
    """

    name: str
    model_file: str
    default_n_envs: int

    def algorithm_settings(self, spec: AlgoSpec, config: WeightingConfig, n_envs: int,
                           learning_rate: float | None, native: SoftmaxPGConfig | None
                           ) -> dict[str, Any]:
        """The algorithm's own resolved settings (plain JSON values), what :meth:`train` uses
        and ``agent.json`` records; ``learning_rate`` None keeps the default."""
        raise NotImplementedError

    def train(self, spec: AlgoSpec, config: WeightingConfig, settings: dict[str, Any],
              seed: int, tb_dir: Path | None, evaluate: Evaluate, eval_every: int,
              checkpoint: Checkpoint, progress: bool) -> tuple[Any, dict[str, Any]]:
        """Train on ``config``'s env (its ``split``) with ``settings`` (see
        :func:`agents.core.train.resolve_hyperparameters`); returns ``(model, {"env_steps",
        "wall_time", "history"})``."""
        raise NotImplementedError

    def save(self, model: Any, path: Path, env_steps: int) -> None:
        """Save ``model`` to ``path`` atomically."""
        raise NotImplementedError

    def load(self, spec: AlgoSpec, path: str | os.PathLike[str], env_id: str) -> Any:
        """The model saved at ``path`` by an agent ``spec`` trained on ``env_id``; it has
        ``predict(obs, deterministic=True) -> (actions, state)``."""
        raise NotImplementedError



@dataclass(frozen=True)
class AlgoSpec:
    """A registry entry: everything that tells one agent from another.

    Attributes:
        name: the ``--algo`` name.
        family: the :class:`~agents.core.families.AgentFamily` that trains, saves and loads it.
        timesteps: default env steps (answered studies) of a training run, per env id
            (see the module docstring for how each was fixed on tune curves).
        n_envs: default env copies per env id (None: the family's own default).
        sb3_class: the class name in Stable-Baselines3 or sb3-contrib (SB3 family only).
        sb3_policy: the policy name the class is built with (SB3 family only).
        sb3_kwargs: constructor arguments that differ from SB3's defaults (SB3 family only).
        sb3_log_interval: ``learn(log_interval=...)`` (iterations for on-policy algorithms,
            episodes for off-policy ones; SB3 family only).
        settings: per env id, the algorithm's settings that differ from its defaults there
            (native PPO: fields of :class:`agents.core.native_ppo.NativePPOConfig`).
        description: one line for help texts and tables.
    """

    name: str
    family: AgentFamily
    timesteps: Mapping[str, int]
    n_envs: Mapping[str, int] = field(default_factory=dict)
    sb3_class: str | None = None
    sb3_policy: str = "MlpPolicy"
    sb3_kwargs: Mapping[str, Any] = field(default_factory=dict)
    sb3_log_interval: int = 1
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    description: str = ""

    @property
    def model_file(self) -> str:
        """File name of the saved model inside an agent run folder."""
        return self.family.model_file

    def default_timesteps(self, env_id: str = WEIGHTING) -> int:
        """The default budget on ``env_id`` (env steps): the env's own, else the one on
        ``MuraWeighting-v0``.

        Raises:
            ValueError: the registry has neither (give a budget: ``--steps ALGO=N``)."""
        budget = self.timesteps.get(env_id, self.timesteps.get(WEIGHTING))
        if budget is None:
            raise ValueError(f"{self.name} has no default budget on {env_id} (it has on "
                             f"{', '.join(self.timesteps)}); give one: --steps "
                             f"{self.name}=N.")
        return int(budget)

    def default_n_envs(self, env_id: str = WEIGHTING) -> int:
        """The default number of env copies on ``env_id``."""
        return int(self.n_envs.get(env_id, self.family.default_n_envs))
