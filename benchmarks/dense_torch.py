"""The baseline: a dense float time-stepped simulation of a converted SNN in torch.

This is what a SpikingJelly or snnTorch user runs today for an ANN converted to an SNN: the
ANN's linear layers as ordinary torch modules (Conv2d, Linear, AvgPool2d, flatten, residual
add) with the ANN's weights, every ReLU replaced by an integrate-and-fire neuron (reset by
subtraction), the input presented as a constant current at every step, and the readout
accumulating the final layer's output. Every layer runs at every step on the whole batch,
in float32 under ``torch.inference_mode``: the dense work that event-driven simulation avoids.

It is a speed baseline, not an accuracy one. Thresholds follow data-based normalisation
(Rueckauer et al. 2017): each IF layer's threshold is its ReLU's activation scale λ from
:func:`neurosim.calibrate.calibrate`, and a spike carries the amplitude λ, so the ANN's
weights are used unchanged and a neuron's rate × λ approximates its ReLU activation.

torch is optional (``pip install -e '.[bench]'``): it is imported inside the functions, so
this module imports without it and :func:`available` says why the column is skipped.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING

import numpy as np

from neurosim import ann
from neurosim.calibrate import calibrate
from neurosim.graph import Graph

if TYPE_CHECKING:
    import torch


def available() -> tuple[bool, str]:
    """(whether torch can be imported, why not if it cannot)."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        return False, f"torch is not installed ({exc})"
    return True, ""


def version() -> str:
    """torch's version, for the benchmark report."""
    import torch

    return torch.__version__


@functools.cache
def _simulator():
    """The DenseSNN module class, defined on first use so that torch stays optional."""
    import torch
    from torch import nn

    def padded(pads: tuple[int, int, int, int], layer: nn.Module, value: float = 0.0):
        """``layer`` after ONNX (top, left, bottom, right) padding, if there is any."""
        if not any(pads):
            return layer
        t, l, b, r = pads
        return nn.Sequential(nn.ConstantPad2d((l, r, t, b), value), layer)

    def load(layer: nn.Module, node) -> nn.Module:
        """``layer`` with the node's float64 weight and bias, as float32."""
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(node.weight))
            layer.bias.copy_(torch.from_numpy(node.bias))
        return layer

    class IF(nn.Module):
        """Integrate-and-fire with reset by subtraction; a spike carries the threshold."""

        def __init__(self, threshold: float):
            super().__init__()
            self.threshold = float(threshold)
            self.v: torch.Tensor | None = None  # membrane, shaped on the first step of a run

        def forward(self, current: torch.Tensor) -> torch.Tensor:
            if self.v is None:
                self.v = torch.zeros_like(current)
            v = self.v.add_(current)
            spikes = v.ge(self.threshold).to(v.dtype).mul_(self.threshold)
            v.sub_(spikes)
            return spikes

    class Reshape(nn.Module):
        def __init__(self, shape: tuple[int, ...]):
            super().__init__()
            self.shape = shape

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.reshape((len(x),) + self.shape)

    class Add(nn.Module):
        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return x + y

    class PadExcludedAvgPool(nn.Module):
        """Padded average pooling that divides by the in-image taps only (ONNX's
        count_include_pad=0): torch's own padding must be symmetric and at most half a
        kernel, ONNX's need be neither."""

        def __init__(self, node, in_hw: tuple[int, int]):
            super().__init__()
            self.pool = padded(node.pads, nn.AvgPool2d(node.kernel, node.stride))
            taps = self.pool(torch.ones((1, 1) + in_hw))  # share of in-image taps per window
            self.register_buffer("scale", 1.0 / taps)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.pool(x) * self.scale

    def layer(graph: Graph, node, thresholds: dict[str, float] | None,
              spiking: bool) -> nn.Module:
        op = node.op
        if op == "conv":
            cin = graph.nodes[node.inputs[0]].shape[0]
            t, l, b, r = node.pads
            symmetric = (t, l) == (b, r)  # torch's own padding, else an explicit pad first
            conv = load(nn.Conv2d(cin, node.weight.shape[0], node.weight.shape[2:], node.stride,
                                  padding=(t, l) if symmetric else 0, dilation=node.dilation,
                                  groups=node.groups), node)
            return conv if symmetric else padded(node.pads, conv)
        if op == "dense":
            return load(nn.Linear(node.weight.shape[1], node.weight.shape[0]), node)
        if op == "avgpool":
            if any(node.pads) and not node.count_include_pad:
                return PadExcludedAvgPool(node, graph.nodes[node.inputs[0]].shape[1:])
            return padded(node.pads, nn.AvgPool2d(node.kernel, node.stride))
        if op == "maxpool":
            return padded(node.pads, nn.MaxPool2d(node.kernel, node.stride,
                                                  dilation=node.dilation), -float("inf"))
        if op == "reshape":
            return Reshape(node.shape)
        if op == "add":
            return Add()
        if op == "relu":
            if not spiking:
                return nn.ReLU()
            return IF(1.0 if thresholds is None else thresholds[node.name])
        raise AssertionError(f"no torch layer for op {op!r}")  # the importer admits no other op

    class DenseSNN(nn.Module):
        """The graph's nodes as torch modules, run in topological order at every step."""

        def __init__(self, graph: Graph, thresholds: dict[str, float] | None, spiking: bool):
            super().__init__()
            self.input, self.output = graph.input, graph.output
            self.names = [n for n in graph.nodes if n != graph.input]
            self.inputs = [graph.nodes[n].inputs for n in self.names]
            # ONNX node names hold '.', which ModuleDict keys may not: a list in node order
            self.layers = nn.ModuleList(layer(graph, graph.nodes[n], thresholds, spiking)
                                        for n in self.names)
            # free each value after its last consumer, as a hand-written forward would
            last_use = {src: i for i, ins in enumerate(self.inputs) for src in ins
                        if src != self.output}
            self.free = [[src for src, j in last_use.items() if j == i]
                         for i in range(len(self.names))]

        def forward(self, x: torch.Tensor, T: int) -> torch.Tensor:
            with torch.inference_mode():
                for m in self.layers:
                    if isinstance(m, IF):
                        m.v = None  # every run starts from a zero membrane
                readout = None
                for _ in range(T):
                    vals = {self.input: x}  # the input is a constant current at every step
                    for name, ins, m, free in zip(self.names, self.inputs, self.layers,
                                                  self.free):
                        vals[name] = m(*(vals[i] for i in ins))
                        for src in free:
                            del vals[src]
                    out = vals[self.output]
                    readout = out.clone() if readout is None else readout.add_(out)
                return readout

    return DenseSNN


def build(graph: Graph, thresholds: dict[str, float] | None = None,
          spiking: bool = True) -> torch.nn.Module:
    """``graph`` as a torch module whose ``forward(x, T)`` runs T steps on the batch ``x``
    (float32, N × input shape) and returns the readout summed over the steps.

    ``thresholds`` maps each ReLU node's name to its IF threshold (default 1.0 for all);
    ``spiking=False`` keeps the ReLUs, so that ``forward(x, 1)`` is the ANN.
    """
    return _simulator()(graph, thresholds, spiking)


def check_against_ann(graph: Graph, x: np.ndarray) -> float:
    """Largest deviation of the torch layers (ReLUs kept, one step) from ``neurosim.ann.run``
    on ``x``, relative to the largest output magnitude (float32 against float64)."""
    import torch

    ref, _ = ann.run(graph, x)
    out = build(graph, spiking=False)(torch.tensor(x, dtype=torch.float32), 1).numpy()
    return float(np.max(np.abs(out - ref)) / np.max(np.abs(ref)))


def runner(graph: Graph, x: np.ndarray, T: int, threads: int):
    """A zero-argument function that runs the dense simulation of ``graph`` on the batch
    ``x`` for ``T`` steps with ``threads`` torch threads, once; the first call's allocations
    and oneDNN kernel selection are done here, not in the timed calls."""
    import torch

    snn = build(graph, calibrate(graph, x))
    xt = torch.tensor(x, dtype=torch.float32)

    def run():
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            snn(xt, T)
        finally:
            torch.set_num_threads(before)

    run()
    return run


def images_per_second(graph: Graph, x: np.ndarray, T: int, threads: int,
                      repeats: int = 3) -> float:
    """Images per second of the dense simulation (``runner``): the best of ``repeats``."""
    run = runner(graph, x, T, threads)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t)
    return len(x) / best
