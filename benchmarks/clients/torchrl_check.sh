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
ROOT="$PWD"
VENV="runs/torchrl/venv"
SITE="$("$ROOT/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if [ ! -x "$VENV/bin/python" ]; then
  "$ROOT/.venv/bin/python" -m venv "$VENV"  # the project's Python version
  VSITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  printf '%s\n%s\n' "$SITE" "$ROOT" > "$VSITE/mura_rl_project.pth"
  "$VENV/bin/pip" install --quiet "torchrl==0.14.1" "tensordict>=0.14,<0.15"
fi
"$VENV/bin/python" -c 'import torchrl, tensordict, torch
print(f"torchrl {torchrl.__version__}, tensordict {tensordict.__version__}, torch {torch.__version__}")'
OMP_NUM_THREADS=1 "$VENV/bin/python" benchmarks/clients/torchrl_ppo.py --env "$ENV_ID" \
  --frames "$FRAMES"
