"""The agents' core: the algorithm registry (:mod:`~agents.core.algos`), agent families
(:mod:`~agents.core.families`), the one training route (:mod:`~agents.core.train`), saving and
loading (:mod:`~agents.core.saved`) and evaluation (:mod:`~agents.core.evaluate`)."""
