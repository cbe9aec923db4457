"""Agent families: how the agents of one kind are trained, saved and loaded.

An :class:`AgentFamily` is the one place that knows a family's model objects. The registry
(:mod:`agents.core.algos`) gives every agent its family; :func:`agents.core.train.train_agent` and
:func:`agents.core.saved.load_agent` call the family's methods and never test which one it is.
Which env an agent trains on is data too: the env configuration names its env classes
(:meth:`mura_env.weighting.config.WeightingConfig.vector_env_class`), and the native family picks
the agent class registered for its env id.

* :data:`NATIVE`: the softmax policy gradient (:mod:`agents.weighting.softmax_pg`; with the
  Bernoulli defer head of :mod:`agents.deferral.softmax_pg` on ``MuraDeferral-v0``) on the native
  vector env.
* :data:`NATIVE_PPO`: PPO (:mod:`agents.core.native_ppo`) on the native vector env of any env.
* :data:`SB3`: Stable-Baselines3 and sb3-contrib algorithms (:mod:`agents.core.sb3`) on
  SB3-vectorised single envs.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.core.schedule import train_with_writer
from agents.core.spec import AgentFamily, AlgoSpec, Checkpoint, Evaluate
from mura_env import DEFERRAL_ENV_ID, ENV_ID

if TYPE_CHECKING:
    from agents.weighting.softmax_pg import SoftmaxPGAgent, SoftmaxPGConfig
    from mura_env.weighting.config import WeightingConfig


class NativeFamily(AgentFamily):
    """The native softmax policy gradient: the agent class of the env id, trained by
    :func:`agents.weighting.softmax_pg.train_softmax_pg` on the native vector env."""

    name = "native"
    model_file = "model.pt"
    default_n_envs = 4096

    @staticmethod
    def agent_class(env_id: str) -> type[SoftmaxPGAgent]:
        """The agent class for ``env_id``: :class:`~agents.weighting.softmax_pg.SoftmaxPGAgent`, or
        :class:`~agents.deferral.softmax_pg.DeferralPGAgent` on ``MuraDeferral-v0``."""
        from agents.deferral.softmax_pg import DeferralPGAgent
        from agents.weighting.softmax_pg import SoftmaxPGAgent

        classes: dict[str, type[SoftmaxPGAgent]] = {ENV_ID: SoftmaxPGAgent,
                                                     DEFERRAL_ENV_ID: DeferralPGAgent}
        return classes[env_id]

    def algorithm_settings(self, spec: AlgoSpec, config: WeightingConfig, n_envs: int,
                           learning_rate: float | None, native: SoftmaxPGConfig | None
                           ) -> dict[str, Any]:
        """The agent's whole config: ``native``'s fields (defaults when None), ``num_envs``
        ``n_envs``, the learning rate, and the env settings its class reads (e.g. the
        deferral agent's ``softmax_scale``)."""
        from agents.weighting.softmax_pg import check_batch_size

        agent_class = self.agent_class(config.env_id)
        config_class = agent_class.config_class
        given = dataclasses.asdict(native) if native is not None else {}
        names = {f.name for f in dataclasses.fields(config_class)}
        values = {k: v for k, v in given.items() if k in names}
        values.update({name: getattr(config, name) for name in agent_class.env_settings})
        values["num_envs"] = int(n_envs)
        if learning_rate is not None:
            values["learning_rate"] = float(learning_rate)
        cfg = config_class(**values)
        check_batch_size(cfg.num_envs, cfg)
        return dataclasses.asdict(cfg)

    def train(self, spec: AlgoSpec, config: WeightingConfig, settings: dict[str, Any],
              seed: int, tb_dir: Path | None, evaluate: Evaluate, eval_every: int,
              checkpoint: Checkpoint, progress: bool) -> tuple[Any, dict[str, Any]]:
        """Build the agent (seeded) and its vector env, and train with REINFORCE."""
        import torch

        from agents.weighting.softmax_pg import train_softmax_pg

        agent_class = self.agent_class(config.env_id)
        cfg = agent_class.config_class(**settings["algorithm"])
        env = config.vector_env_class()(cfg.num_envs, config=config)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            agent = agent_class(env.problem.n_models, cfg)
        result = train_with_writer(train_softmax_pg, agent, env, settings, seed, tb_dir,
                                   evaluate, eval_every, checkpoint, progress)
        return agent, result

    def save(self, model: Any, path: Path, env_steps: int) -> None:
        """The native agent's own ``save`` (softmax-pg's, native PPO's), with the env steps."""
        model.save(path, {"env_steps": int(env_steps)})

    def load(self, spec: AlgoSpec, path: str | os.PathLike[str], env_id: str) -> Any:
        """The env's agent class loads its file."""
        return self.agent_class(env_id).load(path)[0]


class NativePPOFamily(AgentFamily):
    """Native PPO (:mod:`agents.core.native_ppo`) on the env's native vector env."""

    def algorithm_settings(self, spec: AlgoSpec, config: WeightingConfig, n_envs: int,
                           learning_rate: float | None, native: SoftmaxPGConfig | None
                           ) -> dict[str, Any]:
        """:class:`~agents.core.native_ppo.NativePPOConfig`'s fields: its defaults, the
        registry's settings for the env (``spec.settings``; ``"slot_policy": True`` there takes
        ``slot_head`` and ``slot_size`` from the env problem's ``slot_layout``), ``num_envs``
        ``n_envs`` and the learning rate when given (``native``, softmax-pg's, is not read)."""
        from agents.core.native_ppo import NativePPOConfig

        values = dict(spec.settings.get(config.env_id, {}))
        if values.pop("slot_policy", False):  # the env's observation layout
            values["slot_head"], values["slot_size"] = config.problem_class()(config).slot_layout
        values["num_envs"] = int(n_envs)
        if learning_rate is not None:
            values["learning_rate"] = float(learning_rate)
        return dataclasses.asdict(NativePPOConfig(**values))

    def train(self, spec: AlgoSpec, config: WeightingConfig, settings: dict[str, Any],
              seed: int, tb_dir: Path | None, evaluate: Evaluate, eval_every: int,
              checkpoint: Checkpoint, progress: bool) -> tuple[Any, dict[str, Any]]:
        """Build the agent (seeded) for the native vector env's spaces and train it
        (:func:`agents.core.native_ppo.train_native_ppo`)."""
        import torch

        from agents.core.native_ppo import NativePPOConfig, PPOAgent, train_native_ppo

        cfg = NativePPOConfig(**settings["algorithm"])
        env = config.vector_env_class()(cfg.num_envs, config=config)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            agent = PPOAgent(env.single_observation_space, env.single_action_space, cfg)
            result = train_with_writer(train_native_ppo, agent, env, settings, seed, tb_dir,
                                       evaluate, eval_every, checkpoint, progress)
        return agent, result

    save = NativeFamily.save

    def load(self, spec: AlgoSpec, path: str | os.PathLike[str], env_id: str) -> Any:
        """:meth:`agents.core.native_ppo.PPOAgent.load`."""
        from agents.core.native_ppo import PPOAgent

        return PPOAgent.load(path)[0]


class SB3Family(AgentFamily):
    """Stable-Baselines3 algorithms with ``MlpPolicy`` (:mod:`agents.core.sb3`)."""

    def algorithm_settings(self, spec: AlgoSpec, config: WeightingConfig, n_envs: int,
                           learning_rate: float | None, native: SoftmaxPGConfig | None
                           ) -> dict[str, Any]:
        """The SB3 constructor arguments (:func:`agents.core.sb3.sb3_settings`)."""
        from agents.core.sb3 import sb3_settings

        return sb3_settings(spec, learning_rate)

    def train(self, spec: AlgoSpec, config: WeightingConfig, settings: dict[str, Any],
              seed: int, tb_dir: Path | None, evaluate: Evaluate, eval_every: int,
              checkpoint: Checkpoint, progress: bool) -> tuple[Any, dict[str, Any]]:
        """:func:`agents.core.sb3.train_sb3` on SB3-vectorised single envs of ``config``."""
        from agents.core.sb3 import train_sb3

        return train_sb3(spec, config, settings["total_timesteps"], seed, tb_dir,
                         n_envs=settings["n_envs"], algorithm=settings["algorithm"],
                         eval_fn=evaluate, eval_every=eval_every, checkpoint_fn=checkpoint,
                         progress=progress)

    def save(self, model: Any, path: Path, env_steps: int) -> None:
        """:func:`agents.core.sb3.save_sb3`."""
        from agents.core.sb3 import save_sb3

        save_sb3(model, path)

    def load(self, spec: AlgoSpec, path: str | os.PathLike[str], env_id: str) -> Any:
        """:func:`agents.core.sb3.load_sb3`."""
        from agents.core.sb3 import load_sb3

        return load_sb3(spec, path)


NATIVE = NativeFamily("native", "model.pt", 4096)
NATIVE_PPO = NativePPOFamily("native-ppo", "ppo.pt", 1024)
SB3 = SB3Family("sb3", "model.zip", 8)
