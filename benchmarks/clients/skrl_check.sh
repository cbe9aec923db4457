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
ROOT="$PWD"
VENV="runs/skrl/venv"
SITE="$("$ROOT/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if [ ! -x "$VENV/bin/python" ]; then
  "$ROOT/.venv/bin/python" -m venv "$VENV"  # the project's Python version
  VSITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  printf '%s\n%s\n' "$SITE" "$ROOT" > "$VSITE/mura_rl_project.pth"
  "$VENV/bin/pip" install --quiet "skrl==2.1.1"
fi
"$VENV/bin/python" -c 'import skrl, torch
print(f"skrl {skrl.__version__}, torch {torch.__version__}")'
OMP_NUM_THREADS=1 "$VENV/bin/python" benchmarks/clients/skrl_ppo.py --env "$ENV_ID" \
  --timesteps "$TIMESTEPS"
