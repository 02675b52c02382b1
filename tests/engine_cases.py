"""Shared by the engine tests of every scheme: bundled models with their calibration, random
small networks (a hypothesis strategy), and the bit-exactness check of engine versus dense
reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from neurosim.calibrate import calibrate
from neurosim.core import engine
from neurosim.core.reference import run_reference
from neurosim.counts import ACTION_INDEX
from neurosim.data import digits
from neurosim.graph import Add, AvgPool, Conv, Dense, Graph, Input, Relu, Reshape
from neurosim.hw.profile import load_profile
from neurosim.onnx_import import load_onnx

ROOT = Path(__file__).parents[1]
LOIHI = load_profile("loihi_like").arithmetic
_GRAPHS: dict = {}


def bundled(name: str):
    """(graph, calibrated λ per population) of a bundled model, loaded once per session."""
    if name not in _GRAPHS:
        g = load_onnx(ROOT / "neurosim" / "models" / f"{name}.onnx")
        _GRAPHS[name] = (g, calibrate(g, digits("calibration").x))
    return _GRAPHS[name]


def assert_engine_matches_reference(net, inputs: np.ndarray, state: np.ndarray | None = None):
    """Engine and dense reference on the same network, inputs and initial registers:
    identical spikes, registers, and counts both per (layer, step) over the batch and per
    (image, layer). Returns the engine's (state, by_step, by_image, spikes)."""
    if state is None:
        state = net.zero_state(len(inputs))
    mine = engine.run(net, inputs, state.copy(), trace=True)
    ref = run_reference(net, np.asarray(inputs, np.int64), state.copy())
    st, c, ci, s = mine
    st2, c2, ci2, s2 = ref
    assert np.array_equal(s, s2), "spikes differ"
    for r in range(st.shape[1]):
        assert np.array_equal(st[:, r], st2[:, r]), f"register {r} differs"
    for name, a, b in (("per layer and step", c, c2), ("per image and layer", ci, ci2)):
        diff = [k for k, i in ACTION_INDEX.items() if not np.array_equal(a[..., i], b[..., i])]
        assert not diff, f"counts {name} differ: {diff}"
    # the readout-only run (one reused register buffer per thread, what simulate uses):
    # the same readout registers, counts and spikes, and the initial registers left alone
    given = state.copy()
    ro, c3, ci3, s3 = engine.run(net, inputs, given, trace=True, readout_only=True)
    assert np.array_equal(ro, st[:, :, net.layer_slice(net.layers - 1)]), "readout-only differs"
    assert np.array_equal(c3, c) and np.array_equal(ci3, ci) and np.array_equal(s3, s)
    assert np.array_equal(given, state), "readout-only run wrote its initial registers"
    if not state.any():  # no initial registers given: zeros
        ro0, c4, _, _ = engine.run(net, inputs, readout_only=True)
        assert np.array_equal(ro0, ro) and np.array_equal(c4, c)
    return mine


@st.composite
def small_networks(draw):
    """(graph, rng): a random conv (strided, padded, dilated, grouped) → optional residual
    block → optional average pool + conv → dense network on a small image."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    c0, hw = draw(st.integers(1, 2)), draw(st.integers(4, 7))
    nodes = {"x": Input("x", (), (c0, hw, hw))}

    def conv(name, src, cin, cout, k, s, p, d, groups, in_hw):
        out = (in_hw + 2 * p - ((k - 1) * d + 1)) // s + 1
        assume(out >= 1)
        nodes[name] = Conv(name, (src,), (cout, out, out),
                           weight=rng.normal(0, 0.6, (cout, cin // groups, k, k)),
                           bias=rng.normal(0, 0.1, cout), stride=(s, s), pads=(p,) * 4,
                           dilation=(d, d), groups=groups)
        return out

    g1 = draw(st.sampled_from([1, c0]))
    c1 = g1 * draw(st.integers(1, 3))
    hw1 = conv("c1", "x", c0, c1, draw(st.integers(1, 3)), draw(st.integers(1, 2)),
               draw(st.integers(0, 1)), draw(st.integers(1, 2)), g1, hw)
    nodes["r1"] = Relu("r1", ("c1",), nodes["c1"].shape)
    last, last_c, last_hw = "r1", c1, hw1
    if draw(st.booleans()):  # residual block: conv keeping the shape, + identity
        conv("c2", "r1", c1, c1, 3, 1, 1, 1, 1, hw1)
        nodes["a2"] = Add("a2", ("c2", "r1"), nodes["c2"].shape)
        nodes["r2"] = Relu("r2", ("a2",), nodes["c2"].shape)
        last = "r2"
    if draw(st.booleans()) and last_hw >= 2:  # average pool folded into the next conv
        nodes["p3"] = AvgPool("p3", (last,), (last_c, last_hw // 2, last_hw // 2), kernel=(2, 2),
                              stride=(2, 2))
        c3 = draw(st.integers(1, 3))
        last_hw = conv("c3", "p3", last_c, c3, draw(st.integers(1, 2)), 1,
                       draw(st.integers(0, 1)), 1, 1, last_hw // 2)
        nodes["r3"] = Relu("r3", ("c3",), nodes["c3"].shape)
        last, last_c = "r3", c3
    n_in = int(np.prod(nodes[last].shape))
    nodes["f"] = Reshape("f", (last,), (n_in,))
    n_out = draw(st.integers(2, 5))
    nodes["d"] = Dense("d", ("f",), (n_out,), weight=rng.normal(0, 0.5, (n_out, n_in)),
                       bias=rng.normal(0, 0.1, n_out))
    return Graph("random", "random", nodes, "x", "d"), rng
