"""The event engine: one driver and one fan-out for every coding scheme (numba).

What a neuron *means* lives in its scheme; how the hardware computes it is a *neuron model*
the engine calls (Lava's process / process-model split). The engine owns what all schemes
share and what costs: the event fan-out through the projections, the delay FIFOs (event
rings) and the counting of synops and FIFO traffic.

Per image, per time step, per layer in its active steps, the driver

1. gathers the events the layer's sources emitted (a delayed projection reads its source's
   ring ``delay`` steps back: the FIFO) and scatters them through the projection into the
   layer's accumulator: the sum of the weights of this step's input spikes, exact;
2. calls the layer's neuron model, which integrates the accumulator into the state
   registers, fires, resets, counts its own actions and writes the layer's events;
3. keeps the events in the layer's ring.

**Neuron models.** A scheme registers one with ``@neuron_model(ParamsClass)`` on a jitted
function ``step(model, l, t, img, off, x, acc, st, ev_idx, ev_sign, c) -> events``:
``model`` is the network's parameter namedtuple (its class selects the model), ``l``/``t``
the layer and 1-based step, ``img`` the image's index in the whole run (for seeded
randomness that does not depend on batching or threads), ``off`` the layer's first neuron in
``st`` (the image's registers, ``regs × neurons``), ``x`` the image's input row, ``acc`` the
layer's accumulator (int32 or int64), ``ev_idx``/``ev_sign`` where the layer's events go
(neuron index within the layer, sign ±1), ``c`` the counts of this layer and step (add to
it, by ``neurosim.counts.ACTION_INDEX``). It returns the number of events written.

**Speed.** Images run in parallel, one contiguous chunk per thread, each with its own
buffers. A conv projection has a tap table per input position (output base, weight base),
so an event costs no geometry arithmetic beyond a table read of its position, and the inner
loop is one contiguous run of the output channels per kernel row, added 16 lanes at a time
(``_add16``), four or two events of one position at once where they come together
(``_scatter_conv``). Accumulators are int32 where the layer's largest possible per-step
sum provably fits (``accumulator_dtype``), else int64; weights are int16 where they fit
(``weight_dtype``), else the accumulator's type. A neuron model runs each of its per-neuron register
loops as a jitted function of its own over 1-D arrays, called once per layer and step: LLVM
vectorises the loop there, but not inlined into the step (measured on a 1024-neuron TSC layer
of digits_resnet: the loop alone 4.6 ns per neuron and step inlined, 0.8 ns as a function;
with event compaction, 4.5 → 1.4 ns for ``switch`` and 7.5 → 1.4 ns for ``single``).

**Counts** are kept per (layer, step) summed over the images, and per (image, layer) summed
over the steps; never per image × layer × step.
"""

from __future__ import annotations

import hashlib
import inspect
from collections import namedtuple
from pathlib import Path

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

from ..counts import ACTION_INDEX, ACTIONS, Counts
from ..errors import UserError
from ..interrupt import deferred
from .network import CONV, EventNetwork

# the engine's own projection kind, beside the network's CONV and DENSE: a conv that maps
# every neuron to the same neuron of the next layer (depthwise 1×1, stride 1, no padding, as
# an identity shortcut is imported), one synapse per event, added without the tap tables
CHANNEL_SCALE = 2
PROGRESS_UPDATES, PROGRESS_MIN_BATCH = 20, 16  # ``simulate``'s batches when a bar is fed
A_SYNOP = ACTION_INDEX["synop"]
A_FR = ACTION_INDEX["fifo_read"]
A_FW = ACTION_INDEX["fifo_write"]
N_ACTIONS = len(ACTIONS)

Topology = namedtuple("Topology", [
    "size", "offset", "active", "steps",
    "l_proj",  # projections into layer l: order[l_proj[l]:l_proj[l+1]]
    "order", "p_src", "p_kind", "p_delay", "p_woff",
    "p_cin", "p_cg", "p_og", "p_o",  # conv: source channels, per group, out per group, out
    "p_cstride",  # conv: weights between input channels in the engine's layout
    "p_tap",  # conv: start of the projection's position table in tp_ptr
    "tp_ptr", "tp_out", "tp_w", "tp_len",  # runs of each input position: output, weight, length
    "weights", "negated",  # the weights (int32 or int64) and their negatives
    "ring", "ring_off",
    "pos_of",  # per neuron (all layers): its position, index // channels of its layer
    "fanout", "p_foff",  # dense: synapses per source neuron (EventNetwork.fanout)
    "acc_proto",  # zeros for the largest layer, of accumulator_dtype: each thread copies it
])


# ---- neuron models ---------------------------------------------------------------------------

def neuron_step(model, l, t, img, off, x, acc, st, ev_idx, ev_sign, c):
    """Dispatch to the neuron model registered for ``type(model)`` (jitted code only)."""
    raise NotImplementedError("neuron_step is resolved at compile time by @neuron_model")


_model_files: dict[type, str] = {}  # params class -> source file of its neuron model


def neuron_model(params_class):
    """Register the decorated jitted ``step`` as the neuron model of ``params_class``."""

    def register(step):
        _model_files[params_class] = inspect.getsourcefile(step.py_func)

        @overload(neuron_step, inline="always")
        def _select(model, l, t, img, off, x, acc, st, ev_idx, ev_sign, c):
            if getattr(model, "instance_class", None) is params_class:
                return lambda model, l, t, img, off, x, acc, st, ev_idx, ev_sign, c: \
                    step(model, l, t, img, off, x, acc, st, ev_idx, ev_sign, c)
            return None

        return step

    return register


# ---- topology: projection lists and conv tap tables ------------------------------------------

def _conv_runs(geom: np.ndarray):
    """The fan-out table of one conv map, channels-last: for every input position, runs of
    (output start, weight start, length) that one event adds as contiguous vectors, the
    stride between input channels in the engine's weight layout, and that layout as a
    permutation of the stored (kh, kw, C/g, O) weights.

    With one group and no horizontal dilation, the taps kx ≡ x + pad (mod stride) of a kernel
    row write neighbouring output positions: one contiguous run of O values per tap. With the
    weights laid out as (kh, C, kx by residue class and descending, O), their weights are
    contiguous too. So an event costs about kh vector adds of (kw/stride)·O values instead of
    kh·kw/stride² adds of O (measured: ~1.4× on the digits ResNet). Other convs get one run
    per tap (O/groups values each)."""
    c, h, w, o, oh, ow, kh, kw, sh, sw, pt, pl, dh, dw, groups, _ = (int(v) for v in geom)
    cg = c // groups
    stored = np.arange(kh * kw * cg * o).reshape(kh, kw, cg, o)
    if groups == 1 and dw == 1:
        order = [kx for r in range(sw) for kx in reversed(range(r, kw, sw))]
        where = np.empty(kw, np.int64)
        where[order] = np.arange(kw)
        runs = [[] for _ in range(h * w)]
        for y in range(h):
            for ky in range(kh):
                ny = y + pt - ky * dh
                if ny < 0 or ny % sh or ny // sh >= oh:
                    continue
                for x in range(w):
                    r = (x + pl) % sw
                    lo = max(x + pl - sw * (ow - 1), 0)  # kx ≥ lo keeps ox ≤ ow − 1
                    a = lo + (r - lo) % sw  # the smallest kx ≥ lo in the class
                    b = min(x + pl, kw - 1)
                    b -= (b - r) % sw  # the largest kx ≤ b in the class
                    if a > b:
                        continue
                    runs[y * w + x].append((((ny // sh) * ow + (x + pl - b) // sw) * o,
                                            (ky * cg * kw + where[b]) * o,
                                            ((b - a) // sw + 1) * o))
        layout = stored[:, order].transpose(0, 2, 1, 3).reshape(-1)  # (kh, C, kx order, O)
        stride = kw * o
    else:
        runs = [[] for _ in range(h * w)]
        for y in range(h):
            for x in range(w):
                for ky in range(kh):
                    for kx in range(kw):
                        ny, nx = y + pt - ky * dh, x + pl - kx * dw
                        if ny < 0 or nx < 0 or ny % sh or nx % sw or ny // sh >= oh or nx // sw >= ow:
                            continue
                        runs[y * w + x].append((((ny // sh) * ow + nx // sw) * o,
                                                (ky * kw + kx) * cg * o, o // groups))
        layout = stored.reshape(-1)
        stride = o
    ptr = np.concatenate([[0], np.cumsum([len(r) for r in runs])])
    flat = np.array([t for r in runs for t in r], np.int64).reshape(-1, 3)
    return ptr, flat[:, 0], flat[:, 1], flat[:, 2], stride, layout


def _channel_scale(geom: np.ndarray) -> bool:
    """Whether a conv's geometry sends neuron i to neuron i of the next layer, one weight per
    channel (weights at ``woff + channel`` in both layouts)."""
    c, h, w, o, oh, ow, kh, kw, sh, sw, pt, pl, dh, dw, groups, _ = (int(v) for v in geom)
    return (c == o == groups and kh == kw == sh == sw == 1 and pt == pl == 0
            and (h, w) == (oh, ow))


def accumulator_dtype(net: EventNetwork):
    """int32 if no layer's per-step input sum can exceed int32 (every source neuron spiking
    with |sign| 1 through every projection into it), else int64; a bound beyond 2^62 is an
    error, not a wrapped sum. Every partial sum is bounded by the same sum of magnitudes, so
    the narrow accumulator is exact."""
    bound = np.zeros(net.layers)
    for p in range(len(net.p_src)):
        l = net.p_dst[p]
        n_out = net.size[l]
        w = np.abs(net.weights[net.p_woff[p]:net.p_woff[p] + _n_weights(net, p)]).astype(np.float64)
        if net.p_kind[p] == CONV:
            o = net.p_geom[p][3]
            per_out = w.reshape(-1, o).sum(0)  # all taps and channels into one output channel
        else:
            per_out = w.reshape(-1, n_out).sum(0)
        bound[l] += per_out.max(initial=0.0)
    if bound.max(initial=0.0) >= 2.0 ** 62:  # + a register must not wrap int64 either
        l = int(bound.argmax())
        raise UserError(f"layer '{net.names[l]}': one step's input can reach "
                        f"2^{np.log2(bound[l]):.1f} state units (every source spiking through "
                        f"every synapse), beyond the engine's 64-bit integer arithmetic; "
                        f"expected a profile with fewer state_bits or frac_bits")
    return np.int32 if bound.max(initial=0.0) < 2.0 ** 31 else np.int64


def weight_dtype(net: EventNetwork):
    """How the engine stores the weights: int16 where every weight and its negative fit and
    the accumulator is int32 (the adds sign-extend them: half the bytes a conv event reads,
    measured +30 % img/s on the VGG, +6 % on digits_resnet), else the accumulator's type."""
    acc = accumulator_dtype(net)
    if acc == np.int32 and np.abs(net.weights).max(initial=0) < 2 ** 15:
        return np.int16
    return acc


def _n_weights(net: EventNetwork, p: int) -> int:
    if net.p_kind[p] == CONV:
        c, _, _, o, _, _, kh, kw = net.p_geom[p][:8]
        return int(kh * kw * (c // net.p_geom[p][14]) * o)
    return int(net.size[net.p_src[p]] * net.size[net.p_dst[p]])


def topology(net: EventNetwork) -> Topology:
    """The engine's view of ``net`` (cached on the network: it is built once)."""
    cached = getattr(net, "_topology", None)
    if cached is not None:
        return cached
    n_proj = len(net.p_src)
    order = np.argsort(net.p_dst, kind="stable").astype(np.int64)
    l_proj = np.searchsorted(net.p_dst[order], np.arange(net.layers + 1)).astype(np.int64)
    p_cin, p_cg, p_og, p_o, p_tap, p_cstride = (np.zeros(n_proj, np.int64) for _ in range(6))
    ptrs, outs, ws, lens = [], [], [], []
    base = 0
    weights = net.weights.astype(weight_dtype(net))
    for p in range(n_proj):
        if net.p_kind[p] != CONV:
            continue
        g = net.p_geom[p]
        p_cin[p], p_o[p], groups = g[0], g[3], g[14]
        p_cg[p], p_og[p] = g[0] // groups, g[3] // groups
        ptr, out_start, w_start, length, p_cstride[p], layout = _conv_runs(g)
        p_tap[p] = sum(len(a) for a in ptrs)
        ptrs.append(ptr + base)
        outs.append(out_start)
        ws.append(w_start)
        lens.append(length)
        base += len(out_start)
        own = slice(net.p_woff[p], net.p_woff[p] + len(layout))
        weights[own] = weights[own][layout]  # the engine's layout; the network keeps its own
    p_kind = np.array([CHANNEL_SCALE if k == CONV and _channel_scale(g) else k
                       for k, g in zip(net.p_kind, net.p_geom)], np.int64)
    cat = (lambda parts: np.concatenate(parts).astype(np.int64) if parts else np.zeros(1, np.int64))
    ring = net.ring.astype(np.int64)
    topo = Topology(
        size=net.size, offset=net.offset, active=np.asarray(net.active, np.int64),
        steps=int(net.steps), l_proj=l_proj, order=order, p_src=net.p_src, p_kind=p_kind,
        p_delay=net.p_delay, p_woff=net.p_woff, p_cin=p_cin, p_cg=p_cg, p_og=p_og, p_o=p_o,
        p_cstride=p_cstride, p_tap=p_tap, tp_ptr=cat(ptrs), tp_out=cat(outs), tp_w=cat(ws),
        tp_len=cat(lens), weights=weights, negated=-weights, ring=ring,
        ring_off=np.concatenate([[0], np.cumsum(ring * net.size)]).astype(np.int64),
        pos_of=_positions(net, p_cin), fanout=np.asarray(net.fanout, np.int64),
        p_foff=np.asarray(net.p_foff, np.int64),
        acc_proto=np.zeros(int(net.size.max()), accumulator_dtype(net)))
    object.__setattr__(net, "_topology", topo)
    return topo


def _positions(net: EventNetwork, p_cin: np.ndarray) -> np.ndarray:
    """Each neuron's position (channels-last: index // channels) in every layer that feeds a
    conv, so that an event costs a table read instead of an integer division (measured with
    the group division skipped for one group: +11 % on the VGG)."""
    out = np.zeros(int(net.size.sum()), np.int64)
    for p in np.flatnonzero(net.p_kind == CONV):
        s = net.p_src[p]
        out[net.offset[s]:net.offset[s] + net.size[s]] = np.arange(net.size[s]) // p_cin[p]
    return out


# ---- the fan-out -----------------------------------------------------------------------------

def _vector_sum(context, builder, signature, args, lanes: int):
    """Code for dst[i:i+lanes] += Σ src[j:j+lanes] over the (src, j) pairs after (dst, i) in
    ``args``: vector loads (a narrower source sign-extended to dst's width), adds and one
    store, with no bounds check (the fan-out tables keep every run inside its arrays)."""
    wide = ir.VectorType(context.get_data_type(signature.args[0].dtype), lanes)

    def at(k):  # the vector at args[k][args[k + 1]], as dst's type, and its address
        elem = context.get_data_type(signature.args[k].dtype)
        data = context.make_array(signature.args[k])(context, builder, args[k]).data
        ptr = builder.bitcast(builder.gep(data, [args[k + 1]]),
                              ir.VectorType(elem, lanes).as_pointer())
        v = builder.load(ptr, align=1)
        return (v if elem.width == wide.element.width else builder.sext(v, wide)), ptr

    total = at(2)[0]
    for k in range(4, len(args), 2):
        total = builder.add(total, at(k)[0])
    acc, d = at(0)
    builder.store(builder.add(acc, total), d, align=1)
    return context.get_dummy_value()


def _integer_sources(dst, *srcs) -> bool:
    """Integer arrays, the sources no wider than the destination."""
    return all(isinstance(a, types.Array) and isinstance(a.dtype, types.Integer)
               and a.dtype.bitwidth <= dst.dtype.bitwidth for a in (dst, *srcs))


# 16-lane vector adds. A loop over runs of run-time length is vectorised by LLVM only behind
# an overlap check and with 64-wide bodies: a run of 48 int32 then went through a ymm
# remainder loop six times. Explicit 16-lane adds take three.

@intrinsic
def _add16(typingctx, dst, i, src, j):
    """dst[i:i+16] += src[j:j+16]."""
    if _integer_sources(dst, src):
        return types.void(dst, i, src, j), lambda c, b, s, a: _vector_sum(c, b, s, a, 16)
    return None


@intrinsic
def _add16_pair(typingctx, dst, i, src, j, src2, j2):
    """dst[i:i+16] += src[j:j+16] + src2[j2:j2+16]."""
    if _integer_sources(dst, src, src2):
        return (types.void(dst, i, src, j, src2, j2),
                lambda c, b, s, a: _vector_sum(c, b, s, a, 16))
    return None


@intrinsic
def _add16_quad(typingctx, dst, i, s1, j1, s2, j2, s3, j3, s4, j4):
    """dst[i:i+16] += s1[j1:j1+16] + s2[j2:j2+16] + s3[j3:j3+16] + s4[j4:j4+16]. The
    arrays are arguments of their own: a form taking a tuple of arrays and a tuple of
    offsets (any number of events) measured rate 317 → 244 img/s, likely numba's reference
    counting of the arrays packed per event."""
    if _integer_sources(dst, s1, s2, s3, s4):
        return (types.void(dst, i, s1, j1, s2, j2, s3, j3, s4, j4),
                lambda c, b, s, a: _vector_sum(c, b, s, a, 16))
    return None


@njit(cache=True, inline="always")
def _add_quad(acc, out, a1, w1, a2, w2, a3, w3, a4, w4, n):
    """acc[out:out+n] += the four events' rows a_k[w_k:w_k+n] (``_add_rows`` for four)."""
    j = np.uint64(0)
    while j + np.uint64(16) <= n:
        _add16_quad(acc, out + j, a1, w1 + j, a2, w2 + j, a3, w3 + j, a4, w4 + j)
        j += np.uint64(16)
    while j < n:
        acc[out + j] += a1[w1 + j] + a2[w2 + j] + a3[w3 + j] + a4[w4 + j]
        j += np.uint64(1)


@njit(cache=True, inline="always")
def _add_row(acc, out, weights, w, n):
    """acc[out:out+n] += weights[w:w+n]: 16-lane vector adds, then one at a time. Indices are
    unsigned: numba wraps negative signed indices, a compare and an add per access."""
    j = np.uint64(0)
    while j + np.uint64(16) <= n:
        _add16(acc, out + j, weights, w + j)
        j += np.uint64(16)
    while j < n:
        acc[out + j] += weights[w + j]
        j += np.uint64(1)


@njit(cache=True, inline="always")
def _add_rows(acc, out, weights, w, weights2, w2, n):
    """acc[out:out+n] += weights[w:w+n] + weights2[w2:w2+n]: two events' rows summed in
    registers, then one load and store of the accumulator instead of two."""
    j = np.uint64(0)
    while j + np.uint64(16) <= n:
        _add16_pair(acc, out + j, weights, w + j, weights2, w2 + j)
        j += np.uint64(16)
    while j < n:
        acc[out + j] += weights[w + j] + weights2[w2 + j]
        j += np.uint64(1)


@njit(cache=True)
def _scatter_dense(acc, ev_idx, ev_sign, base, ne, n_out, woff, weights, negated, fanout):
    """The ``ne`` events at ``ev_*[base:]`` through one dense map; returns its synops.
    ``negated`` holds −weights, so a −1 event is the same add from the other table; a row is
    added whole (a structural zero adds nothing) and counts ``fanout`` synapses. Events go
    in pairs (``_add_rows``)."""
    u = np.uint64
    synops = 0
    n_out, base, woff = u(n_out), u(base), u(woff)
    e = u(0)
    while e < u(ne):
        idx = u(ev_idx[base + e])
        ws = weights if ev_sign[base + e] > 0 else negated
        if e + u(1) < u(ne):
            idx2 = u(ev_idx[base + e + u(1)])
            ws2 = weights if ev_sign[base + e + u(1)] > 0 else negated
            _add_rows(acc, u(0), ws, woff + idx * n_out, ws2, woff + idx2 * n_out, n_out)
            synops += fanout[idx] + fanout[idx2]
            e += u(2)
        else:
            _add_row(acc, u(0), ws, woff + idx * n_out, n_out)
            synops += fanout[idx]
            e += u(1)
    return synops


@njit(cache=True)
def _scatter_conv(acc, ev_idx, ev_sign, base, ne, woff, cin, cg, og, cstride,
                  tp, tp_out, tp_w, tp_len, weights, negated, pos_of):
    """The ``ne`` events at ``ev_*[base:]`` through one conv map; returns its synops.
    ``pos_of`` holds the source layer's positions (``_positions``), ``tp`` the projection's
    position table.

    Events at one position (events come in neuron order, so a position's channels come
    together) share their runs, four or two at a time: their weight rows are summed in
    registers and added to the accumulator once (``_add_quad``, ``_add_rows``), and the
    position's table is read once. Measured on digits_resnet, replaying recorded events:
    20 → 15 ns per event from pairs. Fours were no faster than pairs with int32 weights;
    with int16 weights (``weight_dtype``), three A/B runs of whole runs (one thread) gave
    +1 to +13 % img/s over pairs alone on digits_resnet SWS, the VGG and rate.

    Not inlined into the driver: there, its loop variables were spilled to the stack on
    every event (measured on digits_resnet: 26 → 20 ns per event, with the unsigned indices).

    Runs are clipped at the map's edges. Runs of one length and number for every position
    (a haloed accumulator, the kernel zero-padded to a multiple of the stride) were slower:
    on small maps, most positions are at an edge, and unclipped runs add more zeros than
    the predicted branches save (measured: 0.84× on digits_resnet, 0.93× on the VGG)."""
    u = np.uint64
    synops = 0
    base, woff, cin, cg, og, cstride, ne = u(base), u(woff), u(cin), u(cg), u(og), u(cstride), u(ne)
    e = u(0)
    while e < ne:
        idx = u(ev_idx[base + e])
        pos = u(pos_of[idx])
        ch = idx - pos * cin
        ws = weights if ev_sign[base + e] > 0 else negated
        k0, k1 = u(tp[pos]), u(tp[pos + u(1)])
        if cg == cin:  # one group: no division
            w0 = woff + ch * cstride
            if e + u(3) < ne:
                i3 = u(ev_idx[base + e + u(3)])
                if u(pos_of[i3]) == pos:  # so do the two between (neuron order)
                    i1 = u(ev_idx[base + e + u(1)])
                    i2 = u(ev_idx[base + e + u(2)])
                    wa = woff + (i1 - pos * cin) * cstride
                    wb = woff + (i2 - pos * cin) * cstride
                    wc = woff + (i3 - pos * cin) * cstride
                    sa = weights if ev_sign[base + e + u(1)] > 0 else negated
                    sb = weights if ev_sign[base + e + u(2)] > 0 else negated
                    sc = weights if ev_sign[base + e + u(3)] > 0 else negated
                    for k in range(k0, k1):
                        n = u(tp_len[k])
                        tw = u(tp_w[k])
                        _add_quad(acc, u(tp_out[k]), ws, tw + w0, sa, tw + wa, sb, tw + wb,
                                  sc, tw + wc, n)
                        synops += n * u(4)
                    e += u(4)
                    continue
            nxt = u(ev_idx[base + e + u(1)]) if e + u(1) < ne else idx
            if e + u(1) < ne and u(pos_of[nxt]) == pos:  # the next event shares the position
                w1 = woff + (nxt - pos * cin) * cstride
                ws1 = weights if ev_sign[base + e + u(1)] > 0 else negated
                for k in range(k0, k1):
                    n = u(tp_len[k])
                    _add_rows(acc, u(tp_out[k]), ws, u(tp_w[k]) + w0, ws1, u(tp_w[k]) + w1, n)
                    synops += n + n
                e += u(2)
                continue
            o0 = u(0)
        elif cg == u(1):  # depthwise (an identity shortcut is one): no division either
            w0 = woff + ch * og
            o0 = ch * og
        else:
            grp = ch // cg
            w0 = woff + (ch - grp * cg) * cstride + grp * og
            o0 = grp * og
        for k in range(k0, k1):
            n = u(tp_len[k])
            _add_row(acc, u(tp_out[k]) + o0, ws, u(tp_w[k]) + w0, n)
            synops += n
        e += u(1)
    return synops


@njit(cache=True)
def _scatter_channel_scale(acc, ev_idx, ev_sign, base, ne, woff, cin, weights, pos_of):
    """The ``ne`` events at ``ev_*[base:]`` through a ``CHANNEL_SCALE`` projection: one add
    each, into the same neuron of the target layer (through the conv path, an identity
    shortcut's event cost about as much as a 3×3 conv's: measured on digits_resnet rate
    T=64 replaying recorded events, its two shortcuts took ~100 of ~650 µs per image for
    13,000 synops)."""
    u = np.uint64
    base, woff, cin = u(base), u(woff), u(cin)
    for e in range(u(ne)):
        idx = u(ev_idx[base + e])
        ch = idx - u(pos_of[idx]) * cin
        # a scalar product with the sign, not a choice between the two tables: choosing an
        # array is a branch and a copy of its descriptor per event
        acc[idx] += weights[woff + ch] * ev_sign[base + e]
    return ne


@njit(cache=True, inline="always")
def _scatter(acc, ev_idx, ev_sign, base, ne, n_out, kind, woff, cin, cg, og, cstride,
             tp, tp_out, tp_w, tp_len, weights, negated, pos_of, fanout):
    """The ``ne`` events at ``ev_*[base:]`` through one projection; returns its synops."""
    if kind == CHANNEL_SCALE:
        return _scatter_channel_scale(acc, ev_idx, ev_sign, base, ne, woff, cin, weights,
                                      pos_of)
    if kind != CONV:
        return _scatter_dense(acc, ev_idx, ev_sign, base, ne, n_out, woff, weights, negated,
                              fanout)
    return _scatter_conv(acc, ev_idx, ev_sign, base, ne, woff, cin, cg, og, cstride, tp,
                         tp_out, tp_w, tp_len, weights, negated, pos_of)


# ---- the driver ------------------------------------------------------------------------------

@njit(cache=True, parallel=True)
def _run(model, topo, state, inputs, img_base, chunks, trace, watermark, keep_all, ro_lo,
         ro_hi):
    # topology fields are read into locals once: a namedtuple field read inside a loop costs
    # a reference-count update per access
    size, offset, active, ring, ring_off = topo.size, topo.offset, topo.active, topo.ring, topo.ring_off
    l_proj, order, p_src, p_kind, p_delay, p_woff = (topo.l_proj, topo.order, topo.p_src,
                                                     topo.p_kind, topo.p_delay, topo.p_woff)
    p_cin, p_cg, p_og, p_cstride, p_tap = (topo.p_cin, topo.p_cg, topo.p_og, topo.p_cstride,
                                           topo.p_tap)
    tp_ptr, tp_out, tp_w, tp_len = topo.tp_ptr, topo.tp_out, topo.tp_w, topo.tp_len
    weights, negated, pos_of = topo.weights, topo.negated, topo.pos_of
    fanout, p_foff, acc_proto = topo.fanout, topo.p_foff, topo.acc_proto
    n_img = inputs.shape[0]
    n_layers = size.shape[0]
    steps = topo.steps
    n_total = offset[n_layers - 1] + size[n_layers - 1]
    by_step = np.zeros((chunks, n_layers, steps, N_ACTIONS), np.int64)
    by_image = np.zeros((n_img, n_layers, N_ACTIONS), np.int64)
    spikes = np.zeros((n_img, steps if trace else 0, n_total if trace else 0), np.int8)
    regs = state.shape[1]
    high = np.zeros((chunks, n_layers if watermark else 0, regs), np.int64)
    # without keep_all, an image's registers live in one buffer per thread, reused image after
    # image, and only the readout's are kept: no fresh memory per image (``run``)
    readout = np.zeros((0 if keep_all else n_img, regs, ro_hi - ro_lo), np.int64)
    per_chunk = (n_img + chunks - 1) // chunks
    for ch in prange(chunks):
        work = np.zeros((0 if keep_all else regs, n_total), np.int64)
        acc = acc_proto.copy()
        ev_idx = np.zeros(ring_off[n_layers], np.int32)
        ev_sign = np.zeros(ring_off[n_layers], np.int8)
        ev_n = np.zeros((n_layers, ring.max()), np.int64)
        c = np.zeros(N_ACTIONS, np.int64)
        counts = by_step[ch]
        for img in range(ch * per_chunk, min(n_img, (ch + 1) * per_chunk)):
            if keep_all:
                st = state[img]
            else:
                st = work
                if state.shape[2]:
                    st[:, :] = state[img]
                else:
                    st[:, :] = 0
            x = inputs[img]
            ev_n[:, :] = 0
            for t in range(1, steps + 1):
                for l in range(n_layers):
                    slot = t % ring[l]
                    ev_n[l, slot] = 0
                    if t < active[l, 0] or t > active[l, 1]:
                        continue
                    n = size[l]
                    acc[:n] = 0
                    c[:] = 0
                    for q in range(l_proj[l], l_proj[l + 1]):
                        p = order[q]
                        s = p_src[p]
                        d = p_delay[p]
                        if t - d < 1:
                            continue
                        sslot = (t - d) % ring[s]
                        ne = ev_n[s, sslot]
                        if ne == 0:
                            continue
                        c[A_SYNOP] += _scatter(acc, ev_idx, ev_sign, ring_off[s] + sslot * size[s],
                                               ne, n, p_kind[p], p_woff[p], p_cin[p], p_cg[p],
                                               p_og[p], p_cstride[p], tp_ptr[p_tap[p]:], tp_out,
                                               tp_w, tp_len, weights, negated,
                                               pos_of[offset[s]:offset[s] + size[s]],
                                               fanout[p_foff[p]:])
                        if d > 0:
                            c[A_FR] += ne
                            counts[s, t - d - 1, A_FW] += ne
                            by_image[img, s, A_FW] += ne
                    out = ring_off[l] + slot * n
                    ne_out = neuron_step(model, l, t, img_base + img, offset[l], x, acc[:n], st,
                                         ev_idx[out:out + n], ev_sign[out:out + n], c)
                    ev_n[l, slot] = ne_out
                    for a in range(N_ACTIONS):
                        counts[l, t - 1, a] += c[a]
                        by_image[img, l, a] += c[a]
                    if trace:
                        for e in range(ne_out):
                            spikes[img, t - 1, offset[l] + ev_idx[out + e]] = ev_sign[out + e]
                    if watermark:  # the largest |register| after the step, per layer
                        for r in range(regs):
                            m = high[ch, l, r]
                            for j in range(offset[l], offset[l] + n):
                                m = max(m, abs(st[r, j]))
                            high[ch, l, r] = m
            if not keep_all:
                readout[img] = st[:, ro_lo:ro_hi]
    return by_step.sum(axis=0), by_image, spikes, high, readout


def _salt_cache_key(dispatcher):
    """numba keys its cache on the driver's own source only; the neuron models compiled into
    it live in other files, so their sources are added to the key (an edited model must not
    run from a stale cache)."""
    index_key = dispatcher._cache._index_key

    def key(sig, codegen):
        models = [_model_files[cls] for cls in (getattr(a, "instance_class", None) for a in sig)
                  if cls in _model_files]
        files = sorted(set(models) | {__file__, str(Path(__file__).with_name("registers.py"))})
        digest = hashlib.sha256(b"".join(Path(f).read_bytes() for f in files)).hexdigest()
        return index_key(sig, codegen), digest

    dispatcher._cache._index_key = key


_salt_cache_key(_run)


def run(net: EventNetwork, inputs: np.ndarray, state: np.ndarray | None = None,
        trace: bool = False, img_base: int = 0, watermarks: bool = False,
        readout_only: bool = False):
    """Run a batch through the engine.

    ``inputs`` (images, k) int64: each image's input row, handed to the neuron model as is
    (e.g. the encoder's drive in core order). ``state`` (images, regs, neurons) int64: the
    initial registers (zeros if None), updated in place and returned.

    ``readout_only``: the first item returned is the readout layer's final registers
    (images, regs, readout neurons) and ``state`` is only read. Each thread then keeps one
    image's registers at a time in a buffer it reuses: a batch's whole state is fresh memory
    the kernel zeroes at first touch, which two threads do no faster than one (measured on
    the VGG, 64 images, 57 MB: 2 threads over 1 went from 1.59–1.68× to 1.80–1.82× with the
    pages touched beforehand).

    Returns (state, by_step (layers, steps, actions), by_image (images, layers, actions),
    spikes): spikes (images, steps, neurons) int8 in {−1, 0, 1} with ``trace``, else empty.
    With ``watermarks``, a fifth item: (layers, regs) the largest |register| any image held
    after any step (what the registers really need; one more pass over them per step).
    """
    inputs = np.ascontiguousarray(inputs, np.int64)
    if state is None:  # with readout_only, an empty one stands for zeros
        state = (np.zeros((len(inputs), net.regs, 0), np.int64) if readout_only
                 else net.zero_state(len(inputs)))
    topo = topology(net)
    chunks = max(1, min(len(inputs), numba.get_num_threads()))
    ro = net.layer_slice(net.layers - 1)
    with deferred():  # Ctrl-C is taken when numba's threads are done (neurosim.interrupt)
        by_step, by_image, spikes, high, readout = _run(
            net.model, topo, state, inputs, img_base, chunks, trace, watermarks,
            not readout_only, ro.start, ro.stop)
    first = readout if readout_only else state
    if watermarks:
        return first, by_step, by_image, spikes, high.max(axis=0)
    return first, by_step, by_image, spikes


def simulate(net: EventNetwork, x: np.ndarray, encode, initial=None, trace: bool = False,
             batch: int = 256, progress=None, watermarks: bool = False):
    """Run the images ``x`` (N, *input shape) in batches of ``batch``.

    ``encode(net, xb)`` gives a batch's input rows (``run``'s ``inputs``); ``initial(net,
    inputs)`` its initial registers (zeros if None). ``progress(done, total)`` is called
    after each batch. Returns (readout registers (N, regs, readout neurons), ``Counts`` with
    per-image totals, spikes (N, steps, neurons) int8 with ``trace``, else None); with
    ``watermarks`` a fourth item, the registers' high-water marks (see ``run``).
    """
    n = len(x)
    if progress:
        # integer results do not depend on the batch: with a bar to feed, batches small
        # enough for ~20 updates (a probe's 256-image batch of a CIFAR-sized net ran 89 s
        # before the first update, so the bar, delayed 2 s from its first update, never showed)
        batch = min(batch, max(PROGRESS_MIN_BATCH, -(-n // PROGRESS_UPDATES)))
        progress(0, n)
    by_step = np.zeros((net.layers, net.steps, N_ACTIONS), np.int64)
    by_image, readout, trains = [], [], []
    high = np.zeros((net.layers, net.regs), np.int64)
    for start in range(0, n, batch):
        inputs = encode(net, x[start:start + batch])
        state = initial(net, inputs) if initial else None
        registers, steps, images, spikes, *marks = run(net, inputs, state, trace, img_base=start,
                                                       watermarks=watermarks, readout_only=True)
        if watermarks:
            high = np.maximum(high, marks[0])
        by_step += steps
        by_image.append(images)
        readout.append(registers)
        if trace:
            trains.append(spikes)
        if progress:
            progress(min(start + batch, n), n)
    empty = np.zeros((0, net.layers, N_ACTIONS), np.int64)
    counts = Counts(tuple(net.names), by_step, n,
                    by_image=np.concatenate(by_image) if by_image else empty)
    registers = (np.concatenate(readout) if readout
                 else np.zeros((0, net.regs, int(net.size[-1])), np.int64))
    if watermarks:
        return registers, counts, (np.concatenate(trains) if trace else None), high
    return registers, counts, (np.concatenate(trains) if trace else None)
