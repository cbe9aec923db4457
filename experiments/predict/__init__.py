"""Predictions for new studies with a run's ensemble."""
