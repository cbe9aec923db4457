"""Command lines of mura-rl, run from the repository root as ``python -m experiments.NAME``."""
