"""``python -m experiments.retrain_study``: every retraining method against ``ce`` over backbone
seeds."""
