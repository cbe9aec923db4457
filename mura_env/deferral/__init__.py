"""``MuraDeferral-v0``: its configuration, problem, single env and vector env."""
