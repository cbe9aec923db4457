"""What several commands share: the job pool, tables and logits sources, command-line option
groups, provenance, report formatting, paired comparisons, reader columns, the Grad-CAM report,
running one command from another (:mod:`~experiments.common.commands`), TensorBoard scalars
and the weighting comparison of ``benchmark`` and ``compare`` (:mod:`experiments.common.benchmark`;
the statistics are :mod:`mura_env.evaluation.statistics`)."""
