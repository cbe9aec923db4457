"""``python -m experiments.worklist``: every worklist method over the reference tables,
scenarios and capacities (:mod:`~experiments.worklist.__main__`), its runs
(:mod:`~experiments.worklist.runs`) and report
(:mod:`~experiments.worklist.report`)."""
