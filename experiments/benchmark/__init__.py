"""``python -m experiments.benchmark``: every weighting agent and baseline over every reference
table."""
