"""Native PPO: GAE and the clipped losses against values worked out by hand, masked actions
never sampled, running observation normalisation, save and reload, determinism per seed, and
learning the pacing shift of ``MuraWorklist-v0`` through the routing action."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces
from test_worklist_agents import EARLY, LATE, pacing_table

from agents.core.native_ppo import (
    NativePPOConfig,
    PPOAgent,
    RunningNorm,
    gae,
    ppo_losses,
    train_native_ppo,
)
from agents.core.saved import load_agent
from agents.core.train import train_agent
from agents.worklist.rollout import rollout
from mura_env.worklist.config import WorklistConfig
from mura_env.worklist.env import MuraWorklistVectorEnv
from mura_env.worklist.problem import WorklistProblem

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_gae_matches_the_recursion_worked_by_hand() -> None:
    gamma, lam = 0.9, 0.5
    rewards = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 1.0]])
    values = torch.tensor([[0.5, 1.0], [0.2, 0.4], [1.0, 0.0]])
    dones = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])  # env 0 ends with step 1
    next_value = torch.tensor([2.0, -1.0])
    adv, ret = gae(rewards, values, dones, next_value, gamma, lam)
    # env 0: step 2 bootstraps from next_value; step 1 ends its episode; step 0 reaches step 1
    d2 = 3.0 + 0.9 * 2.0 - 1.0          # 3.8
    d1 = 0.0 + 0.0 - 0.2                # no bootstrap across the episode end
    d0 = 1.0 + 0.9 * 0.2 - 0.5          # 0.68
    a2, a1 = d2, d1                     # a1 does not reach a2 (done)
    a0 = d0 + 0.9 * 0.5 * a1            # 0.68 - 0.09
    # env 1: no episode end
    e2 = 1.0 + 0.9 * -1.0 - 0.0         # 0.1
    e1 = 2.0 + 0.9 * 0.0 - 0.4          # 1.6
    e0 = 0.0 + 0.9 * 0.4 - 1.0          # -0.64
    b2 = e2
    b1 = e1 + 0.45 * b2
    b0 = e0 + 0.45 * b1
    expected = torch.tensor([[a0, b0], [a1, b1], [a2, b2]])
    assert torch.allclose(adv, expected, atol=1e-6)
    assert torch.allclose(ret, expected + values, atol=1e-6)


def test_clipped_losses_match_the_definitions_worked_by_hand() -> None:
    clip = 0.2
    old_logp = torch.zeros(4)
    ratios = torch.tensor([1.5, 0.5, 1.1, 0.7])
    new_logp = ratios.log()
    adv = torch.tensor([1.0, 1.0, -2.0, -1.0])
    # per sample: max(-A r, -A clip(r)): (-1.5, -1.2) -> -1.2; (-0.5, -0.8) -> -0.5;
    # (2.2, 2.2) -> 2.2; (0.7, 0.8) -> 0.8
    expected_policy = (-1.2 - 0.5 + 2.2 + 0.8) / 4
    new_v = torch.tensor([1.0, 0.0, 2.0, 0.5])
    old_v = torch.tensor([0.5, 0.5, 1.9, 0.5])
    returns = torch.tensor([2.0, 1.0, 0.0, 0.5])
    # clipped values: 0.5 + 0.2 = 0.7; 0.5 - 0.2 = 0.3; 1.9 + 0.1 = 2.0; 0.5
    # max((v - R)^2, (vc - R)^2): max(1, 1.69) = 1.69; max(1, 0.49) = 1; 4; 0
    expected_value = 0.5 * (1.69 + 1.0 + 4.0 + 0.0) / 4
    out = ppo_losses(new_logp, old_logp, adv, new_v, old_v, returns, clip, clip_vloss=True,
                     norm_adv=False)
    assert out["policy"].item() == pytest.approx(expected_policy, abs=1e-6)
    assert out["value"].item() == pytest.approx(expected_value, abs=1e-6)
    assert out["clipfrac"].item() == pytest.approx(0.75)  # 1.5, 0.5 and 0.7 lie outside
    kl = np.mean([(r - 1) - math.log(r) for r in (1.5, 0.5, 1.1, 0.7)])
    assert out["approx_kl"].item() == pytest.approx(kl, abs=1e-6)
    plain = ppo_losses(new_logp, old_logp, adv, new_v, old_v, returns, clip, clip_vloss=False,
                       norm_adv=False)
    assert plain["value"].item() == pytest.approx(0.5 * (1 + 1 + 4 + 0) / 4, abs=1e-6)
    normed = ppo_losses(new_logp, old_logp, adv, new_v, old_v, returns, clip, norm_adv=True)
    z = (adv - adv.mean()) / (adv.std() + 1e-8)
    by_hand = torch.max(-z * ratios, -z * ratios.clamp(0.8, 1.2)).mean()
    assert normed["policy"].item() == pytest.approx(by_hand.item(), abs=1e-6)


def test_running_norm_matches_the_mean_and_variance_of_everything_seen() -> None:
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 4)) for n in (5, 50, 7)]
    norm = RunningNorm(4)
    for b in batches:
        norm.update(torch.as_tensor(b))
    seen = np.concatenate(batches)
    assert np.allclose(norm.mean.numpy(), seen.mean(0), atol=1e-4)
    assert np.allclose(norm.var.numpy(), seen.var(0), atol=1e-3)
    z = norm(torch.as_tensor(seen[:3], dtype=torch.float32)).numpy()
    assert np.allclose(z, (seen[:3] - seen.mean(0)) / seen.std(0), atol=1e-3)


def test_masked_actions_are_never_sampled_nor_predicted() -> None:
    torch.manual_seed(0)
    agent = PPOAgent(spaces.Box(-1, 1, (3,)), spaces.Discrete(4))
    with torch.no_grad():  # make the closed actions the most likely ones unmasked
        agent.actor[-1].bias.copy_(torch.tensor([0.0, 5.0, 5.0, 0.0]))
    rng = np.random.default_rng(1)
    obs = torch.as_tensor(rng.normal(size=(5000, 3)), dtype=torch.float32)
    mask = torch.as_tensor(rng.random((5000, 4)) < 0.5)
    mask[:, 0] = True
    mask[:100, 1:] = False
    action, logp, _, _ = agent.get_action_and_value(agent.normalize(obs), mask=mask)
    assert mask[torch.arange(5000), action].all()
    assert (action[:100] == 0).all() and torch.isfinite(logp).all()
    predicted, _ = agent.predict(obs.numpy(), action_masks=mask.numpy())
    assert mask.numpy()[np.arange(5000), predicted].all()
    unmasked, _ = agent.predict(obs.numpy())
    assert np.isin(unmasked, [1, 2]).all()  # the bias decides without a mask


def test_the_categorical_head_gives_the_log_probability_and_entropy_of_its_distribution(
        ) -> None:
    torch.manual_seed(0)
    agent = PPOAgent(spaces.Box(-1, 1, (3,)), spaces.Discrete(4))
    x = torch.randn(64, 3)
    mask = torch.rand(64, 4) < 0.6
    mask[:, 0] = True
    actions = torch.where(mask, torch.arange(4), 0).max(-1).values  # an open action each
    for m in (None, mask):
        _, logp, entropy, value = agent.get_action_and_value(x, actions, m)
        reference = agent.distribution(x, m)  # torch's Categorical over the masked logits
        torch.testing.assert_close(logp, reference.log_prob(actions))
        torch.testing.assert_close(entropy, reference.entropy())
        torch.testing.assert_close(value, agent.get_value(x))


@pytest.mark.parametrize("action_space", [spaces.Box(-1, 1, (2,)), spaces.Discrete(3)])
def test_a_saved_agent_reloads_and_acts_identically(action_space, tmp_path: Path) -> None:
    torch.manual_seed(0)
    agent = PPOAgent(spaces.Box(-np.inf, np.inf, (5,)), action_space,
                     NativePPOConfig(hidden=8, init_log_std=0.3))
    obs = np.random.default_rng(0).normal(2.0, 3.0, size=(64, 5)).astype(np.float32)
    agent.norm.update(torch.as_tensor(obs))
    with torch.no_grad():
        for p in agent.parameters():
            p.add_(0.1)
    path = agent.save(tmp_path / "ppo.pt", {"env_steps": 7})
    again, extra = PPOAgent.load(path)
    assert extra == {"env_steps": 7}
    assert again.config == agent.config
    assert np.array_equal(again.predict(obs)[0], agent.predict(obs)[0])
    assert torch.equal(again.norm.mean, agent.norm.mean)
    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="native PPO agent file"):
        PPOAgent.load(tmp_path / "bad.pt")


def test_the_slot_actor_scores_a_slot_alike_wherever_it_stands(tmp_path: Path) -> None:
    head, slot, n = 3, 4, 5
    torch.manual_seed(0)
    agent = PPOAgent(spaces.Box(-np.inf, np.inf, (head + n * slot,)), spaces.Discrete(n),
                     NativePPOConfig(hidden=8, slot_head=head, slot_size=slot, norm_obs=False))
    with torch.no_grad():
        for p in agent.actor.parameters():
            p.add_(0.3)
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(6, head + n * slot)).astype(np.float32)
    order = np.array([3, 0, 4, 1, 2])
    moved = obs.copy()
    moved[:, head:] = obs[:, head:].reshape(6, n, slot)[:, order].reshape(6, -1)
    logits = agent.actor(torch.as_tensor(obs))
    assert torch.allclose(agent.actor(torch.as_tensor(moved)), logits[:, order], atol=1e-6)
    changed = obs.copy()
    changed[:, 0] += 1.0  # the head reaches every slot's score
    assert not torch.allclose(agent.actor(torch.as_tensor(changed)), logits)
    again, _ = PPOAgent.load(agent.save(tmp_path / "slots.pt"))
    assert np.array_equal(again.predict(obs)[0], agent.predict(obs)[0])
    with pytest.raises(ValueError, match="slot actor"):
        PPOAgent(spaces.Box(-np.inf, np.inf, (head + n * slot + 1,)), spaces.Discrete(n),
                 NativePPOConfig(slot_head=head, slot_size=slot))


def _routing_config(**changes) -> WorklistConfig:
    return WorklistConfig(logits=pacing_table(), split="tune", sampling="sweep",
                          shift_size=EARLY + LATE, capacity=LATE / (EARLY + LATE),
                          action="routing", **changes)


def test_learns_to_save_the_reads_for_the_end_of_the_pacing_shift() -> None:
    config = _routing_config()
    env = MuraWorklistVectorEnv(64, config=config)
    torch.manual_seed(0)
    agent = PPOAgent(env.single_observation_space, env.single_action_space,
                     NativePPOConfig(num_envs=64, num_steps=20, gamma=1.0, learning_rate=3e-3,
                                     num_minibatches=4))
    train_native_ppo(agent, env, 60_000, seed=0)
    problem = WorklistProblem(config)
    answers = rollout(agent, problem, np.arange(EARLY + LATE)[None])
    # reads only the last five (the studies the ensemble gets wrong): every study right
    assert (answers["answered_by"][0, :EARLY] == -1).all()
    assert (answers["answered_by"][0, EARLY:] == 0).all()
    assert answers["correct"].all()


def test_trains_through_the_one_route_deterministically_and_reloads(tmp_path: Path) -> None:
    config = _routing_config()
    runs = [train_agent("native-ppo", config, tmp_path / name, total_timesteps=2_048,
                        n_envs=32, seed=3, tensorboard=True) for name in ("a", "b")]
    first, second = (r.model.state_dict() for r in runs)
    assert all(torch.equal(first[k], second[k]) for k in first)
    other = train_agent("native-ppo", config, None, total_timesteps=2_048, n_envs=32, seed=4)
    assert not all(torch.equal(first[k], other.model.state_dict()[k]) for k in first)
    loaded = load_agent(tmp_path / "a", config.load_table())
    problem = WorklistProblem(config)
    shifts = np.arange(EARLY + LATE)[None]
    assert np.array_equal(rollout(loaded.model, problem, shifts)["answered_by"],
                          rollout(runs[0].model, problem, shifts)["answered_by"])
    assert runs[0].env_steps >= 2_048
    assert any((tmp_path / "a" / "tb").glob("events.out.tfevents.*"))
