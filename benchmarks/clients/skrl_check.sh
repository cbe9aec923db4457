#!/usr/bin/env bash
# skrl as an outside client: skrl's PPO (torch backend) on the native vector env
# gymnasium.make_vec(ENV_ID, num_envs=8) wrapped with skrl's wrap_env, after wrapping every env
# mura_env registers once.
#
#   bash benchmarks/clients/skrl_check.sh [ENV_ID] [TIMESTEPS]      (from the repository root)
#
# skrl goes into its own throwaway virtualenv under runs/skrl/venv that sees the project's .venv
# (torch, gymnasium, mura_env) through a .pth file; the project's .venv is not changed.
set -euo pipefail
cd "$(dirname "$0")/../.."
ENV_ID="${1:-MuraWeighting-v0}"
TIMESTEPS="${2:-2048}"
source benchmarks/client_venv.sh
client_venv skrl "skrl==2.1.1"
"$CLIENT_PYTHON" -c 'import skrl, torch
print(f"skrl {skrl.__version__}, torch {torch.__version__}")'
OMP_NUM_THREADS=1 "$CLIENT_PYTHON" benchmarks/clients/skrl_ppo.py --env "$ENV_ID" \
  --timesteps "$TIMESTEPS"
