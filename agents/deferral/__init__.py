"""``MuraDeferral-v0``'s methods: the classical deferral rules (:mod:`~agents.deferral.methods`)
and the native agent with a defer head (:mod:`~agents.deferral.softmax_pg`)."""
