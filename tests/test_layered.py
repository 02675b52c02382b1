"""The λ-normalised layers shared by rate, TTFS, TSC and phase coding."""

from __future__ import annotations

import numpy as np
import pytest

from neurosim import ann
from neurosim.data import digits
from neurosim.errors import UserError
from neurosim.graph import Conv, Graph, Input, MaxPool, Relu
from neurosim.schemes._layered import input_sum, normalise

from engine_cases import bundled


@pytest.mark.parametrize("model", ["digits_mlp", "digits_cnn", "digits_resnet"])
def test_normalised_layers_reproduce_the_ann(model):
    """ReLU(Σ W·(a_src/λ_src) + b) = a/λ for every hidden layer, and the readout's
    pre-activation / λ for the readout: the normalisation changes units, not values."""
    g, lams = bundled(model)
    x = digits("test").x[:8]
    _, acts = ann.run(g, x, keep=True)
    layers = normalise(g, lams, "rate")
    assert [l.kind for l in layers][0] == "input" and layers[-1].kind == "readout"
    units = {layers[0].name: x / layers[0].lam}
    for layer in layers[1:]:
        z = input_sum(layer, units) + layer.bias.reshape(layer.shape)
        expect = acts[layer.name] / layer.lam
        got = z if layer.kind == "readout" else np.maximum(z, 0.0)
        assert np.allclose(got, expect, atol=1e-9 * max(1.0, np.abs(expect).max()))
        units[layer.name] = expect
    # a residual target reads a source one level further back: its projection has gap 1
    if model == "digits_resnet":
        assert any(q.gap == 1 for layer in layers for q in layer.projections)


def test_maxpool_is_an_error_naming_scheme_and_node():
    rng = np.random.default_rng(0)
    nodes = {"x": Input("x", (), (1, 4, 4)),
             "c": Conv("c", ("x",), (2, 4, 4), weight=rng.normal(size=(2, 1, 3, 3)),
                       bias=np.zeros(2), pads=(1, 1, 1, 1)),
             "r": Relu("r", ("c",), (2, 4, 4)),
             "mp": MaxPool("mp", ("r",), (2, 2, 2), kernel=(2, 2), stride=(2, 2)),
             "c2": Conv("c2", ("mp",), (3, 1, 1), weight=rng.normal(size=(3, 2, 2, 2)),
                        bias=np.zeros(3))}
    g = Graph("mp", "mp.onnx", nodes, "x", "c2")
    scales = {"x": 1.0, "r": 1.0, "mp": 1.0, "c2": 1.0}
    with pytest.raises(UserError, match=r"MaxPool node 'mp'.*coding 'ttfs'"):
        normalise(g, scales, "ttfs")
