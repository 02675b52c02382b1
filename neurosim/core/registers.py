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
