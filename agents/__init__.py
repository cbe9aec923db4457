"""Weighting agents (native softmax policy gradient, SB3 wrappers), baselines, evaluation."""
