"""TTFS coding: one spike per neuron, layer-by-layer windows, exact-mapping decode (DESIGN §3.3).

Time-to-first-spike in the exact-mapping style (Stanojevic et al.): a value is *when* a neuron
fires, every layer owns one window of ``T`` steps, and a neuron's membrane is a ramp whose
crossing time decodes the layer's ReLU exactly, up to the quantisation of time.

**Layers and windows.** The λ-normalised layers of ``neurosim.schemes._layered``
(``W = Ŵ·λ_source/λ_l``, ``b = b̂/λ_l``, so the value λ_l is 1). A population of level h owns
window h, steps ``hT+1 … (h+1)T`` (the input, level 0: steps 1…T); it receives in window h−1
(its sources' firing window) and fires in window h. The readout (level L+1, L hidden levels)
receives in window L and never fires. Latency ``T·(L+1)`` steps; a new frame can enter every
window, so ``T`` steps per frame. A residual projection that skips ``gap`` levels reaches its
target through a delay FIFO of ``gap·T`` steps, so its spikes arrive at the same offsets of
the target's input window as those of the adjacent layer.

**Encoding.** A value ``v = a/λ`` in (0, 1] fires at offset ``k = T−1 − n`` of its layer's
window, ``n = round((T−1)·v)`` (half up), and decodes to ``v̂ = n/(T−1)``; ``v > 1`` fires at
offset 0 (clipped); ``v ≤ 0`` never fires. The input layer is a neuron fed this ``n``
(``−1`` for a pixel ≤ 0): it fires when its ramp ``n + k`` reaches ``T−1``.

**The neuron and its decode** (derivation). Offsets ``s`` count from the start of the
layer's input window. An input spike at offset ``k_j`` (source value ``v̂_j = n_j/(T−1)``,
``n_j = T−1−k_j``) through weight ``w_j``:

1. *Integration*, offsets ``s = 0 … T−2``: ``I ← I + Σ w`` (this step's spikes), then
   ``V ← V + I``. The spike is in ``I`` from its own offset on, so ``V`` collects ``w_j``
   at the ``T−1−k_j = n_j`` offsets ``k_j … T−2``: after the last one
   ``V = Σ_j w_j·n_j = (T−1)·Σ_j w_j·v̂_j``. A spike at offset ``T−1`` (``v̂ = 0``) adds
   nothing, which is why offset ``T−1`` does not integrate.
2. *Boundary*, offset ``T−1``: the bias enters as ``(T−1)·b``, so ``V = (T−1)·z`` with
   ``z = Σ w·v̂ + b`` the layer's pre-activation (in units of λ_l) on the decoded inputs.
3. *Firing window*, offsets ``k = 0 … T−1`` of window h: the slope is replaced by the
   constant ``α`` (``V ← V + α`` before the compare, from offset 1 on), so at offset ``k``
   ``V = (T−1)·z + α·k``, and the neuron fires the first time ``V ≥ α(T−1) − α/2`` (at the
   last offset, ``V > α(T−1)``: see below). The firing offset must be ``k = T−1 − (T−1)·z`` (so that the spike decodes to ``z``): the ramp
   has to climb from ``(T−1)·z`` to the threshold in ``(T−1)·(1−z)`` steps, i.e.
   ``(T−1)·z + α(T−1)(1−z) = α(T−1)`` for every ``z``, which holds only for **α = 1**
   (one λ_l per step: the membrane gains, per step of ramp, what a unit input current gives
   it per step of integration). Then ``k = T−1 − round((T−1)·z)`` (half up), clipped to 0 for
   ``z > 1``, no spike for ``z ≤ 0``, and the spike decodes to ``clip(round((T−1)·z)/(T−1), 0, 1)``:
   ``ReLU(Σ w·v̂ + b)`` exactly, up to time quantisation (|error| ≤ 1/(2(T−1)) of λ_l per
   layer, on top of what the inputs' own errors carry through the weights).
   On its spike ``V ← −α(T−1)``, a full ramp below zero: the ramp cannot bring it back to the
   threshold within the window, so every neuron fires at most once.

DESIGN §3.3 says "fires once when V ≥ α(T−1)"; taken literally that fires at
``T−1 − ⌊(T−1)·z⌋``, a floor that biases every layer's values down by half a step, and fires
for ``z = 0``. The threshold here makes the firing offset exactly DESIGN's encoding formula
for every value: ``α(T−1) − α/2`` at offsets ``0 … T−2`` (the same as starting the ramp half
a step ahead: rounding), and at the last offset, where ``V = (T−1)·z + α(T−1)``,
``V > α(T−1)``, i.e. ``z > 0`` (a linear ramp with one threshold would also fire for
``−1/(2(T−1)) ≤ z ≤ 0``: on digits_cnn at T=32 that is 1277 instead of 1142 spikes and
192.6k instead of 176.4k synops per image, the extra ones carrying 0, for the same outputs).
Choosing the threshold constant per offset costs no counted action.

**Readout.** Integrates as a hidden neuron; at its boundary offset ``T−1`` the bias is added
and ``V/(T−1)`` is its pre-activation in units of λ: output ``V/(T−1)·λ`` (ReLU'd if the ANN
output is), prediction = argmax.

**Synapse** (``synapse``). ``current``: the current register ``I`` above; each input spike's
weight is read once (the engine's synop) and added to ``I``. ``reaccumulate``: no current
register (the form the TSC paper analyses): every synapse that has received its spike is
read and added to ``V`` again at every later integration step. The arithmetic is the same
(``V += Σ_active w``); the counts are not.

**State units** (fixed point). In a hidden layer or the readout, one λ_l (one step of ramp, α)
is ``Q_l = wscale_l·2^frac_l`` integer state units, a whole number ≥ 1: weights are
``round(W·wscale_l)`` in ``weight_bits`` (signed) and enter the registers shifted left by
``frac_l``; the boundary bias is ``round((T−1)·b·Q_l)``; ``α = Q_l``; the threshold
``Q_l(T−1) − ⌊Q_l/2⌋`` (the same comparison as ``≥ Q_l(T−1) − Q_l/2`` on integers), at the
last offset ``Q_l(T−1) + 1``; the reset ``−Q_l(T−1)``. ``Q_l`` and ``frac_l`` come from the
register range below. The input layer counts steps:
``Q_0 = 1``, threshold ``T−1`` at every offset, reset ``−(T−1)``. Nothing is shifted right, so the
profile's ``round`` does not apply.

**Register range.** ``V`` holds ``(T−1)·z`` at the boundary and ``−(T−1)`` after a spike (in
units of α), and during integration partial sums ``Σ_{k_j ≤ s} w_j·(s+1−k_j)``; ``I`` holds
``Σ w`` of the inputs that have spiked. The quantizer holds their worst case over every input
(``register_extents``: up to ``(T−1)·Σw⁺`` and down to ``−(T−1)·Σ|w⁻|`` plus the bias),
weight precision first, the headroom left as ``frac_l``; when even ``frac_l = 0`` cannot hold
it the weights give up bits, down to ``MIN_WEIGHT_BITS`` (``neurosim.core.ranges``); below
that it is an error naming the layer and the largest T that fits (``--allow-overflow``: a
warning, and registers saturate or wrap, counted as ``overflow``). The input layer needs
``[−(T−1), T−1]``.
In ``reaccumulate`` mode the simulator keeps the running sum of active weights in register 1
and the layer's count of active synapses in register 2 (first neuron's slot): devices for
computing and counting the re-reads, not hardware registers (not counted, never fitted: the
re-read sum goes through the same exact dendritic accumulator as the synops).

**Counted actions** (per image; synops and FIFO traffic are counted by the engine):

| action | counted |
|---|---|
| `synop` | per input spike, per stored synapse of its fan-out (conv: valid taps × output channels of its group; dense: every target it connects to; identity shortcut: 1). Spikes arriving at input offset T−1 (value 0) are fanned out and counted, then dropped |
| `weight_read` | `current`: 0 (a synop includes its weight read). `reaccumulate`: at integration offset s (0…T−2), every synapse activated at an earlier offset of the window (the sum of the layer's synops at offsets < s): a synapse whose spike came at offset k is read 1 + (T−2−k) = n times in all, once as a synop and then as `weight_read` |
| `state_read`, `state_write` | integration offsets 0…T−2, per neuron: `current` 2 each (V, I), `reaccumulate` 1 each (V). Boundary: 1 each per neuron with a non-zero bias. Firing window, per neuron: offset 0 reads 1 and writes only on a spike; offsets 1…T−1 read 1 and write 1. Input layer: offset 0 writes 1 (the load of n), offsets 1…T−1 read 1 and write 1 |
| `add` | integration, per neuron and offset: `current` 2 (spikes into I, I into V); `reaccumulate` 1 (the summed weights into V) + 1 per re-read weight. Firing window offsets 1…T−1 (and input layer offsets 1…T−1): 1 per neuron (the ramp) |
| `compare` | 1 per neuron per firing-window offset (input layer: per pixel per offset); the readout never compares |
| `spike_out_pos` | per spike (at most one per neuron); `spike_out_neg` = 0 |
| `bias_add` | per neuron with a non-zero bias, once, at the boundary (hidden layers and readout) |
| `shift`, `mac` | 0 |
| `fifo_write`, `fifo_read` | per spike through a residual projection that skips levels (delay gap·T): written in the source's step, read in the target's |
| `overflow` | per register fit that saturated or wrapped: I and V per integration offset (`reaccumulate`: V), V at the boundary, V per ramp step, the input layer's load. The reset and the ramp after it cannot overflow |

The encoding of a pixel (its ``n``) is the sensor's or host's work and is not counted; the
input layer's ramp and compares are.
"""

from __future__ import annotations

from collections import deque, namedtuple
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit

from ..core import engine, ranges
from ..core.network import EventNetwork, ProjectionBuilder, core_order
from ..core.reference import reference_model
from ..core.registers import compact_events
from ..core.registers import fit as _fit
from ..counts import ACTION_INDEX, Counts
from ..fixed_point import fit_np, state_limits
from ..graph import Graph
from ._layered import Layer, input_sum, normalise
from .base import Param, Scheme, SimResult, in_batches

SYNAPSES = ("current", "reaccumulate")


# --------------------------------------------------------------------------- parameters

def _window_check(v):
    return None if v >= 2 else "an integer ≥ 2 (a window needs a first and a last offset)"


def _percentile_check(v):
    return None if 0.0 < v <= 100.0 else "in (0, 100]"


PARAMS = (
    Param("T", "int", 32, "time steps per layer window", check=_window_check),
    Param("synapse", "enum", "current", "current: a current register per neuron, one weight "
          "read per input spike; reaccumulate: every active synapse re-read and added at every "
          "later step", choices=SYNAPSES),
    Param("percentile", "float", 99.9, "calibration percentile q of λ", check=_percentile_check),
)


# --------------------------------------------------------------------------- the converted SNN

@dataclass
class TTFSNet:
    """A float TTFS SNN: λ-normalised layers, input first, readout last."""

    graph_name: str
    populations: list[Layer]
    T: int
    synapse: str
    params: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # what a reader of the result must know

    @property
    def hidden_levels(self) -> int:
        """L: levels between the input and the readout (longest path)."""
        return self.populations[-1].level - 1

    @property
    def latency_steps(self) -> int:
        return self.T * (self.hidden_levels + 1)

    @property
    def steps_per_frame(self) -> int:
        return self.T

    def input_start(self, layer: Layer) -> int:
        """First global step (1-based) of ``layer``'s input window; the input layer has
        none and fires in window 0."""
        return (layer.level - 1) * self.T + 1

    def fire_start(self, layer: Layer) -> int:
        return layer.level * self.T + 1


def convert(graph: Graph, scales: dict[str, float], params: dict[str, Any]) -> TTFSNet:
    """The TTFS SNN of ``graph`` (DESIGN §3.3) from calibrated scales λ."""
    return TTFSNet(graph.name, normalise(graph, scales, "ttfs"), int(params["T"]),
                   str(params["synapse"]), dict(params))


def encode_steps(v: np.ndarray, T: int) -> np.ndarray:
    """The input layer's drive: ``n = round((T−1)·v)`` (half up) clipped to [0, T−1] for a
    value ``v > 0`` (in units of λ), −1 for ``v ≤ 0``; it fires at offset ``T−1−n``."""
    n = np.clip(np.floor((T - 1) * np.asarray(v, np.float64) + 0.5), 0, T - 1)
    return np.where(np.asarray(v) > 0, n, -1).astype(np.int64)


def decode_offsets(k: np.ndarray, T: int) -> np.ndarray:
    """Value (units of λ) of firing offsets ``k`` (−1: no spike, value 0)."""
    return np.where(k >= 0, (T - 1 - k) / (T - 1), 0.0)


# --------------------------------------------------------------------------- float simulator

def simulate(net: TTFSNet, x: np.ndarray, trace: bool = False, batch: int = 256,
             progress=None) -> SimResult:
    """Run ``net`` on images ``x`` (N, *input shape) in float, time-stepped, ``batch`` images
    at a time: the same neuron as the fixed-point model with α = 1 (V in units of λ·step).

    ``counts``: spikes (``spike_out_pos``) per layer and step. ``decoded``: every spiking
    population's decoded value and the readout's output, ANN units. ``extra``:
    ``fire_offset`` {population: (N, *shape) firing offset in its window, −1 = silent};
    ``register_peak`` {layer: {"membrane", "current"}: largest |V|, |I| over the images, in
    units of (T−1)·α (the threshold)}; ``spikes`` mean spikes per image per layer; with
    ``trace``, ``trace`` {population: (N, T, *shape) int8 spikes of its firing window}.
    """
    parts = in_batches(lambda xb, s: _simulate_batch(net, xb, trace), x, batch, progress)
    counts = parts[0].counts
    for p in parts[1:]:
        counts = counts + p.counts

    def cat(d):
        return {k: np.concatenate([p.extra[d][k] for p in parts]) for k in parts[0].extra[d]}

    decoded = {k: np.concatenate([p.decoded[k] for p in parts]) for k in parts[0].decoded}
    peaks = {name: {reg: max(p.extra["register_peak"][name][reg] for p in parts)
                    for reg in ("membrane", "current")} for name in parts[0].extra["register_peak"]}
    n = max(len(x), 1)
    extra = {"fire_offset": cat("fire_offset"), "register_peak": peaks,
             "spikes": {name: {"pos": c["spike_out_pos"] / n, "neg": 0.0}
                        for name, c in counts.by_layer().items()}}
    if trace:
        extra["trace"] = cat("trace")
    return SimResult(decoded[net.populations[-1].name], counts, net.latency_steps,
                     net.steps_per_frame, decoded, extra)


def _simulate_batch(net: TTFSNet, x: np.ndarray, trace: bool) -> SimResult:
    n, T = len(x), net.T
    names = [layer.name for layer in net.populations]
    counts = Counts.zeros(names, net.latency_steps, n)
    pos = ACTION_INDEX["spike_out_pos"]
    first, readout = net.populations[0], net.populations[-1]
    V = {layer.name: np.zeros((n,) + layer.shape) for layer in net.populations}
    I = {layer.name: np.zeros((n,) + layer.shape) for layer in net.populations[1:]}
    peak = {name: {"membrane": 0.0, "current": 0.0} for name in names}
    offset = {layer.name: np.full((n,) + layer.shape, -1, np.int64)
              for layer in net.populations[:-1]}
    trains = {layer.name: np.zeros((n, T) + layer.shape, np.int8)
              for layer in net.populations[:-1]} if trace else None
    fifos = {(layer.name, i): deque([None] * (q.gap * T)) for layer in net.populations[1:]
             for i, q in enumerate(layer.projections) if q.gap}
    drive = encode_steps(x / first.lam, T).astype(np.float64)
    # threshold (offsets 0…T−2) and reset in units of α = 1; at the last offset a hidden
    # neuron fires if V > T−1; the input layer's drive is rounded already (threshold T−1)
    hidden_threshold, reset = (T - 1) - 0.5, -(T - 1.0)
    for t in range(1, net.latency_steps + 1):
        fired: dict[str, np.ndarray | None] = {}
        for l, layer in enumerate(net.populations):
            name = layer.name
            spikes = None
            if layer.kind == "input":
                k = t - 1
                if k < T:
                    V[name] = drive if k == 0 else V[name] + 1.0
                    spikes = _fire(V[name], V[name] >= T - 1, reset)
            else:
                z = _arriving(layer, fired, fifos)
                s = t - net.input_start(layer)
                if z is not None and not 0 <= s < T:
                    raise AssertionError(f"{name}: spikes arrived at step {t}, outside its input "
                                         f"window")
                if 0 <= s < T - 1:
                    if z is not None:
                        I[name] = I[name] + z
                    V[name] = V[name] + I[name]
                elif s == T - 1:
                    V[name] = V[name] + (T - 1) * layer.bias.reshape(layer.shape)
                elif layer.kind == "hidden" and T <= s < 2 * T:
                    if s > T:
                        V[name] = V[name] + 1.0
                    above = (V[name] > T - 1) if s == 2 * T - 1 else (V[name] >= hidden_threshold)
                    spikes = _fire(V[name], above, reset)
                peak[name]["current"] = max(peak[name]["current"],
                                            float(np.abs(I[name]).max(initial=0.0)))
            peak[name]["membrane"] = max(peak[name]["membrane"],
                                         float(np.abs(V[name]).max(initial=0.0)))
            fired[name] = spikes
            if spikes is not None:
                k = t - (1 if layer.kind == "input" else net.fire_start(layer))
                offset[name][spikes > 0] = k
                counts.data[l, t - 1, pos] = int(np.count_nonzero(spikes))
                if trace:
                    trains[name][:, k] = spikes
    decoded = {layer.name: decode_offsets(offset[layer.name], T) * layer.lam
               for layer in net.populations[:-1]}
    out = V[readout.name] / (T - 1) * readout.lam
    decoded[readout.name] = np.maximum(out, 0.0) if readout.relu_output else out
    extra = {"fire_offset": offset,
             "register_peak": {name: {reg: v / (T - 1) for reg, v in p.items()}
                               for name, p in peak.items()}}
    if trace:
        extra["trace"] = trains
    return SimResult(decoded[readout.name], counts, net.latency_steps, net.steps_per_frame,
                     decoded, extra)


def _fire(v: np.ndarray, above: np.ndarray, reset: float) -> np.ndarray:
    """Spikes of the membranes ``v`` at the threshold (``above``); a neuron that fires is
    reset, in place."""
    v[above] = reset
    return above.astype(np.int8)


def _arriving(layer: Layer, fired: dict, fifos: dict) -> np.ndarray | None:
    """Σ W·(spikes arriving this step), units of λ_layer; None if nothing arrived. Every delay
    FIFO shifts once per step (this is called for every layer every step)."""
    arriving = {}
    # projections from one source (a residual block's conv and shortcut) share its gap, so
    # one entry per source serves them all
    for i, q in enumerate(layer.projections):
        spikes = fired[q.source]
        if q.gap:
            fifo = fifos[(layer.name, i)]
            fifo.append(spikes)
            spikes = fifo.popleft()
        arriving[q.source] = spikes
    return input_sum(layer, arriving)


# --------------------------------------------------------------------------- quantizer

ENCODER, HIDDEN, READOUT = 0, 1, 2

TTFSParams = namedtuple("TTFSParams", [
    "kind",  # per layer: ENCODER | HIDDEN | READOUT
    "start",  # per layer: first step of its input window (the input layer: of its firing window)
    "T",  # steps per window
    "alpha", "threshold", "reset",  # per layer, state units: ramp step, threshold, reset value
    "last_threshold",  # per layer, state units: the threshold at the last firing offset
    "bias", "bias_nonzero",  # per neuron, state units ((T−1)·b·Q); biased neurons per layer
    "lo", "hi", "wrap",  # state register limits, overflow mode
    "reaccumulate",  # synapse=reaccumulate (counts the re-reads; no current register)
])


@dataclass
class TTFSInfo:
    """What encoding, decoding and reporting need beyond the integers."""

    T: int
    synapse: str
    levels: np.ndarray  # (layers,) level of each population
    lams: np.ndarray  # (layers,) λ, ANN units
    scale: np.ndarray  # (layers,) Q_l: state units per λ_l (= α)
    frac: np.ndarray  # (layers,) fractional state bits
    weight_bits_used: np.ndarray  # (layers,) bits the largest weight into l really uses
    relu_output: bool  # the ANN's output is ReLU(readout)
    warnings: list = field(default_factory=list)  # range problems run anyway (--allow-overflow)
    # (layers, 2) the static worst case (lo, hi) of each layer's registers, state units
    register_bounds: np.ndarray | None = None


def quantize(snn: TTFSNet, arithmetic) -> EventNetwork:
    """Integers for a float TTFS network (module docstring, "State units"); each layer's scale
    holds its registers' worst case (``register_extents``), or the range error is raised."""
    T = snn.T
    wb, sb = int(arithmetic.weight_bits), int(arithmetic.state_bits)
    lo, hi = state_limits(sb)
    wmax = (1 << (wb - 1)) - 1
    pops = snn.populations
    fits = [ranges.fit_layer(layer.name, biggest, extent, arithmetic, fixed)
            for layer, biggest, extent, fixed in register_extents(snn, arithmetic, T)]
    warnings = ranges.check_ranges(
        f"'ttfs' at T={T}", fits, arithmetic,
        "T−1 steps of ramp, and the input window's partial sums of its weights",
        ("T", T, 2, lambda t: ranges.most_bits(register_extents(snn, arithmetic, t), arithmetic)))
    index = {layer.name: i for i, layer in enumerate(pops)}
    kinds, starts, scales, fracs, biases, bits_used = ([] for _ in range(6))
    projections = ProjectionBuilder()
    for l, (layer, fit) in enumerate(zip(pops, fits)):
        if layer.kind == "input":
            kinds.append(ENCODER)
            starts.append(1)
            scales.append(1)
            fracs.append(0)
            biases.append(np.zeros(layer.neurons))
            bits_used.append(float("nan"))
            continue
        kinds.append(READOUT if layer.kind == "readout" else HIDDEN)
        starts.append(snn.input_start(layer))
        q_l, frac = fit.q, fit.frac
        scales.append(q_l)
        fracs.append(frac)
        biases.append(core_order(layer.bias, layer.shape) * (T - 1) * q_l)
        largest = 0
        for q in layer.projections:
            w_int = ranges.integer_weights(q.map.weight, q_l, frac, wmax)
            largest = max(largest, int(np.abs(w_int).max()))
            projections.add(q.map, w_int, index[q.source], l, q.gap * T)
        bits_used.append(float(np.log2(largest + 1) + 1))
    sizes = np.array([layer.neurons for layer in pops], np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    kind = np.array(kinds, np.int64)
    start = np.array(starts, np.int64)
    q = np.array(scales, np.int64)
    bias = np.round(np.concatenate(biases)).astype(np.int64)
    reaccumulate = snn.synapse == "reaccumulate"
    model = TTFSParams(
        kind=kind, start=start, T=T, alpha=q,
        # the input layer's drive is rounded already: no half step there
        threshold=np.where(kind == ENCODER, T - 1, q * (T - 1) - q // 2),
        reset=-q * (T - 1), last_threshold=np.where(kind == ENCODER, T - 1, q * (T - 1) + 1),
        bias=bias,
        bias_nonzero=np.array([np.count_nonzero(bias[o:o + n]) for o, n in zip(offsets, sizes)],
                              np.int64),
        lo=lo, hi=hi, wrap=arithmetic.overflow == "wrap", reaccumulate=reaccumulate)
    info = TTFSInfo(T=T, synapse=snn.synapse, levels=np.array([x.level for x in pops]),
                    lams=np.array([x.lam for x in pops]), scale=q.astype(np.float64),
                    frac=np.array(fracs, np.int64), weight_bits_used=np.array(bits_used),
                    relu_output=pops[-1].relu_output, warnings=warnings,
                    register_bounds=ranges.bounds_array(fits))
    # input layer: its firing window; hidden: input and firing windows; readout: input window
    span = np.where(kind == HIDDEN, 2 * T, T)
    active = np.stack([start, start + span - 1], axis=1)
    return EventNetwork(
        names=[x.name for x in pops], shapes=[tuple(x.shape) for x in pops],
        size=sizes, active=active, regs=3 if reaccumulate else 2, steps=snn.latency_steps,
        model=model, info=info, **projections.arrays(info.frac))


def register_extents(snn: TTFSNet, arithmetic, T: int) -> list:
    """Per population (layer, largest |W|, ``extent(q, frac)``, None), or for the input
    (layer, 0, None, its fixed extent): the worst case of its registers with windows of ``T``
    steps (``neurosim.core.ranges``), from the neuron's own integer rule.

    Every source fires at most once per image (after its spike its membrane is a full ramp
    below zero, which the rest of the window cannot bring back to the threshold), with value
    1, so the current ``I`` (the sum of the weights whose spike has arrived) lies in
    ``[−Σ|w⁻|, Σw⁺]`` per neuron, and ``V`` after integration offsets 0…T−2, the sum of
    ``w·(offsets since the spike)``, in ``(T−1)·[−Σ|w⁻|, Σw⁺]``: reached when every
    source of one sign fires at offset 0. The boundary adds the bias ``(T−1)·b·q``. In the
    firing window a neuron below the threshold (< q(T−1)) ramps by q, so it stays ≤ q·T; a
    spike resets it to −q(T−1), and the ramp only raises it. The readout integrates and takes
    its bias, without a window of its own. The input layer holds its ``n`` in [−1, T−1], then
    ramps to T−1 and resets to −(T−1)."""
    wmax = (1 << (int(arithmetic.weight_bits) - 1)) - 1
    out = []
    for layer in snn.populations:
        if layer.kind == "input":
            out.append((layer, 0.0, None, (-(T - 1), T - 1)))
            continue

        def extent(q, frac, layer=layer):
            terms = [(*ranges.synapse_sums(
                p.map, ranges.integer_weights(p.map.weight, q, frac, wmax) << frac), 1, 0)
                for p in layer.projections]
            i_hi, i_lo = ranges.drive_bounds(terms)
            b = np.round(layer.bias * (T - 1) * q).astype(np.int64).reshape(-1)
            v_hi = (T - 1) * i_hi + np.maximum(b, 0)
            v_lo = (T - 1) * i_lo + np.minimum(b, 0)
            lo, hi = int(v_lo.min(initial=0)), int(v_hi.max(initial=0))
            if layer.kind != "readout":  # the ramp and the reset
                lo, hi = min(lo, -q * (T - 1)), max(hi, q * T)
            return lo, hi

        biggest = max(float(np.abs(p.map.weight).max()) for p in layer.projections)
        out.append((layer, biggest, extent, None))
    return out


def encode_input(net: EventNetwork, x: np.ndarray) -> np.ndarray:
    """Each image's input row (engine ``inputs``): the input layer's ``n`` per pixel, core
    order (``encode_steps``)."""
    return encode_steps(net.from_chw(0, x / net.info.lams[0]), net.info.T)


# --------------------------------------------------------------------------- neuron model (numba)

A_SYNOP = ACTION_INDEX["synop"]
A_WREAD = ACTION_INDEX["weight_read"]
A_SREAD = ACTION_INDEX["state_read"]
A_SWRITE = ACTION_INDEX["state_write"]
A_ADD = ACTION_INDEX["add"]
A_CMP = ACTION_INDEX["compare"]
A_POS = ACTION_INDEX["spike_out_pos"]
A_BIAS = ACTION_INDEX["bias_add"]
A_OVF = ACTION_INDEX["overflow"]


# The neuron loops: jitted functions of their own, so that LLVM vectorises them
# (``neurosim.core.engine``, "Speed").

@njit(cache=True)
def _fire_loop(v, src, add, ev_sign, threshold, reset, lo, hi, wrap):
    """A firing-window step: V = src + add (the encoder's load: src = x, add = 0; the ramp:
    src = V, add = α; the window's first offset: src = V, add = 0, V in range already, so
    nothing to fit), fire at V ≥ threshold and set V to ``reset``. Returns the overflows (the
    spikes are counted once compacted)."""
    novf = 0
    for j in range(v.shape[0]):
        u, o = _fit(src[j] + add, lo, hi, wrap)
        sgn = np.int64(u >= threshold)
        v[j] = reset if sgn else u
        novf += o
        ev_sign[j] = sgn
    return novf


@njit(cache=True)
def _add_loop(v, bias, lo, hi, wrap):
    """V += bias (the window boundary)."""
    novf = 0
    for j in range(v.shape[0]):
        u, o = _fit(v[j] + bias[j], lo, hi, wrap)
        v[j] = u
        novf += o
    return novf


@njit(cache=True)
def _reaccumulate_loop(v, cur, acc, lo, hi, wrap):
    """``synapse=reaccumulate``: the active weights' sum r grows by this step's input, and
    V += r."""
    novf = 0
    for j in range(v.shape[0]):
        r = cur[j] + acc[j]
        u, o = _fit(v[j] + r, lo, hi, wrap)
        cur[j] = r
        v[j] = u
        novf += o
    return novf


@njit(cache=True)
def _current_loop(v, cur, acc, lo, hi, wrap):
    """``synapse=current``: I += input, V += I."""
    novf = 0
    for j in range(v.shape[0]):
        i, o1 = _fit(cur[j] + acc[j], lo, hi, wrap)
        u, o2 = _fit(v[j] + i, lo, hi, wrap)
        cur[j] = i
        v[j] = u
        novf += o1 + o2
    return novf


@engine.neuron_model(TTFSParams)
@njit(cache=True, inline="always")
def ttfs_step(m, l, t, img, off, x, acc, st, ev_idx, ev_sign, c):
    # registers through slice views, handed to the neuron loops above
    n = acc.shape[0]
    kind = m.kind[l]
    T = m.T
    s = t - m.start[l]  # offset from the start of the layer's input window
    lo, hi, wrap = m.lo, m.hi, m.wrap
    v = st[0, off:off + n]
    if kind == ENCODER or s >= T:  # firing window, offset k
        k = s if kind == ENCODER else s - T
        alpha, reset = m.alpha[l], m.reset[l]
        threshold = m.threshold[l] if k < T - 1 else m.last_threshold[l]
        if k == 0 and kind == ENCODER:  # load n
            novf = _fire_loop(v, x[:n], 0, ev_sign, threshold, reset, lo, hi, wrap)
            c[A_SWRITE] += n
        elif k == 0:  # the boundary left V = (T−1)·z: compare only
            novf = _fire_loop(v, v, 0, ev_sign, threshold, reset, lo, hi, wrap)
            c[A_SREAD] += n
        else:  # ramp
            novf = _fire_loop(v, v, alpha, ev_sign, threshold, reset, lo, hi, wrap)
            c[A_SREAD] += n
            c[A_SWRITE] += n
            c[A_ADD] += n
        ne = compact_events(ev_idx, ev_sign, n)
        if k == 0 and kind != ENCODER:
            c[A_SWRITE] += ne  # only the neurons that fire are reset
        c[A_CMP] += n
        c[A_POS] += ne
        c[A_OVF] += novf
        return ne
    if s == T - 1:  # boundary: the bias; this offset's spikes (value 0) are dropped
        novf = _add_loop(v, m.bias[off:off + n], lo, hi, wrap)
        nb = m.bias_nonzero[l]
        c[A_SREAD] += nb
        c[A_SWRITE] += nb
        c[A_BIAS] += nb
        c[A_OVF] += novf
        return 0
    cur = st[1, off:off + n]  # integration: I (current) or the active weights' sum
    if m.reaccumulate:
        novf = _reaccumulate_loop(v, cur, acc, lo, hi, wrap)
        active = st[2, off]  # synapses activated at earlier offsets: re-read now
        c[A_WREAD] += active
        c[A_ADD] += active + n
        c[A_SREAD] += n
        c[A_SWRITE] += n
        st[2, off] = active + c[A_SYNOP]
    else:
        novf = _current_loop(v, cur, acc, lo, hi, wrap)
        c[A_SREAD] += 2 * n
        c[A_SWRITE] += 2 * n
        c[A_ADD] += 2 * n
    c[A_OVF] += novf
    return 0


# --------------------------------------------------------------------------- reference (numpy)

@reference_model(TTFSParams)
def ttfs_reference_step(m, l, t, x, acc, st, off, c):
    """The TTFS neuron of layer l at step t for a whole batch, vectorised: returns spikes
    (images, n) in {0, 1} and adds this step's counts to ``c`` (images, actions)."""
    n_img, n = acc.shape
    sl = slice(off, off + n)
    bits = int(m.hi).bit_length() + 1
    wrap = bool(m.wrap)
    kind, T = m.kind[l], m.T
    s = t - m.start[l]
    spikes = np.zeros((n_img, n), np.int64)
    if kind == ENCODER or s >= T:
        k = s if kind == ENCODER else s - T
        over = np.zeros((n_img, n), bool)
        if k == 0 and kind == ENCODER:
            u, over = fit_np(x[:, :n], bits, wrap)
            c[:, A_SWRITE] += n
        elif k == 0:
            u = st[:, 0, sl]
        else:
            u, over = fit_np(st[:, 0, sl] + m.alpha[l], bits, wrap)
            c[:, A_ADD] += n
            c[:, A_SWRITE] += n
        spikes = (u >= (m.threshold[l] if k < T - 1 else m.last_threshold[l])).astype(np.int64)
        st[:, 0, sl] = np.where(spikes > 0, m.reset[l], u)
        if k > 0 or kind != ENCODER:
            c[:, A_SREAD] += n
        if k == 0 and kind != ENCODER:
            c[:, A_SWRITE] += spikes.sum(1)
        c[:, A_CMP] += n
        c[:, A_POS] += spikes.sum(1)
        c[:, A_OVF] += over.sum(1)
    elif s == T - 1:
        v, over = fit_np(st[:, 0, sl] + m.bias[sl], bits, wrap)
        st[:, 0, sl] = v
        nb = np.count_nonzero(m.bias[sl])
        c[:, A_SREAD] += nb
        c[:, A_SWRITE] += nb
        c[:, A_BIAS] += nb
        c[:, A_OVF] += over.sum(1)
    elif m.reaccumulate:
        r = st[:, 1, sl] + acc
        v, over = fit_np(st[:, 0, sl] + r, bits, wrap)
        st[:, 1, sl] = r
        st[:, 0, sl] = v
        active = st[:, 2, off].copy()
        c[:, A_WREAD] += active
        c[:, A_ADD] += active + n
        c[:, A_SREAD] += n
        c[:, A_SWRITE] += n
        c[:, A_OVF] += over.sum(1)
        st[:, 2, off] = active + c[:, A_SYNOP]
    else:
        i, over_i = fit_np(st[:, 1, sl] + acc, bits, wrap)
        v, over_v = fit_np(st[:, 0, sl] + i, bits, wrap)
        st[:, 1, sl] = i
        st[:, 0, sl] = v
        c[:, A_SREAD] += 2 * n
        c[:, A_SWRITE] += 2 * n
        c[:, A_ADD] += 2 * n
        c[:, A_OVF] += over_i.sum(1) + over_v.sum(1)
    return spikes


# --------------------------------------------------------------------------- running it

def simulate_fixed(net: EventNetwork, x: np.ndarray, trace: bool = False, progress=None,
                   batch: int = 256) -> SimResult:
    """Bit-accurate run of ``x`` (N, *input shape) on the event engine, as a ``SimResult``.

    ``outputs``: the readout's V/((T−1)·Q)·λ (ANN units); ``counts``: every counted action
    per layer × step and per image × layer; ``extra["overflow_by_layer"]``: the
    saturations/wraps per layer; ``extra["weight_bits_used"]``, ``extra["frac_bits"]`` per
    layer. With ``trace``, ``decoded`` holds each spiking population's decoded value (ANN
    units), ``extra["fire_offset"]`` the firing offsets (−1: silent) and ``extra["spikes"]``
    the trains (N, steps, neurons) in core order, and ``register_high``, ``state_bits_needed``,
    ``state_bits_worst_case`` per layer (``neurosim.core.ranges.high_water_extra``: V and I).
    ``progress(done, total)`` is called after each batch of ``batch`` images.
    """
    info = net.info
    T = info.T
    registers, counts, spikes, *high = engine.simulate(net, x, encode_input, None, trace, batch,
                                                       progress, watermarks=trace)
    last = net.layers - 1
    out = net.to_chw(last, registers[:, 0]) / (info.scale[last] * (T - 1)) * info.lams[last]
    if info.relu_output:
        out = np.maximum(out, 0.0)
    decoded = {net.names[last]: out}
    extra = {"overflow_by_layer": dict(zip(net.names, counts.data[:, :, A_OVF].sum(1).tolist())),
             "weight_bits_used": dict(zip(net.names, info.weight_bits_used.tolist())),
             "frac_bits": dict(zip(net.names, info.frac.tolist()))}
    if trace:
        extra["spikes"] = spikes
        # V and I (reaccumulate: rows 1 and 2 are the simulator's devices, not registers)
        peak = high[0][:, :1 if info.synapse == "reaccumulate" else 2].max(axis=1)
        extra.update(ranges.high_water_extra(net, peak, counts.data[:, :, A_OVF].sum(1) > 0))
        extra["fire_offset"] = {}
        for l in range(last):
            first = int(info.levels[l]) * T  # 0-based index of the firing window's first step
            window = spikes[:, first:first + T, net.layer_slice(l)]
            k = np.where(window.any(axis=1), window.argmax(axis=1), -1)
            extra["fire_offset"][net.names[l]] = net.to_chw(l, k)
            decoded[net.names[l]] = net.to_chw(l, decode_offsets(k, T)) * info.lams[l]
    return SimResult(out, counts, net.steps, T, decoded, extra)


# --------------------------------------------------------------------------- the plug-in

class TTFSScheme(Scheme):
    name = "ttfs"
    summary = "time-to-first-spike, one spike per neuron, layer-by-layer windows (exact mapping)"
    params = PARAMS
    float_simulator = staticmethod(simulate)
    quantizer = staticmethod(quantize)
    fixed_simulator = staticmethod(simulate_fixed)
    converter = staticmethod(convert)

    def drops_negative_inputs(self, params):
        return "a first spike carries no sign"


SCHEME = TTFSScheme()
