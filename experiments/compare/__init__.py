"""``python -m experiments.compare``: the benchmark's pipeline on one logits table."""
