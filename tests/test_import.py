"""The importer and the float executor against onnxruntime, and the bad-input contract."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper

from neurosim import ann
from neurosim.errors import UserError
from neurosim.graph import populations
from neurosim.onnx_import import SUPPORTED_OPS, load_onnx
from onnx_builders import conv_model, model

FIXTURES = Path(__file__).parent / "fixtures"
MODELS = Path(__file__).parents[1] / "neurosim" / "models"
ALL_MODELS = sorted(FIXTURES.glob("*.onnx")) + sorted(MODELS.glob("*.onnx"))


def ort_run(path_or_model, x: np.ndarray) -> np.ndarray:
    src = path_or_model if isinstance(path_or_model, (str, Path)) else \
        path_or_model.SerializeToString()
    sess = ort.InferenceSession(str(src) if isinstance(src, Path) else src,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]


def ends_in_softmax(path: Path) -> str | None:
    """'Softmax' or 'LogSoftmax' if the model ends in one (neurosim drops it), else None."""
    op = onnx.load(str(path)).graph.node[-1].op_type
    return op if op in ("Softmax", "LogSoftmax") else None


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def assert_close_to_ort(ours: np.ndarray, ref: np.ndarray, rel: float = 1e-4):
    scale = max(np.abs(ref).max(), 1e-12)
    err = np.abs(ours.reshape(ref.shape) - ref).max() / scale
    assert err <= rel, f"max abs diff {err:.2e} of the output scale (allowed {rel:.0e})"


@pytest.mark.parametrize("path", ALL_MODELS, ids=lambda p: p.stem)
def test_executor_agrees_with_onnxruntime(path):
    graph = load_onnx(path)
    x = np.random.default_rng(0).uniform(0, 1, (16,) + graph.input_shape)
    ours, _ = ann.run(graph, x)
    last = ends_in_softmax(path)
    if last:  # neurosim drops a trailing Softmax / LogSoftmax (argmax unchanged)
        ours = softmax(ours) if last == "Softmax" else np.log(softmax(ours))
    assert_close_to_ort(ours, ort_run(path, x))


def test_fixtures_cover_every_supported_op():
    used = {n.op_type for p in FIXTURES.glob("*.onnx") for n in onnx.load(str(p)).graph.node}
    assert set(SUPPORTED_OPS) <= used, f"no fixture uses {set(SUPPORTED_OPS) - used}"


def test_resnet_fixture_populations():
    """Identity and 1x1-projection shortcuts become two projections into one population."""
    g = load_onnx(FIXTURES / "resnet.onnx")
    pops = populations(g)
    assert [p.kind for p in pops] == ["input"] + ["hidden"] * 7 + ["readout"]
    two_in = [[q.describe(g) for q in p.projections] for p in pops if len(p.projections) == 2]
    assert two_in == [["conv", "identity"], ["conv", "conv"], ["conv", "identity"]]
    # the projection shortcut is a 1x1 stride-2 conv
    proj = [q for p in pops for q in p.projections if len(p.projections) == 2][3]
    conv = g.nodes[[n for n in proj.path if g.nodes[n].op == "conv"][0]]
    assert conv.weight.shape[2:] == (1, 1) and conv.stride == (2, 2)
    assert g.macs() > 0 and g.params() == sum(n.params() for n in g.nodes.values())


def test_batchnorm_folding_is_exact():
    m = conv_model(3, 4, 6, 3, pads=(1, 1, 1, 1), bn=True, seed=5)
    path_free = load_onnx_model(m)
    conv = next(n for n in path_free.nodes.values() if n.op == "conv")
    assert not any(n.op == "batchnorm" for n in path_free.nodes.values())
    init = {i.name: onnx.numpy_helper.to_array(i).astype(np.float64) for i in m.graph.initializer}
    s = init["g"] / np.sqrt(init["v"] + 1e-4)
    np.testing.assert_allclose(conv.weight, init["W"] * s[:, None, None, None], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(conv.bias, (init["B"] - init["m"]) * s + init["b"], rtol=1e-9, atol=1e-12)
    x = np.random.default_rng(1).normal(0, 1, (4, 3, 6, 6))
    assert_close_to_ort(ann.run(path_free, x)[0], ort_run(m, x), rel=1e-5)


def load_onnx_model(m: onnx.ModelProto):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        onnx.save(m, str(Path(d) / "m.onnx"))
        return load_onnx(Path(d) / "m.onnx")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cin_g=st.integers(1, 3), cout_g=st.integers(1, 3), groups=st.integers(1, 3),
       hw=st.integers(5, 9), k=st.integers(1, 3), sh=st.integers(1, 3), sw=st.integers(1, 3),
       pads=st.tuples(*[st.integers(0, 2)] * 4), dil=st.integers(1, 2), seed=st.integers(0, 99))
def test_conv_attributes_match_onnxruntime(cin_g, cout_g, groups, hw, k, sh, sw, pads, dil, seed):
    """Any stride, padding (asymmetric too), dilation and groups."""
    if (k - 1) * dil + 1 > hw + min(pads[0] + pads[2], pads[1] + pads[3]):
        return
    m = conv_model(cin_g * groups, cout_g * groups, hw, k, (sh, sw), pads, (dil, dil), groups, seed)
    g = load_onnx_model(m)
    x = np.random.default_rng(seed).normal(0, 1, (3,) + g.input_shape)
    assert_close_to_ort(ann.run(g, x)[0], ort_run(m, x), rel=1e-5)


# ---- bad input: UserError naming the problem ---------------------------------------------

def _save(tmp_path, m, name="bad.onnx") -> Path:
    p = tmp_path / name
    onnx.save(m, str(p))
    return p


def _mlp_nodes(op="Relu"):
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "W", "B"], ["h"], name="fc1", transB=1),
             helper.make_node(op, ["h"], ["y"], name="act1")]
    inits = [("W", np.ones((10, 16))), ("B", np.zeros(10))]
    return nodes, inits


def bad_not_onnx(tmp_path):
    p = tmp_path / "notes.onnx"
    p.write_text("this is a text file, not a model\n" * 20)
    return p, ["notes.onnx", "ONNX"]


def bad_truncated(tmp_path):
    data = (FIXTURES / "resnet.onnx").read_bytes()
    p = tmp_path / "cut.onnx"
    p.write_bytes(data[: len(data) // 2])
    return p, ["cut.onnx", "truncated"]


def bad_nan(tmp_path):
    nodes, inits = _mlp_nodes()
    w = np.ones((10, 16))
    w[3, 4] = np.nan
    return _save(tmp_path, model(nodes, [("x", ("N", 1, 4, 4))], "y", [("W", w), inits[1]])), \
        ["fc1", "NaN/Inf", "weight"]


def bad_inf_bias(tmp_path):
    nodes, inits = _mlp_nodes()
    b = np.zeros(10)
    b[0] = np.inf
    return _save(tmp_path, model(nodes, [("x", ("N", 1, 4, 4))], "y", [inits[0], ("B", b)])), \
        ["fc1", "NaN/Inf", "bias"]


def bad_two_inputs(tmp_path):
    nodes = [helper.make_node("Add", ["x", "z"], ["s"], name="join"),
             helper.make_node("Flatten", ["s"], ["y"], name="flat")]
    m = model(nodes, [("x", ("N", 1, 4, 4)), ("z", ("N", 1, 4, 4))], "y", out_shape=("N", 16))
    return _save(tmp_path, m), ["exactly one graph input", "found 2", "x, z"]


def bad_unsupported_op(tmp_path):
    nodes, inits = _mlp_nodes("Sigmoid")
    return _save(tmp_path, model(nodes, [("x", ("N", 1, 4, 4))], "y", inits)), \
        ["act1", "'Sigmoid'", "Supported: Conv", "Relu"]


def bad_missing_file(tmp_path):
    return tmp_path / "nowhere.onnx", ["nowhere.onnx", "not found"]


def bad_bn_not_after_conv(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu0"),
             helper.make_node("BatchNormalization", ["r", "g", "b", "m", "v"], ["bn"], name="bn0"),
             helper.make_node("Flatten", ["bn"], ["y"], name="flat")]
    inits = [(k, np.ones(1)) for k in "gbmv"]
    return _save(tmp_path, model(nodes, [("x", ("N", 1, 4, 4))], "y", inits, out_shape=("N", 16))), \
        ["bn0", "folded into the Conv/Gemm", "relu"]


def bad_symbolic_shape(tmp_path):
    nodes, inits = _mlp_nodes()
    return _save(tmp_path, model(nodes, [("x", ("N", 1, "H", 4))], "y", inits)), \
        ["static", "'H'"]


BAD = [bad_not_onnx, bad_truncated, bad_nan, bad_inf_bias, bad_two_inputs, bad_unsupported_op,
       bad_missing_file, bad_bn_not_after_conv, bad_symbolic_shape]


@pytest.mark.parametrize("make", BAD, ids=lambda f: f.__name__)
def test_bad_models_are_user_errors(make, tmp_path, capsys):
    from neurosim.cli import main

    path, words = make(tmp_path)
    with pytest.raises(UserError) as exc:
        load_onnx(path)
    for w in words:
        assert w in str(exc.value), f"message lacks {w!r}: {exc.value}"
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("neurosim: error: ") and "Traceback" not in err
    assert words[0] in err


def test_pytorch_view_flatten_chain_is_folded():
    """x.view(x.size(0), -1) exports Shape → Gather → (Squeeze → Unsqueeze → Cast) → Concat →
    Reshape: folded to one static Reshape (the fixture also runs against onnxruntime in
    test_executor_agrees_with_onnxruntime)."""
    g = load_onnx(FIXTURES / "view_flatten.onnx")
    assert [n.op for n in g.nodes.values()] == ["input", "conv", "relu", "reshape", "dense"]


def test_shape_ops_on_activations_and_leaky_relu_say_what_to_change():
    path = Path(tempfile.mkdtemp())
    gather = model([helper.make_node("Gather", ["x", "i"], ["y"], name="g", axis=1)],
                   [("x", ("N", 10))], "y", [("i", np.arange(3))])
    onnx.save(gather, path / "gather.onnx")
    with pytest.raises(UserError, match=r"'g' \(Gather\): found it selecting index \[0, 1, 2\] "
                                        r"of axis 1 \(size 10\) of the activation 'x'"):
        load_onnx(path / "gather.onnx")
    leaky = model([helper.make_node("LeakyRelu", ["x"], ["y"], name="lr", alpha=0.1)],
                  [("x", ("N", 10))], "y")
    onnx.save(leaky, path / "leaky.onnx")
    with pytest.raises(UserError, match="'lr'.*LeakyRelu.*retrain with ReLU"):
        load_onnx(path / "leaky.onnx")


@pytest.mark.parametrize("shape, per_channel", [((4,), False), ((4, 1), False),
                                               ((4, 1, 1), True), ((1, 4, 1, 1), True),
                                               ((1,), True), ((), True)])
def test_a_constant_add_after_a_conv_is_a_bias_only_if_it_broadcasts_per_channel(
        tmp_path, shape, per_channel):
    """ONNX broadcasts from the last axis: on a conv output (N, 4, 4, 4) a (4,) vector runs
    along the width, so it is no channel bias (a probe's torch model, conv(x) + shift with
    W = C, scored 0.50 against onnxruntime's 0.875 before it was refused)."""
    rng = np.random.default_rng(0)
    inits = [("W", rng.normal(0, 1, (4, 1, 3, 3))), ("s", rng.normal(0, 1, shape))]
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], name="conv", kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "s"], ["a"], name="shift"),
             helper.make_node("Flatten", ["a"], ["y"], name="flat")]
    m = model(nodes, [("x", ("N", 1, 4, 4))], "y", inits, out_shape=("N", "F"))
    onnx.save(m, tmp_path / "m.onnx")
    if not per_channel:
        with pytest.raises(UserError, match=r"'shift'.*does not broadcast per channel"):
            load_onnx(tmp_path / "m.onnx")
        return
    x = rng.uniform(0, 1, (3, 1, 4, 4))
    out, _ = ann.run(load_onnx(tmp_path / "m.onnx"), x)
    np.testing.assert_allclose(out, ort_run(m, x), rtol=1e-5, atol=1e-5)


def _dense_relu(input_type, extra_nodes=(), clip=None):
    """x (N, 4) of ``input_type`` → [extra nodes] → Gemm → ReLU or Clip → Gemm."""
    rng = np.random.default_rng(1)
    inits = [onnx.numpy_helper.from_array(a.astype(np.float32), k)  # raw data: storable apart
             for k, a in (("W1", rng.normal(0, 1, (6, 4))), ("W2", rng.normal(0, 1, (3, 6))),
                          ("B1", rng.normal(0, 1, 6)), ("B2", rng.normal(0, 1, 3)))]
    first = extra_nodes[-1].output[0] if extra_nodes else "x"
    act = (helper.make_node("Clip", ["h"], ["r"], name="clip", **clip) if clip
           else helper.make_node("Relu", ["h"], ["r"], name="relu"))
    nodes = [*extra_nodes,
             helper.make_node("Gemm", [first, "W1", "B1"], ["h"], transB=1, name="fc1"),
             act, helper.make_node("Gemm", ["r", "W2", "B2"], ["y"], transB=1, name="fc2")]
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", input_type, ["N", 4])],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 3])],
                          inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 9 if clip else 13)])
    m.ir_version = 8
    return m


def test_input_types_and_a_written_out_clip_bound(tmp_path):
    """A float64 input cast to float32 is the identity; a uint8 input is refused naming its
    type; Clip(min=0, max=FLT_MAX), the spec's default written out, is a ReLU (a probe)."""
    x = np.random.default_rng(2).uniform(0, 1, (5, 4))
    cast = helper.make_node("Cast", ["x"], ["xf"], to=onnx.TensorProto.FLOAT, name="cast")
    fltmax = float(np.finfo(np.float32).max)
    for name, m in (("double", _dense_relu(onnx.TensorProto.DOUBLE, [cast])),
                    ("clip", _dense_relu(onnx.TensorProto.FLOAT, clip=dict(min=0.0, max=fltmax)))):
        onnx.save(m, tmp_path / f"{name}.onnx")
        out, _ = ann.run(load_onnx(tmp_path / f"{name}.onnx"), x)
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        feed = x.astype(np.float64 if name == "double" else np.float32)
        np.testing.assert_allclose(out, sess.run(None, {"x": feed})[0], rtol=1e-5, atol=1e-5)
    onnx.save(_dense_relu(onnx.TensorProto.UINT8, [cast]), tmp_path / "u8.onnx")
    with pytest.raises(UserError, match=r"graph input 'x' is uint8.*float input"):
        load_onnx(tmp_path / "u8.onnx")


def test_external_data_is_read_and_a_missing_file_is_named(tmp_path):
    """Weights saved as external data load; without their file the message says which file
    is missing (it said 'truncated or not ONNX')."""
    m = _dense_relu(onnx.TensorProto.FLOAT)
    onnx.save(m, tmp_path / "ext.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.onnx.data", size_threshold=0)
    x = np.random.default_rng(3).uniform(0, 1, (4, 4))
    out, _ = ann.run(load_onnx(tmp_path / "ext.onnx"), x)
    np.testing.assert_allclose(out, ort_run(tmp_path / "ext.onnx", x), rtol=1e-5, atol=1e-5)
    (tmp_path / "ext.onnx.data").unlink()
    with pytest.raises(UserError, match=r"external data file\(s\) ext\.onnx\.data.*missing"):
        load_onnx(tmp_path / "ext.onnx")


def test_a_softmax_renamed_by_an_identity_is_still_the_last_node(tmp_path):
    """Gemm → Softmax → Identity → output (an exporter renaming the output): the Softmax is
    dropped like a final one, and the argmax is onnxruntime's."""
    rng = np.random.default_rng(4)
    nodes = [helper.make_node("Gemm", ["x", "W", "B"], ["z"], transB=1, name="fc"),
             helper.make_node("Softmax", ["z"], ["p"], axis=1, name="sm"),
             helper.make_node("Identity", ["p"], ["y"], name="rename")]
    m = model(nodes, [("x", ("N", 4))], "y", [("W", rng.normal(0, 1, (3, 4))),
                                              ("B", rng.normal(0, 1, 3))], out_shape=("N", 3))
    onnx.save(m, tmp_path / "m.onnx")
    x = rng.uniform(0, 1, (16, 4))
    out, _ = ann.run(load_onnx(tmp_path / "m.onnx"), x)
    assert (out.argmax(1) == ort_run(m, x).argmax(1)).all()


def test_unsupported_ops_get_the_hint_that_fits_where_they_sit(tmp_path):
    """A Mul on the graph input is preprocessing (do it in the data); a Sigmoid after the last
    layer only transforms the logits (export them) — not 'fold into the preceding Conv' or
    'use ReLU inside the network' (a probe)."""
    rng = np.random.default_rng(5)
    fc = [("W", rng.normal(0, 1, (3, 4))), ("B", rng.normal(0, 1, 3)), ("s", np.full(4, 2.0))]
    pre = model([helper.make_node("Mul", ["x", "s"], ["xs"], name="scale"),
                 helper.make_node("Gemm", ["xs", "W", "B"], ["y"], transB=1, name="fc")],
                [("x", ("N", 4))], "y", fc, out_shape=("N", 3))
    post = model([helper.make_node("Gemm", ["x", "W", "B"], ["z"], transB=1, name="fc"),
                  helper.make_node("Sigmoid", ["z"], ["y"], name="squash")],
                 [("x", ("N", 4))], "y", fc[:2], out_shape=("N", 3))
    for m, name, words in ((pre, "pre", r"'scale'.*reads the graph input.*in the data file"),
                           (post, "post", r"'squash'.*follows the last layer.*export the logits")):
        onnx.save(m, tmp_path / f"{name}.onnx")
        with pytest.raises(UserError, match=words):
            load_onnx(tmp_path / f"{name}.onnx")
