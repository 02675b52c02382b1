"""Projection normal form: every chain of linear ops is one conv or one dense map, exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurosim.graph import AvgPool, Conv, Graph, Input, Projection, Population, populations
from neurosim.onnx_import import load_onnx
from neurosim.projection import ConvMap, chain_apply, normal_form, population_bias

ROOT = Path(__file__).parents[1]
MODELS = sorted((ROOT / "tests" / "fixtures").glob("*.onnx")) + sorted(
    (ROOT / "neurosim" / "models").glob("*.onnx"))


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_normal_form_equals_chain(path):
    g = load_onnx(path)
    rng = np.random.default_rng(0)
    for pop in populations(g):
        for proj in pop.projections:
            m = normal_form(g, proj, pop)
            x = rng.normal(0, 1, (2,) + g.nodes[proj.source].shape)
            np.testing.assert_allclose(m.apply(x), chain_apply(g, proj, x), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(c=st.integers(1, 3), o=st.integers(1, 3), hw=st.integers(6, 11), kp=st.integers(1, 3),
       sp=st.integers(1, 3), ppad=st.integers(0, 1), kc=st.integers(1, 3), sc=st.integers(1, 2),
       pc=st.integers(0, 2), dc=st.integers(1, 2), seed=st.integers(0, 9))
def test_pool_then_conv_composes_exactly(c, o, hw, kp, sp, ppad, kc, sc, pc, dc, seed):
    if ppad >= kp:
        return
    ph = (hw + 2 * ppad - kp) // sp + 1
    oh = (ph + 2 * pc - ((kc - 1) * dc + 1)) // sc + 1
    if oh < 1:
        return
    rng = np.random.default_rng(seed)
    nodes = {
        "x": Input("x", (), (c, hw, hw)),
        "pool": AvgPool("pool", ("x",), (c, ph, ph), kernel=(kp, kp), stride=(sp, sp),
                        pads=(ppad,) * 4, count_include_pad=True),
        "conv": Conv("conv", ("pool",), (o, oh, oh), weight=rng.normal(0, 1, (o, c, kc, kc)),
                     bias=np.zeros(o), stride=(sc, sc), pads=(pc,) * 4, dilation=(dc, dc)),
    }
    g = Graph("t", "t", nodes, "x", "conv")
    proj = Projection("x", ("pool", "conv"))
    m = normal_form(g, proj, Population("conv", "readout", (o, oh, oh), "conv", [proj]))
    if pc == 0 or kp == sp == 1:  # the plain cases must fold into one shared kernel
        assert isinstance(m, ConvMap)
    x = rng.normal(0, 1, (2, c, hw, hw))
    np.testing.assert_allclose(m.apply(x), chain_apply(g, proj, x), atol=1e-12)


def test_population_bias_is_the_zero_input_response():
    g = load_onnx(ROOT / "tests" / "fixtures" / "resnet.onnx")
    from neurosim.ann import run

    for pop in populations(g)[1:]:
        b = population_bias(g, pop)
        x = np.random.default_rng(1).normal(0, 1, (3,) + g.input_shape)
        _, acts = run(g, x, keep=True)
        pre = acts[pop.pre]
        linear = sum(chain_apply(g, p, acts[p.source]) for p in pop.projections)
        np.testing.assert_allclose(pre, linear + b, atol=1e-9)


@pytest.mark.parametrize("count_include_pad", [False, True])
@pytest.mark.parametrize("then_conv", [False, True])
def test_padded_average_pool_is_exact(count_include_pad, then_conv):
    """A padded AvgPool (its border divisors differ when padding is not counted), alone or
    before a conv, still maps exactly: folded where that is exact, dense otherwise."""
    rng = np.random.default_rng(3)
    nodes = {"x": Input("x", (), (2, 5, 5)),
             "pool": AvgPool("pool", ("x",), (2, 5, 5), kernel=(3, 3), stride=(1, 1),
                             pads=(1, 1, 1, 1), count_include_pad=count_include_pad)}
    out = "pool"
    if then_conv:
        nodes["conv"] = Conv("conv", ("pool",), (3, 5, 5), weight=rng.normal(0, 1, (3, 2, 3, 3)),
                             bias=np.zeros(3), pads=(1, 1, 1, 1))
        out = "conv"
    g = Graph("t", "t", nodes, "x", out)
    proj = Projection("x", ("pool", "conv") if then_conv else ("pool",))
    m = normal_form(g, proj, Population(out, "readout", nodes[out].shape, out, [proj]))
    x = rng.normal(0, 1, (2, 2, 5, 5))
    np.testing.assert_allclose(m.apply(x), chain_apply(g, proj, x), atol=1e-12)
