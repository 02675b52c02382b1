"""What the rate, TTFS, TSC and phase conversions share: the ANN as λ-normalised layers.

DESIGN §3.2–3.5 all start from the same normalisation (Diehl/Rueckauer style): with λ_l the
calibrated activation scale of population l, weights ``W = Ŵ·λ_source/λ_l`` and biases
``b = b̂/λ_l``, so an activation of λ_l is the value 1 of the scheme's unit (a firing rate of
one spike per step, a TTFS spike at the window's first step, ...). What the unit means, and
how time runs, is each scheme's own business; this module only builds the layers and applies
projections in float.

A MaxPool population has no spiking form in these schemes unless the scheme says otherwise
(``maxpool=True``, e.g. rate coding's gate on spike counts): ``normalise`` raises an error
naming the scheme and the node.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from ..graph import Graph, populations
from ..projection import ConvMap, DenseMap, normal_form, population_bias


@dataclass
class LayerProjection:
    source: str
    map: ConvMap | DenseMap | None  # W = Ŵ·λ_source/λ_target; None: a MaxPool's input
    gap: int  # level of the target − 1 − level of the source (0: adjacent layers)


@dataclass
class Layer:
    name: str
    kind: str  # input | hidden | maxpool | readout
    shape: tuple[int, ...]
    level: int  # 0 input; 1 + the deepest source otherwise (a MaxPool: its source's)
    lam: float  # λ, ANN units
    bias: np.ndarray | None = None  # b̂/λ, per neuron (C, H, W order), None for the input
    projections: tuple[LayerProjection, ...] = ()
    relu_output: bool = False  # readout only: the ANN's output is ReLU(pre-activation)

    @property
    def neurons(self) -> int:
        return int(np.prod(self.shape))


def normalise(graph: Graph, scales: dict[str, float], scheme: str,
              maxpool: bool = False) -> list[Layer]:
    """The populations of ``graph`` as normalised layers, input first, readout last."""
    layers: list[Layer] = []
    level: dict[str, int] = {}
    for p in populations(graph):
        node = graph.nodes[p.name]
        if p.kind == "maxpool" or (p.kind == "readout" and node.op == "maxpool"):
            if not maxpool or p.kind == "readout":
                raise UserError(f"{graph.path}: MaxPool node '{p.name}' has no spiking form "
                                f"under coding '{scheme}'; use AveragePool"
                                + (" (or, with `neurosim run`, --coding sws --precision "
                                   "float: the SWS float simulator gates MaxPool approximately)"
                                   if scheme != "sws" else ""))
            src = p.projections[0].source
            if p.projections[0].path:
                raise UserError(f"{graph.path}: MaxPool '{p.name}' must directly follow a "
                                f"population (found linear ops {p.projections[0].path} before it)")
            level[p.name] = level[src]
            layers.append(Layer(p.name, p.kind, p.shape, level[src], scales[p.name],
                                projections=(LayerProjection(src, None, 0),)))
            continue
        if p.kind == "input":
            level[p.name] = 0
            layers.append(Layer(p.name, p.kind, p.shape, 0, scales[p.name]))
            continue
        level[p.name] = 1 + max(level[q.source] for q in p.projections)
        projections = []
        for q in p.projections:
            ann_map = normal_form(graph, q, p)
            weight = ann_map.weight * (scales[q.source] / scales[p.name])
            projections.append(LayerProjection(q.source, dataclasses.replace(ann_map, weight=weight),
                                               level[p.name] - 1 - level[q.source]))
        layers.append(Layer(p.name, p.kind, p.shape, level[p.name], scales[p.name],
                            population_bias(graph, p) / scales[p.name], tuple(projections),
                            relu_output=p.kind == "readout" and node.op == "relu"))
    return layers


def input_sum(layer: Layer, spikes: dict[str, np.ndarray | None]) -> np.ndarray | None:
    """Σ over ``layer``'s projections of W·(the source's values this step), float; None if
    no source sent anything. ``spikes[name]``: (N, *shape) values (spikes, counts, ...) or
    None for silence. MaxPool inputs (map None) are not handled here."""
    total = None
    for q in layer.projections:
        s = spikes.get(q.source)
        if s is None or not np.any(s):
            continue
        part = q.map.apply(np.asarray(s, np.float64))
        total = part if total is None else total + part
    return total
