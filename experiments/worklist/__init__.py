"""``python -m experiments.worklist``: every worklist method over the reference tables,
scenarios and capacities (:mod:`~experiments.worklist.worklist`), its runs
(:mod:`~experiments.worklist.worklist_runs`) and report
(:mod:`~experiments.worklist.worklist_report`)."""
