"""``MuraWeighting-v0``: its configuration (:mod:`~mura_env.weighting.config`), problem
(:mod:`~mura_env.weighting.problem`), action mapping (:mod:`~mura_env.weighting.mapping`),
rendering (:mod:`~mura_env.weighting.render`), single env (:mod:`~mura_env.weighting.env`) and
native vector env (:mod:`~mura_env.weighting.vector_env`)."""
