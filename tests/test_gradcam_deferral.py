"""Grad-CAM panels of a deferral agent: its weights, and which studies it hands to the reader."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from test_gradcam import MODELS, _gradcam, tiny_run  # noqa: F401  (tiny_run: a fixture)

from agents.core.saved import load_agent
from agents.core.train import train_agent
from agents.deferral.softmax_pg import DeferralPGAgent
from mura_env.deferral.config import DeferralConfig
from mura_env.logits import LogitsTable
from mura_env.logits.study_set import StudySet


def test_a_deferral_agent_shows_which_studies_it_defers(tiny_run: Path,  # noqa: F811
                                                        tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    table = LogitsTable.load(run / "logits.parquet").with_simulated_reader()
    table.save(run / "logits.parquet")
    agent_dir = tmp_path / "agent"
    train_agent("softmax-pg", DeferralConfig(logits=table, defer_cost=0.0), agent_dir,
                total_timesteps=4096, n_envs=512, tensorboard=False)
    # make the saved policy defer the studies of some body parts and keep the others
    model_file = agent_dir / "model.pt"
    model, extra = DeferralPGAgent.load(model_file)
    with torch.no_grad():
        model.defer_slope.zero_()
        model.defer_bias.copy_(torch.tensor([5.0, -5.0] * 3 + [5.0]))
    model.save(model_file, extra)
    agent = load_agent(agent_dir)
    assert agent.deferral
    out = tmp_path / "o"
    assert _gradcam(run, out, "--agent", str(agent_dir), "--n", "3") == 0
    panels = pd.read_csv(out / "panels.csv")
    studies = StudySet.select(table)
    rows = [list(studies.study_ids).index(s) for s in panels["study_id"]]
    deferred = agent.deferred(studies.observations[rows])
    reads = table.reads("radiologist_3")[rows]
    for note, d, read in zip(panels["deferral"], deferred, reads, strict=True):
        expected = (f"deferred to the reader (read: {'abnormal' if read else 'normal'}"
                    if d else "kept by the ensemble")
        assert note.startswith(expected)
    assert deferred.any() and not deferred.all()  # --n 3 picks studies of several parts
    index = (out / "index.html").read_text()
    assert "deferred to the reader" in index and "kept by the ensemble" in index
    expected_weights = agent.weights(studies.observations[rows])
    np.testing.assert_allclose(panels[[f"{m}.weight" for m in MODELS]], expected_weights,
                               atol=1e-6)
