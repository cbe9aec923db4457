"""Registration: make, make_vec and the ``module:`` form from fresh interpreters; import stays
light; a clear error without a reference table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from env_fixtures import tiny_table

REPO = Path(__file__).resolve().parents[1]


def _run(code: str, tmp_path: Path) -> dict:
    """Run ``code`` in a fresh interpreter (cwd: the repo) and parse the JSON it prints last."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def table_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_table(k=3).save(tmp_path_factory.mktemp("reg") / "table.parquet")


def test_import_is_light(tmp_path: Path) -> None:
    out = _run("""
        import json, sys
        import mura_env
        light = {"torch": "torch" in sys.modules, "env": "mura_env.weighting.env" in sys.modules,
                 "registered": "MuraWeighting-v0" in __import__("gymnasium").registry}
        import mura_env.logits.reference
        light["torch_after_reference"] = "torch" in sys.modules
        print(json.dumps(light))
    """, tmp_path)
    assert out == {"torch": False, "env": False, "registered": True,
                   "torch_after_reference": False}


def test_make_and_make_vec_after_import(table_path: Path, tmp_path: Path) -> None:
    out = _run(f"""
        import json
        import gymnasium as gym
        import numpy as np
        import mura_env
        env = gym.make("MuraWeighting-v0", logits={str(table_path)!r})
        obs, _ = env.reset(seed=0)
        _, r, term, trunc, info = env.step(env.action_space.sample())
        vec = gym.make_vec("MuraWeighting-v0", num_envs=4096, logits={str(table_path)!r})
        vobs, _ = vec.reset(seed=0)
        _, vr, vterm, _, vinfo = vec.step(vec.action_space.sample())
        print(json.dumps({{
            "single": type(env.unwrapped).__name__, "obs": list(obs.shape),
            "term": term, "trunc": trunc, "reward": float(r),
            "vector": type(vec).__qualname__, "vobs": list(vobs.shape),
            "vterm": bool(vterm.all()), "vrewards": int(vr.shape[0]),
            "spec": vec.spec.id, "final": sorted(vinfo)}}))
    """, tmp_path)
    assert out["single"] == "MuraWeightingEnv" and out["obs"] == [13]
    assert out["term"] is True and out["trunc"] is False and out["reward"] in (0.0, 1.0)
    assert out["vector"] == "MuraWeightingVectorEnv" and out["vobs"] == [4096, 13]
    assert out["vterm"] and out["vrewards"] == 4096 and out["spec"] == "MuraWeighting-v0"
    assert out["final"] == ["_final_info", "_final_obs", "final_info", "final_obs"]


def test_module_form_without_prior_import(table_path: Path, tmp_path: Path) -> None:
    out = _run(f"""
        import json, sys
        import gymnasium as gym
        before = "mura_env" in sys.modules
        env = gym.make("mura_env:MuraWeighting-v0", logits={str(table_path)!r})
        obs, _ = env.reset(seed=1)
        vec = gym.make_vec("mura_env:MuraWeighting-v0", num_envs=8, logits={str(table_path)!r})
        print(json.dumps({{"before": before, "obs": list(obs.shape),
                          "vec": type(vec).__name__}}))
    """, tmp_path)
    assert out == {"before": False, "obs": [13], "vec": "MuraWeightingVectorEnv"}


def test_missing_reference_table_message(tmp_path: Path) -> None:
    out = _run("""
        import json
        import gymnasium as gym
        import mura_env, mura_env.logits.reference as ref
        ref.REFERENCE_DIR = ref.Path("/nonexistent/reference")
        try:
            gym.make("MuraWeighting-v0", reference_table=1)
            msg = None
        except FileNotFoundError as e:
            msg = str(e)
        print(json.dumps({"msg": msg, "command": ref.remake_command(1)}))
    """, tmp_path)
    assert out["msg"] is not None
    assert out["command"] in out["msg"]
    assert "/nonexistent/reference/reference_1.parquet" in out["msg"]


def test_shipped_reference_table_works_out_of_the_box() -> None:
    """The package ships reference table 0: make() with no kwargs passes both env checkers."""
    import warnings

    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    import mura_env  # noqa: F401
    from mura_env.logits.reference import load_reference_table, reference_indices

    assert 0 in reference_indices()
    table = load_reference_table(0)
    assert {"tune", "valid"} <= set(table.studies["split"])
    env = gym.make("MuraWeighting-v0")
    assert env.observation_space.shape == (2 * table.n_models + 7,)
    assert env.unwrapped.n_studies == int((table.studies["split"] == "tune").sum())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check(env.unwrapped, skip_render_check=True)
        sb3_check(env.unwrapped, warn=True)
