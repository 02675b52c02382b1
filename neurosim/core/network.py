"""FixedNetwork: an SWS/TSA spiking network in integers only, laid out for the numba core.

``quantize_sws`` turns the float SWS network (``neurosim.schemes.sws.SWSNet``: spike
amplitudes θ, normalised weights, biases, windows) into integers with a hardware
profile's arithmetic:

* **Layers** are the populations in the float network's order: 0 = the encoder (the
  input), the hidden TSA layers, the readout last.
* **State units.** In layer l a value of 1 (one spike amplitude θ_l) is ``Q_l`` integer
  units. With ``per_layer_pow2`` weights, ``Q_l = 2^(e_l + frac_bits)`` where ``e_l`` is
  the largest exponent (a Loihi-style weight exponent) that keeps every weight into l
  within ``weight_bits`` *and* the layer's largest state (``STATE_HEADROOM·Σβ^k·β^Ts``
  spike amplitudes: the TSA-ReLU ``h`` register holds the whole weighted input) within
  ``state_bits``; with ``per_layer`` the scale is any real number under the same two
  limits. When the state limit binds, the weights use fewer than ``weight_bits`` bits
  (``weight_bits_used``): that is the price of the register width, reported, not hidden.
  ``frac_bits`` are the extra state bits below one weight LSB. The encoder has no weights:
  ``e_0 = weight_bits−1``.
* **Weights** are ``round(W · 2^e_l)`` (the ``weight_bits`` integers the synapse memory
  holds), stored pre-multiplied by ``2^frac_bits`` (a wired shift, not a counted action).
* **Thresholds, resets, biases** are rounded to state units: ``v = threshold_ratio·β^Ts``,
  reset ``β^Ts``, per-step bias ``b̂/(θ Σβ^k)``.
* **Layout.** Neurons of a (C, H, W) population are stored channels-last (H, W, C), so a
  conv event's fan-out over output channels is a contiguous run. Dense weights are
  re-ordered to match. ``to_chw``/``from_chw`` convert at the boundaries.
* **Projections** are the float network's normal-form maps (one conv or one dense map
  each) with their delays (the FIFO lengths that align a source's firing window with the
  target's input window); windows and delays come from the float network unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError
from ..fixed_point import require_terms
from ..projection import ConvMap

ENCODER, TSA, TSA_RELU, READOUT = 0, 1, 2, 3
KIND_NAMES = {ENCODER: "encoder", TSA: "tsa", TSA_RELU: "tsa_relu", READOUT: "readout"}
CONV, DENSE = 0, 1
# A layer's registers must hold this many times its largest encodable value (Σβ^k spike
# amplitudes, amplified by β^Ts over the silent period). 1 suffices: a TSA-ReLU ``h`` beyond
# it saturates while ``g`` can never exceed it, so the neuron keeps firing its maximum —
# the same clipping at λ the conversion already assumes. Measured on loihi_like (8-bit
# weights, 24-bit state, Tc=8, Ts=2, β=2): headroom 2 cost digits_cnn 2 points of accuracy
# (weights left with 3.5–5 bits), headroom 1 stays within 0.6 points of 16/48-bit arithmetic
# with about 2 counted saturations per image.
STATE_HEADROOM = 1.0
N_GEOM = 16  # conv geometry fields per projection (see _geometry)


@dataclass
class FixedNetwork:
    names: list[str]
    shapes: list[tuple[int, ...]]
    kind: np.ndarray  # (layers,) ENCODER | TSA | TSA_RELU | READOUT
    size: np.ndarray  # neurons per layer
    offset: np.ndarray  # first neuron of each layer in the flat state arrays
    recv: np.ndarray  # (layers, 2) first and last step the layer receives input
    fire: np.ndarray  # (layers, 2) first and last step it may fire (empty: last < first)
    threshold: np.ndarray  # (layers,) in state units
    reset: np.ndarray  # (layers,) subtracted per spike, in state units
    scale: np.ndarray  # (layers,) Q_l: state units per spike amplitude, float64
    bias: np.ndarray  # (neurons,) per-step bias, state units
    # projections
    p_src: np.ndarray
    p_dst: np.ndarray
    p_kind: np.ndarray  # CONV | DENSE
    p_delay: np.ndarray
    p_woff: np.ndarray  # offset into weights
    p_geom: np.ndarray  # (projections, N_GEOM) conv geometry
    weights: np.ndarray  # int64, all projections, state units (w_int << frac_bits)
    weight_ints: np.ndarray  # the same before the frac shift: what synapse memory stores
    # arithmetic and timing
    beta_sign: np.ndarray
    beta_exp: np.ndarray
    state_bits: int
    wrap: bool
    nearest: bool
    negative_spikes: bool
    encoder_mode: str  # 'current' | 'potential'
    steps: int  # total time steps of one inference
    Tc: int
    Ts: int
    beta: float
    thetas: np.ndarray  # (layers,) spike amplitude θ_l (float, for decoding)
    weight_bits_used: np.ndarray  # (layers,) bits the largest weight into l really uses
    ring: np.ndarray = field(default=None)  # (layers,) event ring length (max delay out + 1)

    def __post_init__(self):
        if self.ring is None:
            ring = np.ones(len(self.size), np.int64)
            for s, d in zip(self.p_src, self.p_delay):
                ring[s] = max(ring[s], d + 1)
            self.ring = ring

    @property
    def layers(self) -> int:
        return len(self.size)

    @property
    def neurons(self) -> int:
        return int(self.size.sum())

    def hwc_order(self, l: int) -> np.ndarray:
        """Flat CHW index of each neuron of layer l in the core's (HWC) order."""
        return hwc_perm(self.shapes[l])

    def from_chw(self, l: int, x: np.ndarray) -> np.ndarray:
        """(N, *shape) values of layer l -> (N, neurons) in core order."""
        return x.reshape(len(x), -1)[:, self.hwc_order(l)]

    def to_chw(self, l: int, v: np.ndarray) -> np.ndarray:
        """(N, neurons) in core order -> (N, *shape)."""
        out = np.empty_like(v)
        out[:, self.hwc_order(l)] = v
        return out.reshape((len(v),) + tuple(self.shapes[l]))

    def encode_input(self, x: np.ndarray) -> np.ndarray:
        """Per-image encoder drive in state units: the constant current per step
        (``current``) or the initial membrane potential (``potential``)."""
        a = self.from_chw(0, x) / self.thetas[0]
        k = np.sum(self.beta ** np.arange(self.Tc))
        drive = a / k if self.encoder_mode == "current" else a / self.beta ** self.Tc
        return np.round(drive * self.scale[0]).astype(np.int64)


def _geometry(m: ConvMap) -> np.ndarray:
    c, h, w = m.in_shape
    o, oh, ow = m.out_shape
    kh, kw = m.weight.shape[2:]
    return np.array([c, h, w, o, oh, ow, kh, kw, m.stride[0], m.stride[1], m.pads[0], m.pads[1],
                     m.dilation[0], m.dilation[1], m.groups, 0], np.int64)


def quantize_sws(snn, arithmetic) -> FixedNetwork:
    """Integers for a float SWS/TSA network (``neurosim.schemes.sws.SWSNet``), see the module
    docstring. The float network fixes every real number; this only rounds and scales."""
    Tc, Ts, beta = snn.Tc, snn.Ts, snn.beta
    terms = require_terms(beta, int(arithmetic.max_beta_terms), "the profile's arithmetic.max_beta_terms")
    for p in snn.populations:
        if p.kind == "maxpool":
            raise UserError(f"MaxPool population '{p.name}' of {snn.graph_name} is not supported "
                            f"by the fixed-point core (the float simulator gates MaxPool); use "
                            f"AveragePool, or --precision float")
    index = {p.name: i for i, p in enumerate(snn.populations)}
    wb, fb, sb = int(arithmetic.weight_bits), int(arithmetic.frac_bits), int(arithmetic.state_bits)
    wmax = (1 << (wb - 1)) - 1
    ratio = snn.threshold_ratio

    kinds, scales, thr, rst, biases, wints, bits_used = [], [], [], [], [], [], []
    recv, fire = [], []
    p_src, p_dst, p_kind, p_delay, p_woff, p_geom = [], [], [], [], [], []
    woff = 0
    for l, pop in enumerate(snn.populations):
        recv.append(snn.input_window(pop))
        fire.append(snn.fire_window(pop) if pop.kind != "readout" else (1, 0))
        if pop.kind == "input":
            kinds.append(ENCODER)
            q = 2.0 ** (wb - 1 + fb)
            scales.append(q)
            thr.append(ratio * q)
            rst.append(q)
            biases.append(np.zeros(pop.neurons))
            bits_used.append(float("nan"))
            continue
        kinds.append(READOUT if pop.kind == "readout" else (TSA_RELU if snn.relu_counterpart else TSA))
        biggest = max(float(np.abs(q.map.weight).max()) for q in pop.projections) or 1.0
        # the scale is limited twice: weights must fit weight_bits, and the largest state
        # (STATE_HEADROOM encodable values) must fit state_bits with frac_bits below the LSB
        silent = snn.silent(pop)
        w_limit = wmax / biggest
        s_limit = 2.0 ** (sb - 1 - fb) / (STATE_HEADROOM * snn.geometric * beta ** silent)
        wscale = min(w_limit, s_limit)
        if arithmetic.weight_scale == "per_layer_pow2":
            wscale = 2.0 ** int(np.floor(np.log2(wscale)))
        bits_used.append(float(np.log2(biggest * wscale + 1) + 1))
        q = wscale * 2.0 ** fb
        scales.append(q)
        thr.append(ratio * beta ** silent * q)
        rst.append(beta ** silent * q)
        biases.append(_core_order(pop.bias.reshape(1, -1), pop.shape)[0] * q)
        for proj in pop.projections:
            m = proj.map
            w_int = np.round(m.weight * wscale).astype(np.int64)
            if isinstance(m, ConvMap):
                p_kind.append(CONV)
                p_geom.append(_geometry(m))
                flat = w_int.transpose(2, 3, 1, 0).reshape(-1)  # (kh, kw, C/g, O)
            else:
                p_kind.append(DENSE)
                p_geom.append(np.zeros(N_GEOM, np.int64))
                # rows per source neuron, both axes in core (HWC) order
                mat = _core_order(w_int.T, m.in_shape, axis=0)
                flat = _core_order(mat, m.out_shape, axis=1).reshape(-1)
            p_src.append(index[proj.source])
            p_dst.append(l)
            p_delay.append(int(proj.delay))
            p_woff.append(woff)
            woff += flat.size
            wints.append(flat)
    weight_ints = np.concatenate(wints) if wints else np.zeros(0, np.int64)
    sizes = np.array([p.neurons for p in snn.populations], np.int64)
    recv_a = np.array(recv, np.int64)
    return FixedNetwork(
        names=[p.name for p in snn.populations], shapes=[tuple(p.shape) for p in snn.populations],
        kind=np.array(kinds, np.int64), size=sizes,
        offset=np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64),
        recv=recv_a, fire=np.array(fire, np.int64),
        # a threshold below one state unit would fire on zero: keep it at least 1
        threshold=np.maximum(np.round(thr), 1).astype(np.int64),
        reset=np.round(rst).astype(np.int64),
        scale=np.array(scales), bias=np.round(np.concatenate(biases)).astype(np.int64),
        p_src=np.array(p_src, np.int64), p_dst=np.array(p_dst, np.int64),
        p_kind=np.array(p_kind, np.int64), p_delay=np.array(p_delay, np.int64),
        p_woff=np.array(p_woff, np.int64), p_geom=np.array(p_geom, np.int64).reshape(-1, N_GEOM),
        weights=weight_ints << fb,  # the frac shift is wiring, not a counted action
        weight_ints=weight_ints,
        beta_sign=np.array([s for s, _ in terms], np.int64),
        beta_exp=np.array([k for _, k in terms], np.int64),
        state_bits=sb, wrap=arithmetic.overflow == "wrap", nearest=arithmetic.round == "nearest",
        negative_spikes=snn.negative_spikes, encoder_mode=snn.encoder,
        steps=snn.latency_steps, Tc=Tc, Ts=Ts, beta=beta,
        thetas=np.array([p.theta for p in snn.populations]),
        weight_bits_used=np.array(bits_used),
    )


def hwc_perm(shape) -> np.ndarray:
    """perm[i] = CHW-flat index of the i-th neuron in HWC order (identity for flat shapes)."""
    n = int(np.prod(shape))
    if len(shape) != 3:
        return np.arange(n)
    return np.arange(n).reshape(shape).transpose(1, 2, 0).reshape(-1)


def _core_order(a: np.ndarray, shape, axis: int = 1) -> np.ndarray:
    """Re-order one axis of ``a`` from CHW-flat to the core's HWC-flat order."""
    return np.take(a, hwc_perm(shape), axis=axis)
