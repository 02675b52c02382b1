"""TSC: temporal switch coding (DESIGN §3.4; Han & Roy, *Deep spiking neural network: energy
efficiency through time based coding*, ECCV 2020).

A value is the length of an *on-period*: the time between a switch-on spike (+1) and a
switch-off spike (−1). A neuron holds a current register ``I`` that every input event changes
once (``I += w·s``), so a synapse costs a weight read and an add per switch, not per step.

* **Encoder** (paper eq. 1–2). A pixel is normalised by the input's λ and clipped,
  ``p = clip(x/λ_0, −1, 1)``; ``p* = floor(|p|(N−1)) + 1``; if ``p* ≥ 2`` the pixel sends
  ``sgn(p)`` at ``t = 1`` and ``−sgn(p)`` at ``t = p*``, else nothing. Its on-period is the
  ``p* − 1`` steps 1..p*−1, so it carries ``sgn(p)·(p* − 1)/(N − 1)``: |p| quantised to
  N − 1 levels.
* **Neuron.** Per step: ``I += Σ w·s`` (this step's input events), ``V += I``, and
  internally ``if V ≥ Vth: V −= Vth`` (soft reset, at most one internal spike per step).
  The bias is a synapse from an always-on source of value 1: ``I += b`` at ``t = 1`` and
  ``I −= b`` at ``t = N``, so it is integrated for the same N − 1 steps a pixel of 1 is
  (the paper's networks have no biases; DESIGN is silent on them).
* **Emission.** ``switch``: +1 at every 0→1 and −1 at every 1→0 switch of the internal spike
  train, so the downstream current is ``w`` exactly in the steps the neuron fired internally:
  a neuron that fired k times carries ``k/(N − 1)`` thresholds, as in rate coding.
  ``single`` (the paper's text, default): +1 at the first internal spike, −1 at the first
  later step without one, then silent: at most two events per neuron, hence at most two
  weight reads and two synaptic adds per synapse per inference. It carries the length of
  its *first run* of consecutive internal spikes, which equals k only when the internal
  train is one contiguous run (a neuron driven above threshold in every step until it
  stops); :func:`emission_stats` measures how far apart the two are, layer by layer.
* **Decoded value** of a spike train (any layer but the readout): its on-steps
  ``Σ_t Σ_{τ≤t} S(τ)`` over the N steps, divided by N − 1, times the layer's scale ``s_l``.
* **Readout.** The same I and V registers, no threshold: ``V += I`` every step, so at the end
  ``V_N = Σ_t I(t) = Σ_i w_i·(on-steps of source i) + b·(N − 1)``, i.e. N − 1 times the
  ANN's output pre-activation computed on the decoded values of its sources. The output is
  ``V_N/(N − 1)·λ_readout`` (ANN units; ReLU'd if the ANN's output is a ReLU); argmax of it
  is the prediction because it is a positive multiple of that pre-activation.
* **Timing.** Every layer runs in steps 1..N and an event reaches its targets in the step it
  is sent (DESIGN §2), so residual shortcuts need no delay FIFO. Latency N, one frame every
  N steps.

**Thresholds** (scheme parameter ``thresholds``). Layer l's unit is a scale ``s_l`` (ANN
units per threshold): weights ``W = Ŵ·s_source/s_l``, biases ``b = b̂/s_l``, threshold 1
(``neurosim.schemes._layered.normalise``). ``lambda``: ``s_l = λ_l``, the calibrated
activation percentile. ``balance`` (paper §4.1): layer by layer, in topological order,
``Vth_l = alpha·max`` of the current I layer l receives over its neurons, the N steps and
the calibration images, with the thresholds of earlier layers fixed: the float simulator
runs the calibration images layer by layer and measures each layer's current before it
sets the layer's threshold. A threshold Vth in units of a
trial scale s is the same neuron as threshold 1 in units of ``s·Vth``, so balancing sets
``s_l = alpha·max I`` (ANN units) and keeps threshold 1. The input keeps ``λ_0`` (its
largest calibration value, so no calibration pixel clips); the readout keeps ``λ_readout``,
which only fixes the output's units.

**State units** (fixed point). In layer l one threshold is ``Q_l = wscale_l·2^frac_l``
integer state units, a whole number ≥ 1: weights are ``round(W·wscale_l)`` in ``weight_bits``
(signed) and enter the current register shifted left by ``frac_l``; the bias is
``round(b·Q_l)``. ``Q_l`` and ``frac_l`` come from the register range below.

**Register range.** ``|I| ≤ max_t |Σ w·s(t) + b|`` thresholds, and V integrates I over N
steps (the soft reset bounds it from above only while I < 1), so ``|V| ≤ 1 + N·max|I|``.
Measured at N = 64 on the 180 calibration images of the three bundled models (both
threshold modes, both emissions): |I| ≤ 1.65 thresholds in hidden layers with ``balance``
(its positive side is 1/alpha = 1.25 by construction), ≤ 3.85 with ``lambda``, ≤ 4.0 in the
readouts; |V| ≤ 112 thresholds (1.75·N: digits_cnn, ``lambda``, ``switch``). The quantizer
holds the worst case over every input instead (``register_extents``: each source's running
event sum at either end, ``neurosim.core.ranges``), weight precision first, the headroom left
as ``frac_l`` (at most the profile's ``frac_bits``; with a ``*_pow2`` weight scale the weight
scale is a power of two); when even ``frac_l = 0`` cannot hold it the weights give up bits,
down to ``MIN_WEIGHT_BITS``; below that it is an error naming the layer and the largest N
that fits (``--allow-overflow``: a warning, and registers saturate or wrap, counted as
``overflow``). TSC shifts nothing, so the profile's ``round`` does not apply.

**Registers** per neuron: 0 = I, 1 = V, 2 = the emission flag (``switch``: the previous
internal spike; ``single``: 0 before the +1, 1 while on, 2 after the −1). The encoder's one
register is its signed p* (its input row).

A ``single`` neuron whose −1 is sent can no longer change its output, so the hardware gates
it off: from the next step on its registers are frozen and it does no work but reading its
flag. The float simulator keeps integrating it (its emitted spikes are the same either way)
so that :func:`emission_stats` can compare its whole internal train with its on-period.

**Counted actions** (per image; the fan-out ``synop`` and FIFO traffic are counted by the
engine). A neuron is *live* in a step unless it is a ``single`` neuron that has sent its −1
(``switch``: every neuron is live in every step).

| action | counted |
|---|---|
| `synop` | per event, per stored synapse of its fan-out (conv: valid taps × output channels of its group; dense: every target it connects to; identity shortcut: 1): the weight read and the add into the target's current, at most 2 per synapse per inference with `single` |
| `weight_read` | 0: a synop includes its weight read |
| `state_read` | encoder: 1 per pixel and step (its p*); hidden: 1 per neuron and step (the flag) + 2 per live neuron and step (I, V); readout: 2 per neuron and step |
| `state_write` | hidden: 2 per live neuron and step (I, V) + 1 per emitted event (the flag changes exactly then); readout: 2 per neuron and step |
| `add` | hidden: 2 per live neuron and step (accumulator into I, I into V) + 1 per internal spike of a live neuron (the reset V − Vth); readout: 2 per neuron and step |
| `shift` | 0 |
| `compare` | encoder: 1 per pixel and step (the step counter against p*); hidden: 1 per live neuron and step (V ≥ Vth); the readout never compares |
| `spike_out_pos`, `spike_out_neg` | per emitted event, by sign (the encoder's too) |
| `bias_add` | per live neuron with a non-zero bias, at t = 1 (I += b) and at t = N (I −= b), hidden and readout |
| `fifo_write`, `fifo_read` | 0: every event arrives in the step it is sent |
| `overflow` | per register fit of a live neuron that saturated or wrapped: I after its update, V after the integration (the reset subtracts Vth from V ≥ Vth and cannot overflow) |
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit

from ..core import engine, ranges
from ..core.network import EventNetwork, ProjectionBuilder, core_order
from ..core.reference import reference_model
from ..core.registers import compact_events, negative_events
from ..core.registers import fit as _fit
from ..counts import ACTION_INDEX, Counts
from ..errors import UserError
from ..fixed_point import fit_np, state_limits
from ..graph import Graph
from ..projection import DenseMap
from ._layered import Layer, normalise
from .base import Param, Scheme, SimResult, in_batches

EMISSIONS = ("single", "switch")
THRESHOLDS = ("balance", "lambda")
# the float simulator keeps one layer's currents (images × N × neurons, float64) for a batch
# of images: at most this many elements (32 MB)
FLOAT_BATCH_ELEMENTS = 1 << 22
APPLY_ROWS = 256  # (image, step) rows per projection call (bounds the conv's window memory)
DENSE_OPERATOR_ENTRIES = 1 << 22  # a conv projection up to this size runs as a matrix (32 MB)


# --------------------------------------------------------------------------- parameters

def _steps_check(v):
    return None if v >= 2 else "an integer ≥ 2 (eq. 1 quantises |p| into N − 1 levels)"


def _alpha_check(v):
    return None if 0.0 < v <= 1.0 else "in (0, 1] (paper §4.1)"


def _percentile_check(v):
    return None if 0.0 < v <= 100.0 else "in (0, 100]"


PARAMS = (
    Param("N", "int", 64, "time steps of one inference (eq. 1: N − 1 levels per value)",
          check=_steps_check),
    Param("alpha", "float", 0.8, "threshold = alpha·max input current (thresholds=balance)",
          check=_alpha_check),
    Param("emission", "enum", "single", "single: +1 at the first internal spike, −1 at the "
          "first step without one; switch: ±1 at every switch of the internal train",
          choices=EMISSIONS),
    Param("thresholds", "enum", "balance", "balance: layer-by-layer max current (paper §4.1); "
          "lambda: λ-normalisation, threshold 1", choices=THRESHOLDS),
    Param("percentile", "float", 99.9, "calibration percentile q of λ (thresholds=lambda; the "
          "readout's units)", check=_percentile_check),
)


# --------------------------------------------------------------------------- the converted SNN

@dataclass
class TSCNet:
    """A float TSC SNN: normalised layers (``Layer.lam`` is the layer's scale s_l, ANN units
    per threshold), input first, readout last."""

    graph_name: str
    layers: list[Layer]
    N: int
    emission: str
    params: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # what a reader of the result must know

    @property
    def populations(self) -> list[Layer]:
        return self.layers

    @property
    def latency_steps(self) -> int:
        return self.N

    @property
    def steps_per_frame(self) -> int:
        return self.N


def convert(graph: Graph, scales: dict[str, float], params: dict[str, Any],
            calib_x: np.ndarray | None = None) -> TSCNet:
    """The TSC SNN of ``graph`` (DESIGN §3.4) from calibrated scales λ; ``thresholds=balance``
    balances the hidden layers' thresholds on ``calib_x`` (module docstring)."""
    N, emission = int(params["N"]), str(params["emission"])
    if params["thresholds"] == "balance":
        if calib_x is None or len(calib_x) == 0:
            raise UserError("coding 'tsc': thresholds=balance needs calibration images")
        scales = balanced_scales(graph, scales, N, emission, float(params["alpha"]), calib_x)
    return TSCNet(graph.name, normalise(graph, scales, "tsc"), N, emission, dict(params))


def balanced_scales(graph: Graph, scales: dict[str, float], N: int, emission: str,
                    alpha: float, calib_x: np.ndarray) -> dict[str, float]:
    """Paper §4.1: the scale s_l of every hidden layer, in topological order, set to
    ``alpha·max I`` (ANN units) over the neurons, steps and calibration images, with the
    earlier layers' thresholds fixed. The current is measured in units of a trial scale
    (λ_l), so ``s_l = λ_l·alpha·max I``, and the layer's trains for the later layers are those
    of its current divided by ``alpha·max I``. The input and the readout keep their λ; a
    layer whose current is never positive keeps λ too (it never fires either way)."""
    balanced = dict(scales)
    layers = normalise(graph, balanced, "tsc")
    last_use = _last_use(layers)
    batch = _batch_size(layers, N)
    # per batch of calibration images, the spike trains a later layer still reads
    trains = [{layers[0].name: encoder_trains(encode_times(calib_x[s:s + batch] / layers[0].lam,
                                                           N), N)}
              for s in range(0, len(calib_x), batch)]
    for idx in range(1, len(layers) - 1):
        layer = normalise(graph, balanced, "tsc")[idx]  # its sources at their final scales
        ops = _operators(layer)
        bias = layer.bias.reshape(-1)
        peak = max(max(float(i.max(initial=-np.inf)) for i in
                       _current_steps(_input_change(layer, ops, part, N), bias))
                   for part in trains)
        factor = 1.0 / (alpha * peak) if peak > 0.0 else 1.0
        balanced[layer.name] /= factor
        for part in trains:
            change = _input_change(layer, ops, part, N) * factor
            part[layer.name] = _fire(change, bias * factor, emission == "single",
                                     layer.shape)[0]
            for done in [k for k in part if last_use[k] <= idx]:
                del part[done]
    return balanced


def _batch_size(layers: list[Layer], N: int) -> int:
    """Images per batch of the float simulator: one layer's input (images × N × neurons)
    within FLOAT_BATCH_ELEMENTS."""
    return max(1, FLOAT_BATCH_ELEMENTS // (N * max(layer.neurons for layer in layers)))


def _last_use(layers: list[Layer]) -> dict[str, int]:
    """{layer: index of the last layer that reads its spike train}."""
    last = {layer.name: 0 for layer in layers}
    for idx, layer in enumerate(layers):
        for q in layer.projections:
            last[q.source] = idx
    return last


# --------------------------------------------------------------------------- encoder

def encode_times(p: np.ndarray, N: int) -> np.ndarray:
    """Eq. 1–2 as one signed integer per pixel: ``sgn(p)·p*`` where the pixel spikes (p* ≥ 2:
    ``sgn(p)`` at t = 1, ``−sgn(p)`` at t = p*), 0 where it does not. ``p`` is clipped to
    [−1, 1] first."""
    p = np.clip(np.asarray(p, np.float64), -1.0, 1.0)
    pstar = np.floor(np.abs(p) * (N - 1)).astype(np.int64) + 1
    return np.where(pstar >= 2, np.sign(p).astype(np.int64) * pstar, 0)


def encoder_trains(code: np.ndarray, N: int) -> np.ndarray:
    """The encoder's events (len(code), N, *shape) int8 from :func:`encode_times`' codes;
    index t − 1 holds step t."""
    t = np.arange(1, N + 1).reshape((1, N) + (1,) * (code.ndim - 1))
    code = code[:, None]
    sign = np.sign(code)
    return (sign * (t == 1) - sign * (np.abs(code) == t)).astype(np.int8)


# --------------------------------------------------------------------------- float simulator

def simulate(net: TSCNet, x: np.ndarray, trace: bool = False,
             batch: int | None = None, progress=None) -> SimResult:
    """Run ``net`` on images ``x`` (N_img, *input shape) in float, ``batch`` images at a time
    (default: as many as keep one layer's input within FLOAT_BATCH_ELEMENTS).

    The network has no feedback and no delays, so a layer's input over all N steps follows
    from its sources' spike trains alone: the simulator runs layer by layer, each layer step
    by step. That is the same arithmetic as step by step through all layers, and what
    threshold balancing needs (a layer's current before its threshold is set).

    ``outputs``: the readout's V_N/(N−1)·λ (ANN units); ``counts``: emitted events
    (``spike_out_pos``/``neg``) per layer and step; ``decoded``: every spiking population's
    on-steps/(N−1)·s_l and the readout's output (ANN units). ``extra``: ``spikes`` {layer:
    {pos, neg}} mean per image; ``internal_firings`` {hidden layer: (N_img, *shape) internal
    spike counts}; ``current_peak`` {layer: the largest |I| of any neuron, step and image, in
    thresholds}; with ``trace``, ``trace`` {layer: (N_img, N, *shape) int8 emitted events}
    and ``internal_trace`` {hidden layer: (N_img, N, *shape) int8 internal spikes}.
    """
    batch = batch or _batch_size(net.layers, net.N)
    ops = {layer.name: _operators(layer) for layer in net.layers[1:]}
    parts = in_batches(lambda xb, s: _simulate_batch(net, ops, xb, trace), x, batch, progress)
    counts = parts[0].counts
    for p in parts[1:]:
        counts = counts + p.counts

    def cat(group):
        return {k: np.concatenate([p.extra[group][k] for p in parts])
                for k in parts[0].extra[group]}

    n = max(len(x), 1)
    extra = {"spikes": {name: {"pos": c["spike_out_pos"] / n, "neg": c["spike_out_neg"] / n}
                        for name, c in counts.by_layer().items()},
             "internal_firings": cat("internal_firings"),
             "current_peak": {k: max(p.extra["current_peak"][k] for p in parts)
                              for k in parts[0].extra["current_peak"]}}
    if trace:
        extra["trace"] = cat("trace")
        extra["internal_trace"] = cat("internal_trace")
    decoded = {k: np.concatenate([p.decoded[k] for p in parts]) for k in parts[0].decoded}
    return SimResult(decoded[net.layers[-1].name], counts, net.N, net.N, decoded, extra)


def _simulate_batch(net: TSCNet, ops: dict, x: np.ndarray, trace: bool) -> SimResult:
    n, N = len(x), net.N
    first, readout = net.layers[0], net.layers[-1]
    counts = Counts.zeros([layer.name for layer in net.layers], N, n)
    pos, neg = ACTION_INDEX["spike_out_pos"], ACTION_INDEX["spike_out_neg"]
    trains = {first.name: encoder_trains(encode_times(x / first.lam, N), N)}
    internal, firings, peaks = {}, {}, {}
    for layer in net.layers[1:]:
        change = _input_change(layer, ops[layer.name], trains, N)
        bias = layer.bias.reshape(-1)
        if layer.kind == "readout":
            v = np.zeros((n, layer.neurons))
            peak = 0.0
            for i in _current_steps(change, bias):
                v += i
                peak = max(peak, float(np.abs(i).max(initial=0.0)))
            out = v.reshape((n,) + layer.shape) / (N - 1) * layer.lam
            peaks[layer.name] = peak
            break
        trains[layer.name], spikes, peaks[layer.name] = _fire(change, bias,
                                                              net.emission == "single",
                                                              layer.shape)
        firings[layer.name] = spikes.sum(axis=1, dtype=np.int64)
        if trace:
            internal[layer.name] = spikes
    decoded = {}
    for l, layer in enumerate(net.layers[:-1]):
        events = trains[layer.name]
        flat = events.reshape(n, N, -1)
        counts.data[l, :, pos] = (flat > 0).sum(axis=(0, 2))
        counts.data[l, :, neg] = (flat < 0).sum(axis=(0, 2))
        decoded[layer.name] = on_steps(events) / (N - 1) * layer.lam
    decoded[readout.name] = np.maximum(out, 0.0) if readout.relu_output else out
    extra = {"internal_firings": firings, "current_peak": peaks}
    if trace:
        extra["trace"] = dict(trains)
        extra["internal_trace"] = internal
    return SimResult(decoded[readout.name], counts, N, N, decoded, extra)


def on_steps(events: np.ndarray) -> np.ndarray:
    """Σ_t Σ_{τ≤t} S(τ) of event trains (images, N, ...): the steps each train is on (signed).
    An event at step τ counts for the N − τ + 1 steps from τ on."""
    N = events.shape[1]
    return np.tensordot(events, np.arange(N, 0, -1), axes=([1], [0]))


def _operators(layer: Layer) -> list:
    """Per projection into ``layer``, how the simulator applies it: a (source neurons,
    target neurons) matrix, C-order flat, where it has at most DENSE_OPERATOR_ENTRIES
    entries (one matrix product per batch: several times faster than the conv), else the
    map itself. A conv's matrix is the map applied to the unit vectors, so it holds the
    map's own weights."""
    ops = []
    for q in layer.projections:
        n_src = int(np.prod(q.map.in_shape))
        if isinstance(q.map, DenseMap):
            ops.append(q.map.weight.T)
        elif n_src * layer.neurons <= DENSE_OPERATOR_ENTRIES:
            basis = np.eye(n_src).reshape((n_src,) + tuple(q.map.in_shape))
            columns = [q.map.apply(basis[s:s + APPLY_ROWS]).reshape(-1, layer.neurons)
                       for s in range(0, n_src, APPLY_ROWS)]
            ops.append(np.concatenate(columns))
        else:
            ops.append(q.map)
    return ops


def _input_change(layer: Layer, ops: list, trains: dict[str, np.ndarray], N: int) -> np.ndarray:
    """Σ_projections W·s(t): how the input events change the current of each neuron in each
    step, (images, N, neurons) float, neurons C-order flat."""
    n = len(trains[layer.projections[0].source])
    change = np.zeros((n * N, layer.neurons))
    for q, op in zip(layer.projections, ops):
        events = trains[q.source].reshape(n * N, -1)
        rows = np.flatnonzero(events.any(axis=1))  # (image, step) pairs with input events
        for s in range(0, len(rows), APPLY_ROWS):
            part = rows[s:s + APPLY_ROWS]
            e = events[part].astype(np.float64)
            if isinstance(op, np.ndarray):
                change[part] += e @ op
            else:
                y = op.apply(e.reshape((-1,) + tuple(op.in_shape)))
                change[part] += y.reshape(len(part), -1)
    return change.reshape(n, N, layer.neurons)


def _current_steps(change: np.ndarray, bias: np.ndarray):
    """The current I(t) (images, neurons) of steps t = 1..N: each input event changes it once
    (``I += W·s``); the bias is on in steps 1..N−1. Yields one array, updated in place."""
    N = change.shape[1]
    i = np.zeros((change.shape[0], change.shape[2]))
    for t in range(N):
        i += change[:, t]
        if t == 0:
            i += bias
        if t == N - 1:  # N ≥ 2: the bias was on for N − 1 steps, as a pixel of value 1
            i -= bias
        yield i


def _fire(change: np.ndarray, bias: np.ndarray, single: bool, shape) -> tuple:
    """Hidden neurons driven by ``change`` (see :func:`_input_change`), step by step:
    ``V += I``, ``if V ≥ 1: V −= 1``. Returns (emitted events, internal spikes), both
    (images, N, *shape) int8, and the largest |I|. A ``single`` neuron keeps integrating after
    its −1 (its output cannot change any more) so that its whole internal train is known."""
    n, N, width = change.shape
    v = np.zeros((n, width))
    flag = np.zeros((n, width), np.int64)  # switch: the previous internal spike; single: 0, 1, 2
    events = np.zeros((n, N, width), np.int8)
    spikes = np.zeros((n, N, width), np.int8)
    peak = 0.0
    for t, i in enumerate(_current_steps(change, bias)):
        peak = max(peak, float(np.abs(i).max(initial=0.0)))
        v += i
        spike = v >= 1.0
        v -= spike
        if single:  # +1 at the first internal spike, −1 at the first step without one
            e = ((flag == 0) & spike).astype(np.int64) - ((flag == 1) & ~spike)
            flag += np.abs(e)
        else:  # ±1 at every switch of the internal train
            e = spike - flag
            flag = spike.astype(np.int64)
        events[:, t] = e
        spikes[:, t] = spike
    full = (n, N) + tuple(shape)
    return events.reshape(full), spikes.reshape(full), peak


def emission_stats(result: SimResult) -> dict[str, dict[str, float]]:
    """Per hidden layer, from a float run with ``trace``: how the emitted on-period compares
    with the internal spike train it should carry (what ``single`` can lose; ``switch`` is
    exact by construction). For each layer:

    ``firing``          fraction of neurons with at least one internal spike (k > 0);
    ``mean_k``          mean internal spike count k of the firing neurons;
    ``mean_on``         mean on-steps of their emitted train (``single``: the first run);
    ``one_run``         fraction of the firing neurons whose internal train is one
                        contiguous run (for those ``single`` is exact);
    ``mismatch``        fraction of the firing neurons whose on-steps differ from k;
    ``carried``         Σ on-steps / Σ k: the share of the internal spikes that reaches the
                        next layer;
    ``mean_abs_error``  mean over all neurons of |on − k|/(N − 1): the error of the carried
                        value in thresholds (units of the layer's scale s_l).
    """
    if "internal_trace" not in result.extra:
        raise ValueError("emission_stats needs a float run with trace=True")
    N = result.latency_steps
    stats = {}
    for name, spikes in result.extra["internal_trace"].items():
        n_img = len(spikes)
        inner = spikes.reshape(n_img, N, -1).astype(np.int64)
        k = inner.sum(axis=1)
        on = on_steps(result.extra["trace"][name].reshape(n_img, N, -1))
        runs = np.diff(inner, axis=1, prepend=0).clip(min=0).sum(axis=1)
        firing = k > 0
        n_firing = max(int(firing.sum()), 1)
        stats[name] = {
            "firing": float(firing.mean()),
            "mean_k": float(k[firing].sum() / n_firing),
            "mean_on": float(on[firing].sum() / n_firing),
            "one_run": float((runs[firing] == 1).sum() / n_firing),
            "mismatch": float((on[firing] != k[firing]).sum() / n_firing),
            "carried": float(on.sum() / k.sum()) if k.sum() else float("nan"),
            "mean_abs_error": float(np.abs(on - k).mean() / (N - 1)),
        }
    return stats


# --------------------------------------------------------------------------- quantizer

ENCODER, HIDDEN, READOUT = 0, 1, 2
REGS = 3  # I, V, emission flag

TSCParams = namedtuple("TSCParams", [
    "kind",  # per layer: ENCODER | HIDDEN | READOUT
    "threshold",  # per layer: Q_l, state units per threshold
    "bias",  # per neuron, state units (added to I at t = 1, removed at t = N)
    "steps",  # N
    "single",  # emission: True = single, False = switch
    "lo", "hi", "wrap",  # register limits, overflow mode
])


@dataclass
class TSCInfo:
    """What encoding, decoding and reporting need beyond the integers."""

    N: int
    emission: str
    lams: np.ndarray  # (layers,) s_l, ANN units per threshold
    scale: np.ndarray  # (layers,) Q_l, state units per threshold (1 for the encoder)
    frac: np.ndarray  # (layers,) fractional state bits
    weight_bits_used: np.ndarray  # (layers,) bits the largest weight into l really uses
    relu_output: bool  # the ANN's output is ReLU(readout)
    warnings: list = field(default_factory=list)  # range problems run anyway (--allow-overflow)
    # (layers, 2) the static worst case (lo, hi) of each layer's registers, state units
    register_bounds: np.ndarray | None = None


def quantize(snn: TSCNet, arithmetic) -> EventNetwork:
    """Integers for a float TSC network (module docstring, "State units"); each layer's scale
    holds its registers' worst case (``register_extents``), or the range error is raised."""
    wb, sb = int(arithmetic.weight_bits), int(arithmetic.state_bits)
    wmax = (1 << (wb - 1)) - 1
    fits = [ranges.fit_layer(layer.name, biggest, extent, arithmetic, fixed)
            for layer, biggest, extent, fixed in register_extents(snn, arithmetic, snn.N)]
    warnings = ranges.check_ranges(
        f"'tsc' at N={snn.N}", fits, arithmetic,
        "V over N steps of its largest current of either sign",
        # balanced thresholds depend on N: the search keeps this N's (a rebuilt network at
        # another N is balanced anew, so its range differs a little)
        ("N" if snn.params.get("thresholds") == "lambda"
         else f"N (keeping the thresholds balanced at N={snn.N})", snn.N, 2,
         lambda n: ranges.most_bits(register_extents(snn, arithmetic, n), arithmetic)))
    index = {layer.name: i for i, layer in enumerate(snn.layers)}
    # the encoder has no registers: its p* is its input row
    kinds, scales, fracs, bits_used = [ENCODER], [1], [0], [float("nan")]
    biases = [np.zeros(snn.layers[0].neurons)]
    projections = ProjectionBuilder()
    for l, (layer, fit) in enumerate(zip(snn.layers[1:], fits[1:]), start=1):
        kinds.append(READOUT if layer.kind == "readout" else HIDDEN)
        # one threshold is q_l state units (whole, ≥ 1); the weights take the scale that
        # matches it exactly, clipped to weight_bits if rounding q_l pushed one past it
        q_l, frac = fit.q, fit.frac
        scales.append(q_l)
        fracs.append(frac)
        biases.append(core_order(layer.bias, layer.shape) * q_l)
        largest = 0
        for proj in layer.projections:
            w_int = ranges.integer_weights(proj.map.weight, q_l, frac, wmax)
            largest = max(largest, int(np.abs(w_int).max()))
            projections.add(proj.map, w_int, index[proj.source], l, 0)
        bits_used.append(float(np.log2(largest + 1) + 1))
    sizes = np.array([layer.neurons for layer in snn.layers], np.int64)
    lo, hi = state_limits(sb)
    model = TSCParams(kind=np.array(kinds, np.int64), threshold=np.array(scales, np.int64),
                      bias=np.round(np.concatenate(biases)).astype(np.int64), steps=snn.N,
                      single=snn.emission == "single", lo=lo, hi=hi,
                      wrap=arithmetic.overflow == "wrap")
    info = TSCInfo(N=snn.N, emission=snn.emission,
                   lams=np.array([layer.lam for layer in snn.layers]),
                   scale=np.array(scales, np.float64), frac=np.array(fracs, np.int64),
                   weight_bits_used=np.array(bits_used), relu_output=snn.layers[-1].relu_output,
                   warnings=warnings, register_bounds=ranges.bounds_array(fits))
    active = np.tile(np.array([1, snn.N], np.int64), (len(sizes), 1))
    return EventNetwork(
        names=[layer.name for layer in snn.layers],
        shapes=[tuple(layer.shape) for layer in snn.layers], size=sizes, active=active,
        regs=REGS, steps=snn.N, model=model, info=info, **projections.arrays(info.frac))


def register_extents(snn: TSCNet, arithmetic, N: int) -> list:
    """Per population (layer, largest |W|, ``extent(q, frac)``, None), or for the encoder
    (layer, 0, None, its fixed extent): the worst case of the I and V registers over ``N``
    steps (``neurosim.core.ranges``), from the neuron's own integer rule.

    The current is ``I = Σ w·c + b`` (t < N; at t = N the bias is removed), ``c`` the running
    sum of a source's events: a hidden neuron's events alternate +1, −1 starting with +1, so
    c ∈ {0, 1}; an encoder pixel sends ±1 then ∓1, so c ∈ {−1, 0, 1}. That bounds I per neuron
    (``drive_bounds``, with and without the bias); V integrates I and, in hidden layers,
    subtracts q when V ≥ q (``membrane_extent``: above, V stays below q + max I unless
    max I > q; below, nothing but N steps of its most negative current bounds it). The readout
    integrates without a reset. A ``single`` neuron that is done is frozen inside these
    bounds. The encoder's register is its signed p* ∈ [−N, N]."""
    wmax = (1 << (int(arithmetic.weight_bits) - 1)) - 1
    encoder = snn.layers[0].name
    out = []
    for layer in snn.layers:
        if layer.kind == "input":
            out.append((layer, 0.0, None, (-N, N)))
            continue

        def extent(q, frac, layer=layer):
            terms = [(*ranges.synapse_sums(
                p.map, ranges.integer_weights(p.map.weight, q, frac, wmax) << frac),
                1, 1 if p.source == encoder else 0) for p in layer.projections]
            b = np.round(layer.bias * q).astype(np.int64).reshape(-1)
            i_hi, i_lo = ranges.drive_bounds(terms, b)
            i_hi, i_lo = np.maximum(i_hi, i_hi - b), np.minimum(i_lo, i_lo - b)  # t = N: no bias
            lo, hi = ranges.membrane_extent(i_hi, i_lo, N, None if layer.kind == "readout" else q)
            return min(lo, int(i_lo.min())), max(hi, int(i_hi.max()))

        biggest = max(float(np.abs(p.map.weight).max()) for p in layer.projections)
        out.append((layer, biggest, extent, None))
    return out


def encode_input(net: EventNetwork, x: np.ndarray) -> np.ndarray:
    """Each image's input row (engine ``inputs``): the encoder's signed p* per pixel (0: no
    spike), core order."""
    return net.from_chw(0, encode_times(x / net.info.lams[0], net.info.N))


# --------------------------------------------------------------------------- neuron model (numba)

A_SREAD = ACTION_INDEX["state_read"]
A_SWRITE = ACTION_INDEX["state_write"]
A_ADD = ACTION_INDEX["add"]
A_CMP = ACTION_INDEX["compare"]
A_POS = ACTION_INDEX["spike_out_pos"]
A_NEG = ACTION_INDEX["spike_out_neg"]
A_BIAS = ACTION_INDEX["bias_add"]
A_OVF = ACTION_INDEX["overflow"]


# The neuron loops: jitted functions of their own, so that LLVM vectorises them
# (``neurosim.core.engine``, "Speed").

@njit(cache=True)
def _encoder_loop(code, ev_sign, t):
    """The encoder's events at step t from its spike times (eq. 1–2): +sign at t = 1, −sign
    at t = |p|."""
    first = np.int64(t == 1)
    for j in range(code.shape[0]):
        p = code[j]
        sgn = np.int64(p > 0) - np.int64(p < 0)
        ev_sign[j] = sgn * (first - np.int64(abs(p) == t))  # p ≠ 0 means p* ≥ 2: never both


@njit(cache=True, inline="always")
def _current(cur, acc, bias, edge, j):
    """I plus this step's input, plus the bias at t = 1 (edge 1) or minus it at t = N (edge
    −1). ``bias`` is None in the other steps: decided when numba compiles, so those loops
    neither read the bias nor count it (with selects in place of int64 multiplies, measured
    on a layer of 16,384 neurons: ``single`` 1.41 → 0.93 ns per neuron, ``switch`` 0.79 →
    0.65, the readout 0.47 → 0.31)."""
    if bias is None:
        return cur[j] + acc[j]
    return cur[j] + acc[j] + (bias[j] if edge > 0 else -bias[j])


@njit(cache=True)
def _readout_loop(cur, mem, acc, bias, lo, hi, wrap, edge):
    novf = nbias = 0
    for j in range(acc.shape[0]):
        i, o1 = _fit(_current(cur, acc, bias, edge, j), lo, hi, wrap)
        v, o2 = _fit(mem[j] + i, lo, hi, wrap)
        cur[j] = i
        mem[j] = v
        novf += o1 + o2
        if bias is not None:
            nbias += np.int64(bias[j] != 0)
    return 0, novf, nbias, acc.shape[0]


@njit(cache=True)
def _switch_loop(cur, mem, flag, acc, bias, ev_sign, lo, hi, wrap, q, edge):
    """``emission=switch``: an event at every on/off switch of the internal train."""
    nfire = novf = nbias = 0
    for j in range(acc.shape[0]):
        i, o1 = _fit(_current(cur, acc, bias, edge, j), lo, hi, wrap)
        v, o2 = _fit(mem[j] + i, lo, hi, wrap)
        fire = np.int64(v >= q)
        cur[j] = i
        mem[j] = v - q if fire else v
        ev_sign[j] = fire - flag[j]
        flag[j] = fire
        nfire += fire
        novf += o1 + o2
        if bias is not None:
            nbias += np.int64(bias[j] != 0)
    return nfire, novf, nbias, acc.shape[0]


@njit(cache=True)
def _single_loop(cur, mem, flag, acc, bias, ev_sign, lo, hi, wrap, q, edge):
    """``emission=single``: +1 at the first internal spike, −1 at the first step without one
    after it (``flag`` 0, 1, 2: before, on, done); a neuron done with its −1 stays frozen.
    Selects rather than products of masks: an int64 multiply is a slow vector instruction."""
    nfire = novf = nbias = nlive = 0
    for j in range(acc.shape[0]):
        f = flag[j]
        live = np.int64(f < 2)
        i, o1 = _fit(_current(cur, acc, bias, edge, j), lo, hi, wrap)
        v, o2 = _fit(mem[j] + i, lo, hi, wrap)
        fire = np.int64(v >= q)
        v = v - q if fire else v
        e = (fire if f == 0 else 0) - (1 - fire if f == 1 else 0)
        cur[j] = i if live else cur[j]
        mem[j] = v if live else mem[j]
        flag[j] = f + abs(e)
        ev_sign[j] = e
        nlive += live
        nfire += fire if live else 0
        novf += o1 + o2 if live else 0
        if bias is not None:
            nbias += np.int64(bias[j] != 0) if live else 0
    return nfire, novf, nbias, nlive


@njit(cache=True, inline="always")
def _neurons(m, kind, cur, mem, flag, acc, bias, ev_sign, q, edge):
    """The layer's loop: (internal spikes, overflows, biases added, live neurons); its
    events are counted once compacted (``negative_events``)."""
    lo, hi, wrap = m.lo, m.hi, m.wrap
    if kind == READOUT:
        return _readout_loop(cur, mem, acc, bias, lo, hi, wrap, edge)
    if m.single:
        return _single_loop(cur, mem, flag, acc, bias, ev_sign, lo, hi, wrap, q, edge)
    return _switch_loop(cur, mem, flag, acc, bias, ev_sign, lo, hi, wrap, q, edge)


@engine.neuron_model(TSCParams)
@njit(cache=True, inline="always")
def tsc_step(m, l, t, img, off, x, acc, st, ev_idx, ev_sign, c):
    # registers through slice views, handed to the neuron loops above
    n = acc.shape[0]
    kind = m.kind[l]
    if kind == ENCODER:
        _encoder_loop(x[:n], ev_sign, t)
        c[A_SREAD] += n
        c[A_CMP] += n
    else:
        q = m.threshold[l]
        cur = st[0, off:off + n]
        mem = st[1, off:off + n]
        flag = st[2, off:off + n]
        edge = np.int64(t == 1) - np.int64(t == m.steps)  # bias on at t = 1, off at t = N
        if edge == 0:
            nfire, novf, nbias, nlive = _neurons(m, kind, cur, mem, flag, acc, None, ev_sign,
                                                 q, edge)
        else:
            nfire, novf, nbias, nlive = _neurons(m, kind, cur, mem, flag, acc,
                                                 m.bias[off:off + n], ev_sign, q, edge)
        c[A_SREAD] += 2 * nlive
        c[A_SWRITE] += 2 * nlive
        c[A_ADD] += 2 * nlive
        c[A_OVF] += novf
        c[A_BIAS] += nbias
        if kind == READOUT:
            return 0
        c[A_ADD] += nfire
        c[A_CMP] += nlive
    ne = compact_events(ev_idx, ev_sign, n)
    nneg = negative_events(ev_sign, ne)
    if kind == HIDDEN:
        c[A_SREAD] += n
        c[A_SWRITE] += ne  # the flag changes exactly at an event
    c[A_POS] += ne - nneg
    c[A_NEG] += nneg
    return ne


# --------------------------------------------------------------------------- reference (numpy)

@reference_model(TSCParams)
def tsc_reference_step(m, l, t, x, acc, st, off, c):
    """The TSC neuron of layer l at step t for a whole batch, vectorised: returns the events
    (images, n) in {−1, 0, 1} and adds this step's counts to ``c`` (images, actions)."""
    n_img, n = acc.shape
    sl = slice(off, off + n)
    kind = m.kind[l]
    if kind == ENCODER:
        code = x[:, :n]
        events = np.where((t == 1) & (code != 0), np.sign(code), 0) \
            - np.where(np.abs(code) == t, np.sign(code), 0)
        c[:, A_SREAD] += n
        c[:, A_CMP] += n
    else:
        bits = int(m.hi).bit_length() + 1
        wrap = bool(m.wrap)
        bias = m.bias[sl]
        if t == 1:
            z = acc + bias
        elif t == m.steps:
            z = acc - bias
        else:
            z = acc
        cur, mem, flag = st[:, 0, sl], st[:, 1, sl], st[:, 2, sl]
        i, over_i = fit_np(cur + z, bits, wrap)
        v, over_v = fit_np(mem + i, bits, wrap)
        fire = v >= m.threshold[l]
        if kind == READOUT:
            live = np.ones((n_img, n), bool)
            events = np.zeros((n_img, n), np.int64)
        elif m.single:
            live = flag < 2
            events = np.select([(flag == 0) & fire, (flag == 1) & ~fire], [1, -1], 0)
        else:
            live = np.ones((n_img, n), bool)
            events = fire.astype(np.int64) - flag
        if kind == HIDDEN:
            v = np.where(fire, v - m.threshold[l], v)
            st[:, 2, sl] = flag + np.abs(events) if m.single else fire
        st[:, 0, sl] = np.where(live, i, cur)
        st[:, 1, sl] = np.where(live, v, mem)
        n_live = live.sum(axis=1)
        c[:, A_SREAD] += 2 * n_live
        c[:, A_SWRITE] += 2 * n_live
        c[:, A_ADD] += 2 * n_live
        c[:, A_OVF] += ((over_i.astype(np.int64) + over_v) * live).sum(axis=1)
        if t == 1 or t == m.steps:
            c[:, A_BIAS] += (live & (bias != 0)).sum(axis=1)
        if kind == HIDDEN:
            c[:, A_SREAD] += n
            c[:, A_SWRITE] += np.abs(events).sum(axis=1)
            c[:, A_ADD] += (fire & live).sum(axis=1)
            c[:, A_CMP] += n_live
    c[:, A_POS] += (events > 0).sum(axis=1)
    c[:, A_NEG] += (events < 0).sum(axis=1)
    return events


# --------------------------------------------------------------------------- running it

def simulate_fixed(net: EventNetwork, x: np.ndarray, trace: bool = False, progress=None,
                   batch: int = 256) -> SimResult:
    """Bit-accurate run of ``x`` (N_img, *input shape) on the event engine, as a ``SimResult``.

    ``outputs``: the readout's V_N/(Q·(N−1))·λ (ANN units); ``counts``: every counted action
    per layer × step and per image × layer; ``extra["overflow_by_layer"]``: the
    saturations/wraps per layer. With ``trace``, ``decoded`` holds each spiking population's
    on-steps/(N−1)·s_l, ``extra["spikes"]`` the event trains (N_img, N, neurons) in core
    order, and ``register_high``, ``state_bits_needed`` and ``state_bits_worst_case`` per
    layer (``neurosim.core.ranges.high_water_extra``: I and V, the encoder's signed p*).
    ``progress(done, total)`` is called after each batch.
    """
    info = net.info
    registers, counts, spikes, *high = engine.simulate(net, x, encode_input, None, trace, batch,
                                                       progress, watermarks=trace)
    last = net.layers - 1
    out = net.to_chw(last, registers[:, 1]) / (info.scale[last] * (info.N - 1)) * info.lams[last]
    if info.relu_output:
        out = np.maximum(out, 0.0)
    decoded = {net.names[last]: out}
    ovf = counts.data[:, :, A_OVF].sum(axis=1)
    extra = {"overflow_by_layer": dict(zip(net.names, ovf.tolist())),
             "weight_bits_used": dict(zip(net.names, info.weight_bits_used.tolist())),
             "frac_bits": dict(zip(net.names, info.frac.tolist()))}
    if trace:
        extra["spikes"] = spikes
        peak = high[0][:, :2].max(axis=1)  # I and V; the flag is a 2-bit state
        # the encoder's one register is its signed p* (its input row)
        peak[0] = int(np.abs(encode_input(net, x)).max(initial=0))
        extra.update(ranges.high_water_extra(net, peak, ovf > 0))
        for l in range(last):
            on = on_steps(spikes[:, :, net.layer_slice(l)])
            decoded[net.names[l]] = net.to_chw(l, on) / (info.N - 1) * info.lams[l]
    return SimResult(out, counts, info.N, info.N, decoded, extra)


# --------------------------------------------------------------------------- the plug-in

class TSCScheme(Scheme):
    name = "tsc"
    summary = "temporal switch coding: a value is an on-period between two spikes (Han & Roy)"
    params = PARAMS
    float_simulator = staticmethod(simulate)
    quantizer = staticmethod(quantize)
    fixed_simulator = staticmethod(simulate_fixed)
    converter = staticmethod(convert)
    converter_uses_data = True  # tunes thresholds on the calibration images
    # an independent re-implementation (a helper's probe) matched the simulator bit for bit:
    # the loss is the coding's, a neuron firing on the running maximum of its summed input
    loss_advice = ("compare the float accuracy at several N: it can rise or fall with N, "
                   "since besides its N levels a TSC neuron fires floor(max over time of its "
                   "summed input / threshold) times, not ReLU of the final sum, so a current "
                   "that rises and then falls overshoots (every input pixel is on at t = 1, "
                   "and dim positive inputs make it worse as N grows); zeroing small inputs "
                   "can help; emission=single also sends "
                   "only each neuron's first run of internal spikes, emission=switch all of "
                   "them; see the README's TSC section")


SCHEME = TSCScheme()
