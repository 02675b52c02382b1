"""The TSA neuron model (SWS/CSS) on the event engine: quantizer, process model, reference.

* ``quantize_sws`` turns the float SWS network (``neurosim.schemes.sws.SWSNet``: spike
  amplitudes θ, normalised weights, biases, windows) into an ``EventNetwork`` whose model is
  ``TSAParams`` (see "State units" below).
* ``tsa_step`` is the bit-accurate process model the engine calls per layer and step:
  amplify (β as shift-adds), integrate accumulator + bias, fit to ``state_bits`` (saturate
  or wrap, counted), fire ternary spikes, reset.
* ``tsa_reference_step`` is the same neuron in vectorised numpy for the dense reference
  (``neurosim.core.reference``); it shares no code with ``tsa_step``.

**State units.** In layer l a value of 1 (one spike amplitude θ_l) is
``Q_l = wscale_l · 2^frac_l`` integer units: weights are ``round(W · wscale_l)`` in
``weight_bits`` and enter the state shifted left by ``frac_l`` bits. The layer's largest state
(``STATE_HEADROOM·Σβ^k·β^Ts`` spike amplitudes: the TSA-ReLU registers hold the whole weighted
input and output) must fit ``state_bits``. ``_layer_scale`` serves weight precision first and
gives the remaining headroom to ``frac_l`` (at most the profile's ``frac_bits``), as a Loihi
weight exponent places the weights in the state word; with ``per_layer_pow2`` the weight scale
is a power of two. When even ``frac_l = 0`` cannot hold the range the weights use fewer than
``weight_bits`` bits (``weight_bits_used``): the price of the register width, reported, not
hidden. The encoder: ``Q_0 = 2^(weight_bits−1+frac_bits)``. Thresholds, resets and biases are
rounded to state units: ``v = threshold_ratio·β^Ts``, reset ``β^Ts``, per-step bias
``b̂/(θ Σβ^k)``.

**Registers.** ``h`` (register 0): the membrane, or for TSA-ReLU the β-weighted accumulated
input; ``g`` (register 1): TSA-ReLU's β-weighted output. Counted actions: README "Counting
semantics".
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from ..counts import ACTION_INDEX
from ..errors import UserError
from ..fixed_point import amplify_cost, amplify_np, fit_np, require_terms, state_limits
from ..results import SimResult
from . import engine
from .network import EventNetwork, ProjectionBuilder, core_order
from .reference import reference_model, run_reference
from .ranges import MIN_WEIGHT_BITS, narrowed_weights_warning
from .registers import compact_events, negative_events
from .registers import fit as _fit

ENCODER, TSA, TSA_RELU, READOUT = 0, 1, 2, 3
KIND_NAMES = {ENCODER: "encoder", TSA: "tsa", TSA_RELU: "tsa_relu", READOUT: "readout"}
# A layer's registers hold up to this many times its largest encodable value (Σβ^k spike
# amplitudes, amplified by β^Ts over the silent period), i.e. activations up to 2λ before a
# register saturates. Since the headroom is taken from the fractional bits first (see
# _layer_scale), it is cheap: measured on loihi_like at Tc=8, Ts=2, β=2, headroom 2 and 1
# give the same fixed accuracy on digits_cnn (0.9667) and digits_resnet (0.9861), with 0
# versus about 2 saturations per image.
STATE_HEADROOM = 2.0
MAX_TERMS = 4

TSAParams = namedtuple("TSAParams", [
    "kind", "recv", "fire",  # per layer: ENCODER|TSA|TSA_RELU|READOUT; (first, last) steps
    "threshold", "reset", "bias_nonzero",  # per layer, state units; biased neurons per layer
    "bias",  # per neuron, state units per step
    "b_sign", "b_exp", "n_terms",  # β = Σ sign·2^exp (MAX_TERMS slots, n_terms used)
    "amp",  # (MAX_TERMS, 4): per term sign, left shift, right shift, rounding addend (unused: 0)
    "lo", "hi", "wrap", "nearest", "negative", "current",
    "amp_shifts", "amp_adds",  # what one amplification of one register costs
])


@dataclass
class TSAInfo:
    """What decoding and reporting need beyond the integers."""

    Tc: int
    Ts: int
    beta: float
    encoder: str  # 'current' | 'potential'
    thetas: np.ndarray  # (layers,) spike amplitude θ_l, ANN units
    scale: np.ndarray  # (layers,) Q_l: state units per spike amplitude
    frac: np.ndarray  # (layers,) fractional state bits
    weight_bits_used: np.ndarray  # (layers,) bits the largest weight into l really uses
    # 'source->target': bits the projection's largest weight uses (its own exponent, if any)
    weight_bits_by_projection: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)  # range problems run anyway (--allow-overflow)


# ---- quantizer -------------------------------------------------------------------------------

def quantize_sws(snn, arithmetic) -> EventNetwork:
    """Integers for a float SWS/TSA network (``neurosim.schemes.sws.SWSNet``), see the module
    docstring. The float network fixes every real number; this only rounds and scales."""
    beta = snn.beta
    terms = require_terms(beta, int(arithmetic.max_beta_terms), "the profile's arithmetic.max_beta_terms")
    for p in snn.populations:
        if p.kind == "maxpool":
            raise UserError(f"MaxPool population '{p.name}' of {snn.graph_name} is not supported "
                            f"by the fixed-point core (the float simulator gates MaxPool); use "
                            f"AveragePool, or the float simulation alone (neurosim run or compare with "
                            f"--precision float)")
    index = {p.name: i for i, p in enumerate(snn.populations)}
    wb, fb, sb = int(arithmetic.weight_bits), int(arithmetic.frac_bits), int(arithmetic.state_bits)
    wmax = (1 << (wb - 1)) - 1
    ratio = snn.threshold_ratio

    # per_projection_pow2: the layer's unit is set by its largest weight as with per_layer_pow2;
    # a projection of smaller weights takes 2^fine finer units, shifted into the state word
    # fine bits less (its own weight exponent), so it keeps its full weight bits
    per_projection = arithmetic.weight_scale == "per_projection_pow2"
    warnings = check_range(snn, arithmetic)
    kinds, scales, thr, rst, biases, bits_used, fracs, recv, fire = ([] for _ in range(9))
    bits_by_projection: dict[str, float] = {}
    projections = ProjectionBuilder()
    for l, pop in enumerate(snn.populations):
        recv.append(snn.input_window(pop))
        fire.append(snn.fire_window(pop) if pop.kind != "readout" else (1, 0))
        if pop.kind == "input":
            # an input of one spike amplitude is 2^(weight_bits−1) units at full precision;
            # the register headroom then goes to fractional bits, as for any layer
            kinds.append(ENCODER)
            wscale, frac = _layer_scale(float(wmax + 1), snn.geometric, sb, fb, True)
            fracs.append(frac)
            q = wscale * 2.0 ** frac
            scales.append(q)
            thr.append(ratio * q)
            rst.append(q)
            biases.append(np.zeros(pop.neurons))
            bits_used.append(float("nan"))
            continue
        kinds.append(READOUT if pop.kind == "readout" else (TSA_RELU if snn.relu_counterpart else TSA))
        biggest = max(float(np.abs(q.map.weight).max()) for q in pop.projections) or 1.0
        silent = snn.silent(pop)
        encodable = snn.geometric * beta ** silent
        wscale, frac = _layer_scale(wmax / biggest, encodable, sb, fb,
                                    arithmetic.weight_scale != "per_layer")
        bits_used.append(float(np.log2(biggest * wscale + 1) + 1))
        # whole bits the weights give up to the register range (a power-of-two scale's
        # rounding is not given up to it)
        lost = int(np.floor(np.log2(wmax / biggest / _largest_q(encodable, sb)) + 1e-9))
        warning = narrowed_weights_warning(
            f"'sws' at Tc={snn.Tc}, Ts={snn.Ts}, beta={beta:g}", pop.name, lost, wb, sb,
            f"{STATE_HEADROOM:g}·Σβ^k·β^Ts spike amplitudes", ["Tc"])
        if warning:
            warnings.append(warning)
        fracs.append(frac)
        q = wscale * 2.0 ** frac
        scales.append(q)
        thr.append(ratio * beta ** silent * q)
        rst.append(beta ** silent * q)
        biases.append(core_order(pop.bias, pop.shape) * q)
        for proj in pop.projections:
            fine = 0
            if per_projection:  # its own exponent: as fine as its largest weight allows
                own = float(np.abs(proj.map.weight).max()) or biggest
                fine = min(int(np.floor(np.log2(wmax / (own * wscale)))), frac)
            w_int = np.round(proj.map.weight * wscale * 2.0 ** fine).astype(np.int64)
            projections.add(proj.map, w_int, index[proj.source], l, proj.delay, fine)
            bits_by_projection[f"{proj.source}->{pop.name}"] = float(
                np.log2(np.abs(proj.map.weight).max() * wscale * 2.0 ** fine + 1) + 1)

    sizes = np.array([p.neurons for p in snn.populations], np.int64)
    recv_a, fire_a = np.array(recv, np.int64), np.array(fire, np.int64)
    bias = np.round(np.concatenate(biases)).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    lo, hi = state_limits(sb)
    shifts, adds = amplify_cost(terms)
    model = TSAParams(
        kind=np.array(kinds, np.int64), recv=recv_a, fire=fire_a,
        # a threshold below one state unit would fire on zero: keep it at least 1
        threshold=np.maximum(np.round(thr), 1).astype(np.int64),
        reset=np.round(rst).astype(np.int64),
        bias_nonzero=np.array([np.count_nonzero(bias[o:o + n]) for o, n in zip(offsets, sizes)],
                              np.int64),
        bias=bias,
        b_sign=np.array([s for s, _ in terms] + [0] * (MAX_TERMS - len(terms)), np.int64),
        b_exp=np.array([k for _, k in terms] + [0] * (MAX_TERMS - len(terms)), np.int64),
        n_terms=len(terms), amp=_amp_table(terms, arithmetic.round == "nearest"), lo=lo, hi=hi, wrap=arithmetic.overflow == "wrap",
        nearest=arithmetic.round == "nearest", negative=bool(snn.negative_spikes),
        current=snn.encoder == "current", amp_shifts=shifts, amp_adds=adds)
    info = TSAInfo(Tc=snn.Tc, Ts=snn.Ts, beta=beta, encoder=snn.encoder,
                   thetas=np.array([p.theta for p in snn.populations]), scale=np.array(scales),
                   frac=np.array(fracs, np.int64), weight_bits_used=np.array(bits_used),
                   weight_bits_by_projection=bits_by_projection, warnings=warnings)
    active = np.stack([recv_a[:, 0], np.maximum(recv_a[:, 1], fire_a[:, 1])], axis=1)
    return EventNetwork(
        names=[p.name for p in snn.populations], shapes=[tuple(p.shape) for p in snn.populations],
        size=sizes, active=active, regs=2 if snn.relu_counterpart else 1,
        steps=snn.latency_steps, model=model, info=info, **projections.arrays(info.frac))


def needed_state_bits(snn, Tc: int | None = None, weight_bits: int = 8) -> dict[str, int]:
    """{population: state bits its registers need}: the largest state,
    ``STATE_HEADROOM·Σβ^k·β^Ts`` spike amplitudes, with one spike amplitude at full weight
    precision (the largest weight into the layer = 2^(weight_bits−1)−1 units; the input: one
    amplitude = 2^(weight_bits−1) units) and no fractional bits, plus the sign bit."""
    Tc = snn.Tc if Tc is None else Tc
    geometric = sum(snn.beta ** k for k in range(Tc))
    unit = 2.0 ** (weight_bits - 1)
    out = {}
    for pop in snn.populations:
        if pop.kind == "maxpool":
            continue
        biggest = 1.0 if pop.kind == "input" else \
            max(float(np.abs(q.map.weight).max()) for q in pop.projections) or 1.0
        q_full = unit if pop.kind == "input" else (unit - 1) / biggest
        largest = STATE_HEADROOM * geometric * snn.beta ** snn.silent(pop) * q_full
        out[pop.name] = int(np.ceil(np.log2(largest))) + 1
    return out


def check_range(snn, arithmetic) -> list[str]:
    """The registers' range against ``state_bits`` (DESIGN §4: a range that does not fit is an
    error, never a quiet number). A layer that cannot hold its range even with MIN_WEIGHT_BITS
    weights is an error naming it, the bits needed and available, and the largest Tc that
    fits; with the profile's arithmetic allowing overflow (``--allow-overflow``) it is returned
    as a warning instead. Fewer weight bits than the profile's (but at least MIN_WEIGHT_BITS)
    are not an error: ``weight_bits_used`` reports them."""
    wb, sb = int(arithmetic.weight_bits), int(arithmetic.state_bits)
    least = min(MIN_WEIGHT_BITS, wb)
    needed = needed_state_bits(snn, weight_bits=least)
    short = {name: bits for name, bits in needed.items() if bits > sb}
    if not short:
        return []
    fits = [tc for tc in range(snn.Tc - 1, 0, -1)
            if max(needed_state_bits(snn, tc, least).values()) <= sb]
    name, bits = max(short.items(), key=lambda kv: kv[1])
    full = needed_state_bits(snn, weight_bits=wb)[name]
    what = (f"coding 'sws' at Tc={snn.Tc}, Ts={snn.Ts}, beta={snn.beta:g}: layer '{name}' needs "
            f"{bits} state bits to hold its range ({STATE_HEADROOM:g}·Σβ^k·β^Ts spike "
            f"amplitudes) with even {least}-bit weights ({full} with the profile's {wb}-bit "
            f"weights); the profile has {sb}"
            + (f" ({len(short) - 1} more layer(s) short)" if len(short) > 1 else "")
            + (f"; the largest Tc that fits is {fits[0]}" if fits else "; no Tc fits"))
    if not arithmetic.allow_overflow:
        raise UserError(what + "; or pass --allow-overflow to run anyway with counted "
                               "saturations")
    return [what + ": running anyway (--allow-overflow): its weights keep fewer bits than "
                   f"{least}, expect a collapse of the fixed-point accuracy or saturations"]


def _layer_scale(w_limit: float, encodable: float, state_bits: int, frac_max: int,
                 pow2: bool) -> tuple[float, int]:
    """(weight scale, frac bits) of one layer.

    The largest state, ``STATE_HEADROOM · encodable`` spike amplitudes, must fit
    ``state_bits``: ``wscale · 2^frac · STATE_HEADROOM · encodable ≤ 2^(state_bits−1)``. Weight
    precision is served first — the scale that fills ``weight_bits`` — then whatever headroom
    is left becomes fractional state bits, up to the profile's ``frac_bits``. This is what a
    Loihi weight exponent does: it places the weights anywhere in the state word. Only when
    even ``frac = 0`` cannot hold the range do the weights lose bits.
    """
    q_max = _largest_q(encodable, state_bits)
    wscale = min(w_limit, q_max)
    if pow2:
        wscale = 2.0 ** int(np.floor(np.log2(wscale)))
    frac = int(np.clip(np.floor(np.log2(q_max / wscale)), 0, frac_max))
    return wscale, frac


def _largest_q(encodable: float, state_bits: int) -> float:
    """The largest state units per spike amplitude a layer's range allows."""
    return 2.0 ** (state_bits - 1) / (STATE_HEADROOM * encodable)


def _amp_table(terms, nearest: bool) -> np.ndarray:
    """Each β term as (sign, left, right, round): ``sign·(((u << left) + round) >> right)``.
    Unused rows are zero: the process model adds the first 1, 2 or all 4 rows (``tsa_step``),
    so a β of 3 terms adds one row of zeros."""
    table = np.zeros((MAX_TERMS, 4), np.int64)
    for i, (sign, k) in enumerate(terms):
        right = max(-k, 0)
        table[i] = (sign, max(k, 0), right, (1 << (right - 1)) if nearest and right else 0)
    return table


def encode_input(net: EventNetwork, x: np.ndarray) -> np.ndarray:
    """Per-image encoder drive in state units, core order: the constant current per step
    (``current``) or the initial membrane potential (``potential``)."""
    info = net.info
    a = net.from_chw(0, x) / info.thetas[0]
    k = np.sum(info.beta ** np.arange(info.Tc))
    drive = a / k if info.encoder == "current" else a / info.beta ** info.Tc
    return np.round(drive * info.scale[0]).astype(np.int64)


def initial_state(net: EventNetwork, drive: np.ndarray) -> np.ndarray:
    """Registers before step 1: the potential encoder starts with its drive in ``h``."""
    state = net.zero_state(len(drive))
    if net.info.encoder == "potential":
        state[:, 0, :net.size[0]] = drive
    return state


def initial_hook(net: EventNetwork):
    """``engine.simulate``'s ``initial``: None where every register starts at zero (the
    current encoder). A batch's whole initial state is tens of MB (digits_resnet, 360 images:
    30 MB) that the engine would only read; without it each thread zeroes one image's
    registers in a buffer it reuses (measured on digits_resnet, 360 images: 3–11 % faster on
    one thread, 3–13 % on two)."""
    return initial_state if net.info.encoder == "potential" else None


# ---- the process model (numba) ---------------------------------------------------------------

A_SREAD = ACTION_INDEX["state_read"]
A_SWRITE = ACTION_INDEX["state_write"]
A_ADD = ACTION_INDEX["add"]
A_SHIFT = ACTION_INDEX["shift"]
A_CMP = ACTION_INDEX["compare"]
A_POS = ACTION_INDEX["spike_out_pos"]
A_NEG = ACTION_INDEX["spike_out_neg"]
A_BIAS = ACTION_INDEX["bias_add"]
A_OVF = ACTION_INDEX["overflow"]


@njit(cache=True, inline="always")
def _signed(v, sign):
    """``sign·v`` for a sign in {−1, 0, 1} as a select, not a multiply: a 64-bit vector
    multiply is slow (measured: +8 % img/s on digits_resnet and the VGG in β, +5–10 % more
    in the reset)."""
    return v if sign > 0 else (-v if sign < 0 else v - v)


@njit(cache=True, inline="always")
def _amplify(u, a):
    """β·u as shift-adds: the sum of the rows of ``_amp_table`` that β uses, given flat as a
    tuple ``a`` of 4 entries per term so the loop keeps them in registers. The tuple's length
    is a compile-time constant, so each term count gets its own loop with no unused rows
    (β = 2 has one term; against adding four rows of which three are 0, measured +7 % img/s
    on digits_resnet, within the noise on the VGG);
    branch-free, so the register loops vectorise."""
    out = _signed(((u << a[1]) + a[3]) >> a[2], a[0])
    for k in range(4, len(a), 4):
        out += _signed(((u << a[k + 1]) + a[k + 3]) >> a[k + 2], a[k])
    return out


# The register loop: a jitted function of its own, so that LLVM vectorises it
# (``neurosim.core.engine``, "Speed"). Branch-free: a neuron that does not fire subtracts 0
# (its register is in range already, so no overflow is counted).

@njit(cache=True)
def _tsa_loop(h, g, acc, extra, use, ev_sign, amp, vth, rs, neg, lo, hi, wrap):
    """One layer's registers at one step, in one pass: h ← β·h + acc (+ ``extra``, the
    encoder's drive or the bias, when ``use``); for TSA-ReLU (``g`` given) g ← β·g; then, if
    the layer fires (``ev_sign`` given), the sign of each neuron's spike and its reset: TSA
    fires on h and resets h, TSA-ReLU fires on o = max(h, 0) − g and resets g. Which of g
    and ev_sign are None is decided when numba compiles, so each case is its own loop with
    nothing else in it. One pass instead of integrating and firing in two: measured +10 %
    img/s on the VGG, +3.5 % on digits_resnet.
    Returns the overflows (the spikes are counted once compacted: ``negative_events``)."""
    novf = 0
    for j in range(h.shape[0]):
        u, o1 = _fit(_amplify(h[j], amp), lo, hi, wrap)
        u, o2 = _fit(u + acc[j] + (extra[j] if use else 0), lo, hi, wrap)
        novf += o1 + o2
        if g is not None:
            gv, o3 = _fit(_amplify(g[j], amp), lo, hi, wrap)
            novf += o3
        if ev_sign is not None:
            if g is not None:
                o = u - gv if u >= 0 else -gv
                sgn = np.int64(o >= vth) - np.int64(neg and o <= -vth)
                gv, o4 = _fit(gv + _signed(rs, sgn), lo, hi, wrap)
            else:
                sgn = np.int64(u >= vth) - np.int64(neg and u <= -vth)
                u, o4 = _fit(u - _signed(rs, sgn), lo, hi, wrap)
            novf += o4
            ev_sign[j] = sgn
        h[j] = u
        if g is not None:
            g[j] = gv
    return novf


@njit(cache=True, inline="always")
def _update(h, g, acc, extra, use, ev_sign, amp, m, l, fires, relu):
    """The layer's update at this step through ``_tsa_loop``, with None for what it does
    not do."""
    vth, rs, neg, lo, hi, wrap = m.threshold[l], m.reset[l], m.negative, m.lo, m.hi, m.wrap
    if relu:
        if fires:
            return _tsa_loop(h, g, acc, extra, use, ev_sign, amp, vth, rs, neg, lo, hi, wrap)
        return _tsa_loop(h, g, acc, extra, use, None, amp, vth, rs, neg, lo, hi, wrap)
    if fires:
        return _tsa_loop(h, None, acc, extra, use, ev_sign, amp, vth, rs, neg, lo, hi, wrap)
    return _tsa_loop(h, None, acc, extra, use, None, amp, vth, rs, neg, lo, hi, wrap)


@engine.neuron_model(TSAParams)
@njit(cache=True, inline="always")
def tsa_step(m, l, t, img, off, x, acc, st, ev_idx, ev_sign, c):
    n = acc.shape[0]
    k = m.kind[l]
    t_ = m.amp
    in_recv = t <= m.recv[l, 1]
    fires = k != READOUT and m.fire[l, 0] <= t <= m.fire[l, 1]
    relu = k == TSA_RELU
    # the layer's registers as slice views (measured: 3× faster loops than offset indexing)
    h = st[0, off:off + n]
    g = st[1, off:off + n] if relu else h
    # what is added besides the accumulator: the encoder's drive (current encoder) or the
    # bias, only while the layer receives
    if k == ENCODER:
        extra, use = x[:n], m.current and in_recv
    else:
        extra, use = m.bias[off:off + n], in_recv and m.bias_nonzero[l] > 0
    # one compiled update per term count of β (``_amplify``)
    nt = m.n_terms
    if nt == 1:
        amp1 = (t_[0, 0], t_[0, 1], t_[0, 2], t_[0, 3])
        novf = _update(h, g, acc, extra, use, ev_sign, amp1, m, l, fires, relu)
    elif nt == 2:
        amp2 = (t_[0, 0], t_[0, 1], t_[0, 2], t_[0, 3], t_[1, 0], t_[1, 1], t_[1, 2], t_[1, 3])
        novf = _update(h, g, acc, extra, use, ev_sign, amp2, m, l, fires, relu)
    else:
        amp4 = (t_[0, 0], t_[0, 1], t_[0, 2], t_[0, 3], t_[1, 0], t_[1, 1], t_[1, 2], t_[1, 3],
                t_[2, 0], t_[2, 1], t_[2, 2], t_[2, 3], t_[3, 0], t_[3, 1], t_[3, 2], t_[3, 3])
        novf = _update(h, g, acc, extra, use, ev_sign, amp4, m, l, fires, relu)
    ne = nneg = 0
    if fires:
        ne = compact_events(ev_idx, ev_sign, n)
        nneg = negative_events(ev_sign, ne)
    # counts (README "Counting semantics")
    regs = 2 if relu else 1
    c[A_SREAD] += regs * n
    c[A_SWRITE] += regs * n
    c[A_SHIFT] += regs * n * m.amp_shifts
    # amplification + integrating the accumulator (the potential encoder has no input
    # current: its drive is loaded into h once, a state write at t = 1)
    potential = k == ENCODER and not m.current
    c[A_ADD] += regs * n * m.amp_adds + (0 if potential else n)
    if potential and t == 1:
        c[A_SWRITE] += n
    if in_recv and k != ENCODER:
        c[A_BIAS] += m.bias_nonzero[l]
    c[A_POS] += ne - nneg
    c[A_NEG] += nneg
    c[A_OVF] += novf
    if fires:
        c[A_CMP] += (2 if m.negative else 1) * n  # against +v, and −v with negative spikes
        c[A_ADD] += ne  # reset
        if relu:
            c[A_ADD] += n  # o = h − g
    return ne


# ---- the reference form (numpy, dense over the batch) ----------------------------------------

@reference_model(TSAParams)
def tsa_reference_step(m, l, t, x, acc, st, off, c):
    """The TSA update of layer l at step t for a whole batch, vectorised: returns spikes
    (images, n) in {−1, 0, 1} and adds this step's counts to ``c`` (images, actions)."""
    n = acc.shape[1]
    sl = slice(off, off + n)
    terms = [(int(s), int(e)) for s, e in zip(m.b_sign[:m.n_terms], m.b_exp[:m.n_terms])]
    bits = int(m.hi).bit_length() + 1

    def fit(u):
        v, over = fit_np(u, bits, bool(m.wrap))
        return v, over.sum(axis=1)

    k = m.kind[l]
    in_recv = t <= m.recv[l, 1]
    fires = k != READOUT and m.fire[l, 0] <= t <= m.fire[l, 1]
    u, ovf = fit(amplify_np(st[:, 0, sl], terms, m.nearest))
    z = acc
    if k == ENCODER:
        if m.current and in_recv:
            z = z + x
    elif in_recv:
        z = z + m.bias[sl]
    u, o2 = fit(u + z)
    ovf = ovf + o2
    relu = k == TSA_RELU
    if relu:
        gv, o3 = fit(amplify_np(st[:, 1, sl], terms, m.nearest))
        ovf += o3
    S = np.zeros(acc.shape, np.int64)
    if fires:
        o = np.where(u >= 0, u - gv, -gv) if relu else u
        v = m.threshold[l]
        negative = (o <= -v) if m.negative else np.zeros_like(o, bool)
        S = np.where(o >= v, 1, np.where(negative, -1, 0)).astype(np.int64)
        if relu:
            gv, o4 = fit(gv + S * m.reset[l])
        else:
            u, o4 = fit(u - S * m.reset[l])
        ovf += o4  # unchanged registers (S = 0) are in range already
    st[:, 0, sl] = u
    if relu:
        st[:, 1, sl] = gv
    regs = 2 if relu else 1
    npos, nneg = (S > 0).sum(1), (S < 0).sum(1)
    c[:, A_SREAD] += regs * n
    c[:, A_SWRITE] += regs * n
    c[:, A_SHIFT] += regs * n * m.amp_shifts
    potential = k == ENCODER and not m.current
    c[:, A_ADD] += regs * n * m.amp_adds + (0 if potential else n)
    if potential and t == 1:
        c[:, A_SWRITE] += n
    if k != ENCODER and in_recv:
        c[:, A_BIAS] += np.count_nonzero(m.bias[sl])
    c[:, A_POS] += npos
    c[:, A_NEG] += nneg
    c[:, A_OVF] += ovf
    if fires:
        c[:, A_CMP] += (2 if m.negative else 1) * n
        c[:, A_ADD] += npos + nneg + (n if relu else 0)
    return S


# ---- running it ------------------------------------------------------------------------------

def run_core(net: EventNetwork, drive: np.ndarray, trace: bool = False, img_base: int = 0):
    """The engine on a batch: (state, by_step, by_image, spikes), see ``engine.run``."""
    return engine.run(net, drive, initial_state(net, drive), trace, img_base)


def reference(net: EventNetwork, drive: np.ndarray):
    """The dense integer reference on a batch, same contract as ``run_core`` with trace."""
    return run_reference(net, drive, initial_state(net, drive))


def simulate_fixed(net: EventNetwork, x: np.ndarray, trace: bool = False, batch: int = 256,
                   progress=None) -> SimResult:
    """Bit-accurate run of ``x`` (N, *input shape) as a ``SimResult`` (ANN units).

    ``outputs`` are the readout's final membranes in ANN units; ``counts`` every counted
    action (per layer × step, and per image × layer); ``extra["overflow_by_layer"]`` the
    saturations/wraps per layer. With ``trace``, ``decoded`` holds each spiking population's
    Σβ^(Tc−t)·S(t)·θ and ``extra["spikes"]`` the trains. ``progress(done, total)`` is called
    after each batch of ``batch`` images.
    """
    info = net.info
    registers, counts, spikes, *high = engine.simulate(net, x, encode_input, initial_hook(net),
                                                       trace, batch, progress, watermarks=trace)
    last = net.layers - 1
    out = net.to_chw(last, registers[:, 0]) / info.scale[-1] * info.thetas[-1]
    decoded = {net.names[-1]: out}
    extra = {"overflow_by_layer": dict(zip(net.names, counts.data[:, :, A_OVF].sum(1).tolist())),
             "weight_bits_used": dict(zip(net.names, info.weight_bits_used.tolist())),
             "weight_bits_by_projection": dict(info.weight_bits_by_projection),
             "frac_bits": dict(zip(net.names, info.frac.tolist()))}
    if trace:
        extra["spikes"] = spikes
        # what the registers needed: the largest |register| in spike amplitudes, and the
        # state bits that hold it at the weights' resolution (no fractional bits) plus a sign
        # bit; None where the register overflowed (it needed more than it had)
        peak = high[0].max(axis=1)
        overflowed = counts.data[:, :, A_OVF].sum(1) > 0
        extra["register_high"] = dict(zip(net.names, (peak / info.scale).tolist()))
        extra["state_bits_needed"] = {
            name: None if overflowed[l] else
            int(np.ceil(np.log2(peak[l] / 2.0 ** info.frac[l] + 1))) + 1
            for l, name in enumerate(net.names)}
        for l, name in enumerate(net.names[:-1]):
            a, b = net.model.fire[l]
            weights = info.beta ** (b - np.arange(a, b + 1))  # β^(Tc−t) over the window
            value = np.tensordot(spikes[:, a - 1:b, net.layer_slice(l)].astype(np.float64),
                                 weights, ([1], [0]))
            decoded[name] = net.to_chw(l, value) * info.thetas[l]
    return SimResult(out, counts, net.steps, info.Tc + info.Ts, decoded, extra)
