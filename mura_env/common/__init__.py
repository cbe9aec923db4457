"""Utilities shared by every part of mura-rl: atomic file writes and hashes
(:mod:`~mura_env.common.atomic`), dataclass configs parsed from the command line and saved as
JSON (:mod:`~mura_env.common.config_cli`), argument checks (:mod:`~mura_env.common.checks`)."""
