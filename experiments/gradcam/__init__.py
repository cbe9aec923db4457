"""Grad-CAM panels of a pretraining run's members and an agent's weighting."""
