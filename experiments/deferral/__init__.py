"""The deferral experiment and the reader columns of a logits table."""
