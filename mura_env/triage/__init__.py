"""A reading room in time: studies arrive through a shift, wait in one worklist, and radiologists
read them one at a time; the order they are read in is the decision.

:mod:`mura_env.triage.arrivals` draws arrival times (a Poisson process whose rate follows a
time-of-day profile), :mod:`mura_env.triage.read_times` each radiologist's reading time of each
study, :mod:`mura_env.triage.room` steps the room from one decision to the next,
:mod:`mura_env.triage.shifts` makes shifts of a table's studies, :mod:`mura_env.triage.metrics`
sums up played shifts, and :mod:`mura_env.triage.theory` holds the queueing formulas the room is
checked against (Erlang C, Cobham's priority queue). ``MuraTriage-v0`` plays the room as an RL
env: :mod:`mura_env.triage.config` (its arguments), :mod:`mura_env.triage.problem` (what an agent
sees, may do and pays at a decision) and :mod:`mura_env.triage.env` (the single and vector envs).
"""
