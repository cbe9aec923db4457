"""``python -m experiments.defer``: every deferral method over costs, readers and reference tables
(runs: :mod:`~experiments.defer.runs`; report: :mod:`~experiments.defer.report`)."""
