"""What several experiments share: the job pool, tables and logits sources, provenance,
statistics."""
