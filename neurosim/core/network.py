"""FixedNetwork: an SWS/TSA spiking network in integers only, laid out for the numba core.

``quantize_sws`` turns the float SWS network (``neurosim.schemes.sws.SWSNet``: spike
amplitudes θ, normalised weights, biases, windows) into integers with a hardware
profile's arithmetic:

* **Layers** are the populations in the float network's order: 0 = the encoder (the
  input), the hidden TSA layers, the readout last.
* **State units.** In layer l a value of 1 (one spike amplitude θ_l) is
  ``Q_l = wscale_l · 2^frac_l`` integer units: weights are ``round(W · wscale_l)`` in
  ``weight_bits`` and enter the state shifted left by ``frac_l`` bits. The layer's largest
  state (``STATE_HEADROOM·Σβ^k·β^Ts`` spike amplitudes: the TSA-ReLU registers hold the whole
  weighted input and output) must fit ``state_bits``. ``_layer_scale`` serves weight
  precision first and gives the remaining headroom to ``frac_l`` (at most the profile's
  ``frac_bits``), as a Loihi weight exponent places the weights in the state word; with
  ``per_layer_pow2`` the weight scale is a power of two. When even ``frac_l = 0`` cannot hold
  the range the weights use fewer than ``weight_bits`` bits (``weight_bits_used``): the price
  of the register width, reported, not hidden. The encoder: ``Q_0 = 2^(weight_bits−1+frac_bits)``.
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
# A layer's registers hold up to this many times its largest encodable value (Σβ^k spike
# amplitudes, amplified by β^Ts over the silent period), i.e. activations up to 2λ before a
# register saturates. Since the headroom is taken from the fractional bits first (see
# _layer_scale), it is cheap: measured on loihi_like at Tc=8, Ts=2, β=2, headroom 2 and 1
# give the same fixed accuracy on digits_cnn (0.9667) and digits_resnet (0.9861), with 0
# versus about 2 saturations per image.
STATE_HEADROOM = 2.0
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
    frac: np.ndarray  # (layers,) state bits below one weight LSB chosen for each layer
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

    kinds, scales, thr, rst, biases, wints, bits_used, fracs = [], [], [], [], [], [], [], []
    recv, fire = [], []
    p_src, p_dst, p_kind, p_delay, p_woff, p_geom = [], [], [], [], [], []
    woff = 0
    for l, pop in enumerate(snn.populations):
        recv.append(snn.input_window(pop))
        fire.append(snn.fire_window(pop) if pop.kind != "readout" else (1, 0))
        if pop.kind == "input":
            kinds.append(ENCODER)
            fracs.append(fb)
            q = 2.0 ** (wb - 1 + fb)
            scales.append(q)
            thr.append(ratio * q)
            rst.append(q)
            biases.append(np.zeros(pop.neurons))
            bits_used.append(float("nan"))
            continue
        kinds.append(READOUT if pop.kind == "readout" else (TSA_RELU if snn.relu_counterpart else TSA))
        biggest = max(float(np.abs(q.map.weight).max()) for q in pop.projections) or 1.0
        silent = snn.silent(pop)
        wscale, frac = _layer_scale(wmax / biggest, snn.geometric * beta ** silent,
                                    sb, fb, arithmetic.weight_scale == "per_layer_pow2")
        bits_used.append(float(np.log2(biggest * wscale + 1) + 1))
        fracs.append(frac)
        q = wscale * 2.0 ** frac
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
        # each projection's weights carry its target layer's frac shift (wiring, not an action)
        weights=weight_ints << np.repeat(np.array(fracs, np.int64)[p_dst],
                                         np.diff(np.append(p_woff, len(weight_ints)))),
        weight_ints=weight_ints, frac=np.array(fracs, np.int64),
        beta_sign=np.array([s for s, _ in terms], np.int64),
        beta_exp=np.array([k for _, k in terms], np.int64),
        state_bits=sb, wrap=arithmetic.overflow == "wrap", nearest=arithmetic.round == "nearest",
        negative_spikes=snn.negative_spikes, encoder_mode=snn.encoder,
        steps=snn.latency_steps, Tc=Tc, Ts=Ts, beta=beta,
        thetas=np.array([p.theta for p in snn.populations]),
        weight_bits_used=np.array(bits_used),
    )


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
    q_max = 2.0 ** (state_bits - 1) / (STATE_HEADROOM * encodable)  # largest Q allowed
    wscale = min(w_limit, q_max)
    if pow2:
        wscale = 2.0 ** int(np.floor(np.log2(wscale)))
    frac = int(np.clip(np.floor(np.log2(q_max / wscale)), 0, frac_max))
    return wscale, frac


def hwc_perm(shape) -> np.ndarray:
    """perm[i] = CHW-flat index of the i-th neuron in HWC order (identity for flat shapes)."""
    n = int(np.prod(shape))
    if len(shape) != 3:
        return np.arange(n)
    return np.arange(n).reshape(shape).transpose(1, 2, 0).reshape(-1)


def _core_order(a: np.ndarray, shape, axis: int = 1) -> np.ndarray:
    """Re-order one axis of ``a`` from CHW-flat to the core's HWC-flat order."""
    return np.take(a, hwc_perm(shape), axis=axis)
