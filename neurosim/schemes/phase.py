"""Phase coding with weighted spikes (DESIGN §3.5).

Paper: Kim, Kim, Huh, Lee, Choi, *Deep neural networks with weighted spikes*, Neurocomputing
2018 (``weighted_spikes_phase_coding``). Time runs in *periods* of ``K`` *phases*; a spike in
step ``t`` (1-based) weighs ``ω(t) = 2^−(1+((t−1) mod K))``: ½, ¼, …, 2^−K, then again. A
period of spikes is the binary expansion of a value with K fractional bits, most significant
bit first.

* **Conversion** (``convert``): the λ-normalised layers of ``neurosim.schemes._layered``, with
  every population's unit λ' = λ·2^K/(2^K−1), so a calibrated activation λ is the largest
  value one period can carry, ``1 − 2^−K`` (the paper normalises "into [0, 1 − 2^−K]", §4.1).
  ``W = Ŵ·λ'_source/λ'_l``, ``b = b̂/λ'_l`` per period, sent as ``β = b/(1 − 2^−K)`` per step
  (paper eq. 8: Σ over a period of ω·β is b).
* **Encoder**: pixel x becomes the K-bit code ``clip(round(x/λ'_0·2^K), 0, 2^K − 1)`` (a
  negative pixel is sent as 0: weighted spikes carry no sign); in phase k (0-based) the pixel
  spikes iff bit K−1−k of its code is 1, the same code every period.
* **Neuron** (paper eqs. 8–10): ``V ← V + ω(t)·(Σ W·s(t) + β); if V ≥ ω(t): spike, V ← V − ω(t)``.
  Spikes are +1 only. The float simulator runs exactly this.
* **Hardware form** (paper eq. 18), what the fixed-point core runs: the membrane is kept
  scaled, ``V' = V/ω(t)``. Entering a step within a period doubles it (``V' << 1``); entering
  phase 0 (a new period, also step 1) divides it by 2^(K−1) (``V' >> (K−1)``, rounded by the
  profile's ``round``). Then ``V' ← V' + Σ W·s(t) + β``, fire if ``V' ≥ 1``, ``V' ← V' − 1``:
  inputs and threshold need no scaling, only the membrane shifts.
* **Readout**: the same scaled accumulator without firing (paper eq. 16), integrating only
  from the step after the first ``skip_periods`` periods (§5.1: before that the engine does
  not run the readout, so it neither receives spikes nor counts anything). Its value at the
  end, ``V_L = V'_L·ω(t)``, over the periods it integrated (``periods_elapsed``), in units λ'
  is the output; prediction = argmax.
* **Timing**: every layer runs in every step 1..K·periods and a spike reaches the next layer
  in the step it was fired (DESIGN §2): no delay FIFOs. Latency K·periods steps, one frame per
  K·periods steps (the network is busy with one frame throughout).
* **Decoded value** of a spiking population: ``Σ_t ω(t)·s(t)`` over the periods elapsed, in
  ANN units (paper eq. 14).

**Early decision** (``early=on``, paper Algorithm 1). From step ``T1 = skip_periods·K + 1`` to
``T2 = K·periods``, after the readout's update of step t: ``D(t) = argmax V_L(t)``;
``δ(t)`` = the top-2 difference of ``V_L(t)`` (the accumulated readout membranes, readout
units); ``δ_EMA(t) = (δ(t) + δ_EMA(t−1))/2`` with ``δ_EMA(T1−1) = 0``; if ``D(t) = D(t−1)``
(``D(T1−1)`` = none) the stable count grows by one, else it restarts at 0; the image is
decided at step t when ``D(t) = D(t−1)`` and ``count·δ_EMA(t) ≥ θ`` (the paper's
``count ≥ θ/δ_EMA`` without a division; with ``δ_EMA = 0`` only θ = 0 passes). An image not
decided by T2 ends at T2 with its last argmax. The float simulator and the core apply the
same rule, the core on its integer membranes; these differ from the float ones by weight
quantization, so a decision may fall a step or two apart (where fixed point is exact, a
network of dyadic weights, they decide in the same step: ``tests/test_phase.py``). Per-image
decision steps are ``extra["decision_step"]``; the ``SimResult``'s latency is their
mean, reported as ``latency_steps_mean`` (with percentiles) beside the run's
``latency_steps`` = K·periods: the next image still enters on the period schedule, so the
frame interval stays K·periods.

On the core, the decision unit sits with the readout and keeps four registers per image
(decision step, last class + 1, stable count, δ_EMA) in the readout neurons' spare register
rows (``regs = 1 + ceil(4 / readout neurons)``). Its decision step is a stop flag: every
layer's model reads it on entry and, once set, does nothing and counts nothing. Layers run in
order within a step and the readout is last, so the work of the decision step itself is
counted in every layer; from the next step on, no layer updates, fires or counts, so no spike
reaches a synapse either (synop 0: every projection has delay 0). The flag is a global stop
signal, as a chip's controller would gate its clock: its reads are not counted.

**State units** (fixed point). In layer l one threshold (the value 1 of λ'_l, the scaled
form's firing threshold) is ``Q_l`` state units, a whole number ≥ 1, ``Q_l = wscale_l·2^frac_l``:
weights are ``round(W·Q_l/2^frac_l)`` in ``weight_bits`` (signed, clipped) and enter the
membrane shifted left by ``frac_l``; the per-step bias is ``round(β·Q_l)``. The scaled
membrane ``V' = V/ω`` is ``2^K·V`` in the last phase of a period, so its **register range**
is K bits wider than the unscaled membrane's (the price of eq. 18's shift-only hardware
form): a neuron below zero drifts down by its input every period, one above the top rate
keeps its excess; the readout integrates ``periods − skip_periods`` periods. The quantizer
holds the worst case over every input (``register_extents``, ``neurosim.core.ranges``),
weight precision first, the headroom left as ``frac_l`` (up to the profile's ``frac_bits``;
with a ``*_pow2`` weight scale the weight scale is a power of two); when even ``frac_l = 0``
cannot hold it the weights give up bits (``extra["weight_bits_used"]``), down to
``MIN_WEIGHT_BITS``; below that it is an error naming the layer and the largest number of
periods that fits (``--allow-overflow``: a warning, and registers saturate or wrap, counted
as ``overflow``). The right shift at a period
wrap drops the membrane's low K−1 bits: at most one state unit of V' in phase 0, i.e.
1/(2·Q_l) threshold of V per period (floor rounding biases it down, ``nearest`` does not).
The encoder has no membrane: its register is the K-bit code. The decision unit works on
``δ = (top1' − top2')·2^(K−1−phase)``, the top-2 difference of ``V_L`` in units of
``2^−K/Q_L`` (exact: V'_L in phase k is in units of ``ω/Q_L = 2^−(k+1)/Q_L``), fitted to
``state_bits``; ``δ_EMA ← (δ + δ_EMA) >> 1`` (rounded by the profile); θ is
``round(θ·2^K·Q_L)`` in the same units.

**Counted actions** (per image; synop and FIFO traffic are counted by the engine):

| action | counted |
|---|---|
| `synop` | per spike, per stored synapse of its fan-out (conv: valid taps × output channels of its group; dense: every target it connects to; identity shortcut: 1); none into the readout during its skipped periods, none after an early decision |
| `weight_read` | 0: a synop includes its weight read |
| `state_read` | encoder: 1 per pixel and step (its K-bit code); hidden: 1 per neuron and step (V'); readout: 1 per neuron and integrating step; decision unit: 3 per step from T1 (class, count, δ_EMA) |
| `state_write` | hidden: 1 per neuron and step; readout: 1 per neuron and integrating step; decision unit: 3 per step from T1, + 1 in the step it decides (the stop flag) |
| `add` | hidden: 1 per neuron and step (accumulator into V') + 1 per spike (V' − 1); readout: 1 per neuron and integrating step; decision unit: 2 per step from T1 (top1 − top2, δ + δ_EMA) + 1 when D(t) = D(t−1) (count + 1) |
| `shift` | encoder: 1 per pixel and step whose bit is not the code's LSB (bit select, K−1−phase > 0); hidden and readout: 1 per neuron and step they run (V' << 1 within a period, V' >> (K−1) entering one; none if K = 1); decision unit: 1 per step from T1 (δ_EMA halving) + 1 where K−1−phase > 0 (δ to units of 2^−K/Q_L) |
| `compare` | hidden: 1 per neuron and step (V' ≥ 1); decision unit per step from T1: 2·(n−1) for the top-2 scan of n readout neurons (each value against the top two), 1 for D(t) = D(t−1), and 1 more when equal (count·δ_EMA ≥ θ); the encoder's bit is its spike (no compare) |
| `mac` | decision unit: 1 when D(t) = D(t−1) (the product count·δ_EMA) |
| `spike_out_pos` | per emitted spike (encoder bits and hidden spikes); `spike_out_neg` = 0 |
| `bias_add` | per neuron with a non-zero bias, per step (hidden) or integrating step (readout) |
| `fifo_write`, `fifo_read` | 0: every projection arrives in the step it was fired |
| `overflow` | per register fit that saturated or wrapped: V' after its shift and after the integration (the reset subtracts 1 from V' ≥ 1 and cannot overflow); decision unit: δ |

Rounding adds of ``round = nearest`` shifts are part of the shift, as in the TSA core. MaxPool
has no exact form here (the paper passes the train with the largest accumulated sum, which
needs to know which input spiked; the engine's projections deliver weighted sums): the
conversion refuses it, naming the node (use AveragePool).
"""

from __future__ import annotations

import math
from collections import namedtuple
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
from ..errors import UserError
from ..fixed_point import fit_np, shift_right_np, state_limits
from ..graph import Graph
from ._layered import Layer, input_sum, normalise
from .base import Param, Scheme, SimResult, in_batches

# K-bit input codes. Beyond 16 bits (finer than any image sensor) the scaled membrane's range,
# 2^K·(1 + 2·periods) thresholds, leaves a 24-bit state no room for weight precision
# (K = 16, 8 periods: 2^20 of its 2^23 units)
MAX_K = 16


# --------------------------------------------------------------------------- parameters

def _phases_check(v):
    return None if 1 <= v <= MAX_K else f"an integer in [1, {MAX_K}]"


def _positive_int(v):
    return None if v >= 1 else "a positive integer"


def _non_negative_int(v):
    return None if v >= 0 else "a non-negative integer"


def _theta_check(v):
    return None if v >= 0.0 else "a non-negative number"


def _percentile_check(v):
    return None if 0.0 < v <= 100.0 else "in (0, 100]"


# Defaults from the paper: K = 8 (§5.2: best on its 8-bit image sets; DESIGN §3.5) and two
# skipped periods, its setting for the K = 8 CNNs Net3 and Net4 (Fig. 11 caption; Figs. 7b, 9,
# 13). The paper runs until an accuracy target instead of for a fixed time; 8 periods is
# where both bundled CNNs reach their ANN accuracy (measured on the digits test split with 2
# skipped: 4 periods leave the 7-level digits_resnet at 0.956 float, its ANN has 0.986).
PARAMS = (
    Param("K", "int", 8, "phases per period: spike weights 2^-1 … 2^-K (K-bit values)",
          check=_phases_check),
    Param("periods", "int", 8, "periods of one inference (latency K·periods steps)",
          check=_positive_int),
    Param("skip_periods", "int", 2, "initial periods the readout ignores (paper §5.1)",
          check=_non_negative_int),
    Param("early", "bool", False, "early decision (paper Algorithm 1): stop an image once its "
          "argmax is stable"),
    Param("theta", "float", 0.9, "early decision's stable-decision threshold θ: decide when "
          "count·δ_EMA ≥ θ (readout units)", check=_theta_check),
    Param("percentile", "float", 99.9, "calibration percentile q of λ", check=_percentile_check),
)


# --------------------------------------------------------------------------- the converted SNN

@dataclass
class PhaseNet:
    """A float phase-coded SNN: λ'-normalised layers (``Layer.lam`` is the unit λ'), input
    first, readout last."""

    graph_name: str
    populations: list[Layer]
    K: int
    periods: int
    skip_periods: int
    early: bool
    theta: float
    params: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return self.K * self.periods

    @property
    def first_decision_step(self) -> int:
        """T1: the readout's first integrating step."""
        return self.skip_periods * self.K + 1

    @property
    def latency_steps(self) -> int:
        return self.steps

    @property
    def steps_per_frame(self) -> int:
        return self.steps


def top_value(K: int) -> float:
    """1 − 2^−K: the largest value one period of spikes carries."""
    return 1.0 - 2.0 ** -K


def phase_weight(t, K: int):
    """ω(t) = 2^−(1+((t−1) mod K)) for step(s) ``t`` (1-based)."""
    return 2.0 ** -(1 + (np.asarray(t) - 1) % K)


def periods_elapsed(t, K: int):
    """Σ_{τ=1..t} ω(τ)/(1 − 2^−K): the periods in steps 1..t, a partial period weighted by the
    share of a period's spike weight it covered (MSB first, so its first phase is half of
    it); what a train of a constant value v decodes to is v times this."""
    t = np.asarray(t)
    return t // K + (1.0 - 2.0 ** -(t % K)) / top_value(K)


def input_codes(x: np.ndarray, unit: float, K: int) -> np.ndarray:
    """The encoder's K-bit codes of pixels ``x`` (any shape) with input unit λ'_0."""
    return np.clip(np.rint(np.asarray(x, np.float64) / unit * 2.0 ** K), 0, 2 ** K - 1).astype(np.int64)


def convert(graph: Graph, scales: dict[str, float], params: dict[str, Any]) -> PhaseNet:
    """The phase-coded SNN of ``graph`` (DESIGN §3.5) from calibrated scales λ."""
    K = int(params["K"])
    gain = 1.0 / top_value(K)  # λ' = λ·2^K/(2^K − 1)
    layers = normalise(graph, {name: lam * gain for name, lam in scales.items()}, "phase")
    readout = layers[-1]
    if params["early"] and readout.neurons < 2:
        raise UserError(f"coding 'phase': early=on needs a readout of at least 2 neurons (it "
                        f"decides on the top-2 difference); '{readout.name}' of {graph.name} "
                        f"has {readout.neurons}")
    net = PhaseNet(graph.name, layers, K, int(params["periods"]), int(params["skip_periods"]),
                   bool(params["early"]), float(params["theta"]), dict(params))
    if not params["early"] and float(params["theta"]) != SCHEME.param("theta").default:
        net.warnings.append(f"coding 'phase': theta={params['theta']:g} has no effect without "
                            f"early=on (it is the early decision's threshold)")
    return net


# --------------------------------------------------------------------------- float simulator

class EarlyDecision:
    """Algorithm 1 of the paper on a batch of images, float (module docstring)."""

    def __init__(self, n: int, theta: float):
        self.theta = theta
        self.last = np.full(n, -1)  # D(t−1); −1: none yet
        self.count = np.zeros(n, np.int64)
        self.ema = np.zeros(n)

    def step(self, v: np.ndarray, live: np.ndarray) -> np.ndarray:
        """One step on the readout membranes ``v`` (N, classes); only ``live`` images change.
        Returns the images that decide in this step."""
        d = v.argmax(axis=1)
        top = np.sort(v, axis=1)
        ema = (top[:, -1] - top[:, -2] + self.ema) / 2.0
        same = d == self.last
        count = np.where(same, self.count + 1, 0)
        decide = live & same & (count * ema >= self.theta)
        self.last = np.where(live, d, self.last)
        self.count = np.where(live, count, self.count)
        self.ema = np.where(live, ema, self.ema)
        return decide


def simulate(net: PhaseNet, x: np.ndarray, trace: bool = False, batch: int = 256,
             progress=None) -> SimResult:
    """Run ``net`` on images ``x`` (N, *input shape) in float, time-stepped (paper eqs. 8–10),
    ``batch`` images at a time.

    ``counts`` hold the spikes (``spike_out_pos``) per layer and step; ``decoded`` every
    population's value in ANN units (spiking ones: Σω·s over the periods elapsed; the readout:
    its output); ``extra``: ``decision_step`` (N,) the step each image ended (K·periods
    without early decision), ``membrane`` {population: (N, *shape) V in thresholds at the
    end (unscaled)}, ``spikes`` the mean spikes per image per layer, and with ``trace``
    ``trace`` {population: (N, steps, *shape) int8 spike trains}.
    """
    parts = in_batches(lambda xb, s: _simulate_batch(net, xb, trace), x, batch, progress)
    counts = parts[0].counts
    for p in parts[1:]:
        counts = counts + p.counts
    decoded = {k: np.concatenate([p.decoded[k] for p in parts]) for k in parts[0].decoded}
    extra = {key: {k: np.concatenate([p.extra[key][k] for p in parts]) for k in parts[0].extra[key]}
             for key in (("membrane", "trace") if trace else ("membrane",))}
    extra["decision_step"] = np.concatenate([p.extra["decision_step"] for p in parts])
    n = max(len(x), 1)
    extra["spikes"] = {name: {"pos": c["spike_out_pos"] / n, "neg": 0.0}
                       for name, c in counts.by_layer().items()}
    return SimResult(decoded[net.populations[-1].name], counts,
                     mean_latency(net.early, extra["decision_step"], net.steps), net.steps,
                     decoded, extra)


def mean_latency(early: bool, decision_step: np.ndarray, steps: int):
    """The result's ``latency_steps``: K·periods, or with early decision the mean step the
    images were decided in (their distribution is ``extra["decision_step"]``)."""
    return float(decision_step.mean()) if early and len(decision_step) else steps


def _simulate_batch(net: PhaseNet, x: np.ndarray, trace: bool) -> SimResult:
    n, K, T = len(x), net.K, net.steps
    first, readout = net.populations[0], net.populations[-1]
    names = [p.name for p in net.populations]
    counts = Counts.zeros(names, T, n)
    pos = ACTION_INDEX["spike_out_pos"]
    codes = input_codes(x, first.lam, K)
    membrane = {p.name: np.zeros((n,) + p.shape) for p in net.populations[1:]}
    beta = {p.name: p.bias.reshape(p.shape) / top_value(K) for p in net.populations[1:]}
    weighted = {p.name: np.zeros((n,) + p.shape) for p in net.populations[:-1]}  # Σ ω·s
    traces = {name: np.zeros((n, T) + p.shape, np.int8)
              for name, p in zip(names[:-1], net.populations)} if trace else None
    live = np.ones(n, bool)
    decision_step = np.full(n, T, np.int64)
    unit = EarlyDecision(n, net.theta) if net.early else None

    def alive(a):  # broadcast the live mask over a population's shape
        return live.reshape((n,) + (1,) * (a.ndim - 1))

    for t in range(1, T + 1):
        k = (t - 1) % K
        w = 2.0 ** -(k + 1)
        fired = {first.name: (((codes >> (K - 1 - k)) & 1) * alive(codes)).astype(np.float64)}
        for p in net.populations[1:]:
            if p is readout and t < net.first_decision_step:
                continue  # the readout ignores its input in the skipped periods
            z = input_sum(p, fired)
            drive = beta[p.name] if z is None else z + beta[p.name]
            v = membrane[p.name] + w * drive
            if p is not readout:
                s = (v >= w) & alive(v)
                v = v - w * s
                fired[p.name] = s.astype(np.float64)
            membrane[p.name] = np.where(alive(v), v, membrane[p.name])
        for l, name in enumerate(names[:-1]):
            s = fired[name]
            counts.data[l, t - 1, pos] = int(s.sum())
            weighted[name] += w * s
            if trace:
                traces[name][:, t - 1] = s
        if unit is not None and t >= net.first_decision_step:
            decide = unit.step(membrane[readout.name].reshape(n, -1), live)
            decision_step[decide] = t
            live &= ~decide
    decoded = {p.name: weighted[p.name] / _per_image(periods_elapsed(decision_step, K), p.shape)
               * p.lam for p in net.populations[:-1]}
    integrated = periods_elapsed(decision_step, K) - net.skip_periods
    out = membrane[readout.name] / _per_image(integrated, readout.shape) * readout.lam
    decoded[readout.name] = np.maximum(out, 0.0) if readout.relu_output else out
    extra = {"membrane": membrane, "decision_step": decision_step}
    if trace:
        extra["trace"] = traces
    return SimResult(decoded[readout.name], counts, mean_latency(net.early, decision_step, T), T,
                     decoded, extra)


def _per_image(v: np.ndarray, shape) -> np.ndarray:
    """(N,) values broadcastable against (N, *shape)."""
    return np.asarray(v, np.float64).reshape((-1,) + (1,) * len(shape))


# --------------------------------------------------------------------------- quantizer

ENCODER, HIDDEN, READOUT = 0, 1, 2
# the decision unit's registers, in the readout's spare register rows (module docstring)
DEC_STEP, DEC_CLASS, DEC_COUNT, DEC_EMA = range(4)
DEC_REGS = 4

PhaseParams = namedtuple("PhaseParams", [
    "kind",  # per layer: ENCODER | HIDDEN | READOUT
    "K",  # phases per period
    "threshold",  # per layer: Q_l, state units of one threshold (encoder: 1, unused)
    "bias", "bias_nonzero",  # per neuron, state units per step; biased neurons per layer
    "lo", "hi", "wrap", "nearest",  # state register limits, overflow mode, right-shift rounding
    "early", "t1", "theta",  # early decision: on, first step T1, θ in units of 2^−K/Q_L
    "dec_row", "dec_col",  # decision register i is st[dec_row[i], dec_col[i]]
])


@dataclass
class PhaseInfo:
    """What encoding, decoding and reporting need beyond the integers."""

    K: int
    skip_periods: int
    early: bool
    lams: np.ndarray  # (layers,) unit λ' per population, ANN units
    scale: np.ndarray  # (layers,) Q_l, state units per threshold
    frac: np.ndarray  # (layers,) fractional state bits
    weight_bits_used: np.ndarray  # (layers,) bits the largest weight into l really uses
    relu_output: bool  # the ANN's output is ReLU(readout)
    warnings: list = field(default_factory=list)  # range problems run anyway (--allow-overflow)
    # (layers, 2) the static worst case (lo, hi) of each layer's registers, state units
    register_bounds: np.ndarray | None = None


def quantize(snn: PhaseNet, arithmetic) -> EventNetwork:
    """Integers for a float phase network (module docstring, "State units")."""
    wb, sb = int(arithmetic.weight_bits), int(arithmetic.state_bits)
    wmax = (1 << (wb - 1)) - 1
    K = snn.K
    fits = [ranges.fit_layer(layer.name, biggest, extent, arithmetic, fixed)
            for layer, biggest, extent, fixed in register_extents(snn, arithmetic, snn.periods)]
    warnings = ranges.check_ranges(
        f"'phase' at K={K}, periods={snn.periods}", fits, arithmetic,
        "the scaled membrane V' = 2^K·V over the periods, its largest input of either sign",
        ("periods", snn.periods, snn.skip_periods + 1,
         lambda n: ranges.most_bits(register_extents(snn, arithmetic, n), arithmetic)),
        ("K", K, 1,
         lambda k: ranges.most_bits(register_extents(snn, arithmetic, snn.periods, k),
                                    arithmetic)))
    index = {p.name: i for i, p in enumerate(snn.populations)}
    kinds, scales, fracs, biases, bits_used = ([] for _ in range(5))
    projections = ProjectionBuilder()
    for l, (layer, fit) in enumerate(zip(snn.populations, fits)):
        if layer.kind == "input":
            kinds.append(ENCODER)
            scales.append(1.0)
            fracs.append(0)
            biases.append(np.zeros(layer.neurons))
            bits_used.append(float("nan"))
            continue
        kinds.append(READOUT if layer.kind == "readout" else HIDDEN)
        # one threshold is q_l state units (whole, ≥ 1); the weights take the scale that
        # matches it (clipped to weight_bits if rounding q_l pushed one past it)
        q_l, frac = fit.q, fit.frac
        scales.append(float(q_l))
        fracs.append(frac)
        biases.append(core_order(layer.bias, layer.shape) / top_value(K) * q_l)
        largest = 0
        for proj in layer.projections:
            w_int = ranges.integer_weights(proj.map.weight, q_l, frac, wmax)
            largest = max(largest, int(np.abs(w_int).max()))
            projections.add(proj.map, w_int, index[proj.source], l, 0)
        bits_used.append(float(np.log2(largest + 1) + 1))
    sizes = np.array([p.neurons for p in snn.populations], np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    bias = np.round(np.concatenate(biases)).astype(np.int64)
    lo, hi = state_limits(sb)
    n_out = int(sizes[-1])
    regs = 1 + math.ceil(DEC_REGS / n_out) if snn.early else 1
    dec = np.arange(DEC_REGS)
    q_out = scales[-1]
    model = PhaseParams(
        kind=np.array(kinds, np.int64), K=K, threshold=np.array(scales, np.int64), bias=bias,
        bias_nonzero=np.array([np.count_nonzero(bias[o:o + n]) for o, n in zip(offsets, sizes)],
                              np.int64),
        lo=lo, hi=hi, wrap=arithmetic.overflow == "wrap", nearest=arithmetic.round == "nearest",
        early=snn.early, t1=snn.first_decision_step,
        theta=int(min(round(snn.theta * 2.0 ** K * q_out), 2 ** 62)),
        dec_row=(1 + dec // n_out).astype(np.int64),
        dec_col=(offsets[-1] + dec % n_out).astype(np.int64))
    info = PhaseInfo(K=K, skip_periods=snn.skip_periods, early=snn.early,
                     lams=np.array([p.lam for p in snn.populations]), scale=np.array(scales),
                     frac=np.array(fracs, np.int64), weight_bits_used=np.array(bits_used),
                     relu_output=snn.populations[-1].relu_output, warnings=warnings,
                     register_bounds=ranges.bounds_array(fits))
    active = np.tile(np.array([1, snn.steps], np.int64), (len(sizes), 1))
    active[-1, 0] = snn.first_decision_step  # the readout skips its first periods
    return EventNetwork(
        names=[p.name for p in snn.populations],
        shapes=[tuple(p.shape) for p in snn.populations], size=sizes, active=active, regs=regs,
        steps=snn.steps, model=model, info=info, **projections.arrays(info.frac))


def register_extents(snn: PhaseNet, arithmetic, periods: int, K: int | None = None) -> list:
    """Per population (layer, largest |W|, ``extent(q, frac)``, None), or for the encoder
    (layer, 0, None, its fixed extent): the worst case of the scaled membrane V' over
    ``periods`` periods of ``K`` phases (default: the network's), from the neuron's own
    integer rule (``neurosim.core.ranges``).

    Per step V' is shifted (doubled within a period, shifted right by K−1 entering one), then
    takes ``Σ w·s + β`` with spikes ``s`` ∈ {0, 1} (encoder bits and hidden spikes alike), so
    the input lies in ``[−Σ|w⁻|, Σw⁺] + β`` per neuron; a hidden neuron subtracts q when
    V' ≥ q. ``membrane_extent`` follows these bounds step by step through the shifts: V' is
    2^K·V in a period's last phase, which is why its range is K bits wider than the unscaled
    membrane's. The readout integrates (no reset) over its ``periods − skip_periods`` periods.
    The encoder's register is its K-bit code. With early decision the readout's extent also
    covers the decision unit's δ register (the top-2 difference of one step's membranes,
    shifted to the last phase's units)."""
    wmax = (1 << (int(arithmetic.weight_bits) - 1)) - 1
    # another K (searched by the range check) keeps the weights (λ' cancels in W) and the
    # per-step bias β = b̂/λ (see convert), so only the code and the shifts change
    K = snn.K if K is None else K
    nearest = arithmetic.round == "nearest"
    out = []
    for layer in snn.populations:
        if layer.kind == "input":
            out.append((layer, 0.0, None, (0, (1 << K) - 1)))
            continue
        readout = layer.kind == "readout"
        steps = K * (periods - (snn.skip_periods if readout else 0))

        def extent(q, frac, layer=layer, steps=steps, readout=readout):
            terms = [(*ranges.synapse_sums(
                p.map, ranges.integer_weights(p.map.weight, q, frac, wmax) << frac), 1, 0)
                for p in layer.projections]
            bias = np.round(layer.bias / top_value(snn.K) * q).astype(np.int64).reshape(-1)
            z_hi, z_lo = ranges.drive_bounds(terms, bias)
            if not (readout and snn.early):
                return ranges.membrane_extent(z_hi, z_lo, steps, None if readout else q,
                                              phases=K, nearest=nearest)
            lo, hi, per_phase = ranges.membrane_extent(z_hi, z_lo, steps, phases=K,
                                                       nearest=nearest, by_phase=True)
            # the decision unit's δ: the top-2 difference of the membranes of one step,
            # in phase k shifted left by K−1−k (δ_EMA, an average of δs, stays below it)
            delta = max(int(h - l) << (K - 1 - k) for k, (l, h) in enumerate(per_phase))
            return lo, max(hi, delta)

        biggest = max(float(np.abs(p.map.weight).max()) for p in layer.projections)
        out.append((layer, biggest, extent, None))
    return out


def encode_input(net: EventNetwork, x: np.ndarray) -> np.ndarray:
    """Each image's input row (engine ``inputs``): the pixels' K-bit codes in core order."""
    return net.from_chw(0, input_codes(x, net.info.lams[0], net.info.K))


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
INT64_MIN = np.iinfo(np.int64).min


@njit(cache=True, inline="always")
def _decide(m, t, k, h, st, c):
    """The early-decision unit after the readout's update of step t (module docstring);
    ``h`` the readout's scaled membranes. Sets the stop flag when the image is decided."""
    n = h.shape[0]
    row, col = m.dec_row, m.dec_col
    best = 0
    top1 = h[0]
    top2 = INT64_MIN
    for j in range(1, n):
        v = h[j]
        if v > top1:
            top2 = top1
            top1 = v
            best = j
        elif v > top2:
            top2 = v
    unscale = m.K - 1 - k  # V'_L in phase k is in units of 2^−(k+1)/Q_L
    delta, ovf = _fit((top1 - top2) << unscale, m.lo, m.hi, m.wrap)
    ema = (delta + st[row[DEC_EMA], col[DEC_EMA]] + np.int64(m.nearest)) >> 1
    cls = best + 1  # 0 is "no decision yet"
    same = cls == st[row[DEC_CLASS], col[DEC_CLASS]]
    count = st[row[DEC_COUNT], col[DEC_COUNT]] + 1 if same else 0
    decided = same and count * ema >= m.theta
    st[row[DEC_CLASS], col[DEC_CLASS]] = cls
    st[row[DEC_COUNT], col[DEC_COUNT]] = count
    st[row[DEC_EMA], col[DEC_EMA]] = ema
    if decided:
        st[row[DEC_STEP], col[DEC_STEP]] = t
    c[A_CMP] += 2 * (n - 1) + 1 + same
    c[A_ADD] += 2 + same
    c[A_SHIFT] += 1 + (unscale > 0)
    c[A_MAC] += same
    c[A_SREAD] += 3
    c[A_SWRITE] += 3 + decided
    c[A_OVF] += ovf


# The neuron loops: jitted functions of their own, so that LLVM vectorises them
# (``neurosim.core.engine``, "Speed").

@njit(cache=True)
def _encoder_loop(codes, ev_sign, bit):
    """Phase k's spikes: bit K−1−k of each input's code."""
    for j in range(codes.shape[0]):
        ev_sign[j] = (codes[j] >> bit) & 1


@njit(cache=True)
def _hidden_loop(h, acc, bias, ev_sign, lo, hi, wrap, left, right, rnd, q):
    """eq. 18: V' << 1 within a period, V' >> (K−1) entering one (``left``/``right``), the
    input added, fire and reset by subtraction. Returns the overflows (the spikes are counted
    once compacted)."""
    novf = 0
    for j in range(acc.shape[0]):
        u, o1 = _fit(((h[j] << left) + rnd) >> right, lo, hi, wrap)
        u, o2 = _fit(u + acc[j] + bias[j], lo, hi, wrap)
        s = np.int64(u >= q)
        h[j] = u - q if s else u  # V' ≥ Q before: cannot overflow
        ev_sign[j] = s
        novf += o1 + o2
    return novf


@njit(cache=True)
def _readout_loop(h, acc, bias, lo, hi, wrap, left, right, rnd):
    """The readout's scaled membrane, as ``_hidden_loop`` without firing."""
    novf = 0
    for j in range(acc.shape[0]):
        u, o1 = _fit(((h[j] << left) + rnd) >> right, lo, hi, wrap)
        u, o2 = _fit(u + acc[j] + bias[j], lo, hi, wrap)
        h[j] = u
        novf += o1 + o2
    return novf


@engine.neuron_model(PhaseParams)
@njit(cache=True, inline="always")
def phase_step(m, l, t, img, off, x, acc, st, ev_idx, ev_sign, c):
    if m.early and st[m.dec_row[DEC_STEP], m.dec_col[DEC_STEP]] != 0:
        return 0  # this image was decided in an earlier step: the network stands still
    n = acc.shape[0]
    kind = m.kind[l]
    K = m.K
    k = (t - 1) % K
    if kind == ENCODER:
        bit = K - 1 - k
        _encoder_loop(x[:n], ev_sign, bit)
        c[A_SREAD] += n
        c[A_SHIFT] += n * np.int64(bit > 0)
    else:
        # registers through slice views, handed to the neuron loops above
        h = st[0, off:off + n]
        lo, hi, wrap = m.lo, m.hi, m.wrap
        bias = m.bias[off:off + n]
        # eq. 18: V' << 1 within a period, V' >> (K−1) entering one
        left = np.int64(k > 0)
        right = 0 if k > 0 else K - 1
        rnd = (np.int64(1) << (right - 1)) if m.nearest and right > 0 else np.int64(0)
        if kind == HIDDEN:
            novf = _hidden_loop(h, acc, bias, ev_sign, lo, hi, wrap, left, right, rnd,
                                m.threshold[l])
            c[A_CMP] += n
        else:
            novf = _readout_loop(h, acc, bias, lo, hi, wrap, left, right, rnd)
        c[A_SREAD] += n
        c[A_SWRITE] += n
        c[A_SHIFT] += n * np.int64(K > 1)
        c[A_ADD] += n
        c[A_BIAS] += m.bias_nonzero[l]
        c[A_OVF] += novf
        if kind == READOUT:
            if m.early and t >= m.t1:
                _decide(m, t, k, h, st, c)
            return 0
    ne = compact_events(ev_idx, ev_sign, n)
    if kind == HIDDEN:
        c[A_ADD] += ne  # the resets
    c[A_POS] += ne
    return ne


# --------------------------------------------------------------------------- reference (numpy)

@reference_model(PhaseParams)
def phase_reference_step(m, l, t, x, acc, st, off, c):
    """The phase neuron of layer l at step t for a whole batch, vectorised: returns spikes
    (images, n) in {0, 1} and adds this step's counts to ``c`` (images, actions). Images
    already decided (early decision) keep their registers and count nothing."""
    n_img, n = acc.shape
    sl = slice(off, off + n)
    K = int(m.K)
    k = (t - 1) % K
    kind = m.kind[l]
    bits = int(m.hi).bit_length() + 1
    wrap = bool(m.wrap)
    live = (st[:, m.dec_row[DEC_STEP], m.dec_col[DEC_STEP]] == 0) if m.early \
        else np.ones(n_img, bool)
    mine = np.zeros_like(c)  # this step's counts of every image; only live ones are kept
    if kind == ENCODER:
        spikes = (x[:, :n] >> (K - 1 - k)) & 1
        mine[:, A_SREAD] += n
        if K - 1 - k > 0:
            mine[:, A_SHIFT] += n
        mine[:, A_POS] += spikes.sum(1)
        c += mine * live[:, None]
        return spikes * live[:, None]
    v = st[:, 0, sl]
    if k > 0:
        v, o1 = fit_np(v * 2, bits, wrap)
    else:
        v, o1 = (shift_right_np(v, K - 1, bool(m.nearest)) if K > 1 else v), np.zeros(v.shape, bool)
    v, o2 = fit_np(v + acc + m.bias[sl], bits, wrap)
    spikes = np.zeros((n_img, n), np.int64)
    if kind == HIDDEN:
        spikes = (v >= m.threshold[l]).astype(np.int64)
        v = v - spikes * m.threshold[l]
        mine[:, A_CMP] += n
        mine[:, A_POS] += spikes.sum(1)
    st[:, 0, sl] = np.where(live[:, None], v, st[:, 0, sl])
    mine[:, A_SREAD] += n
    mine[:, A_SWRITE] += n
    if K > 1:
        mine[:, A_SHIFT] += n
    mine[:, A_ADD] += n + spikes.sum(1)
    mine[:, A_BIAS] += np.count_nonzero(m.bias[sl])
    mine[:, A_OVF] += o1.sum(1) + o2.sum(1)
    if kind == READOUT and m.early and t >= m.t1:
        _reference_decision(m, t, k, v, st, live, mine, bits)
    c += mine * live[:, None]
    return spikes * live[:, None]


def _reference_decision(m, t, k, v, st, live, counts, bits):
    """Algorithm 1 on the batch's readout membranes ``v`` (images, n), integers; writes the
    decision registers of the live images and adds the unit's counts."""
    reg = {i: (int(m.dec_row[i]), int(m.dec_col[i])) for i in range(DEC_REGS)}

    def read(i):
        r, j = reg[i]
        return st[:, r, j]

    def write(i, value):
        r, j = reg[i]
        st[:, r, j] = np.where(live, value, st[:, r, j])

    n = v.shape[1]
    ordered = np.sort(v, axis=1)
    shift = int(m.K) - 1 - k
    delta, over = fit_np((ordered[:, -1] - ordered[:, -2]) * 2 ** shift, bits, bool(m.wrap))
    ema = (delta + read(DEC_EMA) + int(bool(m.nearest))) // 2
    cls = v.argmax(axis=1) + 1
    same = cls == read(DEC_CLASS)
    count = np.where(same, read(DEC_COUNT) + 1, 0)
    decided = same & (count * ema >= m.theta)
    write(DEC_CLASS, cls)
    write(DEC_COUNT, count)
    write(DEC_EMA, ema)
    write(DEC_STEP, np.where(decided, t, 0))
    counts[:, A_CMP] += 2 * (n - 1) + 1 + same
    counts[:, A_ADD] += 2 + same
    counts[:, A_SHIFT] += 1 + int(shift > 0)
    counts[:, A_MAC] += same
    counts[:, A_SREAD] += 3
    counts[:, A_SWRITE] += 3 + decided
    counts[:, A_OVF] += over


# --------------------------------------------------------------------------- running it

def decision_steps(net: EventNetwork, readout_registers: np.ndarray) -> np.ndarray:
    """(N,) the step each image ended: its early decision step, else K·periods.
    ``readout_registers`` (N, regs, readout neurons) as ``engine.simulate`` returns them."""
    steps = np.full(len(readout_registers), net.steps, np.int64)
    if net.info.early:
        m = net.model
        row, col = m.dec_row[DEC_STEP], m.dec_col[DEC_STEP] - net.offset[-1]
        flag = readout_registers[:, row, col]
        steps = np.where(flag > 0, flag, steps)
    return steps


def simulate_fixed(net: EventNetwork, x: np.ndarray, trace: bool = False, progress=None,
                   batch: int = 256) -> SimResult:
    """Bit-accurate run of ``x`` (N, *input shape) on the event engine, as a ``SimResult``.

    ``outputs``: the readout's V_L = V'_L·ω(t) at the image's last step over the periods it
    integrated, in ANN units; ``counts``: every counted action per layer × step and per image
    × layer; ``extra``: ``overflow_by_layer``, ``weight_bits_used``, ``frac_bits``,
    ``decision_step`` (N,). With ``trace``, ``decoded`` holds each spiking population's
    Σω·s over the periods elapsed (ANN units), ``extra["spikes"]`` the trains (N, steps,
    neurons) in core order, and ``register_high``, ``state_bits_needed`` and
    ``state_bits_worst_case`` per layer (``neurosim.core.ranges.high_water_extra``: V', the
    encoder's K-bit code).
    ``progress(done, total)`` is called after each batch of ``batch`` images.
    """
    info, K = net.info, net.info.K
    registers, counts, spikes, *high = engine.simulate(net, x, encode_input, None, trace, batch,
                                                       progress, watermarks=trace)
    last = net.layers - 1
    ends = decision_steps(net, registers)
    membrane = registers[:, 0] * phase_weight(ends, K)[:, None] / info.scale[last]
    integrated = periods_elapsed(ends, K) - info.skip_periods
    out = net.to_chw(last, membrane / integrated[:, None] * info.lams[last])
    if info.relu_output:
        out = np.maximum(out, 0.0)
    decoded = {net.names[last]: out}
    extra = {"overflow_by_layer": dict(zip(net.names, counts.data[:, :, A_OVF].sum(1).tolist())),
             "weight_bits_used": dict(zip(net.names, info.weight_bits_used.tolist())),
             "frac_bits": dict(zip(net.names, info.frac.tolist())),
             "decision_step": ends}
    if trace:
        extra["spikes"] = spikes
        weights = phase_weight(np.arange(1, net.steps + 1), K)
        elapsed = periods_elapsed(ends, K)[:, None]
        for l in range(last):
            value = np.tensordot(spikes[:, :, net.layer_slice(l)].astype(np.float64), weights,
                                 ([1], [0]))
            decoded[net.names[l]] = net.to_chw(l, value / elapsed * info.lams[l])
        peak = high[0][:, 0].copy()  # row 0: the membranes (the decision unit has the rows below)
        peak[0] = int(encode_input(net, x).max(initial=0))  # the encoder's register: its code
        extra.update(ranges.high_water_extra(net, peak, counts.data[:, :, A_OVF].sum(1) > 0))
    return SimResult(out, counts, mean_latency(info.early, ends, net.steps), net.steps, decoded,
                     extra)


# --------------------------------------------------------------------------- the plug-in

class PhaseScheme(Scheme):
    name = "phase"
    summary = "phase coding, weighted spikes 2^-1…2^-K, MSB first (Kim et al.)"
    params = PARAMS
    float_simulator = staticmethod(simulate)
    quantizer = staticmethod(quantize)
    fixed_simulator = staticmethod(simulate_fixed)
    converter = staticmethod(convert)

    def drops_negative_inputs(self, params):
        return "weighted spikes carry no sign"

    def check(self, params: dict[str, Any]) -> None:
        super().check(params)
        if params["skip_periods"] >= params["periods"]:
            raise UserError(f"coding 'phase': skip_periods={params['skip_periods']} must be "
                            f"less than periods={params['periods']} (the readout would "
                            f"integrate nothing)")

    def timing(self, snn: PhaseNet) -> tuple[int, int]:
        return snn.steps, snn.steps


SCHEME = PhaseScheme()
