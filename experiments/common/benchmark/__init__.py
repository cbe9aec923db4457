"""The weighting comparison that ``experiments.benchmark`` (reference tables) and
``experiments.compare`` (one table) share: its config, jobs, pipeline and report."""
