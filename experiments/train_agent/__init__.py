"""``python -m experiments.train_agent``: train one agent on any registered env and score it
against the classical methods."""
