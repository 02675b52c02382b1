"""Linear maps between populations, shared by the converted schemes.

A population's pre-activation is ``Σ_projections path(source) + bias``. A spiking network
applies the *bias-free* part of each projection to the spikes it receives and adds the bias on
its own schedule, so conversion needs both halves separately:

* :func:`preactivation` evaluates the ANN's own nodes from given source values (used for the
  total bias, with zero sources, and by tests as the independent ground truth);
* :func:`normalised_path` copies a projection's nodes with zero biases and the weight scaled;
* :func:`apply_path` runs such a bias-free path on a batch.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import ann
from ..graph import Graph, Node, Population

WEIGHTED_OPS = ("conv", "dense")


def preactivation(graph: Graph, pop: Population, sources: dict[str, np.ndarray]) -> np.ndarray:
    """``pop.pre`` computed by the ANN's nodes (biases included) from the source populations'
    values ``sources`` {name: (N, *shape)}; this is W·x + b with the ANN's own W and b."""
    values = dict(sources)

    def value(name: str) -> np.ndarray:
        if name not in values:
            node = graph.nodes[name]
            values[name] = ann.apply_node(node, [value(i) for i in node.inputs])
        return values[name]

    return value(pop.pre)


def population_bias(graph: Graph, pop: Population) -> np.ndarray:
    """The total bias b̂ of a population (its pre-activation on all-zero sources), shape pop.shape.

    Running the linear subgraph on zeros counts every bias exactly once, also when a node is
    shared by two projections (e.g. a Conv after an Add)."""
    zeros = {p.source: np.zeros((1,) + graph.nodes[p.source].shape) for p in pop.projections}
    return preactivation(graph, pop, zeros)[0]


def normalised_path(graph: Graph, path: tuple[str, ...], gain: float) -> tuple[tuple[Node, ...], float]:
    """Bias-free copies of the path's nodes with ``gain`` folded into the first Conv/Dense weight.

    Returns (nodes, remaining gain): 1.0 when it was folded, ``gain`` itself when the path has
    no weighted node (an identity shortcut or pure pooling), where it stays a scalar.
    The summation point (Add) is dropped: the target adds its projections itself.
    """
    nodes, remaining = [], gain
    for name in path:
        node = graph.nodes[name]
        if node.op == "add":
            continue
        if node.op in WEIGHTED_OPS:
            weight = node.weight * remaining if remaining != 1.0 else node.weight
            node = dataclasses.replace(node, weight=weight, bias=np.zeros_like(node.bias))
            remaining = 1.0
        nodes.append(node)
    return tuple(nodes), remaining


def apply_path(nodes: tuple[Node, ...], gain: float, x: np.ndarray) -> np.ndarray:
    for node in nodes:
        x = ann.apply_node(node, [x])
    return x * gain if gain != 1.0 else x
