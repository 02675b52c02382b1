"""Bad or unusual inputs, tried as a new user would: each exits 2 with a message naming the
culprit, never a traceback, never a silent number."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from neurosim.cli import main
from neurosim.data import digits

from onnx_builders import model

ROOT = Path(__file__).parents[1]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small corpus of bad files, written once."""
    d = tmp_path_factory.mktemp("bad")
    test = digits("test")
    x, y = test.x[:10], test.y[:10]
    made = {}

    def npz(name, **arrays):
        np.savez(d / name, **arrays)
        made[name] = str(d / name)

    npz("labels_big.npz", x=x, y=np.full(10, 50))
    npz("labels_negative.npz", x=x, y=np.full(10, -1))
    npz("empty.npz", x=x[:0], y=y[:0])
    npz("scalar_x.npz", x=np.float64(3.0), y=y)
    npz("objects.npz", x=np.array([object()] * 10, dtype=object), y=y)
    npz("huge.npz", x=x * 1e30, y=y)
    npz("calib_zero.npz", x=np.zeros_like(x))
    # test images 0..255 against the bundled calibration 0..1: every input would saturate
    npz("uint8_scale.npz", x=np.round(x * 255), y=y)
    np.save(d / "plain.npy", x)
    made["plain.npy"] = str(d / "plain.npy")
    (d / "table.csv").write_text("1,2,3\n4,5,6\n")
    made["table.csv"] = str(d / "table.csv")
    made["dir"] = str(d)
    # digits-named calibration files must be read, not replaced by the bundled split
    npz("digits_mycalib.npz", x=np.zeros((3, 1, 5, 5)))
    # models whose output is not (classes,)
    w = np.random.default_rng(0).normal(size=(10, 1, 3, 3))
    conv = helper.make_node("Conv", ["x", "W"], ["y"], name="conv", kernel_shape=[3, 3],
                            pads=[1, 1, 1, 1])
    onnx.save(model([conv], [("x", ("N", 1, 8, 8))], "y", [("W", w)], out_shape=("N", 10, 8, 8)),
              d / "map_output.onnx")
    made["map_output.onnx"] = str(d / "map_output.onnx")
    flat = helper.make_node("Flatten", ["x"], ["f"], name="flat")
    gemm = helper.make_node("Gemm", ["f", "W1"], ["y"], name="gemm", transB=1)
    onnx.save(model([flat, gemm], [("x", ("N", 1, 8, 8))], "y", [("W1", np.ones((1, 64)))],
                    out_shape=("N", 1)), d / "one_output.onnx")
    made["one_output.onnx"] = str(d / "one_output.onnx")
    return made


CASES = [
    (["--data", "{labels_big.npz}"], ["labels_big.npz", "[0, 10)", "50"]),
    (["--data", "{labels_negative.npz}"], ["labels_negative.npz", "[0, 10)"]),
    (["--data", "{empty.npz}"], ["empty.npz", "N > 0"]),
    (["--data", "{scalar_x.npz}"], ["scalar_x.npz", "shape ()"]),
    (["--data", "{objects.npz}"], ["objects.npz", "Python objects"]),
    (["--data", "{huge.npz}"], ["huge.npz", "1e+30"]),
    (["--data", "{plain.npy}"], ["plain.npy", ".npz"]),
    (["--data", "{table.csv}"], ["table.csv", ".npz", "arrays x"]),
    (["--data", "{dir}"], ["is a directory"]),
    (["--calib", "{calib_zero.npz}"], ["all zero"]),
    (["--data", "{uint8_scale.npz}"], ["uint8_scale.npz", "0..255", "--calib", "scaled differently"]),
    (["--calib", "{digits_mycalib.npz}"], ["digits_mycalib.npz", "(1, 5, 5)"]),
    (["{map_output.onnx}"], ["map_output.onnx", "(10, 8, 8)", "classes"]),
    (["{one_output.onnx}"], ["one_output.onnx", "(1,)", "at least 2 classes"]),
]


@pytest.mark.parametrize("argv, words", CASES, ids=lambda v: str(v)[:40])
def test_bad_input_exits_2_naming_it(capsys, files, argv, words):
    argv = [re.sub(r"\{([^}]+)\}", lambda m: files[m.group(1)], a) for a in argv]
    code, out, err = run_cli(capsys, "run", *argv, "--precision", "float", "--limit", "10")
    assert code == 2, (out, err)
    assert err.startswith("neurosim: error: ") and "Traceback" not in err
    for w in words:
        assert w in err, err


def test_register_range_that_does_not_fit_is_an_error_before_running(capsys):
    code, out, err = run_cli(capsys, "run", "--coding", "sws:Tc=20", "--limit", "20")
    assert code == 2 and "Traceback" not in err
    for w in ("Tc=20", "needs 31 state bits", "has 24", "largest Tc that fits is 13",
              "--allow-overflow"):
        assert w in err, err
    assert "fixed\nacc" not in out  # nothing was simulated


def test_allow_overflow_runs_with_a_loud_warning(capsys, tmp_path):
    out_json = tmp_path / "r.json"
    code, out, err = run_cli(capsys, "run", "--coding", "sws:Tc=20", "--limit", "20",
                             "--allow-overflow", "--json", str(out_json))
    assert code == 0, err
    warning = out.index("WARNING:")
    assert warning < out.index("ANN accuracy")  # above the table
    (run,) = json.loads(out_json.read_text())["runs"]
    assert run["warnings"] and "needs 31 state bits" in run["warnings"][0]
    assert {"overflows", "overflows_total", "overflow_images"} <= set(run)


def test_overflows_are_reported_per_image_and_in_total(capsys, tmp_path):
    # λ at the 50th percentile: half the activations exceed λ and many exceed the 2λ the
    # registers hold, so they saturate
    out_json = tmp_path / "r.json"
    code, out, err = run_cli(capsys, "run", "--coding", "sws:Tc=4,percentile=50", "--limit",
                             "40", "--precision", "fixed", "--json", str(out_json))
    assert code == 0, err
    (run,) = json.loads(out_json.read_text())["runs"]
    assert run["overflows_total"] > 0
    # fixed only: no float run to say what the overflows cost
    assert "register overflows" in out and "may be degraded" in out
    assert out.index("WARNING:") < out.index("ANN accuracy")
    assert 0 < run["overflow_images"] <= 40
    assert run["overflows"] == pytest.approx(run["overflows_total"] / 40)


@pytest.mark.parametrize("spec, words", [
    ("sws:Tc=1024", ["Tc=1024", "float64", "Tc ≤ 50"]),
    ("sws:Tc=30,beta=1.25", []),  # 30·log2(1.25) + ... spans little: accepted
])
def test_sws_spans_beyond_float64_are_refused(capsys, spec, words):
    code, out, err = run_cli(capsys, "run", "--coding", spec, "--limit", "5",
                             "--precision", "float")
    assert (code == 2) == bool(words), err
    for w in words:
        assert w in err, err


def test_sws_maxpool_gate_warns_loudly(capsys, tmp_path):
    data = tmp_path / "d.npz"
    np.savez(data, x=np.random.default_rng(0).uniform(0, 1, (8, 3, 16, 16)), y=np.arange(8))
    code, out, err = run_cli(capsys, "run", str(ROOT / "tests" / "fixtures" / "vgg.onnx"),
                             "--data", str(data), "--calib", str(data), "--precision", "float")
    assert code == 0, err
    assert "WARNING: coding 'sws': MaxPool" in out and "approximate" in out
    assert out.index("WARNING") < out.index("ANN accuracy")


def test_a_conversion_loss_names_a_calibration_set_scaled_unlike_the_data():
    """A probe's calibration images at 0.3× the data's (not refused: under 10×) lost 68
    points with a warning that blamed the coding alone."""
    from neurosim.data import Dataset, scale_note
    from neurosim.fixed_vs_float import warn_conversion_loss

    x = np.linspace(0, 1, 2 * 64).reshape(2, 1, 8, 8)
    data, calib = Dataset("t", "t.npz", x, np.zeros(2, np.int64)), Dataset("c", "c.npz", 0.3 * x,
                                                                          np.full(2, -1))
    note = scale_note(data, calib)
    assert "3.3× the calibration images'" in note
    assert scale_note(data, Dataset("c", "c.npz", 0.8 * x, np.full(2, -1))) == ""
    entry = {"coding": "sws", "accuracy": {"float": 0.3}, "warnings": []}
    warn_conversion_loss(entry, 0.99, 2, note)
    assert note in entry["warnings"][0] and "else more steps" in entry["warnings"][0]
