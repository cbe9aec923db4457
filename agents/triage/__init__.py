"""Scheduling rules for the reading room of :mod:`mura_env.triage`: which waiting study a free
radiologist reads next."""
