"""Calibration: λ per population from the float ANN's activations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neurosim import ann
from neurosim.calibrate import calibrate
from neurosim.data import digits
from neurosim.errors import UserError
from neurosim.graph import populations
from neurosim.onnx_import import load_onnx

MODELS = Path(__file__).parents[1] / "neurosim" / "models"


@pytest.fixture(scope="module")
def resnet():
    return load_onnx(MODELS / "digits_resnet.onnx")


def test_scales_are_the_percentiles_of_each_population(resnet):
    x = digits("calibration").x
    scales = calibrate(resnet, x, percentile=99.0)
    pops = populations(resnet)
    assert list(scales) == [p.name for p in pops]
    _, acts = ann.run(resnet, x, keep=True)
    assert scales["input"] == pytest.approx(np.abs(x).max())  # input: the largest pixel
    for p in pops:
        if p.kind == "hidden":
            assert scales[p.name] == pytest.approx(np.percentile(acts[p.name], 99.0))
        if p.kind == "readout":  # the readout's scale is taken from |pre-activation|
            assert scales[p.name] == pytest.approx(np.percentile(np.abs(acts[p.pre]), 99.0))


def test_higher_percentile_gives_larger_scales(resnet):
    x = digits("calibration").x
    low, high = calibrate(resnet, x, 90.0), calibrate(resnet, x, 100.0)
    hidden = [p.name for p in populations(resnet) if p.kind == "hidden"]
    assert all(low[n] <= high[n] for n in hidden)
    assert any(low[n] < high[n] for n in hidden)


@pytest.mark.parametrize("q", [0, -1, 100.5])
def test_bad_percentile_is_a_user_error(resnet, q):
    with pytest.raises(UserError, match="percentile"):
        calibrate(resnet, digits("calibration").x, q)


def test_empty_calibration_set_is_a_user_error(resnet):
    with pytest.raises(UserError, match="no images"):
        calibrate(resnet, np.zeros((0, 1, 8, 8)))


def test_a_silent_population_gets_a_usable_scale(resnet):
    # nearly blank images: some populations never activate; their λ must stay positive and finite
    x = np.zeros((4, 1, 8, 8))
    x[:, 0, 0, 0] = 1e-9
    scales = calibrate(resnet, x)
    assert all(np.isfinite(v) and v > 0 for v in scales.values())


def test_all_zero_calibration_images_are_an_error(resnet):
    with pytest.raises(UserError, match="all zero"):
        calibrate(resnet, np.zeros((4, 1, 8, 8)))


def test_a_sparse_population_is_scaled_by_its_non_zero_values(tmp_path):
    """A layer active on few (image, neuron) pairs has a 99.9th percentile of 0; it is not
    silent, so it takes the percentile of its non-zero values, not the silent stand-in 1.0
    (found by a probe: rate and TTFS fell from 1.0 to 0.56 on such a net)."""
    import onnx
    from onnx import helper

    from onnx_builders import model

    hidden = 2000
    w1 = np.zeros((hidden, 64), np.float32)
    b1 = np.full(hidden, -1.0, np.float32)
    w1[0], b1[0] = 1.0, 0.0  # one neuron of 2000 carries sum(x), 15–45 on digits
    w2 = np.ones((10, hidden), np.float32)
    nodes = [helper.make_node("Flatten", ["input"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "W1", "b1"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "W2"], ["logits"], transB=1)]
    inits = [("W1", w1), ("b1", b1), ("W2", w2)]
    onnx.save(model(nodes, [("input", ("N", 1, 8, 8))], "logits", inits), tmp_path / "sparse.onnx")
    graph = load_onnx(tmp_path / "sparse.onnx")
    x = digits("calibration").x
    (name,) = [p.name for p in populations(graph) if p.kind == "hidden"]
    _, acts = ann.run(graph, x, keep=True)
    values = acts[name]
    assert np.percentile(values, 99.9) == 0.0 and values.max() > 10  # sparse, not silent
    lam = calibrate(graph, x, percentile=99.9)[name]
    assert lam == pytest.approx(np.percentile(values[values > 0], 99.9))
    assert lam > 10
