"""``python -m experiments.attach_reader``: add radiologist reads to a logits table."""
