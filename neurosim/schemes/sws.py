"""SWS / CSS coding: ternary self-amplifying (TSA) neurons (DESIGN §3.1).

Papers: Gu et al., *Stepwise Weighted Spike coding* (SWS) and *Canonic Signed Spike coding*
(CSS). Three parts, each usable on its own:

1. :func:`convert` — float ANN + calibration scales -> :class:`SWSNet`, plain data (spike
   amplitudes θ, normalised weights and per-step biases, timing). No simulation in it; the later
   fixed-point core quantises this same object.
2. :func:`simulate` — the readable float reference: numpy, time-stepped, batch-vectorised.
3. :data:`SCHEME` — the plug-in that ties parameters, calibration, conversion (with the optional
   CSS appendix A.3 amplitude adjustment) and simulation together.

Units inside the SNN: every population's spike amplitude is normalised to 1 (θ is folded into
the weights), so membrane potentials are in units of that population's θ. Decoded values and
biases handed back to the user are in ANN units.

Timing (DESIGN §3.1), with a population's *level* l = 1 + the largest level of its sources
(input 0; a MaxPool gate takes its source's level; the readout is level L+1):

* encoder: receives and fires in steps 1..Tc (no silent period);
* TSA layer l: receives in [Ts(l−1)+1, Ts(l−1)+Tc], fires in [Ts·l+1, Ts·l+Tc];
* readout: integrates M ← βM + z over [Ts·L+1, Ts·L+Tc], never fires; latency Tc + Ts·L.

A projection from a source of level k into a layer of level l arrives Ts·(l−1−k) steps after it
was fired: the delay FIFO that aligns residual shortcuts around silent periods.

MaxPool (an approximation, documented in the report): a MaxPool population is a *gate*, not a
neuron. Each output keeps a β-amplified running value P_k(t) = β·P_k(t−1) + S_k(t) of each
input in its window and, in every step, passes on the spike (+1, −1 or none) of the input whose
P_k(t) is largest so far (first one on ties). When the winning input never changes, the output
train is that input's train and decodes to max_k exactly; after a switch, the earlier,
heavier-weighted steps came from another input, so the decoded value can differ from the max.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import ann
from ..calibrate import calibrate, check_percentile
from ..core.tsa import quantize_sws
from ..core.tsa import simulate_fixed as simulate_fixed_tsa
from ..counts import ACTION_INDEX, Counts
from ..errors import UserError
from ..fixed_point import MAX_CSD_TERMS as MAX_BETA_TERMS
from ..fixed_point import csd_terms
from ..graph import Graph, MaxPool, populations
from ..projection import ConvMap, DenseMap, normal_form, population_bias
from .base import Param, Scheme, SimResult, in_batches

ENCODERS = ("current", "potential")


# --------------------------------------------------------------------------- parameters

MAX_SPAN_BITS = 52  # float64 mantissa: the spike amplitudes' span β^(Tc+Ts) must fit

def _positive_int(v):
    return None if v >= 1 else "a positive integer"


def _non_negative_int(v):
    return None if v >= 0 else "a non-negative integer"


def _beta_check(v):
    if v <= 1.0:
        return "greater than 1"
    if csd_terms(v) is None:
        return (f"a sum of at most {MAX_BETA_TERMS} signed powers of two "
                f"(e.g. 2, 1.5, 1.25, 1.75 = 2 - 0.25)")
    return None


def _ratio_check(v):
    return None if 0.0 < v <= 1.0 else "in (0, 1]"


def _percentile_check(v):
    return None if 0.0 < v <= 100.0 else "in (0, 100]"


PARAMS = (
    Param("Tc", "int", 8, "coding time steps", check=_positive_int),
    Param("Ts", "int", 2, "silent period of every TSA layer (steps)", check=_non_negative_int),
    Param("beta", "float", 2.0, "amplification factor β (short sum of signed powers of two)",
          check=_beta_check),
    Param("threshold_ratio", "float", 0.5, "firing threshold v = ratio·β^Ts (units of θ)",
          check=_ratio_check),
    Param("negative_spikes", "bool", True, "fire −1 spikes when M ≤ −v"),
    Param("relu_counterpart", "bool", True, "TSA-ReLU (CSS A.6) instead of a plain TSA neuron"),
    Param("encoder", "enum", "potential", "potential: initial membrane a/β^Tc, error ≤ θ/2 "
          "(CSS Theorem 2); current: p/Σβ^t in each of the Tc steps (SWS eq. 9), off by more "
          "than θ for 22% of inputs at β=2, Tc=8. Either fires at threshold_ratio",
          choices=ENCODERS),
    Param("amplitude_adjust", "int", 0, "iterations of data-based θ adjustment (CSS A.3)",
          check=_non_negative_int),
    Param("percentile", "float", 99.99, "calibration percentile q of λ", check=_percentile_check),
)


# --------------------------------------------------------------------------- the converted SNN

@dataclass
class SWSProjection:
    source: str
    map: ConvMap | DenseMap | None  # normal form (neurosim.projection), W = Ŵ·θ_source/θ_target;
    #                                 None for a MaxPool gate's input (spikes pass unchanged)
    delay: int  # delay FIFO length in steps (0: the spikes arrive in the step they are fired)


@dataclass
class SWSPopulation:
    name: str
    kind: str  # input | hidden | maxpool | readout
    shape: tuple[int, ...]
    level: int
    lam: float  # calibrated activation scale λ (ANN units)
    theta: float  # spike amplitude θ (ANN units); a MaxPool gate passes its source's spikes
    bias: np.ndarray | None = None  # per-step bias in θ units, added in the Tc input steps
    projections: tuple[SWSProjection, ...] = ()
    pool: MaxPool | None = None  # MaxPool gate geometry
    relu_output: bool = False  # readout only: the ANN's output is ReLU(pre-activation)

    @property
    def neurons(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class SWSNet:
    """A float SWS/CSS SNN: populations in topological order (input first, readout last)."""

    graph_name: str
    populations: list[SWSPopulation]
    Tc: int
    Ts: int
    beta: float
    beta_csd: tuple[tuple[int, int], ...]
    threshold_ratio: float
    negative_spikes: bool
    relu_counterpart: bool
    encoder: str
    params: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # what a reader of the result must know

    @property
    def geometric(self) -> float:
        """Σ_{k=0}^{Tc−1} β^k: what a train of Tc unit spikes decodes to."""
        return sum(self.beta ** k for k in range(self.Tc))

    @property
    def tsa_layers(self) -> int:
        """L: TSA levels between the encoder and the readout (longest path)."""
        return self.populations[-1].level - 1

    @property
    def latency_steps(self) -> int:
        return self.Tc + self.Ts * self.tsa_layers

    @property
    def steps_per_frame(self) -> int:
        return self.Tc + self.Ts

    def by_name(self, name: str) -> SWSPopulation:
        return next(p for p in self.populations if p.name == name)

    def silent(self, pop: SWSPopulation) -> int:
        """Steps a population integrates before it may fire (only TSA layers have one)."""
        return self.Ts if pop.kind == "hidden" else 0

    def input_window(self, pop: SWSPopulation) -> tuple[int, int]:
        """First and last global step (1-based) in which ``pop`` receives input."""
        if pop.kind == "input":
            start = 1
        elif pop.kind == "maxpool":  # a gate acts in its source's firing steps
            start = self.Ts * pop.level + 1
        else:
            start = self.Ts * (pop.level - 1) + 1
        return start, start + self.Tc - 1

    def fire_window(self, pop: SWSPopulation) -> tuple[int, int]:
        start = self.input_window(pop)[0] + self.silent(pop)
        return start, start + self.Tc - 1


def _levels(pops) -> dict[str, int]:
    level = {}
    for p in pops:
        if p.kind == "input":
            level[p.name] = 0
        elif p.kind == "maxpool":
            level[p.name] = level[p.projections[0].source]
        else:
            level[p.name] = 1 + max(level[q.source] for q in p.projections)
    return level


def convert(graph: Graph, scales: dict[str, float], params: dict[str, Any],
            theta_gain: dict[str, float] | None = None) -> SWSNet:
    """The SWS SNN of ``graph`` (DESIGN §3.1).

    θ_l = λ_l·s_l / Σβ^k (s_l = ``theta_gain`` from amplitude adjustment, default 1);
    W = Ŵ·θ_source/θ_l for every projection (each from its own source's θ);
    per-step bias b = b̂/(θ_l·Σβ^k). A MaxPool gate forwards spikes, so it has its source's θ.
    """
    beta, Tc = float(params["beta"]), int(params["Tc"])
    geometric = sum(beta ** k for k in range(Tc))
    theta_gain = theta_gain or {}
    pops = populations(graph)
    level = _levels(pops)
    theta: dict[str, float] = {}
    out: list[SWSPopulation] = []
    for p in pops:
        if p.kind == "maxpool":
            src = p.projections[0].source
            if p.projections[0].path:
                raise UserError(f"{graph.path}: MaxPool '{p.name}' must directly follow a "
                                f"population (found linear ops {p.projections[0].path} before it)")
            theta[p.name] = theta[src]
            gate_input = (SWSProjection(src, None, 0),)  # spikes pass unchanged, same step
            out.append(SWSPopulation(p.name, p.kind, p.shape, level[p.name], scales[p.name],
                                     theta[p.name], projections=gate_input,
                                     pool=graph.nodes[p.name]))
            continue
        theta[p.name] = scales[p.name] * theta_gain.get(p.name, 1.0) / geometric
        if p.kind == "input":
            out.append(SWSPopulation(p.name, p.kind, p.shape, 0, scales[p.name], theta[p.name]))
            continue
        projections = []
        for q in p.projections:
            ann_map = normal_form(graph, q, p)
            weight = ann_map.weight * (theta[q.source] / theta[p.name])
            delay = int(params["Ts"]) * (level[p.name] - 1 - level[q.source])
            projections.append(SWSProjection(q.source, dataclasses.replace(ann_map, weight=weight),
                                             delay))
        bias = population_bias(graph, p) / (theta[p.name] * geometric)
        relu_output = p.kind == "readout" and graph.nodes[p.name].op == "relu"
        if p.kind == "readout" and graph.nodes[p.name].op == "maxpool":
            raise UserError(f"{graph.path}: the network output '{p.name}' is a MaxPool; SWS "
                            f"needs a linear (or ReLU) output layer as readout")
        out.append(SWSPopulation(p.name, p.kind, p.shape, level[p.name], scales[p.name],
                                 theta[p.name], bias, tuple(projections), relu_output=relu_output))
    gates = [p.name for p in out if p.kind == "maxpool"]
    warnings = [f"coding 'sws': MaxPool {', '.join(repr(g) for g in gates)} of {graph.name} "
                f"run as an approximate gate (SWS has no exact spiking max; measured in "
                f"reports/sws_reproduction.md, it can cost many points of accuracy); the "
                f"fixed-point core refuses it; AveragePool converts exactly"] if gates else []
    return SWSNet(graph.name, out, Tc, int(params["Ts"]), beta, csd_terms(beta),
                  float(params["threshold_ratio"]), bool(params["negative_spikes"]),
                  bool(params["relu_counterpart"]), str(params["encoder"]), dict(params),
                  warnings)


# --------------------------------------------------------------------------- simulator: neurons

class TSANeurons:
    """TSA / TSA-ReLU neurons of one population (CSS appendix A.4, A.6), membrane in θ units.

    Two β-amplified registers: h, the accumulated input (with bias), and g, the accumulated
    output, each spike weighted β^Ts (what the reset subtracts). A plain TSA neuron's membrane
    is M = h − g, so ``M ← βM + z; M ← M − β^Ts·S`` is exactly ``h ← βh + z; g ← βg + β^Ts·S``.
    TSA-ReLU fires on o = h − g while h ≥ 0 and on o = −g once h < 0 (it takes back what it
    sent, so a negative pre-activation decodes to 0). The encoder is a TSA neuron with Ts = 0.
    """

    def __init__(self, shape, beta: float, silent: int, ratio: float, negative: bool, relu: bool,
                 initial: np.ndarray | None = None):
        self.beta = beta
        self.reset = beta ** silent
        self.threshold = ratio * self.reset
        self.negative, self.relu = negative, relu
        self.h = np.zeros(shape) if initial is None else initial.astype(np.float64, copy=True)
        self.g = np.zeros(shape)

    def integrate(self, z: np.ndarray | float) -> None:
        self.h = self.beta * self.h + z
        self.g = self.beta * self.g

    def drive(self) -> np.ndarray:
        """o: what the firing rule sees (also the residual after the last step)."""
        o = self.h - self.g
        return np.where(self.h < 0, -self.g, o) if self.relu else o

    def fire(self) -> np.ndarray:
        o = self.drive()
        spikes = (o >= self.threshold).astype(np.int8)
        if self.negative:
            spikes -= (o <= -self.threshold).astype(np.int8)
        self.g += self.reset * spikes
        return spikes

    def decoded(self) -> np.ndarray:
        """Σ_t β^(Tc−t)·S(t) (θ units) once the firing window is over."""
        return self.g / self.reset

    def membrane(self) -> np.ndarray:
        return self.h - self.g


def run_neuron(z: np.ndarray, Tc: int, Ts: int, beta: float, threshold_ratio: float = 0.5,
               negative_spikes: bool = True, relu: bool = False,
               initial: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One TSA population outside a network, θ = 1: ``z`` (Tc, *shape) is the input of each of
    the Tc input steps; the neurons integrate for Tc + Ts steps and fire in the last Tc.

    Returns (spikes (Tc, *shape), decoded Σβ^(Tc−t)S(t), residual o/β^Ts). Used for the
    encoder (Ts = 0) and for the CSS temporal-coupling example; the same class runs in
    :func:`simulate`.
    """
    z = np.asarray(z, np.float64)
    neurons = TSANeurons(z.shape[1:], beta, Ts, threshold_ratio, negative_spikes, relu, initial)
    spikes = []
    for step in range(Tc + Ts):
        neurons.integrate(z[step] if step < Tc else 0.0)
        if step >= Ts:
            spikes.append(neurons.fire())
    return np.stack(spikes), neurons.decoded(), neurons.drive() / neurons.reset


def encode(values: np.ndarray, Tc: int, beta: float, encoder: str = "current",
           threshold_ratio: float = 0.5, negative_spikes: bool = True):
    """The input encoder on ``values`` in units of θ0 (so the largest codable value is Σβ^k).

    current:   constant input values/Σβ^k in each of the Tc steps (SWS eq. 9);
    potential: initial membrane values/β^Tc, no input (CSS Theorem 2).
    Returns (spikes, decoded, residual) as :func:`run_neuron`; decoded = values − residual.
    """
    values = np.asarray(values, np.float64)
    geometric = sum(beta ** k for k in range(Tc))
    if encoder == "current":
        z, initial = np.broadcast_to(values / geometric, (Tc,) + values.shape), None
    else:
        z, initial = np.zeros((Tc,) + values.shape), values / beta ** Tc
    return run_neuron(z, Tc, 0, beta, threshold_ratio, negative_spikes, relu=False, initial=initial)


class MaxGate:
    """MaxPool as a spike gate (module docstring): passes the spike of the window's input with
    the largest running decoded value P_k(t) = β·P_k(t−1) + S_k(t)."""

    def __init__(self, pool: MaxPool, source_shape, beta: float):
        self.pool, self.beta = pool, beta
        self.running = np.zeros(source_shape)  # P_k per input neuron
        self.out = None  # running decoded value of the gate's own output

    def step(self, spikes: np.ndarray) -> np.ndarray:
        self.running = self.beta * self.running + spikes
        pool = self.pool
        values = ann._windows(ann._pad(self.running, pool.pads, -np.inf), pool.kernel, pool.stride,
                              pool.dilation)
        trains = ann._windows(ann._pad(spikes, pool.pads, 0), pool.kernel, pool.stride,
                              pool.dilation)
        flat = values.shape[:4] + (-1,)
        winner = values.reshape(flat).argmax(axis=-1)[..., None]
        passed = np.take_along_axis(trains.reshape(flat), winner, axis=-1)[..., 0]
        self.out = passed if self.out is None else self.beta * self.out + passed
        return passed.astype(np.int8)

    def decoded(self) -> np.ndarray:
        return self.out


class DelayFifo:
    """A shift register of ``delay`` steps of spikes (None = no spikes in that step)."""

    def __init__(self, delay: int):
        self.slots = deque([None] * delay)

    def shift(self, spikes):
        self.slots.append(spikes)
        return self.slots.popleft()


# --------------------------------------------------------------------------- simulator: network

def simulate(net: SWSNet, x: np.ndarray, trace: bool = False, batch: int = 256,
             progress=None) -> SimResult:
    """Run ``net`` on images ``x`` (N, *input shape); batches of ``batch`` images.

    ``extra`` of the result holds, per population name:
    ``residual``  o after the last step / β^Ts, θ units (TSA-ReLU: the ReLU counterpart's
                  residual; plain TSA and encoder: the membrane), hidden and input only;
    ``membrane``  (h − g)/β^Ts, θ units: the state in the conservation identity (eq. A7);
    ``spikes``    {pos, neg} per layer, mean per image;
    ``trace``     (if asked) {name: (first step, int8 array (Tc, N, *shape))} of fired spikes;
    and ``readout_last_input_step``: the last step in which any spike reached the readout.
    """
    parts = in_batches(lambda xb, s: _simulate_batch(net, xb, trace), x, batch, progress)
    first = parts[0]
    counts = first.counts
    for p in parts[1:]:
        counts = counts + p.counts

    def cat(key):
        return {k: np.concatenate([p.extra[key][k] for p in parts]) for k in first.extra[key]}

    extra = {"residual": cat("residual"), "membrane": cat("membrane"),
             "readout_last_input_step": max(p.extra["readout_last_input_step"] for p in parts)}
    n = max(len(x), 1)
    by_layer = counts.by_layer()
    extra["spikes"] = {name: {"pos": c["spike_out_pos"] / n, "neg": c["spike_out_neg"] / n}
                       for name, c in by_layer.items()}
    if trace:
        extra["trace"] = {k: (v[0], np.concatenate([p.extra["trace"][k][1] for p in parts], axis=1))
                          for k, v in first.extra["trace"].items()}
    return SimResult(np.concatenate([p.outputs for p in parts]), counts, net.latency_steps,
                     net.steps_per_frame,
                     {k: np.concatenate([p.decoded[k] for p in parts]) for k in first.decoded},
                     extra)


def _simulate_batch(net: SWSNet, x: np.ndarray, trace: bool) -> SimResult:
    n = len(x)
    beta, Tc = net.beta, net.Tc
    names = [p.name for p in net.populations]
    counts = Counts.zeros(names, net.latency_steps, n)
    pos, neg = ACTION_INDEX["spike_out_pos"], ACTION_INDEX["spike_out_neg"]

    # one state object per population
    states: dict[str, Any] = {}
    for pop in net.populations:
        shape = (n,) + pop.shape
        if pop.kind == "input":
            initial = None
            if net.encoder == "potential":  # CSS Theorem 2: u(0) = a/β^Tc, in θ0 units
                initial = x / (pop.theta * beta ** Tc)
            states[pop.name] = TSANeurons(shape, beta, 0, net.threshold_ratio,
                                          net.negative_spikes, relu=False, initial=initial)
        elif pop.kind == "hidden":
            states[pop.name] = TSANeurons(shape, beta, net.Ts, net.threshold_ratio,
                                          net.negative_spikes, relu=net.relu_counterpart)
        elif pop.kind == "maxpool":
            source = net.by_name(pop.projections[0].source)
            states[pop.name] = MaxGate(pop.pool, (n,) + source.shape, beta)
        else:
            states[pop.name] = np.zeros(shape)  # readout membrane M
    fifos = {(pop.name, i): DelayFifo(q.delay) for pop in net.populations
             for i, q in enumerate(pop.projections) if q.delay > 0}
    current = x / net.populations[0].lam  # SWS eq. 9 in θ0 units: p/(θ0·Σβ^k) = p/λ0
    traces = {pop.name: [] for pop in net.populations if pop.kind != "readout"}
    readout_last_input = 0

    for t in range(1, net.latency_steps + 1):
        fired: dict[str, np.ndarray | None] = {}  # spikes of this step, None = silent
        for idx, pop in enumerate(net.populations):
            in_start, in_end = net.input_window(pop)
            fire_start, fire_end = net.fire_window(pop)
            spikes = None
            if pop.kind == "input":
                neurons = states[pop.name]
                if t <= Tc:
                    neurons.integrate(current if net.encoder == "current" else 0.0)
                    spikes = neurons.fire()
            elif pop.kind == "maxpool":
                source_spikes = fired[pop.projections[0].source]
                if source_spikes is not None:
                    spikes = states[pop.name].step(source_spikes)
            else:
                z = _arriving_input(pop, fired, fifos)
                if z is not None and not in_start <= t <= in_end:
                    raise AssertionError(f"{pop.name}: spikes arrived at step {t}, outside its "
                                         f"input window [{in_start}, {in_end}]")
                if pop.kind == "readout":
                    if in_start <= t <= in_end:
                        if z is not None and np.any(z):
                            readout_last_input = t
                        states[pop.name] = beta * states[pop.name] + (0.0 if z is None else z) + pop.bias
                else:
                    neurons = states[pop.name]
                    if in_start <= t <= fire_end:
                        drive = 0.0 if z is None else z
                        if t <= in_end:
                            drive = drive + pop.bias
                        neurons.integrate(drive)
                        if t >= fire_start:
                            spikes = neurons.fire()
            fired[pop.name] = spikes
            if spikes is not None:
                counts.data[idx, t - 1, pos] = int(np.count_nonzero(spikes > 0))
                counts.data[idx, t - 1, neg] = int(np.count_nonzero(spikes < 0))
                if trace:
                    traces[pop.name].append((t, spikes))

    decoded, residual, membrane = {}, {}, {}
    for pop in net.populations:
        state = states[pop.name]
        if pop.kind == "readout":
            value = state * pop.theta
            decoded[pop.name] = np.maximum(value, 0.0) if pop.relu_output else value
            membrane[pop.name] = state
        elif pop.kind == "maxpool":
            decoded[pop.name] = state.decoded() * pop.theta
        else:
            decoded[pop.name] = state.decoded() * pop.theta
            residual[pop.name] = state.drive() / state.reset
            membrane[pop.name] = state.membrane() / state.reset
    extra = {"residual": residual, "membrane": membrane,
             "readout_last_input_step": readout_last_input}
    if trace:
        extra["trace"] = {k: (v[0][0], np.stack([s for _, s in v])) for k, v in traces.items() if v}
    readout = net.populations[-1]
    return SimResult(decoded[readout.name], counts, net.latency_steps, net.steps_per_frame,
                     decoded, extra)


def _arriving_input(pop: SWSPopulation, fired: dict, fifos: dict) -> np.ndarray | None:
    """Σ over projections of W·(spikes arriving this step), θ units; None if nothing arrived.

    Every delay FIFO shifts once per step (this is called for every population every step)."""
    z = None
    for i, q in enumerate(pop.projections):
        spikes = fired[q.source]
        if q.delay:
            spikes = fifos[(pop.name, i)].shift(spikes)
        if spikes is not None and np.any(spikes):
            part = q.map.apply(spikes.astype(np.float64))
            z = part if z is None else z + part
    return z


# --------------------------------------------------------------------------- amplitude adjustment

def amplitude_factor(u: float, geometric: float) -> float:
    """CSS appendix A.3 (eq. A18): the factor s^l that amplifies θ^l when the 99.9th percentile
    u of the layer's residual exceeds θ. We read u in units of θ (θ = 1), the only reading in
    which the paper's formula is dimensionally consistent once θ is normalised to 1."""
    excess = u - 1.0
    if excess > 0.05 * geometric:
        return 1.0 + excess / geometric
    if excess > 0.01 * geometric:
        return 1.0 + (excess - 0.01 * geometric) / geometric + 0.04
    if excess > 0.0:
        return 1.0 + 4.0 * excess / geometric
    return 1.0


def adjust_amplitudes(graph: Graph, scales: dict[str, float], params: dict[str, Any],
                      calib_x: np.ndarray, iterations: int) -> tuple[SWSNet, list[dict[str, float]]]:
    """Convert, simulate the calibration images, amplify θ of every TSA layer whose 99.9th
    percentile residual (θ units, after dividing by β^Ts) exceeds 1; repeat ``iterations`` times
    (CSS A.5: all layers from one forward pass, then re-convert). Returns the net and, per
    iteration, the factors applied."""
    gains: dict[str, float] = {}
    history = []
    net = convert(graph, scales, params, gains)
    for _ in range(iterations):
        result = simulate(net, calib_x)
        applied = {}
        for pop in net.populations:
            if pop.kind != "hidden":
                continue
            u = float(np.percentile(result.extra["residual"][pop.name], 99.9))
            factor = amplitude_factor(u, net.geometric)
            if factor != 1.0:
                gains[pop.name] = gains.get(pop.name, 1.0) * factor
                applied[pop.name] = factor
        history.append(applied)
        net = convert(graph, scales, params, gains)
    return net, history


# --------------------------------------------------------------------------- the plug-in

class SWSScheme(Scheme):
    name = "sws"
    summary = "stepwise weighted / canonic signed spikes, TSA neurons (Gu et al.)"
    params = PARAMS
    float_simulator = staticmethod(simulate)
    quantizer = staticmethod(quantize_sws)  # the TSA neuron model on the event engine
    fixed_simulator = staticmethod(simulate_fixed_tsa)

    def check(self, params: dict[str, Any]) -> None:
        super().check(params)
        # spike amplitudes span β^(Tc+Ts): beyond float64's 52-bit mantissa the float
        # simulator can no longer resolve the smallest amplitude against the largest
        span = (params["Tc"] + params["Ts"]) * math.log2(params["beta"])
        if span > MAX_SPAN_BITS:
            largest = int(MAX_SPAN_BITS / math.log2(params["beta"])) - params["Ts"]
            raise UserError(f"coding 'sws': Tc={params['Tc']}, Ts={params['Ts']} at "
                            f"beta={params['beta']:g} span β^(Tc+Ts) = 2^{span:.0f}, beyond the "
                            f"2^{MAX_SPAN_BITS} float64 can resolve; use Tc ≤ {max(largest, 1)}")

    def build(self, graph: Graph, calib_x: np.ndarray, params: dict[str, Any],
              scales: dict[str, float] | None = None) -> SWSNet:
        """Calibrate (unless ``scales`` are given), convert, adjust amplitudes if asked."""
        self.check(params)
        if scales is None:
            scales = calibrate(graph, calib_x, check_percentile(params["percentile"]))
        net, _ = adjust_amplitudes(graph, scales, params, calib_x, int(params["amplitude_adjust"]))
        return net


SCHEME = SWSScheme()
