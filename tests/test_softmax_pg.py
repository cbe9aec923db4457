"""The native softmax policy-gradient agent: learning, API, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from agent_fixtures import specialist_table

from agents.core.evaluate import evaluate_policy
from agents.weighting.softmax_pg import SoftmaxPGAgent, SoftmaxPGConfig, train_softmax_pg
from mura_env.constants import BODY_PARTS
from mura_env.weighting.config import WeightingConfig
from mura_env.weighting.vector_env import MuraWeightingVectorEnv


@pytest.fixture(scope="module")
def trained_on_specialists():
    table = specialist_table()
    cfg = SoftmaxPGConfig(num_envs=2048)
    env = MuraWeightingVectorEnv(cfg.num_envs, logits=table, split="tune")
    torch.manual_seed(0)
    agent = SoftmaxPGAgent(env.problem.n_models, cfg)
    result = train_softmax_pg(agent, env, total_timesteps=2048 * 80, seed=0)
    return table, agent, result


def test_reaches_98_percent_and_weights_each_part_specialist(trained_on_specialists):
    table, agent, result = trained_on_specialists
    ev = evaluate_policy(lambda o: agent.predict(o)[0], WeightingConfig(logits=table),
                         split="tune", n_bootstrap=0)
    assert ev.value("accuracy") >= 0.98
    for part in BODY_PARTS:
        row = ev.mean_weights.loc[part]
        assert row.idxmax() == f"m_{part}"
        assert row.max() > 0.5
    assert result["env_steps"] == 2048 * 80


def test_get_action_and_value_shapes_and_log_prob(trained_on_specialists):
    _, agent, _ = trained_on_specialists
    obs = torch.as_tensor(np.eye(21, dtype=np.float32)[:5])  # 2K + 7 = 21 columns
    action, logp, entropy, value = agent.get_action_and_value(obs)
    assert action.shape == (5, 7) and logp.shape == entropy.shape == value.shape == (5,)
    assert (action.abs() < 1).all()  # tanh of Gaussian preferences: inside the action box
    # scoring a given action returns its log-density under the tanh-squashed Gaussian over
    # preferences (torch's own TanhTransform as the reference)
    squashed = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(agent.mean_preferences(obs), agent.std()),
        [torch.distributions.transforms.TanhTransform()])
    _, logp2, _, _ = agent.get_action_and_value(obs, action)
    torch.testing.assert_close(logp2, squashed.log_prob(action).sum(-1), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(logp, logp2, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="observations must have shape"):
        agent.get_action_and_value(torch.zeros(2, 20))


def test_deterministic_predict_is_tanh_of_the_part_preferences(trained_on_specialists):
    _, agent, _ = trained_on_specialists
    obs = np.zeros((7, 21), dtype=np.float32)
    obs[np.arange(7), 14 + np.arange(7)] = 1.0
    actions, state = agent.predict(obs)
    assert state is None and actions.dtype == np.float32
    np.testing.assert_allclose(actions, torch.tanh(agent.preferences).detach().numpy(),
                               rtol=1e-6)
    single, _ = agent.predict(obs[0])
    np.testing.assert_array_equal(single, actions[0])
    assert np.all(np.abs(actions) <= 1.0)


def test_same_seed_same_agent():
    table = specialist_table()

    def run():
        cfg = SoftmaxPGConfig(num_envs=256, per_study=True)
        env = MuraWeightingVectorEnv(cfg.num_envs, logits=table, split="tune")
        torch.manual_seed(5)
        agent = SoftmaxPGAgent(7, cfg)
        train_softmax_pg(agent, env, total_timesteps=256 * 10, seed=5)
        return agent.state_dict()

    a, b = run(), run()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_save_load_round_trip_gives_identical_actions(tmp_path, trained_on_specialists):
    _, agent, _ = trained_on_specialists
    path = agent.save(tmp_path / "model.pt", {"env_steps": 7})
    loaded, extra = SoftmaxPGAgent.load(path)
    assert extra == {"env_steps": 7}
    obs = np.random.default_rng(0).normal(size=(50, 21)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(obs)[0], agent.predict(obs)[0])
    assert loaded.config == agent.config


def test_load_refuses_other_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="No softmax-pg agent file"):
        SoftmaxPGAgent.load(tmp_path / "missing.pt")
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a softmax-pg agent file"):
        SoftmaxPGAgent.load(tmp_path / "other.pt")


def test_exploration_is_gaussian_over_preferences():
    agent = SoftmaxPGAgent(3, SoftmaxPGConfig(init_std=0.5, learn_std=False))
    with torch.no_grad():
        agent.preferences[2] = torch.tensor([2.0, -1.0, 0.0])
    obs = torch.zeros(20_000, 13)
    obs[:, 6 + 2] = 1.0  # body part 2
    torch.manual_seed(0)
    action, *_ = agent.get_action_and_value(obs)
    z = torch.atanh(action.double())
    torch.testing.assert_close(z.mean(0), torch.tensor([2.0, -1.0, 0.0], dtype=torch.float64),
                               atol=0.02, rtol=0)
    torch.testing.assert_close(z.std(0), torch.full((3,), 0.5, dtype=torch.float64),
                               atol=0.02, rtol=0)


def test_one_env_is_refused_instead_of_nan():
    table = specialist_table(per_cell=1)
    env = MuraWeightingVectorEnv(1, logits=table, split="tune")
    agent = SoftmaxPGAgent(7, SoftmaxPGConfig(num_envs=1))
    with pytest.raises(ValueError, match="at least 2 studies per update"):
        train_softmax_pg(agent, env, total_timesteps=10)
    agent = SoftmaxPGAgent(7, SoftmaxPGConfig(num_envs=1, normalize_advantage=False))
    train_softmax_pg(agent, env, total_timesteps=10)
    assert all(torch.isfinite(p).all() for p in agent.parameters())


class ScriptedEnv:
    """A vector env of one-step episodes whose rewards are scripted per update."""

    def __init__(self, num_envs: int, rewards: list[float]) -> None:
        self.num_envs, self.rewards, self.calls = num_envs, rewards, 0
        self.obs = np.zeros((num_envs, 21), dtype=np.float32)
        self.obs[:, 14] = 1.0  # every study is an ELBOW

    def reset(self, seed=None):
        return self.obs, {}

    def step(self, actions):
        reward = np.full(self.num_envs, self.rewards[self.calls])
        self.calls += 1
        done = np.ones(self.num_envs, dtype=bool)
        return self.obs, reward, done, np.zeros_like(done), {}


def test_ep_rew_mean_averages_the_last_finished_episodes():
    class Recorder:
        def __init__(self):
            self.values = []

        def add_scalar(self, tag, value, step):
            if tag == "rollout/ep_rew_mean":
                self.values.append(value)

    rec = Recorder()
    agent = SoftmaxPGAgent(7, SoftmaxPGConfig(num_envs=64))
    train_softmax_pg(agent, ScriptedEnv(64, [1.0, 0.0, 0.0]), total_timesteps=64 * 3,
                     writer=rec)
    # window of max(100, 64) = 100 episodes: 64 ones; then the last 36 ones and 64 zeros; ...
    assert rec.values == pytest.approx([1.0, 0.36, 0.0])


def test_sampled_log_prob_stays_finite_when_tanh_saturates():
    agent = SoftmaxPGAgent(3, SoftmaxPGConfig(init_std=0.5, learn_std=False))
    with torch.no_grad():
        agent.preferences[0] = torch.tensor([12.0, 5.0, 0.0])
    obs = torch.zeros(64, 13)
    obs[:, 6] = 1.0
    torch.manual_seed(0)
    _, logp, _, _ = agent.get_action_and_value(obs)
    assert torch.isfinite(logp).all()


def test_load_wraps_unreadable_files(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a torch file at all")
    with pytest.raises(ValueError, match="cannot be read as a softmax-pg agent file"):
        SoftmaxPGAgent.load(tmp_path / "junk.pt")
