"""``python -m experiments.reference_report``: the reference tables' design, measured on tune."""
