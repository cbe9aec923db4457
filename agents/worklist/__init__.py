"""``MuraWorklist-v0``'s methods: the classical worklist rules (:mod:`~agents.worklist.methods`)
and shift rollouts of a policy (:mod:`~agents.worklist.rollout`)."""
