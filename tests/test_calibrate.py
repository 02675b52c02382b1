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
