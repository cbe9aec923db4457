"""Running one command of ``experiments`` from another, the way a user chains them: as a child
process of the same interpreter, so that no command imports another."""

from __future__ import annotations

import subprocess
import sys


def run_command(module: str, argv: list[str]) -> int:
    """Run ``python -m <module> <argv>`` (e.g. ``module="experiments.retrain"``) in a child
    process of this interpreter, its output going to this process's; returns its exit
    status."""
    return subprocess.run([sys.executable, "-m", module, *argv], check=False).returncode
