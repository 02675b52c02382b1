"""What a researcher's own PyTorch models export, rebuilt with onnx.helper (no torch needed):
ceil_mode pools, x.mean((2, 3)) (ReduceMean), nn.ZeroPad2d (Pad), ReLU after a flatten, a
pool after a conv; each against onnxruntime, through the projection normal form, and the
engine against the dense reference. Also the messages for the data mistakes a new user makes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from neurosim import ann
from neurosim.calibrate import calibrate
from neurosim.core.network import CONV
from neurosim.counts import ACTION_INDEX
from neurosim.cli import main
from neurosim.core.tsa import encode_input, initial_state, quantize_sws
from neurosim.data import Dataset, check_scale, load_calibration, load_data
from neurosim.errors import UserError
from neurosim.graph import populations
from neurosim.onnx_import import load_onnx
from neurosim.projection import ConvMap, chain_apply, normal_form
from neurosim.schemes.sws import convert

from engine_cases import LOIHI, assert_engine_matches_reference
from onnx_builders import model
from test_import import assert_close_to_ort, ort_run

RNG = np.random.default_rng(0)


def _save(tmp_path: Path, m: onnx.ModelProto, name: str = "m.onnx") -> Path:
    onnx.checker.check_model(m)
    path = tmp_path / name
    onnx.save(m, str(path))
    return path


def _agrees(tmp_path, m, in_shape, n=5):
    path = _save(tmp_path, m)
    g = load_onnx(path)
    x = RNG.uniform(-1, 1, (n,) + tuple(in_shape))
    ours, _ = ann.run(g, x)
    assert_close_to_ort(ours, ort_run(path, x))
    return g


def _normal_forms_exact(g):
    for pop in populations(g):
        for proj in pop.projections:
            m = normal_form(g, proj, pop)
            x = RNG.normal(0, 1, (2,) + g.nodes[proj.source].shape)
            np.testing.assert_allclose(m.apply(x), chain_apply(g, proj, x), atol=1e-12)


def _conv(name, x, cin, cout, k, out, **attrs):
    w = (f"{name}_W", RNG.normal(0, 0.5, (cout, cin // attrs.get("group", 1), k, k)))
    b = (f"{name}_B", RNG.normal(0, 0.1, cout))
    return helper.make_node("Conv", [x, w[0], b[0]], [out], name=name, kernel_shape=[k, k],
                            **attrs), [w, b]


# ---- ceil_mode pools -----------------------------------------------------------------------

CEIL_CASES = [  # op, kernel, stride, pads, count_include_pad, size
    ("MaxPool", 2, 2, 0, 0, 7), ("MaxPool", 3, 2, 0, 0, 8), ("MaxPool", 3, 2, 1, 0, 8),
    ("AveragePool", 2, 2, 0, 0, 7), ("AveragePool", 3, 2, 1, 0, 6),
    ("AveragePool", 3, 2, 1, 1, 6), ("AveragePool", 2, 3, 1, 1, 8),
    ("AveragePool", 3, 2, 0, 1, 8), ("AveragePool", 3, 3, 1, 1, 7),
]


@pytest.mark.parametrize("op, k, s, p, cip, hw", CEIL_CASES)
def test_ceil_mode_pools_agree_with_onnxruntime(tmp_path, op, k, s, p, cip, hw):
    """PyTorch's ceil_mode=True (GoogLeNet, SqueezeNet): the last window overhangs the input;
    the overhang is never counted, explicit padding is with count_include_pad."""
    attrs = dict(kernel_shape=[k, k], strides=[s, s], pads=[p] * 4, ceil_mode=1)
    if op == "AveragePool":
        attrs["count_include_pad"] = cip
    conv, inits = _conv("conv", "x", 2, 3, 1, "c")
    nodes = [conv, helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node(op, ["r"], ["p"], name="pool", **attrs)]
    conv2, inits2 = _conv("conv2", "p", 3, 2, 2, "c2", pads=[1, 1, 1, 1])
    nodes += [conv2, helper.make_node("Flatten", ["c2"], ["y"], name="flat")]
    g = _agrees(tmp_path, model(nodes, [("x", ("N", 2, hw, hw))], "y", inits + inits2,
                                out_shape=("N", "F")), (2, hw, hw))
    out = -(-(hw + 2 * p - k) // s) + 1  # PyTorch: ceil, less a window starting in the padding
    out -= (out - 1) * s >= hw + p
    assert g.nodes["pool"].shape == (3, out, out)
    _normal_forms_exact(g)


# ---- ReduceMean, Pad -----------------------------------------------------------------------

@pytest.mark.parametrize("opset, keepdims, axes", [(13, 0, [2, 3]), (13, 1, [-2, -1]),
                                                   (18, 0, [2, 3]), (18, 1, [3, 2])])
def test_reduce_mean_over_space_is_a_global_average_pool(tmp_path, opset, keepdims, axes):
    """x.mean((2, 3)), and AdaptiveAvgPool2d(1) as the dynamo exporter writes it."""
    conv, inits = _conv("conv", "x", 1, 4, 3, "c")
    if opset >= 18:
        mean = helper.make_node("ReduceMean", ["r", "axes"], ["m"], name="mean", keepdims=keepdims)
        inits.append(("axes", np.array(axes)))
    else:
        mean = helper.make_node("ReduceMean", ["r"], ["m"], name="mean", keepdims=keepdims,
                                axes=axes)
    nodes = [conv, helper.make_node("Relu", ["c"], ["r"], name="relu"), mean]
    if keepdims:
        nodes.append(helper.make_node("Flatten", ["m"], ["f"], name="flat"))
    w = ("W", RNG.normal(0, 1, (4, 10)))
    nodes.append(helper.make_node("MatMul", ["f" if keepdims else "m", "W"], ["y"], name="mm"))
    m = model(nodes, [("x", ("N", 1, 8, 8))], "y", inits + [w], opset=opset)
    if opset >= 18:  # the int64 axes initializer: model() writes float32 initializers
        m.graph.initializer[-2].CopyFrom(onnx.numpy_helper.from_array(np.array(axes), "axes"))
    g = _agrees(tmp_path, m, (1, 8, 8))
    assert [n.op for n in g.nodes.values()].count("avgpool") == 1
    # a 1×8×8 model with 10 outputs runs on the bundled digits: end to end, both precisions
    assert main(["run", str(tmp_path / "m.onnx"), "--limit", "3", "--precision", "both",
                 "--coding", "sws", "--coding", "rate:T=8"]) == 0


def test_reduce_mean_over_other_axes_is_refused(tmp_path):
    m = model([helper.make_node("ReduceMean", ["x"], ["y"], name="chanmean", axes=[1],
                                keepdims=0)], [("x", ("N", 3, 4, 4))], "y", out_shape=("N", 4, 4))
    with pytest.raises(UserError, match=r"'chanmean' \(ReduceMean\).*spatial axes \[2, 3\].*"
                                        r"found axes \[1\]"):
        load_onnx(_save(tmp_path, m))


def _pad_model(opset, pads=(0, 0, 1, 2, 0, 0, 2, 1), mode="constant", then="Conv"):
    if opset < 11:
        pad = helper.make_node("Pad", ["x"], ["p"], name="pad", pads=list(pads), mode=mode)
        inits = []
    elif opset >= 18:  # pads for the listed axes only
        pad = helper.make_node("Pad", ["x", "pads", "", "axes"], ["p"], name="pad", mode=mode)
        inits = [("pads", np.array([pads[2], pads[3], pads[6], pads[7]])), ("axes", np.array([2, 3]))]
    else:
        pad = helper.make_node("Pad", ["x", "pads"], ["p"], name="pad", mode=mode)
        inits = [("pads", np.array(pads))]
    if then == "Conv":
        nxt, more = _conv("conv", "p", 2, 3, 3, "c", pads=[1, 0, 0, 1])
    else:
        nxt, more = helper.make_node("Relu", ["p"], ["c"], name="relu"), []
    nodes = [pad, nxt, helper.make_node("Flatten", ["c"], ["y"], name="flat")]
    m = model(nodes, [("x", ("N", 2, 6, 6))], "y", inits + more, out_shape=("N", "F"), opset=opset)
    for t in m.graph.initializer:  # pads and axes are int64
        if t.name in ("pads", "axes"):
            arr = dict(inits)[t.name]
            t.CopyFrom(onnx.numpy_helper.from_array(np.asarray(arr, np.int64), t.name))
    return m


@pytest.mark.parametrize("opset", [10, 13, 18])
def test_zero_pad_folds_into_the_next_conv(tmp_path, opset):
    """nn.ZeroPad2d / F.pad: the Pad becomes part of the Conv's own padding."""
    g = _agrees(tmp_path, _pad_model(opset), (2, 6, 6))
    assert [n.op for n in g.nodes.values()] == ["input", "conv", "reshape"]
    assert g.nodes["conv"].pads == (1 + 1, 2 + 0, 2 + 0, 1 + 1)


@pytest.mark.parametrize("kw, words", [
    (dict(then="Relu"), ["'relu' (Relu)", "Pad", "directly before a Conv"]),
    (dict(mode="reflect"), ["'pad' (Pad)", "zero padding", "'reflect'"]),
    (dict(pads=(0, 1, 0, 0, 0, 1, 0, 0)), ["'pad' (Pad)", "spatial axes only"]),
])
def test_pads_a_conv_cannot_absorb_are_refused(tmp_path, kw, words):
    with pytest.raises(UserError) as exc:
        load_onnx(_save(tmp_path, _pad_model(13, **kw)))
    for w in words:
        assert w in str(exc.value), str(exc.value)


@pytest.mark.parametrize("pool_pads, ceil", [((0, 0, 1, 1), 0), ((0, 0, 0, 0), 1),
                                             ((0, 0, 0, 0), 0)])
def test_zero_pad_before_average_pool_is_counted_padding(tmp_path, pool_pads, ceil):
    """Opset 9 writes AvgPool2d(padding=1, count_include_pad=True, ceil_mode=True) as a zero
    Pad (counted) and an AveragePool whose own bottom/right pads are the ceil overhang (not
    counted)."""
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Pad", ["r"], ["p"], name="pad", pads=[0, 0, 1, 1, 0, 0, 1, 1]),
             helper.make_node("AveragePool", ["p"], ["a"], name="pool", kernel_shape=[3, 3],
                              strides=[2, 2], pads=list(pool_pads),
                              **({"ceil_mode": 1} if ceil else {})),
             helper.make_node("Flatten", ["a"], ["y"], name="flat")]
    m = model(nodes, [("x", ("N", 2, 7, 7))], "y", out_shape=("N", "F"),
              opset=9 if not ceil else 10)
    g = _agrees(tmp_path, m, (2, 7, 7))  # opset 10: Pad's attributes, AveragePool's ceil_mode
    _normal_forms_exact(g)
    bad = model([nodes[0], nodes[1],
                 helper.make_node("AveragePool", ["p"], ["a"], name="pool", kernel_shape=[3, 3],
                                  pads=[1, 1, 0, 0]), nodes[3]],
                [("x", ("N", 2, 7, 7))], "y", out_shape=("N", "F"), opset=9)
    with pytest.raises(UserError, match=r"'pool'.*zero Pad.*count_include_pad=0"):
        load_onnx(_save(tmp_path, bad, "bad.onnx"))


def test_reshape_naming_a_static_batch_of_one(tmp_path):
    """x.view(x.size(0), -1) exported without dynamic axes: Reshape to [1, -1] on an input of
    batch 1 is the flatten, and the graph runs on any batch."""
    conv, inits = _conv("conv", "x", 1, 2, 3, "c")
    nodes = [conv, helper.make_node("Reshape", ["c", "shape"], ["f"], name="view"),
             helper.make_node("MatMul", ["f", "W"], ["y"], name="mm")]
    inits += [("W", RNG.normal(0, 1, (72, 10)))]
    m = model(nodes, [("x", (1, 1, 8, 8))], "y", inits, out_shape=(1, 10))
    m.graph.initializer.append(onnx.numpy_helper.from_array(np.array([1, -1], np.int64), "shape"))
    path = _save(tmp_path, m)
    g = load_onnx(path)
    x = RNG.uniform(0, 1, (3, 1, 8, 8))
    ours, _ = ann.run(g, x)
    for i in range(3):  # onnxruntime takes the fixed batch of one only
        assert_close_to_ort(ours[i:i + 1], ort_run(path, x[i:i + 1]))


@pytest.mark.parametrize("idiom", ["squeeze_axes", "squeeze_all", "gather", "unsqueeze"])
def test_dropping_unit_axes_after_a_global_pool_is_a_reshape(tmp_path, idiom):
    """x.squeeze(-1).squeeze(-1), x.squeeze(), x[:, :, 0, 0] after AdaptiveAvgPool2d(1)."""
    conv, inits = _conv("conv", "x", 1, 4, 3, "c")
    nodes = [conv, helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap")]
    if idiom == "squeeze_axes":
        nodes.append(helper.make_node("Squeeze", ["g", "ax"], ["s"], name="sq"))
        inits.append(("ax", np.array([-1, 2])))
    elif idiom == "squeeze_all":
        nodes.append(helper.make_node("Squeeze", ["g"], ["s"], name="sq"))
    elif idiom == "gather":
        nodes += [helper.make_node("Gather", ["g", "i0"], ["s0"], name="pick", axis=3),
                  helper.make_node("Gather", ["s0", "i0"], ["s"], name="pick2", axis=2)]
        inits.append(("i0", np.array(0)))
    else:  # squeeze to (C,), then unsqueeze back to (C, 1) and flatten
        nodes += [helper.make_node("Squeeze", ["g"], ["s1"], name="sq"),
                  helper.make_node("Unsqueeze", ["s1", "ax"], ["s2"], name="unsq"),
                  helper.make_node("Flatten", ["s2"], ["s"], name="flat")]
        inits.append(("ax", np.array([2])))
    nodes.append(helper.make_node("MatMul", ["s", "W"], ["y"], name="mm"))
    m = model(nodes, [("x", ("N", 1, 8, 8))], "y", inits + [("W", RNG.normal(0, 1, (4, 10)))])
    for t in m.graph.initializer:  # axes and indices are int64
        if t.name in ("ax", "i0"):
            t.CopyFrom(onnx.numpy_helper.from_array(dict(inits)[t.name].astype(np.int64), t.name))
    g = _agrees(tmp_path, m, (1, 8, 8))
    assert [n.op for n in g.nodes.values()].count("reshape") >= 1
    bad = model([helper.make_node("Squeeze", ["x", "ax"], ["y"], name="sq")],
                [("x", ("N", 3, 1, 4))], "y", [("ax", np.array([1]))], out_shape=("N", 1, 4))
    bad.graph.initializer[0].CopyFrom(onnx.numpy_helper.from_array(np.array([1]), "ax"))
    with pytest.raises(UserError, match=r"'sq' \(Squeeze\): expected axes \[1\] of size 1"):
        load_onnx(_save(tmp_path, bad, "bad.onnx"))


# ---- ReLU after a flatten; a pool after a conv ---------------------------------------------

def _digits_net(tmp_path, middle):
    """1×8×8 → Conv(4, 3×3, pad 1) → ``middle`` (nodes from 'c' to 'h') → Gemm(10)."""
    conv, inits = _conv("conv", "x", 1, 4, 3, "c", pads=[1, 1, 1, 1])
    nodes, n_in = middle()
    w = ("G_W", RNG.normal(0, 0.3, (10, n_in)))
    b = ("G_B", RNG.normal(0, 0.1, 10))
    gemm = helper.make_node("Gemm", ["h", w[0], b[0]], ["y"], name="gemm", transB=1)
    return _agrees(tmp_path, model([conv] + nodes + [gemm], [("x", ("N", 1, 8, 8))], "y",
                                   inits + [w, b]), (1, 8, 8))


def test_relu_after_flatten_keeps_the_conv_shape(tmp_path):
    """conv → flatten → ReLU used to give a flat population fed by a 3-D conv map, which
    crashed the simulators (a traceback, exit 1); the ReLU now sits before the flatten."""
    g = _digits_net(tmp_path, lambda: ([
        helper.make_node("Flatten", ["c"], ["f"], name="flat"),
        helper.make_node("Relu", ["f"], ["h"], name="relu")], 4 * 8 * 8))
    hidden = [p for p in populations(g) if p.kind == "hidden"]
    assert [(p.name, p.shape) for p in hidden] == [("relu", (4, 8, 8))]
    g2 = _digits_net(tmp_path, lambda: ([  # a ReLU after a flattened ReLU changes nothing
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flat"),
        helper.make_node("Relu", ["f"], ["h"], name="relu2")], 4 * 8 * 8))
    assert [p.name for p in populations(g2) if p.kind == "hidden"] == ["relu"]
    _normal_forms_exact(g)
    assert main(["run", str(tmp_path / "m.onnx"), "--limit", "3", "--precision", "both",
                 "--coding", "sws", "--coding", "ttfs:T=8"]) == 0


def test_maxpool_before_relu_is_moved_after_it(tmp_path):
    """conv → MaxPool → ReLU → ReLU (pool before the ReLU, a ReLU twice): ReLU commutes with
    max, so the conv's ReLU neurons feed the pool population, as for conv → ReLU → MaxPool;
    a ReLU of a ReLU (or of a pool of one) is dropped."""
    g = _digits_net(tmp_path, lambda: ([
        helper.make_node("MaxPool", ["c"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Relu", ["p"], ["r"], name="relu"),
        helper.make_node("Relu", ["r"], ["r2"], name="relu2"),
        helper.make_node("Flatten", ["r2"], ["h"], name="flat")], 4 * 4 * 4))
    assert [(p.name, p.kind, p.shape) for p in populations(g)][1:3] == [
        ("relu", "hidden", (4, 8, 8)), ("pool", "maxpool", (4, 4, 4))]
    assert main(["run", str(tmp_path / "m.onnx"), "--limit", "3", "--precision", "float"]) == 0
    # 'all' runs what can run (SWS's float simulator gates MaxPool) and lists the others; a
    # probe's 'run --coding all' stopped at the first coding that refused
    import neurosim

    res = neurosim.run(str(tmp_path / "m.onnx"), codings=["all"], limit=3, precision="float",
                       progress=False)
    assert [r["coding"] for r in res.runs] == ["sws"]
    assert {n["coding"] for n in res.profiles[0].not_run} == {"phase", "rate", "tsc", "ttfs"}
    with pytest.raises(UserError, match="MaxPool"):
        neurosim.run(str(tmp_path / "m.onnx"), codings=["sws", "rate"], limit=3,
                     precision="float", progress=False)


@pytest.mark.parametrize("k, s, d, groups, pk, ps", [(3, 1, 1, 1, 2, 2), (3, 2, 1, 1, 2, 1),
                                                     (2, 1, 2, 4, 3, 2), (1, 1, 1, 2, 2, 2)])
def test_pool_after_conv_folds_into_one_conv(tmp_path, k, s, d, groups, pk, ps):
    """Conv → AvgPool → ReLU is one convolution (kernel smeared by the box, strides
    multiplied), not a dense map: a dense map counted a synop for every target neuron per
    event (33× the dynamic energy of a 3×32×32 CNN) and took gigabytes to build."""
    def middle():
        conv2, inits = _conv("conv2", "r0", 4, 4, k, "c2", strides=[s, s], dilations=[d, d],
                             group=groups, pads=[1, 1, 1, 1])
        oh = (8 + 2 - (k - 1) * d - 1) // s + 1
        ph = (oh - pk) // ps + 1
        middle.inits = inits
        return [helper.make_node("Relu", ["c"], ["r0"], name="relu0"), conv2,
                helper.make_node("AveragePool", ["c2"], ["p"], name="pool",
                                 kernel_shape=[pk, pk], strides=[ps, ps]),
                helper.make_node("Relu", ["p"], ["r"], name="relu"),
                helper.make_node("Flatten", ["r"], ["h"], name="flat")], 4 * ph * ph
    conv, inits = _conv("conv", "x", 1, 4, 3, "c", pads=[1, 1, 1, 1])
    nodes, n_in = middle()
    w, b = ("G_W", RNG.normal(0, 0.3, (10, n_in))), ("G_B", RNG.normal(0, 0.1, 10))
    nodes = [conv] + nodes + [helper.make_node("Gemm", ["h", "G_W", "G_B"], ["y"], name="gemm",
                                               transB=1)]
    g = _agrees(tmp_path, model(nodes, [("x", ("N", 1, 8, 8))], "y",
                                inits + middle.inits + [w, b]), (1, 8, 8))
    pop = next(p for p in populations(g) if p.name == "relu")
    assert isinstance(normal_form(g, pop.projections[0], pop), ConvMap)
    _normal_forms_exact(g)
    # the composite kernel on the event engine, bit for bit against the dense reference
    x = RNG.uniform(0, 1, (3, 1, 8, 8))
    snn = convert(g, calibrate(g, x), dict(Tc=4, Ts=1, beta=2.0, threshold_ratio=0.5,
                                           negative_spikes=True, relu_counterpart=True,
                                           encoder="current"))
    net = quantize_sws(snn, dataclasses.replace(LOIHI, allow_overflow=True))
    drive = encode_input(net, x)
    assert_engine_matches_reference(net, drive, initial_state(net, drive))


def test_batchnorm_on_the_input_says_to_normalise_the_data(tmp_path):
    c = 2
    inits = [("g", np.ones(c)), ("b", np.zeros(c)), ("m", np.full(c, 0.5)), ("v", np.ones(c))]
    conv, more = _conv("conv", "n", c, 3, 3, "c")
    nodes = [helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["n"], name="bn"),
             conv, helper.make_node("Flatten", ["c"], ["y"], name="flat")]
    m = model(nodes, [("x", ("N", c, 5, 5))], "y", inits + more, out_shape=("N", "F"))
    with pytest.raises(UserError, match=r"'bn'.*after 'x' \(input\); normalise the data"):
        load_onnx(_save(tmp_path, m))


# ---- data mistakes -------------------------------------------------------------------------

def _npz(tmp_path, name="d.npz", **arrays) -> str:
    np.savez(tmp_path / name, **arrays)
    return str(tmp_path / name)


@pytest.mark.parametrize("x_shape, words", [
    ((4, 16, 16, 3), ["(4, 16, 16, 3)", "channels-last", "x.transpose(0, 3, 1, 2)"]),
    ((4, 768), ["(4, 768)", "x.reshape(-1, 3, 16, 16)"]),
])
def test_wrongly_shaped_images_say_how_to_fix_them(tmp_path, x_shape, words):
    path = _npz(tmp_path, x=np.zeros(x_shape, np.float32), y=np.zeros(4, np.int64))
    with pytest.raises(UserError) as exc:
        load_data(path, (3, 16, 16))
    for w in words:
        assert w in str(exc.value), str(exc.value)
    with pytest.raises(UserError, match="x.transpose" if "last" in words[1] else "x.reshape"):
        load_calibration(path, (3, 16, 16))


def test_labels_stored_as_whole_floats_are_accepted_and_others_explained(tmp_path):
    x = np.ones((3, 1, 8, 8), np.float32)
    ds = load_data(_npz(tmp_path, x=x, y=np.array([0.0, 3.0, 9.0], np.float32)), (1, 8, 8))
    assert ds.y.dtype == np.int64 and list(ds.y) == [0, 3, 9]
    cases = [(np.array([0.5, 1, 2]), ["'y'", "float64", "integer", "whole numbers", "0.5"]),
             (np.eye(3), ["'y'", "(3, 3)", "one-hot", "y.argmax(1)"]),
             (np.array([[1], [2], [3]]), ["'y'", "(3, 1)", "y.ravel()"])]
    for y, words in cases:
        with pytest.raises(UserError) as exc:
            load_data(_npz(tmp_path, x=x, y=y), (1, 8, 8))
        for w in words:
            assert w in str(exc.value), str(exc.value)


def test_test_and_calibration_images_scaled_differently_are_refused():
    x = RNG.uniform(0, 1, (4, 1, 8, 8))
    calib = Dataset("c", "calib.npz", x, np.full(4, -1))
    check_scale(Dataset("d", "data.npz", x * 0.9, np.zeros(4, np.int64)), calib)  # fine
    raw = Dataset("d", "data.npz", np.round(x * 255), np.zeros(4, np.int64))
    with pytest.raises(UserError, match=r"--data data.npz holds inputs in .*\.\.2\d\d but "
                                        r"--calib calib.npz in .*\.\.0\.\d+.*scaled differently"):
        check_scale(raw, calib)


def test_dense_maps_are_probed_in_batches_and_refused_when_huge(tmp_path, monkeypatch):
    """A chain that does not fold (a pool with uncounted padding before a padded conv) is
    multiplied out a few basis vectors at a time; beyond MAX_DENSE_ENTRIES it is a UserError
    naming the chain, not gigabytes of memory."""
    from neurosim import projection

    conv, inits = _conv("conv", "r", 2, 3, 3, "c", pads=[1, 1, 1, 1])
    nodes = [helper.make_node("Relu", ["x"], ["r0"], name="relu0"),
             helper.make_node("AveragePool", ["r0"], ["r"], name="pool", kernel_shape=[3, 3],
                              strides=[1, 1], pads=[1, 1, 1, 1]), conv,
             helper.make_node("Relu", ["c"], ["h"], name="relu"),
             helper.make_node("Flatten", ["h"], ["y"], name="flat")]  # a flattened readout
    g = _agrees(tmp_path, model(nodes, [("x", ("N", 2, 6, 6))], "y", inits,
                                out_shape=("N", "F")), (2, 6, 6))
    monkeypatch.setattr(projection, "PROBE_BATCH", 5)
    _normal_forms_exact(g)
    monkeypatch.setattr(projection, "MAX_DENSE_ENTRIES", 1000)
    pop = next(p for p in populations(g) if p.name == "relu")
    with pytest.raises(UserError, match=r"relu0 → pool \(avgpool\) → conv \(conv\) does not "
                                        r"fold.*72 × 108 weights"):
        normal_form(g, pop.projections[0], pop)


def test_a_chain_that_does_not_fold_counts_its_connections_not_its_structural_zeros(tmp_path):
    """A pool with uncounted padding before a padded conv is multiplied out into a dense map:
    each source neuron reaches at most 3 × 5 × 5 of the 108 targets. A spike's synops are its
    non-zero entries (the synapses a chip would store), on the engine and the reference."""
    conv, inits = _conv("conv", "r", 2, 3, 3, "c", pads=[1, 1, 1, 1])
    nodes = [helper.make_node("Relu", ["x"], ["r0"], name="relu0"),
             helper.make_node("AveragePool", ["r0"], ["r"], name="pool", kernel_shape=[3, 3],
                              strides=[1, 1], pads=[1, 1, 1, 1]), conv,
             helper.make_node("Relu", ["c"], ["h"], name="relu"),
             helper.make_node("Flatten", ["h"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "G_W"], ["y"], name="gemm", transB=1)]
    g = _agrees(tmp_path, model(nodes, [("x", ("N", 2, 6, 6))], "y",
                                inits + [("G_W", RNG.normal(0, 1, (4, 108)))]), (2, 6, 6))
    x = RNG.uniform(0, 1, (3, 2, 6, 6))
    snn = convert(g, calibrate(g, x), dict(Tc=4, Ts=1, beta=2.0, threshold_ratio=0.5,
                                           negative_spikes=True, relu_counterpart=True,
                                           encoder="current"))
    net = quantize_sws(snn, dataclasses.replace(LOIHI, allow_overflow=True))
    probed = [p for p in range(len(net.p_src))
              if net.p_kind[p] != CONV and net.size[net.p_dst[p]] == 108]
    assert len(probed) == 1
    p = probed[0]
    fan = net.fanout[net.p_foff[p]:net.p_foff[p] + net.size[net.p_src[p]]]
    assert fan.max() <= 3 * 5 * 5 < 108 and fan.min() >= 3 * 2 * 2
    drive = encode_input(net, x)
    _, by_step, _, spikes = assert_engine_matches_reference(net, drive, initial_state(net, drive))
    # the synops into that layer are the source's events weighted by their fan-out
    src, dst = net.p_src[p], net.p_dst[p]
    events = np.abs(spikes[:, :, net.layer_slice(src)]).astype(np.int64)
    others = [q for q in range(len(net.p_src)) if net.p_dst[q] == dst and q != p]
    assert not others and not net.p_delay[p]
    assert by_step[dst, :, ACTION_INDEX["synop"]].sum() == (events @ fan).sum() > 0


@pytest.mark.parametrize("op, axis, words", [
    ("Softmax", 0, ["'sm' (Softmax)", "axis 0", "changes the argmax"]),
    ("LogSoftmax", 1, None),
])
def test_trailing_softmax_over_the_classes_is_dropped(tmp_path, op, axis, words):
    w = ("W", RNG.normal(0, 1, (6, 10)))
    m = model([helper.make_node("MatMul", ["x", "W"], ["z"], name="mm"),
               helper.make_node(op, ["z"], ["y"], name="sm", axis=axis)],
              [("x", ("N", 6))], "y", [w])
    if words is None:
        g = load_onnx(_save(tmp_path, m))
        assert [n.op for n in g.nodes.values()] == ["input", "dense"]
        return
    with pytest.raises(UserError) as exc:
        load_onnx(_save(tmp_path, m))
    for word in words:
        assert word in str(exc.value), str(exc.value)


@pytest.mark.parametrize("opset, bounds, ok", [(13, (0.0, None), True), (9, (0.0, None), True),
                                               (13, (0.0, 6.0), False), (9, (-1.0, 1.0), False)])
def test_clip_at_zero_is_a_relu_and_other_bounds_are_refused(tmp_path, opset, bounds, ok):
    """torch.clamp(x, min=0) exports Clip(min=0): a ReLU; ReLU6 / Hardtanh are refused."""
    lo, hi = bounds
    if opset < 11:
        clip = helper.make_node("Clip", ["c"], ["r"], name="clip", min=lo,
                                **({} if hi is None else {"max": hi}))
        extra = []
    else:
        clip = helper.make_node("Clip", ["c", "lo"] + ([] if hi is None else ["hi"]), ["r"],
                                name="clip")
        extra = [("lo", np.array(lo))] + ([] if hi is None else [("hi", np.array(hi))])
    conv, inits = _conv("conv", "x", 1, 2, 3, "c")
    nodes = [conv, clip, helper.make_node("Flatten", ["r"], ["y"], name="flat")]
    m = model(nodes, [("x", ("N", 1, 6, 6))], "y", inits + extra, out_shape=("N", "F"),
              opset=opset)
    if ok:
        g = _agrees(tmp_path, m, (1, 6, 6))
        assert [n.op for n in g.nodes.values()] == ["input", "conv", "relu", "reshape"]
    else:
        with pytest.raises(UserError, match=rf"'clip' \(Clip\): found bounds min={lo:g}, "
                                            rf"max={hi:g}; use ReLU"):
            load_onnx(_save(tmp_path, m))



@pytest.mark.parametrize("case", ["separable", "strided_dilated", "grouped", "pool_between"])
def test_convs_without_relu_between_fold_into_one_conv(tmp_path, case):
    """Two convs with no ReLU between (Xception's depthwise → pointwise, a factorised 3×3)
    are one convolution when the second is unpadded: exact, with the shared kernel a core
    stores, not a dense map (which the engine counts a synop per target neuron for)."""
    c1 = {"separable": dict(cin=4, cout=4, k=3, pads=[1] * 4, group=4),
          "strided_dilated": dict(cin=4, cout=3, k=3, pads=[1] * 4, strides=[2, 2]),
          "grouped": dict(cin=4, cout=4, k=2, pads=[0, 0, 1, 1], group=2),
          "pool_between": dict(cin=4, cout=4, k=3, pads=[1] * 4)}[case]
    c2 = {"separable": dict(cin=4, cout=6, k=1),
          "strided_dilated": dict(cin=3, cout=4, k=2, dilations=[2, 2]),
          "grouped": dict(cin=4, cout=6, k=2, group=2, strides=[2, 2]),
          "pool_between": dict(cin=4, cout=4, k=2)}[case]
    a1 = {k: v for k, v in c1.items() if k not in ("cin", "cout", "k")}
    a2 = {k: v for k, v in c2.items() if k not in ("cin", "cout", "k")}
    conv0, inits = _conv("conv0", "x", 1, 4, 3, "c0", pads=[1] * 4)
    conv1, i1 = _conv("conv1", "r0", c1["cin"], c1["cout"], c1["k"], "c1", **a1)
    nodes = [conv0, helper.make_node("Relu", ["c0"], ["r0"], name="relu0"), conv1]
    mid = "c1"
    if case == "pool_between":
        nodes.append(helper.make_node("AveragePool", ["c1"], ["p1"], name="pool",
                                      kernel_shape=[2, 2], strides=[2, 2]))
        mid = "p1"
    conv2, i2 = _conv("conv2", mid, c2["cin"], c2["cout"], c2["k"], "c2", **a2)
    nodes += [conv2, helper.make_node("Relu", ["c2"], ["r"], name="relu"),
              helper.make_node("Flatten", ["r"], ["h"], name="flat")]
    path = _save(tmp_path, model(nodes, [("x", ("N", 1, 8, 8))], "h", inits + i1 + i2,
                                 out_shape=("N", "F")))
    g0 = load_onnx(path)
    n_in = int(np.prod(g0.nodes["relu"].shape))
    nodes[-1:] = [helper.make_node("Flatten", ["r"], ["h"], name="flat"),
                  helper.make_node("Gemm", ["h", "G_W", "G_B"], ["y"], name="gemm", transB=1)]
    more = [("G_W", RNG.normal(0, 0.3, (10, n_in))), ("G_B", RNG.normal(0, 0.1, 10))]
    g = _agrees(tmp_path, model(nodes, [("x", ("N", 1, 8, 8))], "y", inits + i1 + i2 + more),
                (1, 8, 8))
    pop = next(p for p in populations(g) if p.name == "relu")
    m = normal_form(g, pop.projections[0], pop)
    assert isinstance(m, ConvMap)
    if case == "separable":
        assert m.groups == 1 and m.weight.shape == (6, 4, 3, 3)
    if case == "grouped":
        assert m.groups == 2
    _normal_forms_exact(g)
    x = RNG.uniform(0, 1, (3, 1, 8, 8))
    snn = convert(g, calibrate(g, x), dict(Tc=4, Ts=1, beta=2.0, threshold_ratio=0.5,
                                           negative_spikes=True, relu_counterpart=True,
                                           encoder="current"))
    net = quantize_sws(snn, dataclasses.replace(LOIHI, allow_overflow=True))
    drive = encode_input(net, x)
    assert_engine_matches_reference(net, drive, initial_state(net, drive))
