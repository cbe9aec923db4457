"""Schedulers for the reading room of :mod:`mura_env.triage`: the rules (which waiting study a
free radiologist reads next, :mod:`agents.triage.rules`) and whole shifts played by a rule or a
policy (:mod:`agents.triage.rollout`)."""
