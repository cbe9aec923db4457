"""Retraining a pretraining run's members toward what the ensemble gets wrong."""
