"""Event-driven, bit-accurate TSA core (numba): what the hardware computes, step by step.

One image runs entirely on one thread (``prange`` over the images of a batch), so no two
threads ever write the same state. Per time step, layers run in order; a layer

1. gathers the events its sources emitted (delayed projections read the source's event
   ring ``delay`` steps back: the FIFO) and scatters them through its projections into a
   wide per-step accumulator — the dendritic accumulator, exact and order-free;
2. updates every neuron in its active window: amplify (β as shift-adds), integrate
   accumulator + bias, fit to ``state_bits`` (saturate or wrap, counted), fire ternary
   spikes, reset;
3. writes its new events into its ring.

Counted actions (per layer, per step, per image; DESIGN §5) — see README "Counting
semantics" for the table.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..counts import ACTION_INDEX, ACTIONS
from .network import CONV, ENCODER, READOUT, TSA_RELU, FixedNetwork

A_SYNOP = ACTION_INDEX["synop"]
A_SREAD = ACTION_INDEX["state_read"]
A_SWRITE = ACTION_INDEX["state_write"]
A_ADD = ACTION_INDEX["add"]
A_SHIFT = ACTION_INDEX["shift"]
A_CMP = ACTION_INDEX["compare"]
A_POS = ACTION_INDEX["spike_out_pos"]
A_NEG = ACTION_INDEX["spike_out_neg"]
A_FW = ACTION_INDEX["fifo_write"]
A_FR = ACTION_INDEX["fifo_read"]
A_BIAS = ACTION_INDEX["bias_add"]
A_OVF = ACTION_INDEX["overflow"]
N_ACTIONS = len(ACTIONS)


@njit(cache=True, inline="always")
def _fit(u, lo, hi, wrap):
    """(value within [lo, hi], 1 if it overflowed)."""
    if u < lo or u > hi:
        if wrap:
            span = hi - lo + 1
            return ((u - lo) % span) + lo, 1
        return (lo if u < lo else hi), 1
    return u, 0


@njit(cache=True, inline="always")
def _amplify(u, bsign, bexp, nearest):
    out = 0
    for i in range(bsign.shape[0]):
        k = bexp[i]
        if k > 0:
            term = u << k
        elif k == 0:
            term = u
        elif nearest:
            term = (u + (1 << (-k - 1))) >> (-k)
        else:
            term = u >> (-k)
        out = out + term if bsign[i] > 0 else out - term
    return out


@njit(cache=True)
def _scatter_conv(acc, idx, sign, geom, weights, woff):
    """One event through a conv map (channels-last); returns the synapses it touched."""
    c_in, w_in = geom[0], geom[2]
    o, oh, ow, kh, kw = geom[3], geom[4], geom[5], geom[6], geom[7]
    sh, sw, pt, pl, dh, dw, groups = geom[8], geom[9], geom[10], geom[11], geom[12], geom[13], geom[14]
    cg = c_in // groups
    og = o // groups
    c = idx % c_in
    x = (idx // c_in) % w_in
    y = idx // (c_in * w_in)
    g = c // cg
    ci = c - g * cg
    touched = 0
    for ky in range(kh):
        ny = y + pt - ky * dh
        if ny < 0 or ny % sh != 0:
            continue
        oy = ny // sh
        if oy >= oh:
            continue
        for kx in range(kw):
            nx = x + pl - kx * dw
            if nx < 0 or nx % sw != 0:
                continue
            ox = nx // sw
            if ox >= ow:
                continue
            base = (oy * ow + ox) * o + g * og
            wbase = woff + ((ky * kw + kx) * cg + ci) * o + g * og
            if sign > 0:
                for j in range(og):
                    acc[base + j] += weights[wbase + j]
            else:
                for j in range(og):
                    acc[base + j] -= weights[wbase + j]
            touched += og
    return touched


@njit(cache=True)
def _scatter_dense(acc, idx, sign, n_out, weights, woff):
    row = woff + idx * n_out
    if sign > 0:
        for j in range(n_out):
            acc[j] += weights[row + j]
    else:
        for j in range(n_out):
            acc[j] -= weights[row + j]
    return n_out


@njit(cache=True, parallel=True)
def _run(drive, kind, size, offset, recv, fire, threshold, reset, bias,
         p_src, p_dst, p_kind, p_delay, p_woff, p_geom, weights,
         bsign, bexp, state_bits, wrap, nearest, negative, potential, steps, ring,
         trace):
    n_img = drive.shape[0]
    n_layers = size.shape[0]
    n_total = size.sum()
    max_n = size.max()
    n_proj = p_src.shape[0]
    lo = -(1 << (state_bits - 1))
    hi = (1 << (state_bits - 1)) - 1
    n_bterms = bsign.shape[0]
    amp_shifts = 0
    for i in range(n_bterms):
        if bexp[i] != 0:
            amp_shifts += 1
    amp_adds = n_bterms - 1
    # ring buffers: layer l holds ring[l] steps of up to size[l] events
    ring_off = np.zeros(n_layers + 1, np.int64)
    for l in range(n_layers):
        ring_off[l + 1] = ring_off[l] + ring[l] * size[l]

    h_all = np.zeros((n_img, n_total), np.int64)  # membrane / accumulated input h
    g_all = np.zeros((n_img, n_total), np.int64)  # TSA-ReLU output register g
    counts = np.zeros((n_img, n_layers, steps, N_ACTIONS), np.int64)
    spikes = np.zeros((n_img, steps if trace else 0, n_total if trace else 0), np.int8)

    for img in prange(n_img):
        h = h_all[img]
        gr = g_all[img]
        cnt = counts[img]
        acc = np.zeros(max_n, np.int64)
        ev_idx = np.zeros(ring_off[n_layers], np.int64)
        ev_sign = np.zeros(ring_off[n_layers], np.int8)
        ev_n = np.zeros((n_layers, ring.max()), np.int64)
        if potential:
            for j in range(size[0]):
                h[j] = drive[img, j]
        for t in range(1, steps + 1):
            ti = t - 1
            for l in range(n_layers):
                n = size[l]
                off = offset[l]
                slot = t % ring[l]
                ev_n[l, slot] = 0
                first = recv[l, 0]
                last = max(recv[l, 1], fire[l, 1])
                if t < first or t > last:
                    continue
                # 1. input events through the projections, into the accumulator
                for j in range(n):
                    acc[j] = 0
                for p in range(n_proj):
                    if p_dst[p] != l:
                        continue
                    s = p_src[p]
                    d = p_delay[p]
                    if t - d < 1:
                        continue
                    sslot = (t - d) % ring[s]
                    ne = ev_n[s, sslot]
                    base = ring_off[s] + sslot * size[s]
                    syn = 0
                    for e in range(ne):
                        if p_kind[p] == CONV:
                            syn += _scatter_conv(acc, ev_idx[base + e], ev_sign[base + e],
                                                 p_geom[p], weights, p_woff[p])
                        else:
                            syn += _scatter_dense(acc, ev_idx[base + e], ev_sign[base + e], n,
                                                  weights, p_woff[p])
                    cnt[l, ti, A_SYNOP] += syn
                    if d > 0:
                        cnt[l, ti, A_FR] += ne
                        cnt[s, t - d - 1, A_FW] += ne
                # 2. neuron updates
                k = kind[l]
                in_recv = t <= recv[l, 1]
                in_fire = t >= fire[l, 0] and t <= fire[l, 1]
                regs = 2 if k == TSA_RELU else 1
                vth = threshold[l]
                rs = reset[l]
                ne_out = 0
                npos = 0
                nneg = 0
                novf = 0
                nbias = 0
                for j in range(n):
                    u, o1 = _fit(_amplify(h[off + j], bsign, bexp, nearest), lo, hi, wrap)
                    novf += o1
                    z = acc[j]
                    if k == ENCODER:
                        if not potential and in_recv:
                            z += drive[img, j]
                    elif in_recv:
                        b = bias[off + j]
                        if b != 0:
                            z += b
                            nbias += 1
                    u, o1 = _fit(u + z, lo, hi, wrap)
                    novf += o1
                    h[off + j] = u
                    if k == READOUT or not in_fire:
                        if k == TSA_RELU:
                            gv, o1 = _fit(_amplify(gr[off + j], bsign, bexp, nearest), lo, hi, wrap)
                            gr[off + j] = gv
                            novf += o1
                        continue
                    if k == TSA_RELU:
                        gv, o1 = _fit(_amplify(gr[off + j], bsign, bexp, nearest), lo, hi, wrap)
                        novf += o1
                        o = u - gv if u >= 0 else -gv
                    else:
                        gv = 0
                        o = u
                    sgn = 0
                    if o >= vth:
                        sgn = 1
                    elif negative and o <= -vth:
                        sgn = -1
                    if sgn != 0:
                        if k == TSA_RELU:
                            gv, o1 = _fit(gv + sgn * rs, lo, hi, wrap)
                        else:
                            u, o1 = _fit(u - sgn * rs, lo, hi, wrap)
                            h[off + j] = u
                        novf += o1
                        ev_idx[ring_off[l] + slot * n + ne_out] = j
                        ev_sign[ring_off[l] + slot * n + ne_out] = sgn
                        ne_out += 1
                        if sgn > 0:
                            npos += 1
                        else:
                            nneg += 1
                        if trace:
                            spikes[img, ti, off + j] = sgn
                    if k == TSA_RELU:
                        gr[off + j] = gv
                ev_n[l, slot] = ne_out
                # counts of the neuron updates (see README "Counting semantics")
                c = cnt[l, ti]
                c[A_SREAD] += regs * n
                c[A_SWRITE] += regs * n
                c[A_SHIFT] += regs * n * amp_shifts
                c[A_ADD] += regs * n * amp_adds + n  # amplification + integrate
                c[A_BIAS] += nbias
                c[A_POS] += npos
                c[A_NEG] += nneg
                c[A_OVF] += novf
                if in_fire and k != READOUT:
                    c[A_CMP] += 2 * n
                    c[A_ADD] += npos + nneg  # reset
                    if k == TSA_RELU:
                        c[A_ADD] += n  # o = h − g
    return h_all, g_all, counts, spikes


def run_core(net: FixedNetwork, drive: np.ndarray, trace: bool = False):
    """Simulate a batch. ``drive`` is ``net.encode_input(x)``.

    Returns (h, g, counts, spikes): final registers (images × neurons, core order), counts
    (images × layers × steps × actions) and, with ``trace``, spikes (images × steps ×
    neurons, int8 in {−1, 0, 1}; empty otherwise).
    """
    return _run(np.ascontiguousarray(drive, np.int64), net.kind, net.size, net.offset, net.recv,
                net.fire, net.threshold, net.reset, net.bias, net.p_src, net.p_dst, net.p_kind,
                net.p_delay, net.p_woff, net.p_geom, net.weights, net.beta_sign, net.beta_exp,
                net.state_bits, net.wrap, net.nearest, net.negative_spikes,
                net.encoder_mode == "potential", net.steps, net.ring, trace)


def simulate_fixed(net: FixedNetwork, x: np.ndarray, trace: bool = False, batch: int = 128,
                   progress=None):
    """Bit-accurate run of ``x`` (N, *input shape) as a ``SimResult`` (ANN units).

    ``outputs`` are the readout's final membranes in ANN units; ``counts`` every counted action;
    ``extra["overflow_by_layer"]`` the saturations/wraps per layer. With ``trace``, ``decoded``
    holds each spiking population's Σβ^(Tc−t)·S(t)·θ and ``extra["spikes"]`` the trains.
    ``progress(done, total)`` is called after each batch of ``batch`` images.
    """
    from ..counts import Counts
    from ..schemes.base import SimResult

    n = len(x)
    data = np.zeros((net.layers, net.steps, N_ACTIONS), np.int64)
    ro = slice(net.offset[-1], net.offset[-1] + net.size[-1])
    outputs, decoded, trains = [], {name: [] for name in net.names[:-1]}, []
    for start in range(0, n, batch):
        drive = net.encode_input(x[start:start + batch])
        h, _, counts, spikes = run_core(net, drive, trace)
        data += counts.sum(axis=0)
        outputs.append(net.to_chw(net.layers - 1, h[:, ro]) / net.scale[-1] * net.thetas[-1])
        if trace:
            trains.append(spikes)
            for l, name in enumerate(net.names[:-1]):
                a, b = net.fire[l]
                sl = slice(net.offset[l], net.offset[l] + net.size[l])
                weights = net.beta ** (b - np.arange(a, b + 1))  # β^(Tc−t) over the window
                value = np.tensordot(spikes[:, a - 1:b, sl].astype(np.float64), weights, ([1], [0]))
                decoded[name].append(net.to_chw(l, value) * net.thetas[l])
        if progress:
            progress(min(start + batch, n), n)
    counts = Counts(tuple(net.names), data, n)
    extra = {"overflow_by_layer": dict(zip(net.names, data[:, :, ACTION_INDEX["overflow"]].sum(1).tolist())),
             "weight_bits_used": dict(zip(net.names, net.weight_bits_used.tolist())),
             "frac_bits": dict(zip(net.names, net.frac.tolist()))}
    out = np.concatenate(outputs) if outputs else np.zeros((0,) + tuple(net.shapes[-1]))
    dec = {k: np.concatenate(v) for k, v in decoded.items() if v}
    dec[net.names[-1]] = out
    if trace:
        extra["spikes"] = np.concatenate(trains)
    return SimResult(out, counts, net.steps, net.Tc + net.Ts, dec, extra)
