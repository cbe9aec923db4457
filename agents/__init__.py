"""Agents and classical methods of every task: a core (:mod:`agents.core`: the algorithm
registry, agent families, the one training route, saving, loading and evaluation) and one
subpackage per task (:mod:`agents.weighting`, :mod:`agents.deferral`, :mod:`agents.worklist`:
its classical methods and its native agents)."""
