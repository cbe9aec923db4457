"""``python -m experiments.demo``: the main job on the built-in synthetic data (``make demo``)."""
