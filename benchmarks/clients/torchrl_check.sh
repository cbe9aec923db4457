#!/usr/bin/env bash
# TorchRL as an outside client: GymEnv and check_env_specs on every env mura_env registers, then
# a short PPO run of TorchRL's own (ClipPPOLoss, GAE, SyncDataCollector) on MuraWeighting-v0.
#
#   bash benchmarks/clients/torchrl_check.sh [ENV_ID] [FRAMES]      (from the repository root)
#
# TorchRL goes into its own throwaway virtualenv under runs/torchrl/venv that sees the project's
# .venv (torch, gymnasium, mura_env) through a .pth file; the project's .venv is not changed.
set -euo pipefail
cd "$(dirname "$0")/../.."
ENV_ID="${1:-MuraWeighting-v0}"
FRAMES="${2:-8192}"
source benchmarks/client_venv.sh
client_venv torchrl "torchrl==0.14.1" "tensordict>=0.14,<0.15"
"$CLIENT_PYTHON" -c 'import torchrl, tensordict, torch
print(f"torchrl {torchrl.__version__}, tensordict {tensordict.__version__}, torch {torch.__version__}")'
OMP_NUM_THREADS=1 "$CLIENT_PYTHON" benchmarks/clients/torchrl_ppo.py --env "$ENV_ID" \
  --frames "$FRAMES"
