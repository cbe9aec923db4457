"""Throughput of ``MuraWeighting-v0``, ``MuraWorklist-v0`` and ``MuraTriage-v0`` against
CartPole (target: >= 1.0x for ``MuraWeighting-v0`` in both comparisons and for the vector envs of
``MuraWorklist-v0`` and ``MuraTriage-v0``).

On a realistic logits table (default: K=5 models, 13,457 studies, the size of MURA's train
part; random logits, all studies in the env's default ``tune`` split; for ``MuraWorklist-v0``
the three simulated radiologists' reads added) it measures, in one run:

  1. single env: studies/s of ``gymnasium.make("MuraWeighting-v0")`` (one ``step`` plus one
     ``reset`` per study) and steps/s of ``gymnasium.make("MuraWorklist-v0")`` (default shift
     of 100 studies, reset when it ends) against steps/s of ``gymnasium.make("CartPole-v1")``
     (reset when an episode ends); all made by ``gymnasium.make``, so all carry
     PassiveEnvChecker and OrderEnforcing (CartPole also TimeLimit);
  2. vector env: env-steps/s of ``gymnasium.make_vec(ID, num_envs=N)`` (the native NumPy vector
     envs; ``MuraWorklist-v0`` with its default action and with ``action="routing",
     observe_gains=True``) against Gymnasium's ``CartPoleVectorEnv`` at the same sizes. A
     ``MuraWorklist-v0`` timing run covers whole shifts (a multiple of ``shift_size`` steps),
     so the draw of the next shifts at each shift's end is counted. ``MuraTriage-v0`` (default
     room: 480-minute shifts at load 0.9) reads the earliest waiting study at every decision
     (always open); its rooms are started before the timing and replaced when they end.

Actions are drawn beforehand; each figure is the best of ``--repeats`` interleaved runs (the
machine may be shared). Prints the comparison and writes
``runs/benchmarks/env_throughput.json``.

    python benchmarks/env_throughput.py [--studies 13457] [--models 5]
        [--single-studies 100000] [--vector-sizes 1024 4096 16384] [--vector-steps 60]
        [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd

import mura_env
from mura_env.constants import BODY_PARTS
from mura_env.logits import LogitsTable
from mura_env.readers import READER_PROFILES, SimulatedReader

TARGET_RATIO = 1.0
# Share of MURA-v1.1's train studies per body part (ELBOW ... WRIST), rounded.
_PART_SHARES = (0.12, 0.15, 0.05, 0.17, 0.05, 0.23, 0.25)


def realistic_table(n_studies: int, n_models: int, seed: int = 0) -> LogitsTable:
    """A MURA-sized table of random but plausible logits: ``n_studies`` studies (all in the
    ``tune`` split), ``n_models`` models whose logit gap follows the label with noise."""
    rng = np.random.default_rng(seed)
    parts = rng.choice(BODY_PARTS, size=n_studies, p=np.array(_PART_SHARES) / sum(_PART_SHARES))
    labels = (rng.random(n_studies) < 0.41).astype(np.int64)
    studies = pd.DataFrame({
        "study_id": [f"train/XR_{p}/patient{i:05d}/study1_{'positive' if y else 'negative'}"
                     for i, (p, y) in enumerate(zip(parts, labels, strict=True))],
        "patient_id": [f"patient{i:05d}" for i in range(n_studies)],
        "body_part": parts, "label": labels, "split": "tune",
        "n_images": rng.integers(1, 5, size=n_studies),
    })
    skill = rng.uniform(1.0, 2.5, size=n_models)
    gap = (2 * labels[:, None] - 1) * skill + rng.normal(0, 1.5, size=(n_studies, n_models))
    offset = rng.normal(0, 0.5, size=(n_studies, n_models))
    logits = np.stack([offset - gap / 2, offset + gap / 2], axis=-1).astype(np.float32)
    return LogitsTable.from_arrays(studies, [f"model{k}" for k in range(n_models)], logits)


def with_readers(table: LogitsTable, seed: int = 0) -> LogitsTable:
    """``table`` with the reads of the simulated radiologists of
    :data:`mura_env.readers.READER_PROFILES` (``MuraWorklist-v0``'s readers; errors independent
    of difficulty, which the random table lacks)."""
    for name in READER_PROFILES:
        table = table.with_simulated_reader(SimulatedReader.profile(name, seed=seed, sharing=0.0))
    return table


def _best_rate(runs: list[Callable[[], float]], repeats: int) -> list[float]:
    """Run each rate-returning callable ``repeats`` times, interleaved; best rate of each."""
    best = [0.0] * len(runs)
    for _ in range(repeats):
        for i, run in enumerate(runs):
            best[i] = max(best[i], run())
    return best


def single_env_rates(table: LogitsTable, n: int, repeats: int, seed: int
                     ) -> tuple[float, float, float]:
    """(MuraWeighting-v0 studies/s, MuraWorklist-v0 steps/s, CartPole-v1 steps/s), all
    through ``gymnasium.make``; ``table`` must carry reader columns."""
    env = gym.make("MuraWeighting-v0", logits=table)
    env.reset(seed=seed)
    worklist = gym.make(mura_env.WORKLIST_ENV_ID, logits=table)
    worklist.reset(seed=seed)
    rng = np.random.default_rng(seed)
    actions = list(rng.uniform(-1, 1, size=(n, table.n_models)).astype(np.float32))
    worklist_actions = list(rng.uniform(-1, 1, size=(n, worklist.action_space.shape[0])
                                        ).astype(np.float32))
    cart = gym.make("CartPole-v1")
    cart.reset(seed=seed)
    cart_actions = rng.integers(0, 2, size=n).tolist()

    def mura() -> float:
        start = time.perf_counter()
        for a in actions:
            env.step(a)
            env.reset()
        return n / (time.perf_counter() - start)

    def shifts() -> float:
        start = time.perf_counter()
        for a in worklist_actions:
            _, _, terminated, _, _ = worklist.step(a)
            if terminated:
                worklist.reset()
        return n / (time.perf_counter() - start)

    def cartpole() -> float:
        start = time.perf_counter()
        for a in cart_actions:
            _, _, terminated, truncated, _ = cart.step(a)
            if terminated or truncated:
                cart.reset()
        return n / (time.perf_counter() - start)

    mura_rate, worklist_rate, cart_rate = _best_rate([mura, shifts, cartpole], repeats)
    for e in (env, worklist, cart):
        e.close()
    return mura_rate, worklist_rate, cart_rate


def vector_env_rates(table: LogitsTable, num_envs: int, steps: int, repeats: int,
                     seed: int) -> tuple[float, float, float, float]:
    """(MuraWeighting-v0, MuraWorklist-v0, MuraWorklist-v0 with ``action="routing"`` and
    ``observe_gains=True``, CartPoleVectorEnv) env-steps/s at ``num_envs`` sub-environments;
    ``table`` must carry reader columns."""
    envs = gym.make_vec("MuraWeighting-v0", num_envs=num_envs, logits=table)
    worklist = gym.make_vec(mura_env.WORKLIST_ENV_ID, num_envs=num_envs, logits=table)
    routing = gym.make_vec(mura_env.WORKLIST_ENV_ID, num_envs=num_envs, logits=table,
                           action="routing", observe_gains=True)
    cart = gym.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode="vector_entry_point")
    for vec in (envs, worklist, routing, cart):
        vec.reset(seed=seed)
    rng = np.random.default_rng(seed)
    pool = 8
    actions = rng.uniform(-1, 1, size=(pool, num_envs, table.n_models)).astype(np.float32)
    worklist_actions = rng.uniform(-1, 1, size=(pool, num_envs, worklist.single_action_space
                                                .shape[0])).astype(np.float32)
    routing_actions = rng.integers(0, routing.single_action_space.n, size=(pool, num_envs))
    cart_actions = rng.integers(0, 2, size=(pool, num_envs))
    shift = worklist.unwrapped.config.shift_size
    shift_steps = -(-steps // shift) * shift  # whole shifts: each run draws new ones once each

    def timed(vec: gym.vector.VectorEnv, acts: np.ndarray, n_steps: int
              ) -> Callable[[], float]:
        def run() -> float:
            start = time.perf_counter()
            for k in range(n_steps):
                vec.step(acts[k % pool])
            return n_steps * num_envs / (time.perf_counter() - start)
        return run

    rates = _best_rate([timed(envs, actions, steps),
                        timed(worklist, worklist_actions, shift_steps),
                        timed(routing, routing_actions, shift_steps),
                        timed(cart, cart_actions, steps)], repeats)
    for vec in (envs, worklist, routing, cart):
        vec.close()
    return rates[0], rates[1], rates[2], rates[3]


def triage_vector_rate(table: LogitsTable, num_envs: int, steps: int, repeats: int,
                       seed: int) -> float:
    """``MuraTriage-v0``'s native vector env: env-steps (decisions) per second at ``num_envs``
    sub-environments, each reading the earliest waiting study."""
    vec = gym.make_vec(mura_env.TRIAGE_ENV_ID, num_envs=num_envs, logits=table)
    vec.reset(seed=seed)
    earliest = np.zeros(num_envs, dtype=np.int64)

    def run() -> float:
        start = time.perf_counter()
        for _ in range(steps):
            vec.step(earliest)
        return steps * num_envs / (time.perf_counter() - start)

    rate = _best_rate([run], repeats)[0]
    vec.close()
    return rate


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=13457, help="studies in the table")
    parser.add_argument("--models", type=int, default=5, help="K, models in the ensemble")
    parser.add_argument("--single-studies", type=int, default=100_000,
                        help="studies (and CartPole steps) per single-env timing run")
    parser.add_argument("--vector-sizes", type=int, nargs="+", default=[1024, 4096, 16384])
    parser.add_argument("--vector-steps", type=int, default=60,
                        help="vector steps per timing run")
    parser.add_argument("--repeats", type=int, default=5, help="timing runs; the best counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
    args = parser.parse_args(argv)

    table = with_readers(realistic_table(args.studies, args.models, args.seed), args.seed)
    mura_single, worklist_single, cart_single = single_env_rates(
        table, args.single_studies, args.repeats, args.seed)
    result: dict = {
        "n_studies": args.studies, "n_models": args.models, "repeats": args.repeats,
        "target_ratio": TARGET_RATIO, "mura_env_version": mura_env.__version__,
        "gymnasium_version": gym.__version__, "numpy_version": np.__version__,
        "python": platform.python_version(), "cpu_count": os.cpu_count(),
        "single": {"mura_studies_per_s": round(mura_single),
                   "worklist_steps_per_s": round(worklist_single),
                   "cartpole_steps_per_s": round(cart_single),
                   "ratio": round(mura_single / cart_single, 3),
                   "worklist_ratio": round(worklist_single / cart_single, 3)},
        "vector": [],
    }
    print(f"MuraWeighting-v0 / MuraWorklist-v0 table: {args.studies} studies, K={args.models} "
          f"models, {len(table.reader_ids)} readers; best of {args.repeats} runs")
    print(f"single env  gymnasium.make     : MuraWeighting-v0 {mura_single:12,.0f} studies/s "
          f"(step + reset) | CartPole-v1 {cart_single:12,.0f} steps/s | ratio "
          f"{mura_single / cart_single:.2f}x (target >= {TARGET_RATIO:.1f}x)")
    print(f"single env  gymnasium.make     : MuraWorklist-v0  {worklist_single:12,.0f} steps/s   "
          f"(+ reset)    | CartPole-v1 {cart_single:12,.0f} steps/s | ratio "
          f"{worklist_single / cart_single:.2f}x (no target)")
    for n in args.vector_sizes:
        mura_vec, worklist_vec, routing_vec, cart_vec = vector_env_rates(
            table, n, args.vector_steps, args.repeats, args.seed)
        triage_vec = triage_vector_rate(table, n, args.vector_steps, args.repeats, args.seed)
        result["vector"].append({"num_envs": n, "mura_env_steps_per_s": round(mura_vec),
                                 "worklist_env_steps_per_s": round(worklist_vec),
                                 "worklist_routing_env_steps_per_s": round(routing_vec),
                                 "cartpole_env_steps_per_s": round(cart_vec),
                                 "ratio": round(mura_vec / cart_vec, 3),
                                 "worklist_ratio": round(worklist_vec / cart_vec, 3),
                                 "worklist_routing_ratio": round(routing_vec / cart_vec, 3),
                                 "triage_env_steps_per_s": round(triage_vec),
                                 "triage_ratio": round(triage_vec / cart_vec, 4)})
        for name, rate in (("MuraWeighting-v0", mura_vec), ("MuraWorklist-v0 ", worklist_vec),
                           ("MuraWorklist-v0 routing", routing_vec),
                           ("MuraTriage-v0", triage_vec)):
            print(f"vector env  {n:6d} envs       : {name} {rate:12,.0f} env-steps/s "
                  f"| CartPoleVectorEnv {cart_vec:12,.0f} env-steps/s | ratio "
                  f"{rate / cart_vec:.2f}x (target >= {TARGET_RATIO:.1f}x)")
    ratios = [result["single"]["ratio"]] + [
        v[key] for v in result["vector"]
        for key in ("ratio", "worklist_ratio", "worklist_routing_ratio", "triage_ratio")]
    result["meets_target"] = all(r >= TARGET_RATIO for r in ratios)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "env_throughput.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, path)
    print(f"{'all targets met' if result['meets_target'] else 'TARGET MISSED'}; wrote {path}")
    return result


if __name__ == "__main__":
    main()
