"""Write a corpus of small bad inputs and list the command lines that must refuse them.

    python tests/bad_inputs/make_corpus.py DIR     # writes the files into DIR, prints the cases

Every case is a ``neurosim`` command line that must exit 2 with one message (no traceback)
containing each of its ``words``: the culprit (file name, key, option or ONNX node) and, where
it helps, what was expected or found. The files are generated (ONNX models built with
onnx.helper, .npz/.npy/CSV/pickle data, YAML profiles edited from the bundled loihi_like) so
nothing binary is committed; tests/test_bad_inputs.py runs every case.
"""

from __future__ import annotations

import pickle
import shlex
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
if str(TESTS) not in sys.path:  # standalone: find the shared test builders
    sys.path.insert(0, str(TESTS))

from onnx_builders import conv_model, model  # noqa: E402
from test_profiles import EXPECTED as BROKEN_PROFILE_KEYS  # noqa: E402

LOIHI = ROOT / "hw_configs" / "loihi_like.yaml"
BROKEN_PROFILES = TESTS / "broken_profiles"

# Runs that should stop before any simulation: the ANN reference, few images.
FAST = ("--precision", "float", "--limit", "2")


@dataclass(frozen=True)
class Case:
    id: str
    area: str  # onnx, data, calibration, profile, parameter, output
    argv: tuple[str, ...]
    words: tuple[str, ...]  # each must appear in the error message
    quiet: bool = True  # refused before anything is printed on stdout

    def command(self) -> str:
        return "neurosim " + " ".join(shlex.quote(a) for a in self.argv)


# ---- ONNX models -------------------------------------------------------------------------------

IN = ("x", ("N", 1, 8, 8))


def _head(src: str, features: int, name: str = "fc", out: str = "y"):
    """Flatten + Gemm to 10 classes: the valid classifier head most bad models keep."""
    w = np.random.default_rng(1).normal(0, 0.1, (10, features))
    nodes = [helper.make_node("Flatten", [src], [f"{src}_flat"], name=f"{name}_flatten"),
             helper.make_node("Gemm", [f"{src}_flat", f"{name}_W", f"{name}_b"], [out], name=name,
                              transB=1)]
    return nodes, [(f"{name}_W", w), (f"{name}_b", np.zeros(10))]


def _conv(name: str, src: str, out: str, w: np.ndarray, **attrs):
    k = list(w.shape[2:])
    return helper.make_node("Conv", [src, f"{name}_W"], [out], name=name, kernel_shape=k, **attrs)


def _onnx_files(d: Path) -> dict[str, Path]:
    """name -> path of every bad ONNX model."""
    rng = np.random.default_rng(0)
    made: dict[str, onnx.ModelProto | bytes] = {}

    head, head_inits = _head("x", 64)
    good = model(head, [IN], "y", head_inits)
    made["not_onnx.onnx"] = b"name,accuracy\ndigits,0.97\n" * 8
    made["truncated.onnx"] = good.SerializeToString()[:300]
    made["empty.onnx"] = b""

    m = conv_model(1, 4, 8, 3, pads=(1, 1, 1, 1))  # conv 'conv' + Flatten to (N, 256)
    w = numpy_helper.to_array(m.graph.initializer[0]).copy()
    w[0, 0, 0, 0] = np.nan
    m.graph.initializer[0].CopyFrom(numpy_helper.from_array(w, "W"))
    made["nan_weight.onnx"] = m

    inits = [("fc_W", rng.normal(size=(10, 64))), ("fc_b", np.r_[np.inf, np.zeros(9)])]
    made["inf_bias.onnx"] = model(head, [IN], "y", inits)

    add = helper.make_node("Add", ["x", "x2"], ["s"], name="sum")
    h2, i2 = _head("s", 64)
    made["two_inputs.onnx"] = model([add] + h2, [IN, ("x2", ("N", 1, 8, 8))], "y", i2)

    g = model(head, [IN], "y", head_inits)
    g.graph.output.append(helper.make_tensor_value_info("x_flat", TensorProto.FLOAT, ["N", 64]))
    made["two_outputs.onnx"] = g

    for op, name in (("Sigmoid", "act_sigmoid"), ("LeakyRelu", "act_leaky"), ("Tanh", "act_tanh")):
        h, i = _head("a", 64)
        made[f"{op.lower()}.onnx"] = model([helper.make_node(op, ["x"], ["a"], name=name)] + h,
                                           [IN], "y", i)

    # a Gather/Concat on an activation is not the static shape chain of x.view(x.size(0), -1)
    flat = helper.make_node("Flatten", ["x"], ["f"], name="flatten")
    pick = helper.make_node("Gather", ["f", "idx"], ["g"], name="pick_features", axis=1)
    gemm = helper.make_node("Gemm", ["g", "W", "b"], ["y"], name="fc", transB=1)
    gathered = model([flat, pick, gemm], [IN], "y",
                     [("W", rng.normal(size=(10, 32))), ("b", np.zeros(10))])
    gathered.graph.initializer.append(numpy_helper.from_array(np.arange(32, dtype=np.int64), "idx"))
    made["gather_activation.onnx"] = gathered
    shape = helper.make_node("Shape", ["x"], ["shp"], name="shape")
    cat = helper.make_node("Concat", ["shp", "f"], ["target"], name="concat_target", axis=0)
    made["concat_activation.onnx"] = model([flat, shape, cat], [IN], "target", [])

    made["symbolic_shape.onnx"] = model(head, [("x", ("N", "C", 8, 8))], "y", head_inits)
    made["rank3_input.onnx"] = model(head, [("x", ("N", 8, 8))], "y", head_inits)

    cw = rng.normal(size=(4, 1, 3, 3))
    relu = helper.make_node("Relu", ["c"], ["r"], name="relu")
    bn = helper.make_node("BatchNormalization", ["r", "g", "be", "m", "v"], ["bn_out"], name="bn_after_relu")
    h, i = _head("bn_out", 256)
    made["bn_after_relu.onnx"] = model(
        [_conv("conv", "x", "c", cw, pads=[1, 1, 1, 1]), relu, bn] + h, [IN], "y",
        [("conv_W", cw), ("g", np.ones(4)), ("be", np.zeros(4)), ("m", np.zeros(4)),
         ("v", np.ones(4))] + i)

    m = conv_model(1, 4, 8, 3, bn=True)
    for k, t in enumerate(m.graph.initializer):
        if t.name == "v":
            m.graph.initializer[k].CopyFrom(numpy_helper.from_array(-np.ones(4, np.float32), "v"))
    made["bn_negative_var.onnx"] = m

    made["map_output.onnx"] = model([_conv("conv", "x", "y", rng.normal(size=(10, 1, 3, 3)),
                                           pads=[1, 1, 1, 1])], [IN], "y",
                                    [("conv_W", rng.normal(size=(10, 1, 3, 3)))],
                                    out_shape=("N", 10, 8, 8))
    one = [helper.make_node("Flatten", ["x"], ["f"], name="flatten"),
           helper.make_node("Gemm", ["f", "W"], ["y"], name="fc", transB=1)]
    made["one_class.onnx"] = model(one, [IN], "y", [("W", np.ones((1, 64)))], out_shape=("N", 1))
    # the input passed straight through: nothing to convert, and its output is 10 "classes"
    made["identity_only.onnx"] = model([helper.make_node("Identity", ["x"], ["y"], name="id")],
                                       [("x", ("N", 10))], "y")

    # the weight is an activation (the input through a Relu), not a constant
    made["computed_weight.onnx"] = model(
        [helper.make_node("Relu", ["x"], ["Wc"], name="weight_relu"),
         helper.make_node("Conv", ["x", "Wc"], ["c"], name="conv_dyn", kernel_shape=[3, 3])]
        + _head("c", 144)[0], [IN], "y", _head("c", 144)[1])
    made["gemm_not_flat.onnx"] = model(
        [helper.make_node("Gemm", ["x", "W"], ["y"], name="fc_on_image", transB=1)], [IN], "y",
        [("W", rng.normal(size=(10, 64)))])
    sm = helper.make_node("Softmax", ["x_flat"], ["p"], name="softmax_inside", axis=1)
    made["softmax_inside.onnx"] = model(
        [helper.make_node("Flatten", ["x"], ["x_flat"], name="flatten"), sm,
         helper.make_node("Gemm", ["p", "W"], ["y"], name="fc", transB=1)], [IN], "y",
        [("W", rng.normal(size=(10, 64)))])
    w3 = rng.normal(size=(4, 3, 3, 3))
    h, i = _head("c", 144)
    made["conv_channels.onnx"] = model([_conv("conv_rgb", "x", "c", w3)] + h, [IN], "y",
                                       [("conv_rgb_W", w3)] + i)
    w9 = rng.normal(size=(4, 1, 9, 9))
    made["kernel_too_big.onnx"] = model([_conv("conv_9x9", "x", "c", w9)] + h, [IN], "y",
                                        [("conv_9x9_W", w9)] + i)
    h, i = _head("p", 16)
    made["maxpool_ceil.onnx"] = model(
        [helper.make_node("MaxPool", ["x"], ["p"], name="pool_ceil", kernel_shape=[2, 2],
                          strides=[2, 2], ceil_mode=2)] + h, [IN], "y", i)
    made["reshape_bad.onnx"] = model(
        [helper.make_node("Reshape", ["x", "shape7"], ["r"], name="reshape_to_7"),
         helper.make_node("Gemm", ["r", "W"], ["y"], name="fc", transB=1)], [IN], "y",
        [("W", rng.normal(size=(10, 7)))])
    made["reshape_bad.onnx"].graph.initializer.append(
        numpy_helper.from_array(np.array([0, 7], np.int64), "shape7"))
    made["flatten_axis2.onnx"] = model(
        [helper.make_node("Flatten", ["x"], ["f"], name="flatten_axis2", axis=2),
         helper.make_node("Gemm", ["f", "W"], ["y"], name="fc", transB=1)], [IN], "y",
        [("W", rng.normal(size=(10, 8)))])
    made["gemm_transA.onnx"] = model(
        [helper.make_node("Flatten", ["x"], ["f"], name="flatten"),
         helper.make_node("Gemm", ["f", "W"], ["y"], name="fc_transposed", transA=1)], [IN], "y",
        [("W", rng.normal(size=(64, 10)))])
    made["gemm_wrong_width.onnx"] = model(
        [helper.make_node("Flatten", ["x"], ["f"], name="flatten"),
         helper.make_node("Gemm", ["f", "W"], ["y"], name="fc_63", transB=1)], [IN], "y",
        [("W", rng.normal(size=(10, 63)))])
    wa, wb = rng.normal(size=(4, 1, 3, 3)), rng.normal(size=(4, 1, 3, 3))
    h, i = _head("s", 144)
    made["add_shapes.onnx"] = model(
        [_conv("conv_valid", "x", "a", wa), _conv("conv_same", "x", "b", wb, pads=[1, 1, 1, 1]),
         helper.make_node("Add", ["a", "b"], ["s"], name="residual_join")] + h, [IN], "y",
        [("conv_valid_W", wa), ("conv_same_W", wb)] + i)
    made["checker_reject.onnx"] = model(
        [helper.make_node("Conv", ["x"], ["c"], name="conv_no_weight")] + h, [IN], "y", i)
    made["no_nodes.onnx"] = model([], [IN], "x", out_shape=("N", 1, 8, 8))
    made["const_output.onnx"] = model(
        [helper.make_node("Relu", ["x"], ["r"], name="relu"),
         helper.make_node("Constant", [], ["y"], name="fixed_logits",
                          value=numpy_helper.from_array(np.zeros((1, 10), np.float32)))],
        [IN], "y")
    dom = model([helper.make_node("Relu", ["x"], ["a"], name="vendor_relu", domain="com.vendor")]
                + _head("a", 64)[0], [IN], "y", _head("a", 64)[1])
    dom.opset_import.append(helper.make_opsetid("com.vendor", 1))
    made["custom_domain.onnx"] = dom
    made["three_channel.onnx"] = _three_channel()

    paths = {}
    for name, m in made.items():
        p = d / name
        p.write_bytes(m if isinstance(m, bytes) else m.SerializeToString())
        paths[name] = p
    return paths


def _three_channel() -> onnx.ModelProto:
    """A valid 3×4×4 classifier: the bundled 1×8×8 digits calibration does not fit it."""
    h, i = _head("x", 48)
    return model(h, [("x", ("N", 3, 4, 4))], "y", i)


# ---- data and calibration files ----------------------------------------------------------------

def _array_files(d: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (10, 1, 8, 8))
    y = np.arange(10) % 10
    arrays = {
        "no_x.npz": dict(y=y),
        "no_y.npz": dict(x=x),
        "objects.npz": dict(x=np.array([object()] * 10, dtype=object), y=y),
        "object_labels.npz": dict(x=x, y=np.array(["a"] * 9 + [1], dtype=object)),
        "scalar_x.npz": dict(x=np.float64(3.0), y=y),
        "flat_x.npz": dict(x=x.reshape(10, 64), y=y),
        "labels_50.npz": dict(x=x, y=np.full(10, 50)),
        "labels_negative.npz": dict(x=x, y=np.full(10, -1)),
        "labels_uint64_max.npz": dict(x=x, y=np.full(10, 2**64 - 1, np.uint64)),
        "labels_float_1e20.npz": dict(x=x, y=np.full(10, 1e20)),
        "zero_images.npz": dict(x=x[:0], y=y[:0]),
        "float_labels.npz": dict(x=x, y=y + 0.5),
        "short_labels.npz": dict(x=x, y=y[:9]),
        "column_labels.npz": dict(x=x, y=y[:, None]),
        "nan_pixel.npz": dict(x=np.where(np.arange(640).reshape(x.shape) == 5, np.nan, x), y=y),
        "huge_x.npz": dict(x=x * 1e30, y=y),
        "string_x.npz": dict(x=np.array(["abc"] * 10), y=y),
        "complex_x.npz": dict(x=x + 1j, y=y),
        "three_channel_data.npz": dict(x=rng.uniform(0, 1, (4, 3, 4, 4)), y=np.arange(4)),
        "ten_features.npz": dict(x=rng.uniform(0, 1, (4, 10)), y=np.arange(4)),
        "calib_zero.npz": dict(x=np.zeros((6, 1, 8, 8))),
        "calib_small_images.npz": dict(x=np.zeros((3, 1, 5, 5)) + 0.5),
        "calib_labels_only.npz": dict(y=y),
        "calib_inf.npz": dict(x=np.full((3, 1, 8, 8), np.inf)),
        "calib_empty.npz": dict(x=np.zeros((0, 1, 8, 8))),
        "calib_objects.npz": dict(x=np.array([None] * 3, dtype=object)),
        # digits-named calibration files are read, not replaced by the bundled split
        "digits_mycalib.npz": dict(x=np.zeros((3, 1, 5, 5)) + 0.5),
    }
    paths = {}
    for name, a in arrays.items():
        np.savez(d / name, **a)
        paths[name] = d / name
    np.save(d / "plain.npy", x)
    paths["plain.npy"] = d / "plain.npy"
    (d / "table.csv").write_text("label,p0,p1\n3,0.0,0.5\n")
    paths["table.csv"] = d / "table.csv"
    with open(d / "arrays.pkl", "wb") as f:
        pickle.dump({"x": x, "y": y}, f)
    paths["arrays.pkl"] = d / "arrays.pkl"
    (d / "zero_bytes.npz").write_bytes(b"")
    paths["zero_bytes.npz"] = d / "zero_bytes.npz"
    (d / "noise.bin").write_bytes(bytes(range(200, 256)) * 4)
    paths["noise.bin"] = d / "noise.bin"
    with zipfile.ZipFile(d / "notes.npz", "w") as z:  # a zip, but no arrays in it
        z.writestr("readme.txt", "x and y are elsewhere")
    paths["notes.npz"] = d / "notes.npz"
    good = (d / "labels_50.npz").read_bytes()
    (d / "cut.npz").write_bytes(good[: len(good) // 2])
    paths["cut.npz"] = d / "cut.npz"
    (d / "a_folder.npz").mkdir(exist_ok=True)
    paths["a_folder.npz"] = d / "a_folder.npz"
    return paths


# ---- profiles ----------------------------------------------------------------------------------

def _edited_profile(d: Path, name: str, old: str, new: str) -> Path:
    text = LOIHI.read_text()
    if old not in text:
        raise AssertionError(f"{LOIHI} no longer contains {old!r}; update the corpus")
    p = d / name
    p.write_text(text.replace(old, new, 1))
    return p


def _line_of(path: Path, text: str, nth: int = 1) -> int:
    """1-based line number of the nth line of ``path`` equal to ``text`` (stripped)."""
    hits = [i + 1 for i, line in enumerate(path.read_text().splitlines()) if line.strip() == text]
    return hits[nth - 1]


def _profile_cases(d: Path, run) -> list[Case]:
    cases = []
    for name, (key, word) in sorted(BROKEN_PROFILE_KEYS.items()):
        cases.append(Case(f"profile-{Path(name).stem}", "profile",
                          run("--hw", str(BROKEN_PROFILES / name)), (name, key, word)))
    dup = _edited_profile(d, "dup_synop.yaml", "  synop:\n    value: 23.6\n",
                          "  synop:\n    value: 23.6\n    value: 2.36\n")
    first, second = _line_of(dup, "value: 23.6"), _line_of(dup, "value: 2.36")
    cases.append(Case("profile-duplicate-key", "profile", run("--hw", str(dup)),
                      ("dup_synop.yaml", "'value'", f"line {first}", f"line {second}")))
    dup_top = _edited_profile(d, "dup_name.yaml", "name: loihi_like\n",
                              "name: loihi_like\nname: loihi_copy\n")
    cases.append(Case("profile-duplicate-top-key", "profile", ("profiles", str(dup_top)),
                      ("dup_name.yaml", "'name'", "line 7", "line 8")))
    for cid, old, new, words in [
        ("synop-pj", "  synop:\n    value: 23.6\n", "  synop:\n    value: 2.36e+13\n",
         ("energy_pj.synop.value", "at most", "pJ")),
        ("static-w", "static_power_w:\n  value: 0.104\n", "static_power_w:\n  value: 1.0e+40\n",
         ("static_power_w.value", "at most", "W")),
        ("cores", "count: {value: 128,", "count: {value: 1.0e+12,",
         ("cores.count.value", "at most", "cores")),
        ("barrier-ns", "  barrier_ns:\n    value: 465\n", "  barrier_ns:\n    value: 4.65e+15\n",
         ("timing.barrier_ns.value", "at most", "ns")),
        ("state-bits", "  state_bits:\n    value: 24\n", "  state_bits:\n    value: 4096\n",
         ("arithmetic.state_bits.value",)),
    ]:
        p = _edited_profile(d, f"absurd_{cid}.yaml", old, new)
        cases.append(Case(f"profile-absurd-{cid}", "profile", run("--hw", str(p)),
                          (p.name,) + words))
    (d / "binary.yaml").write_bytes(b"\x00\xff\xfe binary \x01")
    cases += [
        Case("profile-empty-name", "profile", run("--hw", ""), ("empty profile name",)),
        Case("profile-missing-file", "profile", run("--hw", str(d / "nowhere.yaml")),
             ("nowhere.yaml", "not found")),
        Case("profile-unknown-name", "profile", run("--hw", "loihi"), ("loihi", "loihi_like")),
        Case("profile-directory", "profile", run("--hw", str(d)), (str(d), "directory")),
        Case("profile-binary", "profile", run("--hw", str(d / "binary.yaml")),
             ("binary.yaml", "cannot read")),
        Case("profile-compare-second-bad", "profile",
             ("compare", "digits_mlp", "--hw", "loihi_like", "--hw", str(dup), "--limit", "2"),
             ("dup_synop.yaml", "twice")),
    ]
    return cases


# ---- the corpus ----------------------------------------------------------------------------------

def make_corpus(d: str | Path) -> list[Case]:
    """Write every bad file into ``d`` and return the cases that use them."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    onx = {k: str(v) for k, v in _onnx_files(d).items()}
    arr = {k: str(v) for k, v in _array_files(d).items()}

    def run(*argv):
        return ("run", *argv, *FAST)

    cases: list[Case] = []

    def add(cid, area, argv, *words, quiet=True):
        cases.append(Case(cid, area, tuple(argv), tuple(words), quiet))

    # ONNX
    def onnx_case(file, *words):
        add(f"onnx-{Path(file).stem}", "onnx", run(onx[file]), file, *words)

    onnx_case("not_onnx.onnx", "not")
    onnx_case("truncated.onnx", "not a readable ONNX file")
    onnx_case("empty.onnx", "no graph")
    onnx_case("nan_weight.onnx", "'conv'", "NaN/Inf", "weight")
    onnx_case("inf_bias.onnx", "'fc'", "NaN/Inf", "bias")
    onnx_case("two_inputs.onnx", "exactly one graph input", "found 2", "x2")
    onnx_case("two_outputs.onnx", "exactly one graph output", "found 2")
    onnx_case("sigmoid.onnx", "'act_sigmoid'", "'Sigmoid'", "use ReLU")
    onnx_case("leakyrelu.onnx", "'act_leaky'", "'LeakyRelu'", "retrain with ReLU")
    onnx_case("tanh.onnx", "'act_tanh'", "'Tanh'")
    onnx_case("gather_activation.onnx", "'pick_features'", "Gather", "activation 'f'")
    onnx_case("concat_activation.onnx", "'concat_target'", "Concat", "activation 'f'")
    onnx_case("symbolic_shape.onnx", "graph input 'x'", "static", "'C'")
    onnx_case("rank3_input.onnx", "graph input 'x'", "rank 3")
    onnx_case("bn_after_relu.onnx", "'bn_after_relu'", "folded into the Conv/Gemm", "relu")
    onnx_case("bn_negative_var.onnx", "'bn'", "non-negative running variances")
    onnx_case("map_output.onnx", "(10, 8, 8)", "classes")
    onnx_case("one_class.onnx", "(1,)", "at least 2 classes")
    add("onnx-identity_only", "onnx",
        run(onx["identity_only.onnx"], "--data", arr["ten_features.npz"], "--calib",
            arr["ten_features.npz"]), "identity_only.onnx", "no layer")
    onnx_case("computed_weight.onnx", "'conv_dyn'", "weight 'Wc'", "constant")
    onnx_case("gemm_not_flat.onnx", "'fc_on_image'", "add a Flatten")
    onnx_case("softmax_inside.onnx", "'softmax_inside'", "last node")
    onnx_case("conv_channels.onnx", "'conv_rgb'", "1 input channels")
    onnx_case("kernel_too_big.onnx", "'conv_9x9'", "does not fit")
    onnx_case("maxpool_ceil.onnx", "'pool_ceil'", "ceil_mode 0 or 1", "found 2")
    onnx_case("reshape_bad.onnx", "'reshape_to_7'", "cannot reshape", "64 values")
    onnx_case("flatten_axis2.onnx", "'flatten_axis2'", "axis=1")
    onnx_case("gemm_transA.onnx", "'fc_transposed'", "transA=0")
    onnx_case("gemm_wrong_width.onnx", "'fc_63'", "64 input features")
    onnx_case("add_shapes.onnx", "'residual_join'", "equal shape", "(4, 6, 6)", "(4, 8, 8)")
    onnx_case("checker_reject.onnx", "ONNX checker", "conv_no_weight")
    onnx_case("no_nodes.onnx", "no nodes")
    onnx_case("const_output.onnx", "graph output 'y'", "not computed from the input")
    onnx_case("custom_domain.onnx", "'vendor_relu'", "com.vendor")
    add("onnx-directory", "onnx", run(str(d)), str(d), "directory")
    add("onnx-missing-file", "onnx", run(str(d / "nowhere.onnx")), "nowhere.onnx", "not found")
    add("onnx-bundled-typo", "onnx", run("digits_cnnn"), "digits_cnnn", "did you mean 'digits_cnn'")
    add("onnx-check-command", "onnx", ("check", onx["leakyrelu.onnx"], "--limit", "2"),
        "'act_leaky'", "LeakyRelu")

    # data
    def data_case(file, *words, model_args=()):
        add(f"data-{Path(file).stem}", "data", run(*model_args, "--data", arr[file]), file, *words)

    data_case("no_x.npz", "'x'")
    data_case("no_y.npz", "'y'")
    data_case("objects.npz", "'x'", "Python objects")
    data_case("object_labels.npz", "'y'", "Python objects")
    data_case("scalar_x.npz", "'x'", "shape ()")
    data_case("flat_x.npz", "(64,)", "(1, 8, 8)")
    data_case("labels_50.npz", "[0, 10)", "50")
    data_case("labels_negative.npz", "[0, 10)", "-1")
    data_case("labels_uint64_max.npz", "'y'", "18446744073709551615")  # not a wrapped -1
    data_case("labels_float_1e20.npz", "'y'", "1e+20")
    data_case("zero_images.npz", "N > 0")
    data_case("float_labels.npz", "'y'", "float64", "integer")
    data_case("short_labels.npz", "'y'", "(10,)", "(9,)")
    data_case("column_labels.npz", "'y'", "(10, 1)")
    data_case("nan_pixel.npz", "'x'", "NaN")
    data_case("huge_x.npz", "'x'", "1e+30")
    data_case("string_x.npz", "'x'", "dtype")
    data_case("complex_x.npz", "'x'", "complex")
    data_case("plain.npy", ".npz")
    data_case("table.csv", "a text file", "'label,p0,p1'", ".npz", "arrays x")
    data_case("arrays.pkl", "pickle", ".npz")
    data_case("zero_bytes.npz", "is empty", ".npz")
    data_case("noise.bin", "a binary file", ".npz")
    data_case("notes.npz", "['x', 'y']", "readme.txt")
    data_case("cut.npz", "not a readable .npz")
    data_case("a_folder.npz", "is a directory")
    add("data-missing-file", "data", run("--data", str(d / "nowhere.npz")), "nowhere.npz",
        "not found")
    add("data-digits-split", "data", run("--data", "digits:validation"), "validation",
        "train, calibration, test")
    add("data-digits-for-rgb-model", "data", run(onx["three_channel.onnx"], "--data", "digits"),
        "--data digits", "(1, 8, 8)", "(3, 4, 4)")
    add("data-check-command", "data", ("check", "--data", arr["zero_images.npz"], "--limit", "2"),
        "zero_images.npz", "N > 0")
    add("data-compare-command", "data",
        ("compare", "digits_mlp", "--data", arr["labels_50.npz"], "--limit", "2"),
        "labels_50.npz", "[0, 10)")

    # calibration
    def calib_case(file, *words):
        add(f"calib-{Path(file).stem}", "calibration", run("--calib", arr[file]), file, *words)

    calib_case("calib_zero.npz", "all zero")
    calib_case("calib_small_images.npz", "(1, 5, 5)", "(1, 8, 8)")
    calib_case("digits_mycalib.npz", "(1, 5, 5)")
    calib_case("calib_labels_only.npz", "'x'")
    calib_case("calib_inf.npz", "'x'", "NaN or Inf")
    calib_case("calib_empty.npz", "N > 0")
    calib_case("calib_objects.npz", "'x'", "Python objects")
    calib_case("plain.npy", ".npz")
    add("calib-missing-file", "calibration", run("--calib", str(d / "nocalib.npz")),
        "nocalib.npz", "not found")
    add("calib-digits-split", "calibration", run("--calib", "digits:holdout"), "holdout",
        "train, calibration, test")
    rgb = (onx["three_channel.onnx"], "--data", arr["three_channel_data.npz"])
    add("calib-default-for-rgb-model", "calibration", run(*rgb), "(3, 4, 4)", "--calib")
    add("calib-digits-for-rgb-model", "calibration", run(*rgb, "--calib", "digits:calibration"),
        "--calib digits:calibration", "(1, 8, 8)", "(3, 4, 4)")

    # profiles
    cases += _profile_cases(d, run)

    # parameters: a run that would be valid but for one option
    def param_case(cid, words, *argv, command="run", fast=True, quiet=True):
        argv = (command, *argv, *(FAST if fast else ()))
        add(f"param-{cid}", "parameter", argv, *words, quiet=quiet)

    for cid, spec, words in [
        ("unknown-scheme", "swss", ("swss", "did you mean 'sws'")),
        ("no-name", ":Tc=3", ("':Tc=3'", "no scheme name")),
        ("not-key-value", "sws:Tc", ("'Tc'", "not key=value")),
        ("unknown-key", "sws:foo=1", ("'foo'", "valid keys")),
        ("key-case", "sws:tc=4", ("'tc'", "did you mean 'Tc'")),
        ("key-twice", "sws:Tc=3,Tc=4", ("'Tc'", "twice")),
        ("all-with-keys", "all:Tc=3", ("'all'", "Tc=3")),
        ("sws-Tc-zero", "sws:Tc=0", ("'Tc'", "positive")),
        ("sws-Tc-text", "sws:Tc=abc", ("'Tc'", "integer", "'abc'")),
        ("sws-Tc-float", "sws:Tc=1.5", ("'Tc'", "integer", "'1.5'")),
        ("sws-Ts-negative", "sws:Ts=-1", ("'Ts'", "non-negative")),
        ("sws-beta-one", "sws:beta=1", ("'beta'", "greater than 1")),
        ("sws-beta-nan", "sws:beta=nan", ("'beta'", "finite")),
        ("sws-encoder", "sws:encoder=voltage", ("'encoder'", "current|potential", "'voltage'")),
        ("sws-bool", "sws:negative_spikes=maybe", ("'negative_spikes'", "on|off")),
        ("sws-threshold", "sws:threshold_ratio=0", ("'threshold_ratio'", "(0, 1]")),
        ("sws-percentile", "sws:percentile=101", ("'percentile'", "(0, 100]")),
        ("sws-Tc-float64", "sws:Tc=100000", ("Tc=100000", "float64")),
        ("rate-T-zero", "rate:T=0", ("'rate'", "'T'", "positive")),
        ("rate-input", "rate:input=gauss", ("'input'", "current|poisson|regular")),
        ("rate-v-init", "rate:v_init=2", ("'v_init'", "0 or 0.5")),
        ("rate-seed", "rate:seed=-1", ("'seed'", "[0, 2^64)")),
        ("ttfs-T-one", "ttfs:T=1", ("'ttfs'", "'T'", "≥ 2")),
        ("ttfs-synapse", "ttfs:synapse=dense", ("'synapse'", "current|reaccumulate")),
        ("tsc-N-one", "tsc:N=1", ("'tsc'", "'N'", "≥ 2")),
        ("tsc-alpha", "tsc:alpha=1.5", ("'alpha'", "(0, 1]")),
        ("tsc-emission", "tsc:emission=double", ("'emission'", "single|switch")),
        ("phase-K", "phase:K=0", ("'phase'", "'K'", "[1, 16]")),
        ("phase-periods", "phase:periods=0", ("'periods'", "positive")),
        ("phase-skip", "phase:skip_periods=8", ("skip_periods=8", "periods=8")),
        ("phase-theta", "phase:theta=-1", ("'theta'", "non-negative")),
    ]:
        param_case(f"coding-{cid}", words, "--coding", spec)
    param_case("coding-second-of-two", ("'Tc'", "'x'"), "--coding", "sws", "--coding",
               "sws:Tc=x")
    param_case("check-coding", ("swss",), "--coding", "swss", "--limit", "2", command="check",
               fast=False)
    param_case("compare-coding", ("'T'", "positive"), "digits_mlp", "--coding", "rate:T=0",
               "--limit", "2", command="compare", fast=False)
    param_case("limit-zero", ("--limit", "positive"), "--limit", "0", fast=False)
    param_case("limit-negative", ("--limit", "positive", "-5"), "--limit", "-5", fast=False)
    param_case("limit-text", ("--limit", "invalid int value", "'ten'"), "--limit", "ten",
               fast=False)
    param_case("seed-negative", ("--seed", "non-negative"), "--seed", "-3")
    param_case("precision-choice", ("--precision", "'exact'"), "--precision", "exact",
               fast=False)
    param_case("unknown-option", ("--frobnicate",), "--frobnicate")
    param_case("range-sws-Tc20", ("Tc=20", "needs 31 state bits", "has 24", "largest Tc",
                                  "--allow-overflow"),
               "--coding", "sws:Tc=20", "--hw", str(LOIHI), "--precision", "fixed", "--limit",
               "2", fast=False, quiet=False)  # the range needs the calibrated model

    # output paths: refused before anything runs (nothing on stdout)
    (d / "out_dir").mkdir(exist_ok=True)
    for cid, target, words, command in [
        ("json-directory", str(d / "out_dir"), ("--json", "out_dir", "is a directory"), "run"),
        ("json-proc", "/proc/neurosim.json", ("--json", "/proc", "cannot write"), "run"),
        ("json-sys", "/sys/neurosim.json", ("--json", "/sys", "cannot write"), "run"),
        ("json-no-parent", str(d / "no_such_dir" / "r.json"),
         ("--json", "no_such_dir", "does not exist"), "run"),
        ("json-empty", "", ("--json", "empty path"), "run"),
        ("check-json-directory", str(d / "out_dir"), ("--json", "is a directory"), "check"),
        ("compare-json-proc", "/proc/neurosim.json", ("--json", "/proc"), "compare"),
    ]:
        add(f"output-{cid}", "output", (command, "--json", target, "--limit", "2"), *words)
    (d / "out_file").write_text("not a folder\n")
    for cid, target, words, command in [
        ("out-file", str(d / "out_file"), ("--out", "out_file", "is a file"), "run"),
        ("out-no-parent", str(d / "no_such_dir" / "report"),
         ("--out", "no_such_dir", "does not exist"), "run"),
        ("out-proc", "/proc/neurosim_report", ("--out", "/proc", "cannot write"), "compare"),
        ("check-out", str(d / "report"), ("unrecognized arguments: --out",), "check"),
    ]:
        add(f"output-{cid}", "output", (command, "--out", target, "--limit", "2"), *words)
    return cases


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: python tests/bad_inputs/make_corpus.py DIR", file=sys.stderr)
        return 2
    cases = make_corpus(argv[0])
    for c in cases:
        print(f"{c.id}\n    {c.command()}\n    must name: {' | '.join(c.words)}")
    areas = sorted({c.area for c in cases})
    print(f"\n{len(cases)} cases: " + ", ".join(f"{a} {sum(c.area == a for c in cases)}"
                                             for a in areas))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
