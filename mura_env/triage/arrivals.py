"""When studies arrive: a Poisson process whose rate follows a time-of-day profile.

A profile is a relative rate for each of equal pieces of the shift (mean 1 over the shift), so
``rate * profile[k]`` studies per minute arrive in piece ``k``. The named profiles
(:data:`ARRIVAL_PROFILES`) are illustrations, not measured arrival curves:

* ``steady``: one rate all shift;
* ``surge``: an emergency department's evening over eight hours, quiet at first, peaking at
  about twice the quiet rate in the fifth hour, ebbing late.
"""

from __future__ import annotations

import numpy as np

#: Relative arrival rate per equal piece of the shift, each profile with mean 1.
ARRIVAL_PROFILES: dict[str, tuple[float, ...]] = {
    "steady": (1.0,),
    "surge": (0.6, 0.7, 0.9, 1.2, 1.5, 1.4, 1.0, 0.7),
}


def relative_rates(profile: str | np.ndarray) -> np.ndarray:
    """float64 ``[P]``: a profile's relative rates scaled to mean 1.

    Args:
        profile: a name in :data:`ARRIVAL_PROFILES`, or relative rates (>= 0, not all 0).

    Raises:
        ValueError: an unknown name or rates that are negative, not finite or all 0.
    """
    if isinstance(profile, str):
        if profile not in ARRIVAL_PROFILES:
            raise ValueError(f"profile must be one of {list(ARRIVAL_PROFILES)} or relative "
                             f"rates, got {profile!r}.")
        profile = np.asarray(ARRIVAL_PROFILES[profile])
    rates = np.asarray(profile, dtype=np.float64).ravel()
    if rates.size == 0 or not np.isfinite(rates).all() or (rates < 0).any() or rates.sum() <= 0:
        raise ValueError(f"relative rates must be finite, >= 0 and not all 0, got {profile!r}.")
    return rates / rates.mean()


def poisson_arrivals(rate: float, minutes: float, profile: str | np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
    """Arrival times of a Poisson process with rate ``rate * relative_rates(profile)[k]`` per
    minute in the ``k``-th of ``P`` equal pieces of ``[0, minutes)``.

    Args:
        rate: mean arrivals per minute over the shift (> 0); minutes: the shift's length (> 0);
        profile: see :func:`relative_rates`; rng: draws the counts, then the times.

    Returns:
        float64 ``[n]``, sorted, in ``[0, minutes)`` (``n`` itself random: Poisson with mean
        ``rate * minutes``). Exact for a piecewise-constant rate: a Poisson count per piece,
        then that many uniform times in it.
    """
    if not (np.isfinite(rate) and rate > 0 and np.isfinite(minutes) and minutes > 0):
        raise ValueError(f"rate and minutes must be finite and > 0, got {rate!r}, {minutes!r}.")
    rates = relative_rates(profile)
    edges = np.linspace(0.0, float(minutes), rates.size + 1)
    width = edges[1] - edges[0]
    counts = rng.poisson(rate * rates * width)
    starts = np.repeat(edges[:-1], counts)
    times = starts + rng.random(int(counts.sum())) * width
    return np.sort(times)
