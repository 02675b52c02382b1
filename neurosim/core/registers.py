"""Jitted register arithmetic every neuron model shares (the engine's cache key covers this
file, so a change here recompiles every model)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def fit(u, lo, hi, wrap):
    """(u fitted to [lo, hi], 1 if it overflowed). Branch-free, so the neuron loops vectorise:
    the span is 2^state_bits, so wrapping is a mask; saturation is a clamp."""
    if wrap:
        v = ((u - lo) & (hi - lo)) + lo
    else:
        v = min(max(u, lo), hi)
    return v, np.int64(v != u)


@njit(cache=True, inline="always")
def compact_events(ev_idx, ev_sign, n):
    """Turn the signs a neuron loop wrote to ``ev_sign[0:n]`` (0: no spike) into events in
    place: neuron indices in ``ev_idx``, their signs in ``ev_sign``, in neuron order (so the
    fan-out meets a position's channels together). Returns the number of events. Writing the
    signs first keeps the neuron loop branch-free."""
    ne = 0
    for j in range(n):
        s = ev_sign[j]
        ev_idx[ne] = j
        ev_sign[ne] = s
        ne += s != 0
    return ne
