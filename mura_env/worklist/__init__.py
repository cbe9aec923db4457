"""``MuraWorklist-v0``: a reading shift of ``N`` studies, an ensemble and radiologists of
limited capacity.

* :mod:`~mura_env.worklist.config`: :class:`WorklistConfig`, the env's arguments;
* :mod:`~mura_env.worklist.shifts`: the body-part mixes of the scenarios and the shift draws;
* :mod:`~mura_env.worklist.problem`: the studies, reads, spaces and the batched step rule;
* :mod:`~mura_env.worklist.env`: the single env and the native vector env.
"""
