"""The float ANN as a small typed graph, and its population / projection view.

The importer turns an ONNX file into a :class:`Graph` of typed nodes (BatchNorm
already folded, Identity/Dropout/trailing Softmax dropped, shapes static and
without the batch dimension, layout NCHW as in ONNX). Everything downstream
reads the graph through :func:`populations`, which groups it the way a spiking
network sees it (DESIGN §2):

* a *population* is the output of a ReLU (hidden neurons), of a MaxPool, the
  network input, or the final linear output (the readout);
* a *projection* is a chain of linear nodes (Conv, Dense, AvgPool, Reshape, and
  the summation point Add) from one population to another. A residual ``Add``
  followed by ReLU is one population with two incoming projections; an
  identity shortcut is a projection whose chain holds only the Add.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Node:
    name: str
    inputs: tuple[str, ...]
    shape: tuple[int, ...]  # output shape of one sample (no batch dimension)

    op = "node"
    linear = False  # a linear map of its inputs (possibly with a bias)

    def params(self) -> int:
        return 0

    def macs(self) -> int:
        return 0


@dataclass
class Input(Node):
    op = "input"


@dataclass
class Conv(Node):
    weight: np.ndarray  # (out_channels, in_channels / groups, kh, kw)
    bias: np.ndarray  # (out_channels,)
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, bottom, right
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    op = "conv"
    linear = True

    def params(self) -> int:
        return int(self.weight.size + self.bias.size)

    def macs(self) -> int:
        # one multiply-accumulate per weight per output position
        return int(np.prod(self.shape)) * int(np.prod(self.weight.shape[1:]))


@dataclass
class Dense(Node):
    weight: np.ndarray  # (out_features, in_features)
    bias: np.ndarray  # (out_features,)

    op = "dense"
    linear = True

    def params(self) -> int:
        return int(self.weight.size + self.bias.size)

    def macs(self) -> int:
        return int(self.weight.size)


@dataclass
class AvgPool(Node):
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # including ceil_pads
    count_include_pad: bool = False
    # rows / columns of the bottom / right pads that only a ceil_mode pool's last windows
    # overhang: never counted in the divisor, even with count_include_pad
    ceil_pads: tuple[int, int] = (0, 0)

    op = "avgpool"
    linear = True


@dataclass
class MaxPool(Node):
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)

    op = "maxpool"


@dataclass
class Reshape(Node):
    """Flatten or a static Reshape: the sample's values in the same (C-order) sequence."""

    op = "reshape"
    linear = True


@dataclass
class Add(Node):
    """Element-wise sum of two activations of equal shape (residual join)."""

    op = "add"
    linear = True


@dataclass
class Relu(Node):
    op = "relu"


@dataclass
class Graph:
    name: str
    path: str
    nodes: dict[str, Node]  # topological order
    input: str
    output: str

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.nodes[self.input].shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.nodes[self.output].shape

    def consumers(self, name: str) -> list[str]:
        return [n.name for n in self.nodes.values() if name in n.inputs]

    def params(self) -> int:
        return sum(n.params() for n in self.nodes.values())

    def macs(self) -> int:
        """Multiply-accumulates of one inference (Conv and Dense; pooling is not counted)."""
        return sum(n.macs() for n in self.nodes.values())


@dataclass
class Projection:
    source: str  # population name
    path: tuple[str, ...]  # linear nodes from the source to the target, in order

    def describe(self, graph: Graph) -> str:
        ops = [graph.nodes[p].op for p in self.path if graph.nodes[p].op != "add"]
        return "+".join(ops) if ops else "identity"


@dataclass
class Population:
    name: str  # the node whose output this population is
    kind: str  # 'input' | 'hidden' | 'maxpool' | 'readout'
    shape: tuple[int, ...]
    pre: str | None  # node holding the pre-activation (None for the input)
    projections: list[Projection] = field(default_factory=list)

    @property
    def neurons(self) -> int:
        return int(np.prod(self.shape))


def _is_population(graph: Graph, name: str) -> bool:
    node = graph.nodes[name]
    return node.op in ("input", "relu", "maxpool") or name == graph.output


def _trace(graph: Graph, name: str, suffix: tuple[str, ...]) -> list[Projection]:
    """All chains of linear nodes that end in ``suffix`` and start at a population."""
    if _is_population(graph, name):
        return [Projection(source=name, path=suffix)]
    node = graph.nodes[name]
    out: list[Projection] = []
    for src in node.inputs:
        out.extend(_trace(graph, src, (name,) + suffix))
    return out


def _incoming(graph: Graph, pre: str) -> list[Projection]:
    """Projections arriving at the pre-activation node ``pre`` of a population."""
    if pre != graph.output and _is_population(graph, pre):
        return [Projection(pre, ())]  # e.g. ReLU(MaxPool(...)): an identity projection
    node = graph.nodes[pre]
    return [p for src in node.inputs for p in _trace(graph, src, (pre,))]


def populations(graph: Graph) -> list[Population]:
    """The spiking view of the graph: input, hidden/maxpool populations, readout (last)."""
    pops: list[Population] = []
    for node in graph.nodes.values():
        if node.op == "input":
            pops.append(Population(node.name, "input", node.shape, None))
            continue
        is_out = node.name == graph.output
        if node.op in ("relu", "maxpool"):
            pre = node.inputs[0]
            kind = "readout" if is_out else ("hidden" if node.op == "relu" else "maxpool")
        elif is_out:
            pre, kind = node.name, "readout"
        else:
            continue
        pops.append(Population(node.name, kind, node.shape, pre, _incoming(graph, pre)))
    return pops
