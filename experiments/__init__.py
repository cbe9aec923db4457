"""Command lines of mura-rl: one package per command, each run as ``python -m
experiments.<name>`` (its ``__main__.py`` parses the command line and runs it); what two
commands share lives in :mod:`experiments.common`, and no command imports another."""
