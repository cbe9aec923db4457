"""``python -m experiments.triage``: every scheduling rule of the reading room over the reference
tables, arrival profiles and loads (:mod:`~experiments.triage.__main__`), its runs
(:mod:`~experiments.triage.runs`) and report (:mod:`~experiments.triage.report`)."""
