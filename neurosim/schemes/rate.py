"""Rate coding: integrate-and-fire neurons with reset by subtraction (DESIGN §3.2).

The conversion every rate-coded SNN since Diehl et al. (2015) and Rueckauer et al. (2017)
uses, the baseline of the weighted-spikes paper (its §3.2–3.3): an activation ``a`` of
population l becomes a firing rate ``a/λ_l`` spikes per step.

* **Conversion** (``convert``): the λ-normalised layers of ``neurosim.schemes._layered``:
  ``W_l = Ŵ_l·λ_source/λ_l``, per-step bias ``b_l = b̂_l/λ_l``, threshold 1.
* **Neuron** (hidden layers): ``V ← V + z(t); if V ≥ 1: spike, V ← V − 1`` with
  ``z(t) = Σ W·s(t) + b``; ``V`` starts at ``v_init`` (0, or 0.5 as in the optimal-initial-
  potential works). Spikes are +1 only.
* **Input** (``input``): ``current``: no input spikes, the analog ``x/λ_0`` drives the layers the
  input projects to, ``z += W·x/λ_0`` every step (Rueckauer's analog input layer); ``regular``:
  each pixel is an IF neuron (same rule, same ``v_init``) driven by ``clip(x/λ_0, 0, 1)``, so it
  fires regularly at that rate; ``poisson``: in every step each pixel spikes with probability
  ``clip(x/λ_0, 0, 1)`` (a seeded Bernoulli draw, see "Poisson draws"). A rate is in [0, 1], so
  ``regular`` and ``poisson`` clip the pixel there (the bundled digits lie in [0, λ_0]).
* **Readout**: accumulates ``z`` (with bias) over the T steps without firing; prediction =
  argmax; output in ANN units = accumulated/T·λ.
* **Timing**: all layers are active in every step 1..T and a spike reaches the next layer in the
  step it was fired (DESIGN §2), so residual shortcuts need no delay FIFO. Latency T, one frame
  every T steps.
* **Decoded value** of a spiking population: spike count/T·λ.
* **MaxPool** has a sound rate form: a gate whose output spikes when a spiking input of its
  window has a spike count above the output's own (so the output's count is the window's
  largest count). It needs to know *which* inputs of each window spiked, and their counts;
  the engine's projections deliver only a weighted sum into an accumulator, so MaxPool is not
  implemented (an error naming the node; use AveragePool).

**Poisson draws.** The draw of pixel ``j`` (its index in the core's channels-last order) in
step ``t`` of image ``i`` (its index in the whole run) is the top 32 bits of a splitmix64-style
counter hash of ``(seed, i, t, j)``; it spikes when the draw is below ``round(p·2^32)``. The
float simulator computes the same hash in numpy, so float and fixed see the same input spikes,
and results do not depend on batching or threads. The hash is a simulation device: the counted
hardware is one PRNG step (``shift``) and one ``compare`` per pixel and step.

**State units** (fixed point). In layer l one threshold (the value 1) is
``Q_l = wscale_l·2^frac_l`` integer state units, a whole number ≥ 1: weights are
``round(W·wscale_l)`` in ``weight_bits`` (signed) and enter the membrane shifted left by
``frac_l``; the bias is ``round(b·Q_l)`` per step, the initial membrane ``round(v_init·Q_l)``.
The membrane must hold the **register range** of the scheme, its worst case over every
input (``register_extents``, ``neurosim.core.ranges``): with reset by subtraction nothing
bounds it below (a neuron inhibited in every step drifts down by its input, up to T times
Σ|w⁻|) and a neuron whose input exceeds a threshold keeps the excess every step; the readout
accumulates ``Σz`` over T steps. The quantizer serves weight precision first and gives the
headroom left in ``state_bits`` to ``frac_l``, up to the profile's ``frac_bits`` (with a
``*_pow2`` weight scale the weight scale is a power of two); when even ``frac_l = 0`` cannot
hold the worst case the weights give up bits, down to ``MIN_WEIGHT_BITS``; below that the
range is an error naming the layer and the largest T that fits (``--allow-overflow``: a
warning, and registers saturate or wrap, counted as ``overflow``).
Encoder (``regular``): one threshold is ``Q_0 = 2^min(weight_bits−1+frac_bits, state_bits−2)``
units and the drive ``round(clip(x/λ_0, 0, 1)·Q_0)``, so its membrane stays in [0, 2·Q_0) and
cannot overflow.
Input current (``current``): pixels ``x_q = round(x/λ_0·Q_0)`` (same ``Q_0``); the current of
a layer fed by the input is ``(Σ (w_int << frac_l)·x_q) >> log2(Q_0)`` (right shift rounded by
the profile's ``round``), computed once per image (a dense integer MAC, counted as ``mac``),
held in a ``state_bits`` current register (fitted, overflow counted once per image) and added
every step.

**Counted actions** (per image; a fan-out synop and FIFO traffic are counted by the engine):

| action | counted |
|---|---|
| `synop` | per spike, per stored synapse of its fan-out (conv: valid taps × output channels of its group; dense: every target it connects to; identity shortcut: 1) |
| `weight_read` | 0: a synop includes its weight read |
| `mac` | `input=current` only: one per stored synapse of each projection from the input, once per image (step 1), in the layer it feeds: the integer W·x |
| `state_read` | per neuron and step of the hidden layers, the readout and the `regular` encoder: 1 (membrane; the readout's accumulator); `input=current`: +1 per neuron of a layer fed by the input (its current register). The `poisson` encoder has no membrane: 0 |
| `state_write` | as `state_read` for the membrane; `input=current`: +1 per neuron of a layer fed by the input at step 1 only (writing its current register) |
| `add` | per neuron and step of the hidden layers, the readout and the `regular` encoder: 1 (dendritic accumulator, or the encoder's drive, into the membrane); `input=current`: +1 per neuron of a layer fed by the input (its current); +1 per spike (reset: V − 1) |
| `shift` | `input=poisson`: 1 per pixel and step (one PRNG step) |
| `compare` | per neuron and step of a firing layer (hidden, `regular` encoder, `poisson`: draw < p): 1; the readout never compares |
| `spike_out_pos` | per emitted spike (rate coding has no negative spikes: `spike_out_neg` = 0) |
| `bias_add` | per neuron with a non-zero bias, per step (hidden layers and readout) |
| `fifo_write`, `fifo_read` | 0: every projection arrives in the step it was fired |
| `overflow` | per membrane fit that saturated or wrapped (one fit per neuron and step, after the integration; the reset subtracts from V ≥ threshold and cannot overflow); `input=current`: per current register that overflowed, once per image |
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit

from ..core import engine, ranges
from ..core.network import EventNetwork, ProjectionBuilder, core_order, hwc_perm
from ..core.reference import reference_model
from ..core.registers import compact_events
from ..core.registers import fit as _fit
from ..counts import ACTION_INDEX, Counts
from ..errors import UserError
from ..fixed_point import fit_np, shift_right_np, state_limits
from ..graph import Graph, populations
from ..projection import ConvMap, DenseMap
from ._layered import Layer, input_sum, normalise
from .base import Param, Scheme, SimResult, in_batches

INPUTS = ("current", "poisson", "regular")
V_INITS = (0.0, 0.5)
P_BITS = 32  # a Poisson draw is a 32-bit integer; p is compared as round(p·2^32)


# --------------------------------------------------------------------------- parameters

def _positive_int(v):
    return None if v >= 1 else "a positive integer"


def _v_init_check(v):
    return None if v in V_INITS else "0 or 0.5 (the initial membrane, in thresholds)"


def _percentile_check(v):
    return None if 0.0 < v <= 100.0 else "in (0, 100]"


def _seed_check(v):
    return None if 0 <= v < 2 ** 64 else "an integer in [0, 2^64)"


PARAMS = (
    Param("T", "int", 256, "time steps of one inference", check=_positive_int),
    Param("input", "enum", "current", "current: analog x into the first layer's membrane; "
          "poisson: seeded Bernoulli spikes; regular: IF encoder", choices=INPUTS),
    Param("v_init", "float", 0.0, "initial membrane of every IF neuron, in thresholds (0 or 0.5)",
          check=_v_init_check),
    Param("percentile", "float", 99.9, "calibration percentile q of λ", check=_percentile_check),
    Param("seed", "int", 0, "seed of the Poisson input draws", check=_seed_check),
)


# --------------------------------------------------------------------------- the converted SNN

@dataclass
class RateNet:
    """A float rate-coded SNN: λ-normalised populations, input first, readout last."""

    graph_name: str
    populations: list[Layer]
    T: int
    input: str
    v_init: float
    seed: int
    params: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # what a reader of the result must know

    @property
    def latency_steps(self) -> int:
        return self.T

    @property
    def steps_per_frame(self) -> int:
        return self.T


def convert(graph: Graph, scales: dict[str, float], params: dict[str, Any]) -> RateNet:
    """The rate SNN of ``graph`` (DESIGN §3.2) from calibrated scales λ."""
    for p in populations(graph):
        if graph.nodes[p.name].op == "maxpool":
            raise UserError(f"{graph.path}: MaxPool node '{p.name}' is not supported by coding "
                            f"'rate' (its spiking form, a gate on spike counts, needs a "
                            f"projection that tells which inputs spiked, which the event engine "
                            f"lacks); use AveragePool")
    return RateNet(graph.name, normalise(graph, scales, "rate"), int(params["T"]),
                   str(params["input"]), float(params["v_init"]), int(params["seed"]),
                   dict(params))


# --------------------------------------------------------------------------- Poisson draws

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_DRAW_SHIFT = np.uint64(64 - P_BITS)  # a draw is the hash's top P_BITS bits


@njit(cache=True, inline="always")
def _mix(z):
    """splitmix64's output function of ``z + golden gamma`` (uint64, wrapping)."""
    z = z + _GOLDEN
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


def _mix_np(z: np.ndarray) -> np.ndarray:
    """``_mix`` on a uint64 array (numpy wraps array arithmetic silently)."""
    z = z + _GOLDEN
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


def poisson_draws(seed: int, images: np.ndarray, t: int, n: int) -> np.ndarray:
    """(len(images), n) int64 draws in [0, 2^32) of step ``t`` for global image indices
    ``images``, neurons 0..n−1 in core order: the numpy form of the engine's draws."""
    key = _mix_np(np.array([seed], np.uint64))
    key = _mix_np(key ^ np.asarray(images, np.uint64))
    key = _mix_np(key ^ np.uint64(t))
    neurons = np.arange(n, dtype=np.uint64)[None, :]
    return (_mix_np(key[:, None] ^ neurons) >> _DRAW_SHIFT).astype(np.int64)


def poisson_levels(p: np.ndarray) -> np.ndarray:
    """round(clip(p, 0, 1)·2^32): a draw below it is a spike (probability p)."""
    return np.round(np.clip(p, 0.0, 1.0) * 2.0 ** P_BITS).astype(np.int64)


# --------------------------------------------------------------------------- float simulator

def simulate(net: RateNet, x: np.ndarray, trace: bool = False, batch: int = 256,
             progress=None) -> SimResult:
    """Run ``net`` on images ``x`` (N, *input shape) in float, time-stepped, ``batch`` images
    at a time. Counts hold the spikes (``spike_out_pos``) per layer and step; ``decoded`` the
    spike count/T·λ of every spiking population and the readout's output (ANN units);
    ``extra["spikes"]`` the mean spikes per image per layer; with ``trace``,
    ``extra["trace"]`` {population: (N, T, *shape) int8 spike trains}."""
    parts = in_batches(lambda xb, s: _simulate_batch(net, xb, s, trace), x, batch, progress)
    counts = parts[0].counts
    for p in parts[1:]:
        counts = counts + p.counts
    decoded = {k: np.concatenate([p.decoded[k] for p in parts]) for k in parts[0].decoded}
    n = max(len(x), 1)
    extra = {"spikes": {name: {"pos": c["spike_out_pos"] / n, "neg": 0.0}
                        for name, c in counts.by_layer().items()}}
    if trace:
        extra["trace"] = {k: np.concatenate([p.extra["trace"][k] for p in parts])
                          for k in parts[0].extra["trace"]}
    out = decoded[net.populations[-1].name]
    return SimResult(out, counts, net.T, net.T, decoded, extra)


def _simulate_batch(net: RateNet, x: np.ndarray, img_base: int, trace: bool) -> SimResult:
    n, T = len(x), net.T
    first = net.populations[0]
    names = [layer.name for layer in net.populations]
    counts = Counts.zeros(names, T, n)
    pos = ACTION_INDEX["spike_out_pos"]
    a = x / first.lam  # the input in thresholds
    membrane = {layer.name: np.full((n,) + layer.shape, net.v_init) for layer in net.populations[1:-1]}
    membrane[net.populations[-1].name] = np.zeros((n,) + net.populations[-1].shape)
    if net.input == "regular":
        membrane[first.name] = np.full(a.shape, net.v_init)
        drive = np.clip(a, 0.0, 1.0)
    elif net.input == "poisson":
        # the draws are made in core (channels-last) order; back to (C, H, W) for the layers
        levels = poisson_levels(a).reshape(n, -1)[:, hwc_perm(first.shape)]
        chw = np.argsort(hwc_perm(first.shape))
    bias = {layer.name: layer.bias.reshape(layer.shape) for layer in net.populations[1:]}
    # the constant current each layer receives from the analog input (input=current)
    current = {}
    if net.input == "current":
        for layer in net.populations[1:]:
            z = input_sum(layer, {first.name: a})  # None: not fed by the input
            if z is not None:
                current[layer.name] = z
    n_spikes = {layer.name: np.zeros((n,) + layer.shape) for layer in net.populations[:-1]}
    traces = {name: [] for name in names[:-1]} if trace else None
    images = np.arange(img_base, img_base + n)
    for t in range(1, T + 1):
        fired: dict[str, np.ndarray | None] = {first.name: None}
        if net.input == "regular":
            v = membrane[first.name] + drive
            fired[first.name] = (v >= 1.0).astype(np.float64)
            membrane[first.name] = v - fired[first.name]
        elif net.input == "poisson":
            draws = poisson_draws(net.seed, images, t, first.neurons)
            fired[first.name] = (draws < levels)[:, chw].reshape(a.shape).astype(np.float64)
        for layer in net.populations[1:]:
            z = input_sum(layer, fired)  # the input sends nothing when input=current
            v = membrane[layer.name] + bias[layer.name]
            if z is not None:
                v = v + z
            if layer.name in current:
                v = v + current[layer.name]
            if layer.kind == "readout":
                membrane[layer.name] = v
                continue
            spikes = (v >= 1.0).astype(np.float64)
            membrane[layer.name] = v - spikes
            fired[layer.name] = spikes
        for l, name in enumerate(names[:-1]):
            s = fired[name]
            if s is None:
                continue
            n_spikes[name] += s
            counts.data[l, t - 1, pos] = int(s.sum())
            if trace:
                traces[name].append(s.astype(np.int8))
    decoded = {}
    for layer in net.populations[:-1]:
        if layer.kind == "input" and net.input == "current":
            continue  # no spike train: the input enters as a current
        decoded[layer.name] = n_spikes[layer.name] / T * layer.lam
    readout = net.populations[-1]
    out = membrane[readout.name] / T * readout.lam
    decoded[readout.name] = np.maximum(out, 0.0) if readout.relu_output else out
    extra = {}
    if trace:
        extra["trace"] = {k: np.stack(v, axis=1) for k, v in traces.items() if v}
    return SimResult(decoded[readout.name], counts, T, T, decoded, extra)


# --------------------------------------------------------------------------- quantizer

INPUT_CURRENT, POISSON, REGULAR, IF, READOUT = 0, 1, 2, 3, 4
ENCODER_KINDS = {"current": INPUT_CURRENT, "poisson": POISSON, "regular": REGULAR}

RateParams = namedtuple("RateParams", [
    "kind",  # per layer: INPUT_CURRENT | POISSON | REGULAR | IF | READOUT
    "threshold",  # per layer, state units (one threshold; for the readout only its unit)
    "bias", "bias_nonzero",  # per neuron, state units per step; biased neurons per layer
    "cur_off",  # per layer: offset of its input current in the input row, −1 if it has none
    "macs",  # per layer: MACs of computing its input current (once per image)
    "lo", "hi", "wrap",  # state register limits, overflow mode
    "seed",  # uint64, the Poisson draws' seed
])


@dataclass
class RateInfo:
    """What encoding, decoding and reporting need beyond the integers."""

    T: int
    input: str
    v_init: float
    lams: np.ndarray  # (layers,) λ, ANN units
    scale: np.ndarray  # (layers,) state units per threshold (the integer threshold)
    frac: np.ndarray  # (layers,) fractional state bits
    weight_bits_used: np.ndarray  # (layers,) bits the largest weight into l really uses
    input_bits: int  # log2 Q_0: one input threshold is 2^input_bits units
    nearest: bool  # right shifts round to nearest (else floor)
    relu_output: bool  # the ANN's output is ReLU(readout)
    # input=current: (layer, map, integer weights (map layout)) per projection from the
    # input, and each fed layer's offset in the input row
    input_maps: list = field(default_factory=list)
    cur_layers: list = field(default_factory=list)
    warnings: list = field(default_factory=list)  # range problems run anyway (--allow-overflow)
    # (layers, 2) the static worst case (lo, hi) of each layer's registers, state units
    register_bounds: np.ndarray | None = None


def quantize(snn: RateNet, arithmetic) -> EventNetwork:
    """Integers for a float rate network (module docstring, "State units"); each layer's scale
    holds its registers' worst case (``register_extents``), or the range error is raised."""
    wb, fb, sb = int(arithmetic.weight_bits), int(arithmetic.frac_bits), int(arithmetic.state_bits)
    wmax = (1 << (wb - 1)) - 1
    input_bits = min(wb - 1 + fb, sb - 2)
    fits = [ranges.fit_layer(layer.name, biggest, extent, arithmetic, fixed)
            for layer, biggest, extent, fixed in register_extents(snn, arithmetic, snn.T)]
    warnings = ranges.check_ranges(
        f"'rate' at T={snn.T}, input={snn.input}", fits, arithmetic,
        "the membrane over T steps of its largest input of either sign",
        ("T", snn.T, 1,
         lambda T: ranges.most_bits(register_extents(snn, arithmetic, T), arithmetic)))
    index = {layer.name: i for i, layer in enumerate(snn.populations)}
    kinds, scales, fracs, biases, bits_used, cur_off, macs = ([] for _ in range(7))
    input_maps, cur_layers = [], []
    projections = ProjectionBuilder()
    row = 0 if snn.input == "current" else snn.populations[0].neurons  # input row length so far
    for l, (layer, fit) in enumerate(zip(snn.populations, fits)):
        if layer.kind == "input":
            kinds.append(ENCODER_KINDS[snn.input])
            scales.append(float(1 << input_bits))
            fracs.append(fb)
            biases.append(np.zeros(layer.neurons))
            bits_used.append(float("nan"))
            cur_off.append(-1)
            macs.append(0)
            continue
        kinds.append(READOUT if layer.kind == "readout" else IF)
        # one threshold is q_l state units (whole, ≥ 1); the weights take the scale that
        # matches it exactly, clipped to ±(2^(weight_bits−1) − 1) if rounding q_l pushed the
        # largest one past it
        q_l, frac = fit.q, fit.frac
        fracs.append(frac)
        scales.append(float(q_l))
        biases.append(core_order(layer.bias, layer.shape) * q_l)
        fed = 0
        largest = 0
        for proj in layer.projections:
            w_int = ranges.integer_weights(proj.map.weight, q_l, frac, wmax)
            largest = max(largest, int(np.abs(w_int).max()))
            projections.add(proj.map, w_int, index[proj.source], l, 0)
            if snn.input == "current" and proj.source == snn.populations[0].name:
                input_maps.append((l, proj.map, w_int))
                fed += _apply_int(proj.map, np.ones_like(w_int),
                                  np.ones((1,) + tuple(proj.map.in_shape), np.int64)).sum()
        bits_used.append(float(np.log2(largest + 1) + 1))
        if fed:
            cur_off.append(row)
            cur_layers.append(l)
            row += layer.neurons
        else:
            cur_off.append(-1)
        macs.append(int(fed))
    sizes = np.array([layer.neurons for layer in snn.populations], np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    bias = np.round(np.concatenate(biases)).astype(np.int64)
    lo, hi = state_limits(sb)
    if input_maps:  # Σ x·w (encode_input) must not wrap int64, for inputs up to 2^4 λ
        weight_sum = max(_weight_sum(m, w) for _, m, w in input_maps)
        input_bits = max(0, min(input_bits, 58 - int(np.ceil(np.log2(weight_sum + 1)))))
        scales[0] = float(1 << input_bits)
    model = RateParams(
        kind=np.array(kinds, np.int64), threshold=np.array(scales, np.int64),
        bias=bias,
        bias_nonzero=np.array([np.count_nonzero(bias[o:o + n]) for o, n in zip(offsets, sizes)],
                              np.int64),
        cur_off=np.array(cur_off, np.int64), macs=np.array(macs, np.int64), lo=lo, hi=hi,
        wrap=arithmetic.overflow == "wrap", seed=np.uint64(snn.seed))
    info = RateInfo(T=snn.T, input=snn.input, v_init=snn.v_init,
                    lams=np.array([layer.lam for layer in snn.populations]), scale=np.array(scales),
                    frac=np.array(fracs, np.int64), weight_bits_used=np.array(bits_used),
                    input_bits=input_bits, nearest=arithmetic.round == "nearest",
                    relu_output=snn.populations[-1].relu_output, input_maps=input_maps,
                    cur_layers=cur_layers, warnings=warnings,
                    register_bounds=ranges.bounds_array(fits))
    active = np.tile(np.array([1, snn.T], np.int64), (len(sizes), 1))
    if snn.input == "current":
        active[0] = (1, 0)  # the input layer never runs: its value enters as a current
    return EventNetwork(
        names=[layer.name for layer in snn.populations],
        shapes=[tuple(layer.shape) for layer in snn.populations], size=sizes, active=active, regs=1,
        steps=snn.T, model=model, info=info, **projections.arrays(info.frac))


def register_extents(snn: RateNet, arithmetic, T: int) -> list:
    """Per population (layer, largest |W|, ``extent(q, frac)``, None), or for the input
    (layer, 0, None, its fixed extent): the worst case of its registers over ``T`` steps
    (``neurosim.core.ranges``), from the neuron's own integer rule.

    A hidden IF neuron integrates ``z = Σ w·s + b (+ its input current)`` per step, spikes
    ``s`` ∈ {0, 1}, and resets by subtracting q: ``membrane_extent`` with that threshold
    (above, V stays below q + max z unless max z > q, when it keeps the excess every step;
    below, nothing bounds it but T steps of its most negative input). The readout integrates
    the same z without a reset. The current register holds the analog input's current: with
    ``|x/λ_0| ≤ 1`` (λ_0 is the calibration's largest |pixel|; a larger test pixel can exceed
    the bound, and any overflow is counted) ``|x_q| ≤ Q_0``, so ``(Σ w·x_q) >> log2 Q_0`` lies
    within ±(Σ|w|). The ``regular`` encoder stays in [0, 2·Q_0) (Q_0 ≤ 2^(state_bits−2) by
    construction); ``poisson`` and the analog input have no register."""
    wmax = (1 << (int(arithmetic.weight_bits) - 1)) - 1
    q0 = 1 << min(int(arithmetic.weight_bits) - 1 + int(arithmetic.frac_bits),
                  int(arithmetic.state_bits) - 2)
    first = snn.populations[0].name
    out = []
    for layer in snn.populations:
        if layer.kind == "input":
            out.append((layer, 0.0, None, (0, 2 * q0 - 1) if snn.input == "regular" else (0, 0)))
            continue

        def extent(q, frac, layer=layer):
            spikes, analog = [], []
            for proj in layer.projections:
                pos, neg = ranges.synapse_sums(
                    proj.map, ranges.integer_weights(proj.map.weight, q, frac, wmax) << frac)
                fed = snn.input == "current" and proj.source == first
                (analog if fed else spikes).append((pos, neg, 1, 1) if fed else (pos, neg, 1, 0))
            cur_hi, cur_lo = ranges.drive_bounds(analog)
            z_hi, z_lo = ranges.drive_bounds(spikes, np.round(layer.bias * q).astype(np.int64).reshape(-1))
            lo, hi = ranges.membrane_extent(z_hi + cur_hi, z_lo + cur_lo, T,
                                            None if layer.kind == "readout" else q,
                                            round(snn.v_init * q) if layer.kind != "readout" else 0)
            return min(lo, int(cur_lo.min())), max(hi, int(cur_hi.max()))

        biggest = max(float(np.abs(p.map.weight).max()) for p in layer.projections)
        out.append((layer, biggest, extent, None))
    return out


def _check_int64(bound: float, a: np.ndarray, net: EventNetwork, l: int) -> None:
    """An input current whose magnitude can reach ``bound`` must be exact in int64."""
    if bound >= 2.0 ** 62:
        raise UserError(f"inputs up to {np.abs(a).max():.3g} times the calibration's input scale "
                        f"λ: the input current of layer '{net.names[l]}' would not fit the "
                        f"engine's 64-bit integers; expected test images scaled like the "
                        f"calibration images")


def _weight_sum(m: ConvMap | DenseMap, w: np.ndarray) -> float:
    """The largest Σ|w| into one output neuron of the map (its own weight layout)."""
    w = np.abs(w).astype(np.float64)
    if isinstance(m, DenseMap):
        return float(w.sum(axis=1).max(initial=0.0))
    return float(w.sum(axis=(1, 2, 3)).max(initial=0.0))  # (O, C/g, kh, kw)


def _apply_int(m: ConvMap | DenseMap, w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The map with integer weights ``w`` (its own layout) on integer inputs ``x`` (N, *in
    shape), exactly in int64; returns (N, *out shape)."""
    n = len(x)
    if isinstance(m, DenseMap):
        return (x.reshape(n, -1) @ w.T).reshape((n,) + tuple(m.out_shape))
    c, h, wd = m.in_shape
    o, oh, ow = m.out_shape
    kh, kw = w.shape[2:]
    (sh, sw), (dh, dw), (pt, pl, _, _) = m.stride, m.dilation, m.pads
    # pad enough on the bottom/right for every output position (composite pads may differ)
    need_h, need_w = (oh - 1) * sh + (kh - 1) * dh + 1, (ow - 1) * sw + (kw - 1) * dw + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pt, max(0, need_h - pt - h)), (pl, max(0, need_w - pl - wd))))
    g = m.groups
    cg, og = c // g, o // g
    out = np.zeros((n, o, oh, ow), np.int64)
    for ky in range(kh):
        for kx in range(kw):
            patch = xp[:, :, ky * dh:ky * dh + (oh - 1) * sh + 1:sh,
                       kx * dw:kx * dw + (ow - 1) * sw + 1:sw]
            for gi in range(g):
                out[:, gi * og:(gi + 1) * og] += np.einsum(
                    "nchw,oc->nohw", patch[:, gi * cg:(gi + 1) * cg],
                    w[gi * og:(gi + 1) * og, :, ky, kx])
    return out


def encode_input(net: EventNetwork, x: np.ndarray) -> np.ndarray:
    """Each image's input row (engine ``inputs``), integers in core order: ``regular``: the
    encoder's drive; ``poisson``: the spike levels round(p·2^32); ``current``: the input
    current of every layer fed by the input, in its state units, one after the other."""
    info = net.info
    a = x / info.lams[0]
    if info.input == "poisson":
        return poisson_levels(net.from_chw(0, a))
    q0 = 1 << info.input_bits
    if info.input == "regular":
        return np.round(np.clip(net.from_chw(0, a), 0.0, 1.0) * q0).astype(np.int64)
    x_max = float(np.abs(a).max(initial=0.0)) * q0  # checked in float, before the cast
    for l, m, w_int in info.input_maps:
        _check_int64(x_max * _weight_sum(m, w_int), a, net, l)
    x_q = np.round(a * q0).astype(np.int64)
    # Σ x·w in input units × weight LSBs (small), then into the layer's state units: shifted
    # left by its fractional bits less the input's, or right (rounded) — the same integers
    # as (Σ x·(w << frac)) >> input_bits, without a product that could wrap int64
    products = {l: 0 for l in info.cur_layers}
    for l, m, w_int in info.input_maps:
        products[l] = products[l] + _apply_int(m, w_int, x_q)
    rows = []
    for l in info.cur_layers:
        shift = int(info.frac[l]) - info.input_bits
        p = np.asarray(products[l], np.int64)
        if shift >= 0:
            _check_int64(float(np.abs(p).max(initial=0)) * 2.0 ** shift, a, net, l)
            current = p << shift
        else:
            current = shift_right_np(p, -shift, info.nearest)
        rows.append(net.from_chw(l, current))
    return np.concatenate(rows, axis=1) if rows else np.zeros((len(x), 0), np.int64)


def initial_state(net: EventNetwork, inputs: np.ndarray) -> np.ndarray:
    """Registers before step 1: every IF membrane (hidden, regular encoder) at v_init."""
    state = net.zero_state(len(inputs))
    for l, kind in enumerate(net.model.kind):
        if kind in (IF, REGULAR):
            state[:, 0, net.layer_slice(l)] = round(net.info.v_init * net.model.threshold[l])
    return state


# --------------------------------------------------------------------------- neuron model (numba)

A_SREAD = ACTION_INDEX["state_read"]
A_SWRITE = ACTION_INDEX["state_write"]
A_ADD = ACTION_INDEX["add"]
A_SHIFT = ACTION_INDEX["shift"]
A_CMP = ACTION_INDEX["compare"]
A_POS = ACTION_INDEX["spike_out_pos"]
A_BIAS = ACTION_INDEX["bias_add"]
A_OVF = ACTION_INDEX["overflow"]
A_MAC = ACTION_INDEX["mac"]


# The neuron loops: jitted functions of their own, so that LLVM vectorises them
# (``neurosim.core.engine``, "Speed").

@njit(cache=True)
def _poisson_loop(levels, ev_sign, key):
    """A spike where the neuron's draw of this step falls below its level."""
    for j in range(levels.shape[0]):
        draw = np.int64(_mix(key ^ np.uint64(j)) >> _DRAW_SHIFT)
        ev_sign[j] = np.int64(draw < levels[j])


@njit(cache=True)
def _fire_loop(h, ev_sign, q, drive=None):
    """IF: V (+ ``drive``, the regular encoder's) spikes at V ≥ q, reset by subtraction.
    ``drive is None`` is decided when numba compiles, not per neuron."""
    for j in range(h.shape[0]):
        if drive is None:
            u = h[j]
        else:
            u = h[j] + drive[j]
        s = np.int64(u >= q)
        h[j] = u - q if s else u
        ev_sign[j] = s


@njit(cache=True)
def _integrate_loop(h, acc, bias, lo, hi, wrap, cur=None, first=0, q=None, ev_sign=None):
    """V += input + bias (+ ``cur``, the input layer's constant current, fitted on its first
    write); then, if ``q`` is given (an IF layer), a spike at V ≥ q and the reset by
    subtraction, which cannot overflow. One pass over V instead of integrating and firing in
    two: measured +3–5 % img/s at T = 256 on digits_resnet. Which arguments are None is
    decided when numba compiles, not per neuron. Returns the overflows (the spikes are counted
    once compacted)."""
    novf = 0
    for j in range(h.shape[0]):
        if cur is None:
            u, o = _fit(h[j] + acc[j] + bias[j], lo, hi, wrap)
        else:
            cv, o1 = _fit(cur[j], lo, hi, wrap)
            u, o = _fit(h[j] + acc[j] + bias[j] + cv, lo, hi, wrap)
            o += first * o1
        novf += o
        if q is not None:
            s = np.int64(u >= q)
            u = u - q if s else u
            ev_sign[j] = s
        h[j] = u
    return novf


@engine.neuron_model(RateParams)
@njit(cache=True, inline="always")
def rate_step(m, l, t, img, off, x, acc, st, ev_idx, ev_sign, c):
    # registers through slice views, handed to the neuron loops above
    n = acc.shape[0]
    kind = m.kind[l]
    if kind == POISSON:
        key = _mix(_mix(_mix(m.seed) ^ np.uint64(img)) ^ np.uint64(t))
        _poisson_loop(x[:n], ev_sign, key)
        c[A_SHIFT] += n
    else:
        h = st[0, off:off + n]
        q = m.threshold[l]
        novf = 0
        if kind == REGULAR:
            # drive ≤ Q_0 and V < Q_0 before it: V + drive < 2·Q_0 fits (module docstring)
            _fire_loop(h, ev_sign, q, x[:n])
        else:
            lo, hi, wrap = m.lo, m.hi, m.wrap
            bias = m.bias[off:off + n]
            co = m.cur_off[l]
            # an IF layer fires in the same pass (q given); a readout only integrates
            if co >= 0:
                # the current register is written (and fitted) once, at t = 1
                cur, first = x[co:co + n], np.int64(t == 1)
                if kind == IF:
                    novf = _integrate_loop(h, acc, bias, lo, hi, wrap, cur, first, q, ev_sign)
                else:
                    novf = _integrate_loop(h, acc, bias, lo, hi, wrap, cur, first)
                c[A_SREAD] += n
                c[A_ADD] += n
                if t == 1:
                    c[A_SWRITE] += n
                    c[A_MAC] += m.macs[l]
            elif kind == IF:
                novf = _integrate_loop(h, acc, bias, lo, hi, wrap, None, 0, q, ev_sign)
            else:
                novf = _integrate_loop(h, acc, bias, lo, hi, wrap)
            c[A_BIAS] += m.bias_nonzero[l]
        c[A_SREAD] += n
        c[A_SWRITE] += n
        c[A_ADD] += n
        c[A_OVF] += novf
    if kind == READOUT:
        return 0
    ne = compact_events(ev_idx, ev_sign, n)
    if kind != POISSON:
        c[A_ADD] += ne  # the resets
    c[A_CMP] += n
    c[A_POS] += ne
    return ne


# --------------------------------------------------------------------------- reference (numpy)

@reference_model(RateParams)
def rate_reference_step(m, l, t, x, acc, st, off, c):
    """The rate neuron of layer l at step t for a whole batch, vectorised: returns spikes
    (images, n) in {0, 1} and adds this step's counts to ``c`` (images, actions). The
    reference numbers the images of its batch 0, 1, … (its interface has no image base), as
    ``engine.run`` does with the default ``img_base``."""
    n_img, n = acc.shape
    sl = slice(off, off + n)
    kind = m.kind[l]
    bits = int(m.hi).bit_length() + 1
    spikes = np.zeros((n_img, n), np.int64)
    if kind == POISSON:
        draws = poisson_draws(int(m.seed), np.arange(n_img), t, n)
        spikes = (draws < x[:, :n]).astype(np.int64)
        c[:, A_SHIFT] += n
    elif kind == REGULAR:
        v = st[:, 0, sl] + x[:, :n]
        spikes = (v >= m.threshold[l]).astype(np.int64)
        st[:, 0, sl] = v - spikes * m.threshold[l]
        c[:, A_SREAD] += n
        c[:, A_SWRITE] += n
        c[:, A_ADD] += n + spikes.sum(1)
    else:
        z = acc + m.bias[sl]
        co = m.cur_off[l]
        if co >= 0:
            cur, cur_over = fit_np(x[:, co:co + n], bits, bool(m.wrap))
            z = z + cur
            c[:, A_SREAD] += n
            c[:, A_ADD] += n
            if t == 1:
                c[:, A_OVF] += cur_over.sum(1)
                c[:, A_SWRITE] += n
                c[:, A_MAC] += m.macs[l]
        v, over = fit_np(st[:, 0, sl] + z, bits, bool(m.wrap))
        if kind == IF:
            spikes = (v >= m.threshold[l]).astype(np.int64)
            v = v - spikes * m.threshold[l]
        st[:, 0, sl] = v
        c[:, A_SREAD] += n
        c[:, A_SWRITE] += n
        c[:, A_ADD] += n + spikes.sum(1)
        c[:, A_BIAS] += np.count_nonzero(m.bias[sl])
        c[:, A_OVF] += over.sum(1)
    if kind != READOUT:
        c[:, A_CMP] += n
        c[:, A_POS] += spikes.sum(1)
    return spikes


# --------------------------------------------------------------------------- running it

def simulate_fixed(net: EventNetwork, x: np.ndarray, trace: bool = False, progress=None,
                   batch: int = 256) -> SimResult:
    """Bit-accurate run of ``x`` (N, *input shape) on the event engine, as a ``SimResult``.

    ``outputs``: the readout's accumulated input/T·λ (ANN units); ``counts``: every counted
    action per layer × step and per image × layer; ``extra["overflow_by_layer"]``: the
    saturations/wraps per layer. With ``trace``, ``decoded`` holds each spiking population's
    spike count/T·λ, ``extra["spikes"]`` the trains (N, T, neurons) in core order, and
    ``register_high``, ``state_bits_needed``, ``state_bits_worst_case`` per layer
    (``neurosim.core.ranges.high_water_extra``: the membrane and the input current register).
    ``progress(done, total)`` is called after each batch of ``batch`` images.
    """
    info = net.info
    # every register starts at zero unless v_init is set: then no initial state (tsa.initial_hook)
    initial = initial_state if info.v_init else None
    registers, counts, spikes, *high = engine.simulate(net, x, encode_input, initial,
                                                       trace, batch, progress, watermarks=trace)
    last = net.layers - 1
    out = net.to_chw(last, registers[:, 0]) / (info.scale[last] * info.T) * info.lams[last]
    if info.relu_output:
        out = np.maximum(out, 0.0)
    decoded = {net.names[last]: out}
    extra = {"overflow_by_layer": dict(zip(net.names, counts.data[:, :, A_OVF].sum(1).tolist())),
             "weight_bits_used": dict(zip(net.names, info.weight_bits_used.tolist())),
             "frac_bits": dict(zip(net.names, info.frac.tolist()))}
    if trace:
        extra["spikes"] = spikes
        peak = high[0][:, 0].copy()
        if info.cur_layers:  # the fitted input current is a register the engine does not see
            row = np.clip(encode_input(net, x), net.model.lo, net.model.hi)
            for l in info.cur_layers:
                co = net.model.cur_off[l]
                peak[l] = max(peak[l], int(np.abs(row[:, co:co + net.size[l]]).max(initial=0)))
        extra.update(ranges.high_water_extra(net, peak, counts.data[:, :, A_OVF].sum(1) > 0))
        for l in range(last):
            if net.model.kind[l] == INPUT_CURRENT:
                continue
            total = spikes[:, :, net.layer_slice(l)].sum(axis=1, dtype=np.int64)
            decoded[net.names[l]] = net.to_chw(l, total) / info.T * info.lams[l]
    return SimResult(out, counts, info.T, info.T, decoded, extra)


# --------------------------------------------------------------------------- the plug-in

class RateScheme(Scheme):
    name = "rate"
    summary = "rate coding, IF neurons with reset by subtraction"
    params = PARAMS
    float_simulator = staticmethod(simulate)
    quantizer = staticmethod(quantize)
    fixed_simulator = staticmethod(simulate_fixed)
    converter = staticmethod(convert)

    def drops_negative_inputs(self, params):
        return (None if params["input"] == "current"
                else f"input={params['input']} spike trains carry no sign")


SCHEME = RateScheme()
