"""Argument handling of the Python API (neurosim.run, compare, neurosim.api.check): every
argument accepts the documented forms, and anything else is a UserError naming the argument,
raised before the model or the data is read."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

import neurosim
from neurosim import api
from neurosim.data import digits
from neurosim.errors import UserError

MODEL = "digits_mlp"
FAST = dict(limit=6, progress=False, precision="float", codings="ttfs:T=8")


@pytest.fixture
def no_model_read(monkeypatch):
    """Fail the test if a model is read: argument errors must come first."""
    def boom(*a, **k):
        raise AssertionError("the model was read before the argument was checked")

    from neurosim import inputs

    monkeypatch.setattr(inputs, "_load_model", boom)


def bad(match, **kwargs):
    args = {**FAST, **kwargs}
    with pytest.raises(UserError, match=match) as e:
        neurosim.run(args.pop("model", MODEL), **args)
    assert "Traceback" not in str(e.value) and len(str(e.value)) < 600
    return str(e.value)


@pytest.fixture(scope="module")
def bundled():
    """The float accuracy of the reference run, on the bundled data."""
    return neurosim.run(MODEL, **FAST)


# ---- 1. codings ---------------------------------------------------------------------------

def test_codings_mapping_runs_the_given_parameters():
    r = neurosim.run(MODEL, codings={"rate": {"T": 16}, "ttfs": None}, limit=4,
                     progress=False, precision="float")
    assert [x["coding"] for x in r.runs] == ["rate:T=16", "ttfs"]
    assert r.runs[0]["params"]["T"] == 16
    assert r.runs[0]["latency_steps"] < 256   # not the default T=256
    r = neurosim.run(MODEL, codings=("rate:T=16", "ttfs:T=8"), limit=4, progress=False,
                     precision="float")
    assert [x["params"]["T"] for x in r.runs] == [16, 8]


def test_codings_mapping_spec_text():
    assert api.codings_specs({"rate": {"T": 16, "input": "poisson"}, "sws": {}}, ()) == \
        ["rate:T=16,input=poisson", "sws"]
    assert api.codings_specs({"sws": {"beta": 1.5, "negative_spikes": False}}, ()) == \
        ["sws:beta=1.5,negative_spikes=off"]
    assert api.codings_specs({"rate": {"T": np.int64(16)}}, ()) == ["rate:T=16"]


def test_a_whole_float_is_an_integer_parameter():
    """A probe's {"T": 16.0} was refused while {"T": "16"} ran."""
    from neurosim.schemes import parse_coding

    assert parse_coding("rate:T=16.0")[1]["T"] == 16 == parse_coding("rate:T=1.6e1")[1]["T"]
    with pytest.raises(UserError, match="key 'T' expects an integer, found '16.5'"):
        parse_coding("rate:T=16.5")


@pytest.mark.parametrize("codings, match", [
    ({"rate": 16}, r"codings\['rate'\]: expected a mapping"),
    ({"rate": {"T": [16]}}, r"codings\['rate'\]\['T'\]"),
    ({"rate": {"T": "1,input=poisson"}}, r"codings\['rate'\]\['T'\]"),
    ([5], r"codings\[0\]: expected a spec string.*found 5 \(int\)"),
    ([("rate", {"T": 16})], r"codings\[0\]: .*\(tuple\)"),
    (5, r"codings: expected .*found 5 \(int\)"),
    ([], r"codings: no coding given"),
    ((), r"codings: no coding given"),
    ({}, r"codings: no coding given"),
    ({"rat": {"T": 16}}, r"unknown coding 'rat'"),
    ({"rate": {"t": 16}}, r"unknown key 't'"),
])
def test_bad_codings(no_model_read, codings, match):
    bad(match, codings=codings)


# ---- 2. allow_overflow -------------------------------------------------------------------

@pytest.mark.parametrize("value", ["no", 1, None, "False"])
def test_allow_overflow_must_be_a_bool(no_model_read, value):
    msg = bad("allow_overflow: expected True or False", allow_overflow=value)
    assert repr(value) in msg


def test_allow_overflow_numpy_bool():
    r = neurosim.run(MODEL, allow_overflow=np.bool_(True), **FAST)
    assert r.profile.arithmetic.allow_overflow is True


# ---- 3./6. model -------------------------------------------------------------------------

@pytest.mark.parametrize("model, match", [
    ("", "model: found an empty string"),
    ("  ", "model: found an empty string"),
    (3, "model: expected .*type int"),
    (b"\x08\x07", "model: expected .*type bytes"),
])
def test_bad_model(no_model_read, model, match):
    bad(match, model=model)


def test_model_path_and_proto(bundled):
    import onnx

    path = api.resolve_model(MODEL)
    r = neurosim.run(pathlib.Path(path), **FAST)
    assert r.runs[0]["accuracy"] == bundled.runs[0]["accuracy"]
    r = neurosim.run(onnx.load(str(path)), **FAST)
    assert r.runs[0]["accuracy"] == bundled.runs[0]["accuracy"]
    doc = r.to_json()["model"]
    assert doc["bundled"] is False and "/" not in doc["path"]


def test_broken_proto_message_is_short():
    import onnx

    proto = onnx.load(str(api.resolve_model(MODEL)))
    del proto.graph.node[:]
    msg = bad("model", model=proto)
    assert "initializer" not in msg and "neurosim-model-" not in msg and len(msg) < 300


# ---- 4./5. data and calib ----------------------------------------------------------------

def test_data_and_calib_as_pathlib(tmp_path, bundled):
    d, c = digits("test"), digits("calibration")
    np.savez(tmp_path / "test.npz", x=d.x, y=d.y)
    np.savez(tmp_path / "calib.npz", x=c.x)
    r = neurosim.run(MODEL, data=tmp_path / "test.npz", calib=tmp_path / "calib.npz", **FAST)
    assert r.runs[0]["accuracy"] == bundled.runs[0]["accuracy"]
    assert r.data.name == "test"


def test_in_memory_data_equals_bundled(bundled):
    d, c = digits("test"), digits("calibration")
    want = bundled.runs[0]["accuracy"]
    for data in [(d.x, d.y), {"x": d.x, "y": d.y}, d, (d.x.tolist(), d.y.astype(float))]:
        for calib in [None, c.x, (c.x, c.y), {"x": c.x}, c]:
            if calib is not None and not isinstance(data, tuple):
                continue  # every calib form once is enough
            r = neurosim.run(MODEL, data=data, calib=calib, **FAST)
            assert r.runs[0]["accuracy"] == want
            assert len(r.data) == FAST["limit"]
    r = neurosim.run(MODEL, data=(d.x, d.y), **FAST)
    assert r.data.name == "arrays" and r.to_json()["data"] == {"name": "arrays", "images": 6}
    r = neurosim.run(MODEL, calib=c.x, **FAST)
    assert r.calib.name == "arrays"


@pytest.mark.parametrize("data, match", [
    (lambda d: d.x, r"data: found an array of images without labels.*\(x, y\)"),
    (lambda d: (d.x, None), r"data: no labels"),
    (lambda d: [d.x, d.y], r"data: expected .*type list"),
    (lambda d: (d.x, d.y, 1), r"data: a tuple must be \(x, y\)"),
    (lambda d: {"images": d.x}, r"data: a dict needs key\(s\) \['x', 'y'\]"),
    (lambda d: 5, r"data: expected .*type int"),
    (lambda d: (d.x, np.eye(10)[d.y]), r"data: array 'y' has shape .*one-hot"),
    (lambda d: (d.x, d.y[:, None]), r"data: array 'y' has shape .*ravel"),
    (lambda d: (d.x, d.y + 0.5), r"data: array 'y' has dtype float64.*not whole"),
    (lambda d: (d.x, d.y[:3]), r"data: expected 'y' of shape \(360,\)"),
    (lambda d: (np.array([["a"]]), d.y), r"data: x has dtype"),
    (lambda d: ([[1, 2], [3]], d.y), r"data: x cannot be made an array"),
])
def test_bad_data_before_the_model(no_model_read, data, match):
    bad(match, data=data(digits("test")))


@pytest.mark.parametrize("data, match", [
    (lambda d: (d.x.reshape(len(d.x), -1), d.y), r"data \(in-memory arrays\): .*reshape"),
    (lambda d: (np.where(d.x > 0.5, np.nan, d.x), d.y), r"data \(in-memory arrays\): .*NaN"),
    (lambda d: (d.x, d.y + 5), r"data \(in-memory arrays\): labels must be in \[0, 10\)"),
    (lambda d: (d.x[:0], d.y[:0]), r"data \(in-memory arrays\): .*no images"),
    (lambda d: (d.x * 255, d.y), r"data \(in-memory arrays\) holds .* calib "),
])
def test_bad_data_against_the_model(data, match):
    bad(match, data=data(digits("test")))


def test_bad_calib():
    c = digits("calibration")
    bad(r"calib \(in-memory arrays\): the calibration images in array 'x' are all zero",
        calib=np.zeros_like(c.x))
    bad(r"calib \(in-memory arrays\): .*transpose", calib=c.x.transpose(0, 2, 3, 1))
    bad(r"calib: expected .*type int", calib=3)


# ---- 7. hw --------------------------------------------------------------------------------

@pytest.mark.parametrize("hw, match", [
    ([], "hw: expected at least one profile"),
    ({"name": "x"}, r"hw: expected .*\(dict\)"),
    (["loihi_like", 3], r"hw\[1\]: expected .*3 \(int\)"),
])
def test_bad_hw(no_model_read, hw, match):
    bad(match, hw=hw)


def test_hw_profile_objects(bundled):
    from neurosim.hw.profile import load_profile

    loihi, asic = load_profile("loihi_like"), load_profile("asic_45nm")
    r = neurosim.run(MODEL, hw=loihi, **FAST)
    assert r.profile.name == "loihi_like"
    assert r.to_json()["hw"]["path"] is None  # unchanged bundled profile: shown by name
    assert r.runs[0]["accuracy"] == bundled.runs[0]["accuracy"]
    r = neurosim.compare(MODEL, hw=[asic, "loihi_like"], codings=["ttfs:T=8"], limit=4,
                         progress=False, precision="float")
    assert [p.name for p in r.profiles] == ["asic_45nm", "loihi_like"]
    with pytest.raises(UserError, match="both profiles named 'loihi_like'"):
        neurosim.run(MODEL, hw=[loihi, "loihi_like"], **FAST)


# ---- 8. limit and seed --------------------------------------------------------------------

@pytest.mark.parametrize("arg, value", [
    ("limit", "16"), ("limit", 2.5), ("limit", True), ("limit", 0), ("limit", -1),
    ("limit", float("nan")), ("limit", [4]),
    ("seed", "a"), ("seed", 1.5), ("seed", False), ("seed", -1),
])
def test_bad_limit_and_seed(no_model_read, arg, value):
    msg = bad(f"{arg}: expected", **{arg: value})
    assert f"{value!r} ({type(value).__name__})" in msg


def test_whole_numbers_are_ints():
    r = neurosim.run(MODEL, limit=4.0, seed=np.int64(3), codings="rate:T=8,input=poisson",
                     progress=False, precision="float")
    assert len(r.data) == 4
    doc = r.to_json()
    assert doc["data"]["images"] == 4 and isinstance(doc["data"]["images"], int)
    r = neurosim.run(MODEL, seed=2.0, **{**FAST, "limit": np.int32(4)})
    assert len(r.data) == 4


# ---- 9. progress --------------------------------------------------------------------------

@pytest.mark.parametrize("value", [1, "yes", 0.5])
def test_bad_progress(no_model_read, value):
    bad(r"progress: expected None, True, False or a callable", progress=value)
    with pytest.raises(UserError, match="progress: expected"):
        api.check(MODEL, limit=4, progress=value)


def test_progress_callable():
    calls = []
    neurosim.run(MODEL, limit=4, precision="float", codings="ttfs:T=8",
                 progress=lambda *a: calls.append(a))
    assert calls


# ---- 10. short reprs ----------------------------------------------------------------------

def test_short_reprs(bundled):
    text = repr(bundled)
    assert len(text) < 500 and len(text.splitlines()) <= 3
    assert MODEL in text and "digits/test (6 images)" in text and "loihi_like" in text
    acc = bundled.runs[0]["accuracy"]["float"]
    assert f"ttfs:T=8 fixed - float {acc:.4f}" in text
    assert len(repr(bundled.profiles[0])) < 300
    c = api.check(MODEL, codings=["ttfs:T=8"], limit=4)
    assert len(repr(c)) < 300 and "ttfs" in repr(c) and MODEL in repr(c)


# ---- check shares the argument checks ----------------------------------------------------

def test_check_takes_the_same_forms(no_model_read):
    with pytest.raises(UserError, match="codings: no coding given"):
        api.check(MODEL, codings=[])
    with pytest.raises(UserError, match="data: found an array"):
        api.check(MODEL, data=digits("test").x)
    with pytest.raises(UserError, match="allow_overflow"):
        api.check(MODEL, allow_overflow="yes")


def test_check_is_a_function_of_the_package():
    """``neurosim.check`` is the function beside ``run`` and ``compare`` (it was a module)."""
    import neurosim
    import neurosim.api

    assert neurosim.check is neurosim.api.check and callable(neurosim.check)
