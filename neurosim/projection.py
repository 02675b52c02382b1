"""Projections in the normal form an event-driven core fans out: one conv or one dense map.

A projection of the graph is a chain of linear nodes (AvgPool, Reshape, Conv, Dense, and
the Add of a residual join). For the hardware model every chain becomes exactly one of:

* ``ConvMap``: a 2-D convolution from the source's (C, H, W) to the target's (O, OH, OW),
  with stride, padding, dilation and groups. AvgPool before a Conv is folded into a
  composite kernel (the box filter convolved with the dilated conv kernel, stride
  multiplied), an identity shortcut is a depthwise 1×1 kernel of ones, and a lone
  AvgPool is a depthwise box kernel. Weights are shared, so an input event's fan-out
  is the kernel positions that reach it: the synapses a conv core stores.
* ``DenseMap``: a matrix (source neurons × target neurons), for any chain that ends in
  a Dense node (AvgPool/Reshape before it are multiplied in exactly), and for any chain
  whose folding into one kernel would not be exact (see ``normal_form``).

Biases are not part of a map: a population's bias is the response of its whole linear
subgraph to zero input (``population_bias``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .ann import apply_node
from .errors import UserError
from .graph import AvgPool, Conv, Graph, Population, Projection


@dataclass
class ConvMap:
    weight: np.ndarray  # (O, C/groups, kh, kw), float
    stride: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, left, bottom, right
    dilation: tuple[int, int]
    groups: int
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]

    kind = "conv"

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Reference application on a batch (N, C, H, W), no bias."""
        node = Conv("map", (), self.out_shape, weight=self.weight,
                    bias=np.zeros(self.weight.shape[0]), stride=self.stride, pads=self.pads,
                    dilation=self.dilation, groups=self.groups)
        y = apply_node(node, [x])
        return y[:, :, :self.out_shape[1], :self.out_shape[2]]  # composite pads may overhang


@dataclass
class DenseMap:
    weight: np.ndarray  # (target neurons, source neurons), source in C-order (C, H, W) flat
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    kind = "dense"

    def apply(self, x: np.ndarray) -> np.ndarray:
        y = x.reshape(len(x), -1) @ self.weight.T
        return y.reshape((len(x),) + self.out_shape)


def _linear_nodes(graph: Graph, proj: Projection):
    return [graph.nodes[n] for n in proj.path if graph.nodes[n].op not in ("add", "reshape")]


def _box(c: int, pool: AvgPool) -> np.ndarray:
    kh, kw = pool.kernel
    w = np.zeros((c, 1, kh, kw))
    w[:, 0] = 1.0 / (kh * kw)
    return w


def _compose_pool_conv(pool: AvgPool, conv: Conv, in_shape) -> ConvMap:
    """conv(avgpool(x)) as one convolution of x (exact without uncounted padding)."""
    sp, kp = pool.stride, pool.kernel
    o, cg, kh, kw = conv.weight.shape
    # the conv's taps, spread out by the pool stride, then smeared by the pool's box
    dh, dw = conv.dilation[0] * sp[0], conv.dilation[1] * sp[1]
    kh2, kw2 = (kh - 1) * dh + kp[0], (kw - 1) * dw + kp[1]
    w = np.zeros((o, cg, kh2, kw2))
    box = 1.0 / (kp[0] * kp[1])
    for i in range(kh):
        for j in range(kw):
            w[:, :, i * dh:i * dh + kp[0], j * dw:j * dw + kp[1]] += conv.weight[:, :, i:i + 1, j:j + 1] * box
    pt, pl, pb, pr = pool.pads
    ct, cl, cb, cr = conv.pads
    pads = (pt + ct * sp[0], pl + cl * sp[1], pb + cb * sp[0], pr + cr * sp[1])
    return ConvMap(w, (sp[0] * conv.stride[0], sp[1] * conv.stride[1]), pads, (1, 1), conv.groups,
                   tuple(in_shape), conv.shape)


def _pool_map(pool: AvgPool, in_shape) -> ConvMap:
    c = in_shape[0]
    return ConvMap(_box(c, pool), pool.stride, pool.pads, (1, 1), c, tuple(in_shape), pool.shape)


def _conv_map(conv: Conv, in_shape) -> ConvMap:
    return ConvMap(conv.weight, conv.stride, conv.pads, conv.dilation, conv.groups,
                   tuple(in_shape), conv.shape)


def _composable(pool: AvgPool, conv_pads, in_hw) -> bool:
    """Does conv∘pool equal one conv of the pool's input?

    The conv's zero padding lives on the pooled grid. After composition it lands on input
    pixels the padded pooled positions would cover; that is exact only if those windows
    hold no real pixel: no conv padding, or non-overlapping pools whose out-of-grid
    windows lie wholly outside the input (no rows dropped by the pool's floor).
    """
    for d in range(2):
        lo, hi = conv_pads[d], conv_pads[d + 2]
        if lo == 0 and hi == 0:
            continue
        k, s = pool.kernel[d], pool.stride[d]
        if k > s:
            return False
        n_out = (in_hw[d] + pool.pads[d] + pool.pads[d + 2] - k) // s + 1
        if hi and n_out * s - pool.pads[d] < in_hw[d]:
            return False
    return True


def _compose_conv_maps(a: ConvMap, pool: AvgPool) -> ConvMap:
    conv = Conv("c", (), a.out_shape, weight=a.weight, bias=None, stride=a.stride, pads=a.pads,
                dilation=a.dilation, groups=a.groups)
    return _compose_pool_conv(pool, conv, a.in_shape)


def normal_form(graph: Graph, proj: Projection, target: Population) -> ConvMap | DenseMap:
    """The projection as one ConvMap or DenseMap (no bias).

    Chains of the form ``pool* → conv → (pool | conv)*`` or ``pool+`` fold into one shared
    kernel when every step of the folding is exact; anything else (a Dense, a pool whose
    uncounted padding gives border positions their own divisors, a fold the conv's padding
    would spoil, a padded pool or conv after the first conv) is multiplied out into a dense
    map, which is always exact.
    """
    src_shape = tuple(graph.nodes[proj.source].shape)
    nodes = _linear_nodes(graph, proj)
    if not nodes:  # identity shortcut: a depthwise 1×1 kernel of ones, or a flat identity
        if len(src_shape) != 3 or len(tuple(target.shape)) != 3:  # flat, or a flatten
            return DenseMap(np.eye(int(np.prod(src_shape))), src_shape, tuple(target.shape))
        c = src_shape[0]
        return ConvMap(np.ones((c, 1, 1, 1)), (1, 1), (0, 0, 0, 0), (1, 1), c, src_shape, src_shape)
    convs = [i for i, n in enumerate(nodes) if n.op == "conv"]
    centre = convs[0] if convs else len(nodes) - 1
    pools, last, after = nodes[:centre], nodes[centre], nodes[centre + 1:]
    foldable = (len(src_shape) == 3
                and last.op in ("conv", "avgpool")
                and all(p.op == "avgpool" and _box_exact(p) for p in pools)
                and (last.op == "conv" or _box_exact(last))
                and all(p.op in ("avgpool", "conv") and not any(p.pads) for p in after)
                and len(tuple(target.shape)) == 3)
    if not foldable:
        return _dense_by_probing(graph, proj, src_shape, target.shape)
    in_shape = graph.nodes[last.inputs[0]].shape
    m = _conv_map(last, in_shape) if last.op == "conv" else _pool_map(last, in_shape)
    for p in reversed(pools):  # innermost last: conv(p2(p1(x))) = ((conv∘p2)∘p1)(x)
        if not _composable(p, m.pads, graph.nodes[p.inputs[0]].shape[1:]):
            return _dense_by_probing(graph, proj, src_shape, target.shape)
        m = _compose_conv_maps(m, p)
    for p in after:  # p(conv(x)): the pool's box (or the next conv) over the conv's taps
        m = _compose_conv_pool(m, p) if p.op == "avgpool" else _compose_conv_conv(m, p)
    m.in_shape = src_shape
    return m


def _full_kernel(weight: np.ndarray, groups: int) -> np.ndarray:
    """(O, C/g, kh, kw) grouped weights as (O, C, kh, kw), zero across groups."""
    o, cg, kh, kw = weight.shape
    full = np.zeros((o, cg * groups, kh, kw))
    og = o // groups
    for g in range(groups):
        full[g * og:(g + 1) * og, g * cg:(g + 1) * cg] = weight[g * og:(g + 1) * og]
    return full


def _compose_conv_conv(m: ConvMap, conv: Conv) -> ConvMap:
    """conv(m(x)) as one convolution of x, for an unpadded second conv (exact: each of its
    windows lies on m's output grid). Xception's depthwise → pointwise pair, or two convs
    without a ReLU between them, become one kernel instead of a dense map."""
    w1 = _full_kernel(m.weight, m.groups)  # (O1, C, k1h, k1w)
    w2 = _full_kernel(conv.weight, conv.groups)  # (O2, O1, k2h, k2w)
    (s1h, s1w), (d1h, d1w) = m.stride, m.dilation
    (d2h, d2w) = conv.dilation
    _, c, k1h, k1w = w1.shape
    o2, _, k2h, k2w = w2.shape
    span1 = ((k1h - 1) * d1h + 1, (k1w - 1) * d1w + 1)
    w = np.zeros((o2, c, (k2h - 1) * d2h * s1h + span1[0], (k2w - 1) * d2w * s1w + span1[1]))
    for i in range(k2h):
        for j in range(k2w):
            part = np.einsum("om,mcxy->ocxy", w2[:, :, i, j], w1)
            top, left = i * d2h * s1h, j * d2w * s1w
            w[:, :, top:top + span1[0]:d1h, left:left + span1[1]:d1w] += part
    groups = 1
    for g in sorted({m.groups, conv.groups, int(np.gcd(m.groups, conv.groups))}, reverse=True):
        if o2 % g == 0 and c % g == 0 and np.array_equal(_full_kernel(
                _grouped(w, g), g), w):
            groups = g
            break
    return ConvMap(_grouped(w, groups), (s1h * conv.stride[0], s1w * conv.stride[1]), m.pads,
                   (1, 1), groups, m.in_shape, tuple(conv.shape))


def _grouped(full: np.ndarray, groups: int) -> np.ndarray:
    """(O, C, kh, kw) as (O, C/g, kh, kw): each output's own group of input channels."""
    o, c = full.shape[:2]
    og, cg = o // groups, c // groups
    return np.concatenate([full[g * og:(g + 1) * og, g * cg:(g + 1) * cg]
                           for g in range(groups)]) if groups > 1 else full


def _compose_conv_pool(m: ConvMap, pool: AvgPool) -> ConvMap:
    """avgpool(conv(x)) as one convolution of x, for an unpadded pool (exact: every window of
    the pool lies on the conv's output grid, which the composite kernel computes)."""
    o, cg, kh, kw = m.weight.shape
    (sh, sw), (dh, dw), (ph, pw) = m.stride, m.dilation, pool.kernel
    w = np.zeros((o, cg, (ph - 1) * sh + (kh - 1) * dh + 1, (pw - 1) * sw + (kw - 1) * dw + 1))
    box = 1.0 / (ph * pw)
    for a in range(ph):
        for b in range(pw):
            w[:, :, a * sh:a * sh + (kh - 1) * dh + 1:dh,
              b * sw:b * sw + (kw - 1) * dw + 1:dw] += m.weight * box
    return ConvMap(w, (sh * pool.stride[0], sw * pool.stride[1]), m.pads, (1, 1), m.groups,
                   m.in_shape, tuple(pool.shape))


def _box_exact(pool: AvgPool) -> bool:
    """An AvgPool is one shared box kernel unless uncounted padding (or a ceil_mode overhang)
    changes border divisors."""
    return (pool.count_include_pad and not any(pool.ceil_pads)) or not any(pool.pads)


MAX_DENSE_ENTRIES = 32_000_000  # 256 MB of float64: a dense map beyond this is refused
PROBE_BATCH = 256


def _dense_by_probing(graph: Graph, proj: Projection, src_shape, out_shape) -> DenseMap:
    """Push the identity basis of the source through the chain (without biases), a batch of
    basis vectors at a time so that only the map itself is held whole."""
    n_in, n_out = int(np.prod(src_shape)), int(np.prod(out_shape))
    if n_in * n_out > MAX_DENSE_ENTRIES:
        ops = " → ".join(f"{n} ({graph.nodes[n].op})" for n in proj.path)
        raise UserError(
            f"{graph.path}: the projection {proj.source} → {ops} does not fold into one "
            f"convolution, and as a dense map it would hold {n_in:,} × {n_out:,} weights "
            f"({n_in * n_out * 8 / 2**30:.1f} GiB); expected a chain that folds: a ReLU between "
            f"two convolutions, an AveragePool without uncounted padding (count_include_pad=1, "
            f"or no padding), and no padding on an AveragePool after a Conv")
    weight = np.empty((n_out, n_in))
    for start in range(0, n_in, PROBE_BATCH):
        k = min(PROBE_BATCH, n_in - start)
        x = np.zeros((k, n_in))
        x[np.arange(k), start + np.arange(k)] = 1.0
        y = chain_apply(graph, proj, x.reshape((k,) + tuple(src_shape)))
        weight[:, start:start + k] = y.reshape(k, -1).T
    return DenseMap(weight, tuple(src_shape), tuple(out_shape))


def connections(m: ConvMap | DenseMap) -> int:
    """Synapses a core stores for the map with dense storage (no weight sharing): what its
    events fan out through. A conv map: every (input, output) pair a kernel tap links, zero
    weights included, as the engine counts a conv event's synops; a dense map: its entries
    that are not zero, as the engine counts a dense row (``EventNetwork.fanout``)."""
    if isinstance(m, DenseMap):
        return int(np.count_nonzero(m.weight))
    taps = dataclasses.replace(m, weight=np.ones_like(m.weight, dtype=float))
    return int(round(taps.apply(np.ones((1,) + tuple(m.in_shape))).sum()))


def chain_apply(graph: Graph, proj: Projection, x: np.ndarray) -> np.ndarray:
    """Apply a projection's chain to a batch, without biases (Add passes its input on)."""
    for name in proj.path:
        node = graph.nodes[name]
        if node.op == "add":
            continue
        if node.op in ("conv", "dense"):
            node = _without_bias(node)
        x = apply_node(node, [x])
    return x


def _without_bias(node):
    import dataclasses

    return dataclasses.replace(node, bias=np.zeros_like(node.bias))


def population_bias(graph: Graph, pop: Population) -> np.ndarray:
    """The constant part of a population's pre-activation: its linear subgraph on zero input."""
    vals: dict[str, np.ndarray] = {}
    for proj in pop.projections:
        vals[proj.source] = np.zeros((1,) + graph.nodes[proj.source].shape)

    def value(name: str) -> np.ndarray:
        if name not in vals:
            node = graph.nodes[name]
            vals[name] = apply_node(node, [value(i) for i in node.inputs])
        return vals[name]

    return value(pop.pre)[0]
