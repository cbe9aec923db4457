"""``MuraWeighting-v0``'s methods: the classical baselines (:mod:`~agents.weighting.baselines`),
the native softmax policy gradient (:mod:`~agents.weighting.softmax_pg`) and their reports
(:mod:`~agents.weighting.reporting`)."""
