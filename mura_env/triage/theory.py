"""Queueing formulas for a room of ``c`` identical readers with exponential reading times and
Poisson arrivals (the M/M/c queue): what :class:`mura_env.triage.room.ReadingRoom` must reproduce
in that setting.

* :func:`erlang_c`: the probability that an arriving study waits (Erlang's C formula);
* :func:`mmc_mean_wait`: its mean wait before a reader starts it, first in, first out;
* :func:`priority_mean_waits`: the mean wait of each class when classes are served in priority
  order, first in, first out within a class, without interrupting a read (Cobham, 1954: the
  setting of the FDA's QuCAD model of AI triage with a flag).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _check(arrival_rate: float, service_rate: float, servers: int) -> float:
    """The load per reader ``arrival_rate / (servers * service_rate)``; ``ValueError`` unless the
    queue is stable (load < 1) and every argument is positive."""
    if isinstance(servers, bool) or int(servers) != servers or servers < 1:
        raise ValueError(f"servers must be an integer >= 1, got {servers!r}.")
    if not (arrival_rate > 0 and service_rate > 0):
        raise ValueError(f"rates must be > 0, got arrival {arrival_rate!r}, service "
                         f"{service_rate!r}.")
    load = arrival_rate / (servers * service_rate)
    if not load < 1:
        raise ValueError(f"the queue is unstable: load {load:.3f} (arrival rate over servers x "
                         "service rate) must be below 1.")
    return load


def erlang_c(servers: int, offered: float) -> float:
    """Probability that an arrival waits in an M/M/c queue.

    Args:
        servers: ``c`` (>= 1); offered: the offered load ``a = lambda / mu`` (0 < a < c).

    Returns:
        ``C(c, a) = (a^c / c! * c / (c - a)) / (sum_{k < c} a^k / k! + a^c / c! * c / (c - a))``.
    """
    _check(offered, 1.0, servers)
    term, total = 1.0, 0.0
    for k in range(servers):  # a^k / k!, summed
        total += term
        term *= offered / (k + 1)
    tail = term * servers / (servers - offered)  # a^c / c! * c / (c - a)
    return tail / (total + tail)


def mmc_mean_wait(arrival_rate: float, service_rate: float, servers: int) -> float:
    """Mean wait before service in an M/M/c queue, first in, first out:
    ``C(c, lambda / mu) / (c mu - lambda)`` (in the time unit of the rates)."""
    _check(arrival_rate, service_rate, servers)
    return erlang_c(servers, arrival_rate / service_rate) / (servers * service_rate
                                                             - arrival_rate)


def priority_mean_waits(arrival_rates: Sequence[float], service_rate: float, servers: int
                        ) -> np.ndarray:
    """Mean wait of each class in an M/M/c queue with non-preemptive priority (Cobham's formula
    with one service rate for every class).

    Args:
        arrival_rates: ``lambda_k`` per class, the first class served first.
        service_rate: ``mu`` of every reader and class; servers: ``c``.

    Returns:
        float64 ``[K]``: ``W_k = W_0 / ((1 - s_{k-1}) (1 - s_k))`` with
        ``W_0 = C(c, lambda / mu) / (c mu)`` and ``s_k = sum_{j <= k} lambda_j / (c mu)``.
    """
    rates = np.asarray(arrival_rates, dtype=np.float64)
    if rates.ndim != 1 or rates.size == 0 or (rates <= 0).any():
        raise ValueError(f"arrival_rates must be one rate > 0 per class, got {arrival_rates!r}.")
    total = float(rates.sum())
    _check(total, service_rate, servers)
    w0 = erlang_c(servers, total / service_rate) / (servers * service_rate)
    above = np.cumsum(rates) / (servers * service_rate)
    before = np.concatenate([[0.0], above[:-1]])
    return w0 / ((1.0 - before) * (1.0 - above))

