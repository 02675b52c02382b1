"""Register range analysis before simulating, shared by the rate, TTFS, TSC and phase
quantizers (DESIGN §4: a range that does not fit the profile's ``state_bits`` is an error
naming the layer, never a quiet number).

A scheme describes each layer by an **extent** function ``extent(q, frac) -> (lo, hi)``: the
smallest and largest value (state units, before any fit) that any of the layer's registers
can take under the scheme's own integer update rule, for *every* input the layer can receive
(every spike pattern its sources can emit, every bias, every step), when one threshold of the
layer is ``q`` state units and its weights are ``integer_weights(W, q, frac) << frac``. This
module then

* picks each layer's scale (``fit_layer``): weight precision first, the headroom left as
  fractional bits (up to the profile's ``frac_bits``), as a Loihi weight exponent places the
  weights in the state word; only when even ``frac = 0`` cannot hold the extent do the
  weights give up bits;
* decides (``check_ranges``): a layer that cannot hold its extent even with
  ``MIN_WEIGHT_BITS``-bit weights is an error naming the layer, the state bits needed and
  available and the largest setting of the scheme's length parameter (T, N, periods) that
  fits; with ``--allow-overflow`` a warning instead (the run then counts its saturations).

The building blocks of the extents are here too: the per-neuron sums of positive and negative
weights (``synapse_sums``), the range of a per-step input (``drive_bounds``) and interval
arithmetic on a membrane that integrates, shifts and resets (``membrane_extent``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from numba import njit

from ..errors import UserError

# Below this many weight bits a converted network is no longer the network it was (measured on
# digits_cnn, SWS Tc=8: 4-bit weights 0.894, 5-bit 0.944, 6-bit 0.969, float 0.969). The
# quantizers give up weight bits to fit the registers down to this, not below.
MIN_WEIGHT_BITS = 4

# Interval bounds are kept below this (int64 arithmetic without wrapping, with room for one
# doubling and one input); a register that needs more than 61 bits cannot fit any profile.
BOUND_LIMIT = 1 << 60

Extent = Callable[[int, int], tuple[int, int]]


def signed_bits(lo: int, hi: int) -> int:
    """The fewest bits of a two's-complement register that holds every value in [lo, hi]."""
    lo, hi = int(min(lo, 0)), int(max(hi, 0))
    return max(hi.bit_length(), (-lo - 1).bit_length() if lo < 0 else 0) + 1


def integer_weights(weight: np.ndarray, q: float, frac: int, wmax: int) -> np.ndarray:
    """A layer's integer weights when one threshold is ``q`` state units and weights enter the
    state shifted left by ``frac``: ``round(W·q/2^frac)``, clipped to ±wmax (rounding a whole
    ``q`` may push the largest weight one past it)."""
    return np.clip(np.round(weight * (q / 2.0 ** frac)), -wmax, wmax).astype(np.int64)


def synapse_sums(proj_map, w_state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Σ positive weights, Σ |negative weights|) into each target neuron of one projection
    (CHW-flat), ``w_state`` the integer weights in state units, in the map's own layout.
    Applying the map to an input of ones counts exactly the synapses each target has (a conv
    at the border has fewer taps)."""
    ones = np.ones((1,) + tuple(proj_map.in_shape))
    pos = dataclasses.replace(proj_map, weight=np.maximum(w_state, 0).astype(np.float64))
    neg = dataclasses.replace(proj_map, weight=np.maximum(-w_state, 0).astype(np.float64))
    return (np.rint(pos.apply(ones)).reshape(-1).astype(np.int64),
            np.rint(neg.apply(ones)).reshape(-1).astype(np.int64))


def drive_bounds(terms, bias: np.ndarray | int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(largest, smallest) per-neuron input ``Σ w·s + bias`` when each source value ``s`` lies
    in ``[−a_neg, a_pos]``: ``terms`` is a list of (pos, neg, a_pos, a_neg), pos/neg from
    ``synapse_sums``. A positive weight adds most with ``s = a_pos`` and least with
    ``s = −a_neg``, a negative weight the other way round, so
    ``max = pos·a_pos + neg·a_neg + b`` and ``min = −(pos·a_neg + neg·a_pos) + b``: exact
    whenever every source can take either end independently of the others."""
    zmax = np.asarray(bias, np.int64).copy()
    zmin = np.asarray(bias, np.int64).copy()
    for pos, neg, a_pos, a_neg in terms:
        zmax = zmax + pos * a_pos + neg * a_neg
        zmin = zmin - pos * a_neg - neg * a_pos
    return zmax, zmin


def membrane_extent(zmax, zmin, steps: int, threshold: int | None = None, v0: int = 0,
                    phases: int = 0, nearest: bool = False, by_phase: bool = False):
    """(lo, hi) of every value a membrane takes over ``steps`` steps of
    ``V ← shift(V) + z; if threshold is not None and V ≥ threshold: V −= threshold``, starting
    from ``V = v0``, with the input ``z`` of each neuron anywhere in ``[zmin, zmax]`` at every
    step (arrays over neurons). ``phases = K > 0`` is phase coding's scaled membrane: the
    shift doubles V within a period and shifts it right by K−1 entering one (step 1 too),
    rounded to nearest if ``nearest``; otherwise there is no shift.

    Why it bounds: every operation is interval arithmetic on [L, H]. Shifts and adds are
    monotone. The reset is not (``u = θ−1`` stays, ``u = θ`` becomes 0), so the value after it
    lies in ``[L, H]`` when no value reaches θ, in ``[L − θ, H − θ]`` when every value does,
    and otherwise in ``[min(L, 0), max(θ − 1, H − θ)]`` (a value that fired is ≥ 0, one that
    did not is < θ). The extent covers the values after the shift, after the integration and after the reset:
    every value a register is fitted at. With ``by_phase`` (and ``phases``) it also returns
    (K, 2) the extent after the integration in each phase of a period (phase coding's
    decision unit compares membranes of one step). Tight: the ends are reached by a neuron whose
    inputs sit at one end in every step (for hidden layers the usual worst case is the
    negative one, a neuron inhibited in every step, drifting down by its input each step:
    reset by subtraction bounds the membrane from above only)."""
    zmax, zmin = np.broadcast_arrays(np.asarray(zmax, np.int64), np.asarray(zmin, np.int64))
    # neurons with the same input range have the same extent (a conv's interior positions)
    pairs = np.unique(np.stack([zmax.reshape(-1), zmin.reshape(-1)], axis=1), axis=0)
    bottom, top, per_phase = _extent_kernel(pairs[:, 0].copy(), pairs[:, 1].copy(), int(steps),
                                            -1 if threshold is None else int(threshold),
                                            int(v0), int(phases), bool(nearest))
    return (int(bottom), int(top), per_phase) if by_phase else (int(bottom), int(top))


@njit(cache=True)
def _extent_kernel(zmax, zmin, steps, threshold, v0, phases, nearest):
    """``membrane_extent``'s interval iteration, one neuron at a time (a long T costs
    nanoseconds per step, not a numpy call); ``threshold < 0``: no reset. Returns (bottom,
    top, per-phase (K, 2) extents after the integration)."""
    top, bottom = max(v0, 0), min(v0, 0)
    per_phase = np.zeros((max(phases, 1), 2), np.int64)
    add = (1 << (phases - 2)) if nearest and phases > 1 else 0
    for j in range(zmax.shape[0]):
        a, b = zmax[j], zmin[j]
        H, L = np.int64(v0), np.int64(v0)
        for t in range(steps):
            if phases:
                if t % phases:
                    H, L = H << 1, L << 1
                elif phases > 1:
                    H, L = (H + add) >> (phases - 1), (L + add) >> (phases - 1)
                top, bottom = max(top, H), min(bottom, L)
            H, L = min(H + a, BOUND_LIMIT), max(L + b, -BOUND_LIMIT)
            top, bottom = max(top, H), min(bottom, L)
            if phases:
                k = t % phases
                per_phase[k, 0] = min(per_phase[k, 0], L)
                per_phase[k, 1] = max(per_phase[k, 1], H)
            if threshold >= 0 and H >= threshold:
                if L >= threshold:  # every value fires
                    H, L = H - threshold, L - threshold
                else:  # some fire (now ≥ 0), some do not (still < θ)
                    H, L = max(threshold - 1, H - threshold), min(L, 0)
            if H >= BOUND_LIMIT or L <= -BOUND_LIMIT:
                break  # beyond any register: the exact value no longer matters
    return bottom, top, per_phase


# ---- choosing a layer's scale ----------------------------------------------------------------

@dataclass
class LayerFit:
    """A layer's scale and what its worst case needs."""

    name: str
    q: int  # state units per threshold
    frac: int  # fractional state bits
    fits: bool  # the extent fits state_bits at this scale
    bits_full: int  # state bits the extent needs with the profile's weight bits and frac = 0
    bits_least: int  # ... with MIN_WEIGHT_BITS-bit weights (the least the quantizer accepts)
    lo: int  # the extent at the chosen scale, state units
    hi: int


def _pow2(arithmetic) -> bool:
    """A power-of-two weight scale: one exponent per layer here, also under
    ``per_projection_pow2`` (these schemes give every projection into a layer its scale)."""
    return arithmetic.weight_scale != "per_layer"


def _weight_scale(limit: float, pow2: bool) -> float:
    return 2.0 ** math.floor(math.log2(limit)) if pow2 else limit


def _scale_for_bits(bits: int, biggest: float, arithmetic) -> float:
    """The weight scale at which the largest weight fills ``bits`` signed bits."""
    return _weight_scale(((1 << (bits - 1)) - 1) / (biggest or 1.0), _pow2(arithmetic))


def least_bits(biggest: float, extent: Extent, arithmetic) -> int:
    """State bits a layer's worst case needs with ``MIN_WEIGHT_BITS``-bit weights and no
    fractional bits: the least the quantizer can make it need."""
    wscale = _scale_for_bits(min(MIN_WEIGHT_BITS, int(arithmetic.weight_bits)), biggest, arithmetic)
    return signed_bits(*extent(max(round(wscale), 1), 0))


def fit_layer(name: str, biggest: float, extent: Extent | None, arithmetic,
              fixed: tuple[int, int] | None = None) -> LayerFit:
    """The scale of one layer whose largest |weight| is ``biggest`` (in thresholds).

    Weight precision first: the scale that fills ``weight_bits``, then the largest
    ``frac ≤ frac_bits`` whose extent fits ``state_bits``. If even ``frac = 0`` does not fit,
    the weight scale shrinks until it does; a layer that cannot fit even with
    ``MIN_WEIGHT_BITS``-bit weights keeps those (``fits`` is False). A layer with a ``fixed``
    extent (an encoder, whose registers do not depend on weights) gets ``q = 1, frac = 0``."""
    wb, fb, sb = int(arithmetic.weight_bits), int(arithmetic.frac_bits), int(arithmetic.state_bits)
    if fixed is not None:
        bits = signed_bits(*fixed)
        return LayerFit(name, 1, 0, bits <= sb, bits, bits, *fixed)
    pow2 = _pow2(arithmetic)

    def q_of(wscale: float, frac: int) -> int:
        return max(round(wscale * 2.0 ** frac), 1)

    def bits_at(wscale: float, frac: int) -> int:
        return signed_bits(*extent(q_of(wscale, frac), frac))

    full = _scale_for_bits(wb, biggest, arithmetic)
    bits_full, bits_least = bits_at(full, 0), least_bits(biggest, extent, arithmetic)
    wscale, frac = full, 0
    if bits_least > sb:
        # cannot fit (check_ranges raises, or warns with --allow-overflow): the weights keep
        # MIN_WEIGHT_BITS bits and the registers saturate or wrap, counted
        wscale = _scale_for_bits(min(MIN_WEIGHT_BITS, wb), biggest, arithmetic)
    elif bits_full <= sb:
        # each fractional bit doubles the extent (up to rounding): start from the headroom,
        # step down while it does not fit
        frac = int(np.clip(sb - bits_full, 0, fb))
        while frac > 0 and bits_at(wscale, frac) > sb:
            frac -= 1
    else:
        # the weights give up bits: shrink the scale by the excess, then in quarter-bit steps
        wscale = _weight_scale(full / 2.0 ** (bits_full - sb), pow2)
        while bits_at(wscale, 0) > sb and q_of(wscale, 0) > 1:
            wscale = _weight_scale(wscale / (2.0 if pow2 else 2.0 ** 0.25), pow2)
    q = q_of(wscale, frac)
    lo, hi = extent(q, frac)
    return LayerFit(name, q, frac, signed_bits(lo, hi) <= sb, bits_full, bits_least, lo, hi)


def check_ranges(what: str, fits: list[LayerFit], arithmetic, register: str,
                 *lengths: tuple[str, int, int, Callable[[int], int]]) -> list[str]:
    """The verdict on a network's layer fits (see the module docstring): ``[]`` if every layer
    holds its worst case with at least ``MIN_WEIGHT_BITS``-bit weights; else a UserError, or
    with ``arithmetic.allow_overflow`` the warning to print. ``what`` names the coding and its
    settings, ``register`` says what the worst case is. Each of ``lengths`` is a parameter
    the range grows with, ``(name, value, smallest, needed_at)``: ``needed_at(v)`` is the most
    state bits any layer needs with ``MIN_WEIGHT_BITS``-bit weights when the parameter is
    ``v`` (the others unchanged); the message names the largest value in
    ``[smallest, value)`` that fits."""
    sb, wb = int(arithmetic.state_bits), int(arithmetic.weight_bits)
    least = min(MIN_WEIGHT_BITS, wb)
    short = [f for f in fits if f.bits_least > sb]
    if not short:
        return _narrowed_weights(what, fits, wb, sb, register, [p for p, *_ in lengths])
    worst = max(short, key=lambda f: f.bits_least)
    advice = []
    for param, value, smallest, needed_at in lengths:
        lo, hi = smallest, value - 1  # the largest v in [lo, hi] with needed_at(v) <= sb
        best = None
        while lo <= hi:
            mid = (lo + hi) // 2
            if needed_at(mid) <= sb:
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        advice.append(f"the largest {param} that fits is {best}" if best is not None
                      else f"no {param} ≥ {smallest} fits")
    text = (f"coding {what}: layer '{worst.name}' needs {worst.bits_least} state bits to hold "
            f"its worst case ({register}) with even {least}-bit weights ({worst.bits_full} "
            f"with the profile's {wb}-bit weights); the profile has {sb}"
            + (f" ({len(short) - 1} more layer(s) short)" if len(short) > 1 else "")
            + "".join(f"; {a}" for a in advice))
    if not arithmetic.allow_overflow:
        raise UserError(text + "; or pass --allow-overflow to run anyway with counted "
                               "saturations")
    return [text + f": running anyway (--allow-overflow) with {least}-bit weights in the "
                   "short layers; registers beyond their width saturate or wrap (counted); "
                   "expect a loss of fixed-point accuracy"]


# weights that give up this many bits or more to fit the registers are reported: the
# quantizer accepts them, and the fixed-point accuracy may fall far below the float one (a
# probe's phase net: 0.125 against 0.50) or not at all (rate on digits_resnet, truenorth_like)
NARROWED_BITS_WARN = 3


def _narrowed_weights(what: str, fits: list[LayerFit], wb: int, sb: int, register: str,
                      params: list[str]) -> list[str]:
    """Warnings for the layers that fit ``sb`` state bits only with weights
    ``NARROWED_BITS_WARN`` or more bits narrower than the profile's (the extent grows with the
    weight scale, so the weights give up about ``bits_full − sb`` bits)."""
    return [w for f in fits
            if (w := narrowed_weights_warning(what, f.name, f.bits_full - sb, wb, sb, register,
                                              params))]


def narrowed_weights_warning(what: str, layer: str, lost: int, wb: int, sb: int, register: str,
                             params: list[str]) -> str | None:
    """The warning for a layer whose weights give up ``lost`` bits of the profile's ``wb`` so
    that its range (``register``) fits ``sb`` state bits; None below NARROWED_BITS_WARN."""
    if lost < NARROWED_BITS_WARN:
        return None
    smaller = f"a smaller {' or '.join(params)}, or " if params else ""
    if wb - lost < MIN_WEIGHT_BITS:  # "keeps about −2 of 8 bits" said nothing usable
        return (f"coding {what}: layer '{layer}' would need weights narrower than "
                f"{MIN_WEIGHT_BITS} bits (the fewest neurosim quantizes to) for its worst case "
                f"({register}) to fit {sb} state bits: it runs with {MIN_WEIGHT_BITS}-bit "
                f"weights and registers that can saturate or wrap (counted as overflow); the "
                f"fixed-point accuracy may fall far below float's (compare the two; "
                f"{smaller}a profile with more state_bits, fits)")
    return (f"coding {what}: layer '{layer}' keeps only about {wb - lost} of the profile's "
            f"{wb} weight bits so that its worst case ({register}) fits {sb} state bits; the "
            f"fixed-point accuracy may fall below float's (compare the two; {smaller}a profile "
            f"with more state_bits, keeps more)")


def most_bits(extents, arithmetic) -> int:
    """The most state bits any layer of ``extents`` (a scheme's ``register_extents`` list:
    (layer, largest |W|, extent or None, fixed extent or None)) needs with
    ``MIN_WEIGHT_BITS``-bit weights: what ``check_ranges`` searches lengths with."""
    return max(least_bits(b, e, arithmetic) if e else signed_bits(*f)
               for _, b, e, f in extents)


# ---- what the registers really held (neurosim check) -----------------------------------------

def high_water_extra(net, peak: np.ndarray, overflowed: np.ndarray) -> dict:
    """The ``extra`` entries a fixed-point run reports about its registers (``neurosim
    check``), from ``peak`` (layers,) the largest |register| each layer held on the data,
    state units (the engine's high-water marks, after each step), ``overflowed`` (layers,)
    whether it saturated or wrapped, and the network's static worst case
    (``info.register_bounds``, (layers, 2) lo, hi):

    * ``register_high``: the high-water mark in thresholds (spike amplitudes);
    * ``state_bits_needed``: the bits (sign included) that hold it at the weights'
      resolution, fractional bits excluded: the narrowest register with zero overflow on
      this data; None where a register overflowed (it needed more than it had);
    * ``state_bits_worst_case``: the same for the static worst case, what holds every input.

    The engine samples the registers after each step, so a value held only within a step
    (an IF membrane just before its reset, at most one threshold above what is stored) is
    not in the high-water mark; the worst case covers it.
    """
    info = net.info
    resolution = 2.0 ** np.asarray(info.frac, np.float64)
    need = np.ceil(np.asarray(peak, np.float64) / resolution).astype(np.int64)
    lo = np.floor(info.register_bounds[:, 0] / resolution).astype(np.int64)
    hi = np.ceil(info.register_bounds[:, 1] / resolution).astype(np.int64)
    names = net.names
    return {
        "register_high": {n: float(peak[l] / info.scale[l]) for l, n in enumerate(names)},
        "state_bits_needed": {n: None if overflowed[l] else signed_bits(-need[l], need[l])
                              for l, n in enumerate(names)},
        "state_bits_worst_case": {n: signed_bits(lo[l], hi[l]) for l, n in enumerate(names)},
    }


def bounds_array(fits: list[LayerFit]) -> np.ndarray:
    """(layers, 2) the static worst case (lo, hi) of each layer's registers, state units."""
    return np.array([(f.lo, f.hi) for f in fits], np.int64)
