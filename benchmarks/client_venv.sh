# Sourced by the outside-client checks (benchmarks/rl_zoo3/check.sh, benchmarks/clients/*.sh):
#   client_venv NAME PIP_SPEC...
# makes (once) a throwaway virtualenv runs/NAME/venv with the project's Python that sees the
# project's .venv and repository through a .pth file, installs PIP_SPEC... into it, and sets
# CLIENT_PYTHON to its python. The project's .venv is not changed. Run from the repository root.
client_venv() {
  local name="$1"
  shift
  local root="$PWD" venv="runs/$name/venv"
  if [ ! -x "$venv/bin/python" ]; then
    local site vsite
    site="$("$root/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    "$root/.venv/bin/python" -m venv "$venv"
    vsite="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    printf '%s\n%s\n' "$site" "$root" > "$vsite/mura_rl_project.pth"
    "$venv/bin/pip" install --quiet "$@"
  fi
  CLIENT_PYTHON="$root/$venv/bin/python"
}
