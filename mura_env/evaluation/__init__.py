"""Evaluation shared by every task: MURA's study-level metrics
(:mod:`~mura_env.evaluation.metrics`), the one bootstrap sampler
(:mod:`~mura_env.evaluation.bootstrap`), metrics of weighted resamples
(:mod:`~mura_env.evaluation.resampled_metrics`) and the joint statistics of runs, tables and
studies (:mod:`~mura_env.evaluation.statistics`)."""
