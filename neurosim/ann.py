"""Float ANN executor over the graph IR (numpy, float64).

It is the ground truth every SNN is compared with: it must agree with
onnxruntime on the original ONNX file. ``run`` can also hand back the
activations of every node, which calibration reads per population.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .graph import AvgPool, Conv, Graph, MaxPool, Node


def _pad(x: np.ndarray, pads, value: float = 0.0) -> np.ndarray:
    t, l, b, r = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)


def _windows(x: np.ndarray, kernel, stride, dilation) -> np.ndarray:
    """(N, C, OH, OW, kh, kw) view of the sliding windows of a padded (N, C, H, W) array."""
    kh, kw = kernel
    dh, dw = dilation
    span = ((kh - 1) * dh + 1, (kw - 1) * dw + 1)
    win = sliding_window_view(x, span, axis=(2, 3))
    return win[:, :, ::stride[0], ::stride[1], ::dh, ::dw]


def conv2d(x: np.ndarray, node: Conv) -> np.ndarray:
    win = _windows(_pad(x, node.pads), node.weight.shape[2:], node.stride, node.dilation)
    n, c, oh, ow, kh, kw = win.shape
    g = node.groups
    o = node.weight.shape[0]
    win = win.reshape(n, g, c // g, oh, ow, kh, kw)
    w = node.weight.reshape(g, o // g, c // g, kh, kw)
    y = np.einsum("ngchwij,gocij->ngohw", win, w, optimize=True).reshape(n, o, oh, ow)
    return y + node.bias[None, :, None, None]


def avgpool2d(x: np.ndarray, node: AvgPool) -> np.ndarray:
    win = _windows(_pad(x, node.pads), node.kernel, node.stride, (1, 1))
    total = win.sum(axis=(4, 5))
    if not any(node.pads) or (node.count_include_pad and not any(node.ceil_pads)):
        return total / (node.kernel[0] * node.kernel[1])
    ones = np.ones((1, 1) + x.shape[2:])
    if node.count_include_pad:  # the explicit pads count, a ceil_mode overhang does not
        t, l, b, r = node.pads
        eh, ew = node.ceil_pads
        ones = np.pad(ones, ((0, 0), (0, 0), (t, b - eh), (l, r - ew)), constant_values=1.0)
        pads = (0, 0, eh, ew)
    else:
        pads = node.pads
    count = _windows(_pad(ones, pads), node.kernel, node.stride, (1, 1)).sum(axis=(4, 5))
    return total / count


def maxpool2d(x: np.ndarray, node: MaxPool) -> np.ndarray:
    win = _windows(_pad(x, node.pads, -np.inf), node.kernel, node.stride, node.dilation)
    return win.max(axis=(4, 5))


def apply_node(node: Node, xs: list[np.ndarray]) -> np.ndarray:
    """One node on a batch; ``xs`` are its inputs' batched outputs."""
    op = node.op
    if op == "conv":
        return conv2d(xs[0], node)
    if op == "dense":
        return xs[0] @ node.weight.T + node.bias
    if op == "avgpool":
        return avgpool2d(xs[0], node)
    if op == "maxpool":
        return maxpool2d(xs[0], node)
    if op == "reshape":
        return xs[0].reshape((xs[0].shape[0],) + node.shape)
    if op == "add":
        return xs[0] + xs[1]
    if op == "relu":
        return np.maximum(xs[0], 0.0)
    raise AssertionError(f"no executor for op {op!r}")  # the importer admits no other op


def run(graph: Graph, x: np.ndarray, keep: bool | set[str] = False,
        batch: int = 256) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Outputs of ``graph`` on ``x`` (N, *input_shape), and the activations asked for.

    ``keep`` = True keeps every node's output, a set keeps those nodes, False none.
    Batches of ``batch`` images bound the memory of the im2col views.
    """
    outs, kept = [], {}
    for start in range(0, len(x), batch):
        vals = {graph.input: np.asarray(x[start:start + batch], np.float64)}
        for node in graph.nodes.values():
            if node.op != "input":
                vals[node.name] = apply_node(node, [vals[i] for i in node.inputs])
        outs.append(vals[graph.output])
        for k, v in vals.items():
            if keep is True or (keep and k in keep):
                kept.setdefault(k, []).append(v)
    out = np.concatenate(outs) if outs else np.zeros((0,) + graph.output_shape)
    return out, {k: np.concatenate(v) for k, v in kept.items()}


def accuracy(graph: Graph, x: np.ndarray, y: np.ndarray) -> float:
    out, _ = run(graph, x)
    return float(np.mean(out.reshape(len(out), -1).argmax(axis=1) == y)) if len(y) else float("nan")
