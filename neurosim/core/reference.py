"""Dense, time-stepped integer reference of the TSA core (numpy): obviously correct, slow.

Every step, every layer multiplies its sources' whole spike vectors (dense, zeros and all)
by its projections — a conv through ``ann.conv2d`` with the integer weights (exact in
float64), a dense map as a matrix product — and updates all neurons with vectorised
integer arithmetic from ``neurosim.fixed_point``. It shares no code with the numba core
beyond the network description, so agreement between the two is evidence, not an echo.
"""

from __future__ import annotations

import numpy as np

from ..ann import conv2d
from ..counts import ACTION_INDEX, ACTIONS
from ..fixed_point import amplify_cost, amplify_np, fit_np
from ..graph import Conv
from .network import CONV, ENCODER, READOUT, TSA_RELU, FixedNetwork


def _conv_node(net: FixedNetwork, p: int, ones: bool = False) -> Conv:
    c, h, w, o, oh, ow, kh, kw, sh, sw, pt, pl, dh, dw, groups, _ = net.p_geom[p]
    n = kh * kw * (c // groups) * o
    flat = net.weights[net.p_woff[p]:net.p_woff[p] + n]
    wt = flat.reshape(kh, kw, c // groups, o).transpose(3, 2, 0, 1).astype(np.float64)
    if ones:
        wt = np.ones_like(wt)
    # bottom/right padding generous enough for every output position; crop afterwards
    pads = (pt, pl, sh * oh + (kh - 1) * dh + 1, sw * ow + (kw - 1) * dw + 1)
    return Conv("ref", (), (o, oh, ow), weight=wt, bias=np.zeros(o), stride=(sh, sw),
                pads=pads, dilation=(dh, dw), groups=groups)


def _apply_conv(node: Conv, s_hwc: np.ndarray, in_shape) -> np.ndarray:
    """Conv of a batch of core-order (HWC) vectors; returns core-order vectors."""
    c, h, w = in_shape
    x = s_hwc.reshape(len(s_hwc), h, w, c).transpose(0, 3, 1, 2).astype(np.float64)
    o, oh, ow = node.shape
    y = conv2d(x, node)[:, :, :oh, :ow]
    return np.rint(y).astype(np.int64).transpose(0, 2, 3, 1).reshape(len(x), -1)


def run_reference(net: FixedNetwork, drive: np.ndarray):
    """Same contract as ``core.tsa.run_core`` with ``trace=True``."""
    n_img = len(drive)
    T, L = net.steps, net.layers
    bits, wrap, nearest = net.state_bits, net.wrap, net.nearest
    terms = list(zip(net.beta_sign.tolist(), net.beta_exp.tolist()))
    shifts, adds = amplify_cost(terms)
    a = ACTION_INDEX
    counts = np.zeros((n_img, L, T, len(ACTIONS)), np.int64)
    spikes = np.zeros((n_img, T, net.neurons), np.int8)
    h = np.zeros((n_img, net.neurons), np.int64)
    g = np.zeros((n_img, net.neurons), np.int64)
    if net.encoder_mode == "potential":
        h[:, :net.size[0]] = drive
    sl = [slice(net.offset[l], net.offset[l] + net.size[l]) for l in range(L)]
    convs = {p: (_conv_node(net, p), _conv_node(net, p, ones=True)) for p in range(len(net.p_src))
             if net.p_kind[p] == CONV}

    def fit(u):
        v, over = fit_np(u, bits, wrap)
        return v, over.sum(axis=1)

    for t in range(1, T + 1):
        ti = t - 1
        for l in range(L):
            first, last = net.recv[l, 0], max(net.recv[l, 1], net.fire[l, 1])
            if t < first or t > last:
                continue
            n = net.size[l]
            acc = np.zeros((n_img, n), np.int64)
            for p in np.flatnonzero(net.p_dst == l):
                s, d = net.p_src[p], net.p_delay[p]
                if t - d < 1:
                    continue
                sv = spikes[:, t - d - 1, sl[s]].astype(np.int64)
                if net.p_kind[p] == CONV:
                    node, ones = convs[p]
                    acc += _apply_conv(node, sv, net.shapes[s])
                    counts[:, l, ti, a["synop"]] += _apply_conv(ones, np.abs(sv), net.shapes[s]).sum(1)
                else:
                    w = net.weights[net.p_woff[p]:net.p_woff[p] + net.size[s] * n].reshape(net.size[s], n)
                    acc += sv @ w
                    counts[:, l, ti, a["synop"]] += np.abs(sv).sum(1) * n
                if d > 0:
                    ne = np.abs(sv).sum(1)
                    counts[:, l, ti, a["fifo_read"]] += ne
                    counts[:, s, t - d - 1, a["fifo_write"]] += ne
            k = net.kind[l]
            in_recv = t <= net.recv[l, 1]
            in_fire = net.fire[l, 0] <= t <= net.fire[l, 1]
            u, o1 = fit(amplify_np(h[:, sl[l]], terms, nearest))
            z = acc
            nbias = np.zeros(n_img, np.int64)
            if k == ENCODER:
                if net.encoder_mode == "current" and in_recv:
                    z = z + drive
            elif in_recv:
                b = net.bias[sl[l]]
                z = z + b
                nbias += np.count_nonzero(b)
            u, o2 = fit(u + z)
            ovf = o1 + o2
            regs = 2 if k == TSA_RELU else 1
            if k == TSA_RELU:
                gv, o3 = fit(amplify_np(g[:, sl[l]], terms, nearest))
                ovf += o3
            S = np.zeros((n_img, n), np.int64)
            if in_fire and k != READOUT:
                o = np.where(u >= 0, u - gv, -gv) if k == TSA_RELU else u
                v = net.threshold[l]
                neg = (o <= -v) if net.negative_spikes else np.zeros_like(o, bool)
                S = np.where(o >= v, 1, np.where(neg, -1, 0)).astype(np.int64)
                if k == TSA_RELU:
                    gv, o4 = fit(gv + S * net.reset[l])
                else:
                    u, o4 = fit(u - S * net.reset[l])
                ovf += o4  # unchanged registers (S = 0) are in range already
            h[:, sl[l]] = u
            if k == TSA_RELU:
                g[:, sl[l]] = gv
            spikes[:, ti, sl[l]] = S
            c = counts[:, l, ti]
            npos, nneg = (S > 0).sum(1), (S < 0).sum(1)
            c[:, a["state_read"]] += regs * n
            c[:, a["state_write"]] += regs * n
            c[:, a["shift"]] += regs * n * shifts
            c[:, a["add"]] += regs * n * adds + n
            c[:, a["bias_add"]] += nbias
            c[:, a["spike_out_pos"]] += npos
            c[:, a["spike_out_neg"]] += nneg
            c[:, a["overflow"]] += ovf
            if in_fire and k != READOUT:
                c[:, a["compare"]] += 2 * n
                c[:, a["add"]] += npos + nneg + (n if k == TSA_RELU else 0)
    return h, g, counts, spikes
