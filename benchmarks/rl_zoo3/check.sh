#!/usr/bin/env bash
# RL Baselines3 Zoo as an outside client: train PPO on MuraDeferral-v0 with rl_zoo3, unmodified.
#
#   bash benchmarks/rl_zoo3/check.sh [ENV_ID] [STEPS]      (from the repository root, after make test)
#
# rl_zoo3 pins packages the project does not (pillow < 12, python-dateutil < 3 through its
# optional dependencies), so it goes into its own throwaway virtualenv under runs/rl_zoo3/venv
# that sees the project's .venv through a .pth file; the project's .venv is not changed.
set -euo pipefail
cd "$(dirname "$0")/../.."
ENV_ID="${1:-MuraDeferral-v0}"
STEPS="${2:-16384}"
source benchmarks/client_venv.sh
client_venv rl_zoo3 "rl_zoo3>=2.9,<3"
start=$(date +%s)
"$CLIENT_PYTHON" -m rl_zoo3.train --algo ppo --env "$ENV_ID" --gym-packages mura_env \
  -conf benchmarks/rl_zoo3/ppo.yml -n "$STEPS" --seed 0 --eval-freq -1 --num-threads 1 \
  --device cpu --log-folder runs/rl_zoo3/logs
echo "rl_zoo3 trained ppo on $ENV_ID for $STEPS steps in $(( $(date +%s) - start )) s;" \
     "model under runs/rl_zoo3/logs/ppo/"
