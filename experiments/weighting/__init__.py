"""The weighting comparison: the benchmark over the reference tables, and on one table."""
