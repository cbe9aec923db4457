"""Agents on ``MuraWorklist-v0``: PPO, trained through the one training route, learns to save a
radiologist's reads for the studies that need them when those come late in the shift."""

from __future__ import annotations

import numpy as np
import pytest
from env_fixtures import studies_frame

from agents.core.saved import load_agent
from agents.core.train import train_agent
from agents.worklist.rollout import rollout, shift_scores
from mura_env.logits import LogitsTable
from mura_env.readers import SimulatedReader
from mura_env.worklist.config import WorklistConfig
from mura_env.worklist.problem import WorklistProblem

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: The pacing shift: ``EARLY`` studies the ensemble gets right, then ``LATE`` it gets wrong.
EARLY, LATE = 15, 5


def pacing_table() -> LogitsTable:
    """A tune split that is one shift: 20 WRIST studies with identical logits (every member
    gives p = 0.73, so the ensemble answers "abnormal"), abnormal in arrival positions 0-14
    and normal in 15-19; a perfect reader. Only the position in the shift tells the studies
    apart, so a policy that saves its reads for the last five must use the share of the
    shift left, not the study."""
    n = EARLY + LATE
    labels = [1] * EARLY + [0] * LATE
    logits = np.tile(np.array([[0.0, 1.0]], dtype=np.float32), (n, 2, 1))
    table = LogitsTable.from_arrays(studies_frame(["WRIST"] * n, labels, ["tune"] * n),
                                    ["m0", "m1"], logits)
    perfect = SimulatedReader({"WRIST": 1.0}, {"WRIST": 1.0}, reader_id="perfect")
    return table.with_simulated_reader(perfect)


def _config(table: LogitsTable) -> WorklistConfig:
    return WorklistConfig(logits=table, split="tune", sampling="sweep",
                          shift_size=EARLY + LATE, capacity=LATE / (EARLY + LATE))


class FirstComeFirstServed:
    """Sends every study to the reader (who reads until full), uniform weights."""

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]:
        return np.tile(np.array([0.0, 0.0, 1.0], dtype=np.float32), (len(obs), 1)), None




def test_ppo_learns_to_save_the_reads_for_the_end_of_the_shift() -> None:
    """First come, first served spends the five reads on studies the ensemble already gets
    right: 15/20 = 0.75. Reading at random a quarter of the time is right on about 0.81 on
    average. 0.90 needs at least three of the five reads kept for the last five studies, which
    only a policy that waits (reads nothing while the shift is young) reaches; the optimum is
    1.0."""
    table = pacing_table()
    config = _config(table)
    problem = WorklistProblem(config)
    rows = np.arange(EARLY + LATE)[None, :]  # the shift: the tune studies in table order
    fcfs = shift_scores(rollout(FirstComeFirstServed(), problem, rows), 1)
    assert fcfs["accuracy"] == pytest.approx(EARLY / (EARLY + LATE))
    trained = train_agent("ppo", config, None, total_timesteps=49_152, seed=0,
                          tensorboard=False)
    answers = rollout(trained.model, problem, rows)
    scores = shift_scores(answers, 1)
    late_reads = int((answers["answered_by"][0, EARLY:] == 0).sum())
    assert scores["accuracy"] >= 0.9, (scores, answers["answered_by"])
    assert late_reads >= 3


def test_maskable_ppo_trains_on_the_routing_action_and_never_asks_a_full_reader(
        tmp_path) -> None:
    """sb3-contrib's MaskablePPO through the one route: it reads the env's action masks while
    training and is given them when scored, so it never picks a reader without reads left."""
    config = _config(pacing_table()).replace(action="routing")
    trained = train_agent("maskable-ppo", config, tmp_path / "run", total_timesteps=1_024,
                          n_envs=2, seed=0, tensorboard=False)
    problem = WorklistProblem(config)
    state_rows = np.arange(EARLY + LATE)[None, :]
    asked_full = []

    class Watch:
        """Records whether the policy ever asks for the reader while it is full."""

        def predict(self, obs, deterministic=True, action_masks=None):
            actions, _ = trained.model.predict(obs, deterministic=deterministic,
                                               action_masks=action_masks)
            asked_full.append(bool(((actions == 1) & ~action_masks[:, 1]).any()))
            return actions, None

    answers = rollout(Watch(), problem, state_rows)
    assert len(asked_full) == EARLY + LATE and not any(asked_full)
    assert (answers["answered_by"] == 0).sum() <= LATE
    loaded = load_agent(tmp_path / "run", config.load_table())
    assert type(loaded.model).__name__ == "MaskablePPO"


def test_recurrent_ppo_trains_and_carries_its_memory_through_a_shift() -> None:
    """sb3-contrib's RecurrentPPO (an LSTM policy, for observations without the shift's mix)
    through the one route; scoring carries its LSTM state from study to study."""
    config = _config(pacing_table())
    trained = train_agent("recurrent-ppo", config, None, total_timesteps=512, n_envs=2, seed=0,
                          tensorboard=False)
    problem = WorklistProblem(config)
    states = []

    class Watch:
        """Records the state the rollout hands the policy at each study."""

        def predict(self, obs, state=None, episode_start=None, deterministic=True):
            states.append((state, episode_start.copy()))
            return trained.model.predict(obs, state=state, episode_start=episode_start,
                                         deterministic=deterministic)

    rollout(Watch(), problem, np.arange(EARLY + LATE)[None, :])
    assert states[0][0] is None and states[0][1].all()
    assert all(s is not None and not start.any() for s, start in states[1:])
