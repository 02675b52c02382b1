"""EventNetwork: a spiking network in integers only, as the event engine runs it.

Scheme-neutral: it knows layers (populations), projections and integer weights, not what a
neuron means. What a neuron means is the ``model``: a namedtuple of the scheme's per-layer
integer parameters whose class selects the neuron model the engine calls
(``neurosim.core.engine.neuron_model``). A scheme's quantizer builds one of these; the engine
(``neurosim.core.engine``) and the dense reference (``neurosim.core.reference``) run it.

* **Layers** are the populations in topological order: 0 is the input, the last is the
  readout. Layer ``l`` has ``size[l]`` neurons at ``offset[l]`` of the flat state arrays, and
  ``regs`` state registers per neuron (``state[image, r, neuron]``). The engine processes a
  layer only in its ``active`` steps (first, last; 1-based, DESIGN §2): outside them nothing
  happens in it and nothing is counted.
* **Layout.** Neurons of a (C, H, W) population are stored channels-last (H, W, C), so a
  conv event's fan-out over output channels is one contiguous run. ``from_chw``/``to_chw``
  convert at the boundaries.
* **Projections** are one conv map or one dense map each (the normal form of
  ``neurosim.projection``), with a delay in steps (a FIFO: the target reads the source's
  events of ``delay`` steps back; its writes and reads are counted). ``weights`` hold the
  integers the synapse memory stores (``weight_ints``) shifted left by the target layer's
  fractional bits less the projection's own ``p_fine`` bits (wiring that places them in the
  state word, not a counted action). ``p_fine`` > 0 is a per-projection weight exponent: a
  projection whose weights are smaller than the layer's largest keeps its full weight bits,
  finer by ``p_fine`` bits (as each Lava/Loihi Dense or Conv process has its own
  ``weight_exp``).
* **Synapses.** A conv event reaches every valid kernel tap × output channel of its group. A
  dense map's row is the source neuron's fan-out; its synapses are the entries that are not
  zero in the float map (``fanout``, per source neuron, at ``p_foff``), so a map multiplied
  out of a chain that does not fold into one conv (``neurosim.projection``) counts the
  connections it has, not its structural zeros. A weight that rounds to 0 is still a stored
  synapse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UserError
from ..projection import ConvMap

CONV, DENSE = 0, 1
N_GEOM = 16  # conv geometry fields per projection (see conv_geometry)


@dataclass
class EventNetwork:
    names: list[str]
    shapes: list[tuple[int, ...]]
    size: np.ndarray  # (layers,) neurons
    active: np.ndarray  # (layers, 2) first and last step the layer is processed
    regs: int  # state registers per neuron
    steps: int  # time steps of one inference
    model: Any  # the scheme's neuron-model parameters (a namedtuple; its class is the model)
    p_src: np.ndarray
    p_dst: np.ndarray
    p_kind: np.ndarray  # CONV | DENSE
    p_delay: np.ndarray
    p_woff: np.ndarray  # offset of the projection's weights in ``weights``
    p_geom: np.ndarray  # (projections, N_GEOM) conv geometry (zeros for dense)
    weights: np.ndarray  # int64, state units (weight_ints << (frac of the target − p_fine))
    weight_ints: np.ndarray  # int64, what the synapse memory stores
    p_fine: np.ndarray = field(default=None)  # (projections,) bits finer than the layer's unit
    info: Any = None  # the scheme's record for decoding outputs (float scales etc.)
    offset: np.ndarray = field(default=None)
    ring: np.ndarray = field(default=None)  # (layers,) event ring length: max delay out + 1
    # dense projections: synapses per source neuron (core order) at fanout[p_foff[p]:]
    fanout: np.ndarray = field(default=None)
    p_foff: np.ndarray = field(default=None)

    def __post_init__(self):
        self.size = np.asarray(self.size, np.int64)
        if self.offset is None:
            self.offset = np.concatenate([[0], np.cumsum(self.size)[:-1]]).astype(np.int64)
        if self.p_fine is None:
            self.p_fine = np.zeros(len(self.p_src), np.int64)
        if self.fanout is None:  # every entry of a dense map a synapse
            rows = [np.full(self.size[s], self.size[d], np.int64) if k != CONV
                    else np.zeros(0, np.int64)
                    for s, d, k in zip(self.p_src, self.p_dst, self.p_kind)]
            self.fanout, self.p_foff = _concat_rows(rows)
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

    def layer_slice(self, l: int) -> slice:
        return slice(int(self.offset[l]), int(self.offset[l] + self.size[l]))

    def from_chw(self, l: int, x: np.ndarray) -> np.ndarray:
        """(N, *shape) values of layer l -> (N, neurons) in core order."""
        return x.reshape(len(x), -1)[:, hwc_perm(self.shapes[l])]

    def to_chw(self, l: int, v: np.ndarray) -> np.ndarray:
        """(N, neurons) in core order -> (N, *shape)."""
        out = np.empty_like(v)
        out[:, hwc_perm(self.shapes[l])] = v
        return out.reshape((len(v),) + tuple(self.shapes[l]))

    def zero_state(self, n_images: int) -> np.ndarray:
        return np.zeros((n_images, self.regs, self.neurons), np.int64)


class ProjectionBuilder:
    """Collects integer projections (normal-form maps with integer weights) into the flat
    arrays of an ``EventNetwork``, weights re-ordered to the core's channels-last layout."""

    def __init__(self):
        (self.src, self.dst, self.kind, self.delay, self.woff, self.geom, self.flat, self.fine,
         self.fanout) = ([] for _ in range(9))
        self._next = 0

    def add(self, m, w_int: np.ndarray, src: int, dst: int, delay: int, fine: int = 0) -> None:
        """``m``: a ConvMap or DenseMap; ``w_int``: its weights as integers (same shape), in
        units 2^fine times finer than the target layer's weight unit."""
        if isinstance(m, ConvMap):
            self.kind.append(CONV)
            self.geom.append(conv_geometry(m))
            flat = w_int.transpose(2, 3, 1, 0).reshape(-1)  # (kh, kw, C/g, O)
            self.fanout.append(np.zeros(0, np.int64))
        else:
            self.kind.append(DENSE)
            self.geom.append(np.zeros(N_GEOM, np.int64))
            # one row per source neuron, both axes in core (HWC) order
            mat = _core_order(w_int.T, m.in_shape, axis=0)
            flat = _core_order(mat, m.out_shape, axis=1).reshape(-1)
            linked = _core_order(np.asarray(m.weight).T != 0, m.in_shape, axis=0)
            self.fanout.append(linked.sum(axis=1).astype(np.int64))
        self.src.append(src)
        self.dst.append(dst)
        self.delay.append(int(delay))
        self.fine.append(int(fine))
        self.woff.append(self._next)
        self._next += flat.size
        self.flat.append(np.asarray(flat, np.int64))

    def arrays(self, frac: np.ndarray) -> dict[str, np.ndarray]:
        """The projection fields of an EventNetwork; ``frac[l]``: fractional state bits of
        layer l, by which the weights into l are shifted (less each projection's ``fine``)."""
        ints = np.concatenate(self.flat) if self.flat else np.zeros(0, np.int64)
        dst = np.array(self.dst, np.int64)
        fine = np.array(self.fine, np.int64)
        shift = np.asarray(frac, np.int64)[dst] - fine
        if np.any(shift < 0):  # a quantizer bug, not a user error: finer than the state unit
            raise AssertionError(f"projection finer than its layer's state unit: {shift}")
        lengths = np.array([f.size for f in self.flat], np.int64)
        # the shift must not wrap int64 (numpy shifts silently): a weight in state units, plus
        # a register, stays below 2^62 (the model table numbers the layers as here)
        big = np.abs(ints).astype(np.float64) * 2.0 ** np.repeat(shift, lengths)
        if big.size and big.max() >= 2.0 ** 62:
            d = int(np.repeat(dst, lengths)[big.argmax()])
            raise UserError(f"the weights into layer #{d} need 2^{np.log2(big.max()):.0f} state "
                            f"units once shifted by its fractional bits, beyond the engine's "
                            f"64-bit integers; expected a profile with fewer frac_bits")
        fanout, p_foff = _concat_rows(self.fanout)
        return dict(fanout=fanout, p_foff=p_foff, p_src=np.array(self.src, np.int64), p_dst=dst,
                    p_kind=np.array(self.kind, np.int64), p_delay=np.array(self.delay, np.int64),
                    p_woff=np.array(self.woff, np.int64),
                    p_geom=np.array(self.geom, np.int64).reshape(-1, N_GEOM),
                    weights=ints << np.repeat(shift, lengths), weight_ints=ints, p_fine=fine)


def _concat_rows(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """One flat array of per-projection rows and each row's offset in it."""
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])[:-1]]).astype(np.int64)
    flat = np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, np.int64)
    return flat, offsets[:len(rows)]


def conv_geometry(m: ConvMap) -> np.ndarray:
    c, h, w = m.in_shape
    o, oh, ow = m.out_shape
    kh, kw = m.weight.shape[2:]
    return np.array([c, h, w, o, oh, ow, kh, kw, m.stride[0], m.stride[1], m.pads[0], m.pads[1],
                     m.dilation[0], m.dilation[1], m.groups, 0], np.int64)


def hwc_perm(shape) -> np.ndarray:
    """perm[i] = CHW-flat index of the i-th neuron in HWC order (identity for flat shapes)."""
    n = int(np.prod(shape))
    if len(shape) != 3:
        return np.arange(n)
    return np.arange(n).reshape(shape).transpose(1, 2, 0).reshape(-1)


def _core_order(a: np.ndarray, shape, axis: int = 1) -> np.ndarray:
    """Re-order one axis of ``a`` from CHW-flat to the core's HWC-flat order."""
    return np.take(a, hwc_perm(shape), axis=axis)


def core_order(values: np.ndarray, shape) -> np.ndarray:
    """A population's per-neuron vector (CHW-flat) in core (HWC) order."""
    return np.asarray(values).reshape(-1)[hwc_perm(shape)]
