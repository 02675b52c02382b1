"""Dense, time-stepped integer reference of the event engine (numpy): obviously correct, slow.

Every step, every active layer multiplies its sources' whole spike vectors (dense, zeros and
all) by its projections — a conv through ``ann.conv2d`` with the integer weights (exact in
float64), a dense map as a matrix product — and hands the sum to the scheme's *reference*
neuron model: the same neuron as the engine's process model, written as vectorised numpy
over the batch (registered with ``@reference_model(ParamsClass)``). It shares no code with
the engine beyond the network description, so agreement between the two is evidence, not
an echo.

A reference model is ``step(model, l, t, x, acc, st, off, c) -> spikes``: ``x`` (images, k)
the input rows, ``acc`` (images, n) int64 the layer's input sum, ``st`` (images, regs,
neurons) the registers, ``off`` the layer's first neuron, ``c`` (images, actions) this
step's counts of the layer; it returns the spikes (images, n) in {−1, 0, 1}.
"""

from __future__ import annotations

import numpy as np

from ..ann import conv2d
from ..counts import ACTION_INDEX, ACTIONS
from ..graph import Conv
from .network import CONV, EventNetwork

_models: dict[type, object] = {}


def reference_model(params_class):
    """Register the decorated numpy function as the reference neuron model of
    ``params_class``."""

    def register(step):
        _models[params_class] = step
        return step

    return register


def conv_node(net: EventNetwork, p: int, ones: bool = False) -> Conv:
    """Projection ``p`` as a float Conv node (integer weights, or all ones with ``ones``)."""
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


def apply_conv(node: Conv, s_hwc: np.ndarray, in_shape) -> np.ndarray:
    """Conv of a batch of core-order (HWC) vectors; returns core-order vectors."""
    c, h, w = in_shape
    x = s_hwc.reshape(len(s_hwc), h, w, c).transpose(0, 3, 1, 2).astype(np.float64)
    o, oh, ow = node.shape
    y = conv2d(x, node)[:, :, :oh, :ow]
    return np.rint(y).astype(np.int64).transpose(0, 2, 3, 1).reshape(len(x), -1)


def run_reference(net: EventNetwork, inputs: np.ndarray, state: np.ndarray):
    """Same contract as ``engine.run`` with ``trace=True``: (state, by_step, by_image, spikes)."""
    step = _models[type(net.model)]
    n_img, T, L = len(inputs), net.steps, net.layers
    a = ACTION_INDEX
    counts = np.zeros((n_img, L, T, len(ACTIONS)), np.int64)
    spikes = np.zeros((n_img, T, net.neurons), np.int8)
    sl = [net.layer_slice(l) for l in range(L)]
    convs = {p: (conv_node(net, p), conv_node(net, p, ones=True)) for p in range(len(net.p_src))
             if net.p_kind[p] == CONV}
    for t in range(1, T + 1):
        ti = t - 1
        for l in range(L):
            if not net.active[l, 0] <= t <= net.active[l, 1]:
                continue
            n = net.size[l]
            acc = np.zeros((n_img, n), np.int64)
            c = counts[:, l, ti]
            for p in np.flatnonzero(net.p_dst == l):
                s, d = net.p_src[p], net.p_delay[p]
                if t - d < 1:
                    continue
                sv = spikes[:, t - d - 1, sl[s]].astype(np.int64)
                if net.p_kind[p] == CONV:
                    node, ones = convs[p]
                    acc += apply_conv(node, sv, net.shapes[s])
                    c[:, a["synop"]] += apply_conv(ones, np.abs(sv), net.shapes[s]).sum(1)
                else:
                    w = net.weights[net.p_woff[p]:net.p_woff[p] + net.size[s] * n].reshape(net.size[s], n)
                    acc += sv @ w
                    fan = net.fanout[net.p_foff[p]:net.p_foff[p] + net.size[s]]
                    c[:, a["synop"]] += np.abs(sv) @ fan
                if d > 0:
                    ne = np.abs(sv).sum(1)
                    c[:, a["fifo_read"]] += ne
                    counts[:, s, t - d - 1, a["fifo_write"]] += ne
            spikes[:, ti, sl[l]] = step(net.model, l, t, inputs, acc, state, int(net.offset[l]), c)
    return state, counts.sum(axis=0), counts.sum(axis=2), spikes
