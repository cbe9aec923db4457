"""What several experiments share: the job pool, tables and logits sources, command-line
option groups, provenance, report formatting and TensorBoard scalars (the statistics are
:mod:`mura_env.statistics`)."""
