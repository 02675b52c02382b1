"""Rate coding (DESIGN §3.2): the event engine's rate neuron model against the dense integer
reference, bit for bit; Poisson draws independent of batching and threads and shared by the
float and fixed simulators; counting semantics; decoding error and accuracy."""

from __future__ import annotations

import dataclasses

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from neurosim import ann
from neurosim.calibrate import calibrate
from neurosim.counts import ACTION_INDEX
from neurosim.data import digits
from neurosim.errors import UserError
from neurosim.graph import Conv, Dense, Graph, Input, MaxPool, Relu, Reshape, populations
from neurosim.schemes import get_scheme, parse_coding
from neurosim.schemes.rate import (INPUTS, _apply_int, convert, encode_input, initial_state,
                                   poisson_draws, quantize, simulate, simulate_fixed)

from engine_cases import LOIHI, assert_engine_matches_reference, bundled, small_networks

A = ACTION_INDEX
CALIB = digits("calibration").x
TEST = digits("test")
_LAMS: dict = {}


def rate_params(T=8, input="current", v_init=0.0, seed=0):
    return dict(T=T, input=input, v_init=v_init, percentile=99.9, seed=seed)


def lams99_9(model: str):
    """(graph, λ at rate's default percentile 99.9) of a bundled model."""
    if model not in _LAMS:
        g, _ = bundled(model)
        _LAMS[model] = (g, calibrate(g, CALIB, 99.9))
    return _LAMS[model]


def squeezed(lams: dict, factor: float) -> dict:
    """λ of every population but the input times ``factor``: the first layer's weights and
    every bias grow by 1/factor, so inputs exceed the registers' reserved range."""
    first = next(iter(lams))
    return {k: v if k == first else v * factor for k, v in lams.items()}


def assert_bit_exact(net, x):
    """Engine and dense reference on the rate encoding of ``x``, bit for bit."""
    inputs = encode_input(net, x)
    return assert_engine_matches_reference(net, inputs, initial_state(net, inputs))


# ---- bit-exact on the bundled models ---------------------------------------------------------

CASES = [(m, inp, v_init, overflow) for m in ("digits_mlp", "digits_cnn", "digits_resnet")
         for inp in INPUTS for v_init, overflow in ((0.0, "saturate"), (0.5, "wrap"))]


@pytest.mark.parametrize("model, input_, v_init, overflow", CASES)
def test_core_equals_reference_on_bundled_models(model, input_, v_init, overflow):
    g, lams = lams99_9(model)
    snn = convert(g, squeezed(lams, 0.1), rate_params(T=12, input=input_, v_init=v_init, seed=5))
    # 8 bits cannot hold the worst case: --allow-overflow runs it with counted saturations
    net = quantize(snn, dataclasses.replace(LOIHI, state_bits=8, overflow=overflow,
                                            allow_overflow=True))
    assert net.info.warnings
    _, c, _, s = assert_bit_exact(net, TEST.x[:4])
    assert c[..., A["overflow"]].sum() > 0  # the overflow mode is really exercised
    assert s[:, :, net.layer_slice(1)].any()


@pytest.mark.parametrize("overflow", ["saturate", "wrap"])
def test_input_current_register_overflow(overflow):
    """input=current with a 12-bit state, first-layer weights 33× too large and pixels 100×
    beyond the calibrated range (which the range analysis assumes): the input current itself
    exceeds its register (fitted and counted at step 1), bit for bit."""
    g, lams = lams99_9("digits_cnn")
    snn = convert(g, squeezed(lams, 0.03), rate_params(T=4, input="current"))
    net = quantize(snn, dataclasses.replace(LOIHI, state_bits=12, overflow=overflow,
                                            allow_overflow=True))
    x = TEST.x[:4] * 100
    row = encode_input(net, x)
    outside = int(((row < net.model.lo) | (row > net.model.hi)).sum())
    assert outside > 0
    _, c, _, _ = assert_bit_exact(net, x)
    assert c[1, 0, A["overflow"]] >= outside


# ---- bit-exact on random small networks ----------------------------------------------------

@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(net_rng=small_networks(), T=st.integers(1, 10), input_=st.sampled_from(INPUTS),
       v_init=st.sampled_from([0.0, 0.5]), seed=st.integers(0, 2**64 - 1),
       overflow=st.sampled_from(["saturate", "wrap"]), rnd=st.sampled_from(["floor", "nearest"]),
       wb=st.integers(3, 8), sb=st.integers(6, 24), fb=st.integers(0, 4),
       scale=st.sampled_from(["per_layer_pow2", "per_layer"]),
       squeeze=st.sampled_from([0.03, 0.2, 1.0]))
def test_core_equals_reference_on_random_networks(net_rng, T, input_, v_init, seed, overflow, rnd,
                                                  wb, sb, fb, scale, squeeze):
    g, rng = net_rng
    assume(sb >= wb and fb < sb)  # what a profile may hold
    x = rng.uniform(0, 1, (4,) + g.input_shape)
    snn = convert(g, squeezed(calibrate(g, x, 99.9), squeeze),
                  rate_params(T=T, input=input_, v_init=v_init, seed=seed))
    ar = dataclasses.replace(LOIHI, weight_bits=wb, state_bits=sb, frac_bits=fb,
                             weight_scale=scale, overflow=overflow, round=rnd,
                             allow_overflow=True)  # narrow states run, counted
    assert_bit_exact(quantize(snn, ar), x)
    # the integer input current (computed outside the engine, so not covered above) is the
    # exact integer form of every projection map
    for layer in snn.populations[1:]:
        for q in layer.projections:
            w = rng.integers(-50, 50, q.map.weight.shape)
            xi = rng.integers(-9, 9, (2,) + tuple(q.map.in_shape))
            as_float = dataclasses.replace(q.map, weight=w.astype(np.float64))
            exact = as_float.apply(xi.astype(np.float64))
            assert np.array_equal(_apply_int(q.map, w, xi), np.rint(exact).astype(np.int64))


def test_input_current_is_w_times_x_in_state_units():
    """input=current: each image's row holds Q_1·(W·x/λ_0), up to the rounding of the weights
    (half a weight LSB per tap), of the pixels (half a pixel LSB times each weight) and of the
    final shift (one unit)."""
    g, lams = lams99_9("digits_cnn")
    snn = convert(g, lams, rate_params(input="current"))
    net = quantize(snn, LOIHI)
    x = TEST.x[:5]
    layer = snn.populations[1]
    a = x / snn.populations[0].lam
    assert a.min() >= 0 and a.max() <= 1
    row = encode_input(net, x)
    want = net.from_chw(1, layer.projections[0].map.apply(a)) * net.info.scale[1]
    w_state = net.info.input_maps[0][2] << net.info.frac[1]  # (O, 1, 3, 3), state units
    taps = w_state[0].size
    bound = (taps * 0.5 * 2 ** net.info.frac[1]
             + np.abs(w_state).sum(axis=(1, 2, 3)).max() * 0.5 / 2 ** net.info.input_bits + 1)
    assert row.shape == (5, layer.neurons)
    assert np.abs(row - want).max() <= bound
    assert np.abs(row - want).mean() < 0.01 * np.abs(want).mean()


# ---- Poisson draws ---------------------------------------------------------------------------

def test_poisson_draws_are_uniform_and_uncorrelated():
    draws = np.concatenate([poisson_draws(7, np.arange(4), t, 64) for t in range(1, 501)])
    u = draws / 2.0 ** 32
    assert draws.min() >= 0 and draws.max() < 2 ** 32
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002  # 128 000 draws
    spikes = (u < 0.3).astype(np.float64)
    assert abs(spikes.mean() - 0.3) < 0.006
    neighbours = np.corrcoef(spikes[:, :-1].ravel(), spikes[:, 1:].ravel())[0, 1]
    assert abs(neighbours) < 0.02
    assert not np.array_equal(poisson_draws(7, [0], 1, 64), poisson_draws(8, [0], 1, 64))


def test_poisson_is_independent_of_batching_and_threads_and_shared_with_float():
    g, lams = lams99_9("digits_cnn")
    snn = convert(g, lams, rate_params(T=16, input="poisson", seed=11))
    net = quantize(snn, LOIHI)
    x = TEST.x[:10]
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        a = simulate_fixed(net, x, trace=True)
        numba.set_num_threads(1)
        b = simulate_fixed(net, x, trace=True, batch=3)
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(a.outputs, b.outputs)
    assert np.array_equal(a.extra["spikes"], b.extra["spikes"])
    assert np.array_equal(a.counts.data, b.counts.data)
    assert np.array_equal(a.counts.by_image, b.counts.by_image)
    # the float simulator draws the same input spikes, in any batching
    flt = simulate(snn, x, trace=True, batch=4)
    trains = a.extra["spikes"][:, :, net.layer_slice(0)].reshape(10 * 16, -1)
    fixed_in = net.to_chw(0, trains).reshape((10, 16) + net.shapes[0])
    assert fixed_in.any() and np.array_equal(flt.extra["trace"][snn.populations[0].name], fixed_in)


# ---- counting semantics --------------------------------------------------------------------

@pytest.mark.parametrize("input_", INPUTS)
def test_counts_per_neuron_and_step(input_):
    """digits_mlp (dense 64 → 128 → 64 → 10): every counted action from its definition."""
    g, lams = lams99_9("digits_mlp")
    T, n_img = 8, 3
    net = quantize(convert(g, lams, rate_params(T=T, input=input_)), LOIHI)
    _, c, ci, s = assert_bit_exact(net, TEST.x[:n_img])
    n = net.size
    spikes = [int(s[:, :, net.layer_slice(l)].sum()) for l in range(net.layers)]
    total = c.sum(axis=1)  # (layers, actions) over the steps and images
    nonzero_bias = [np.count_nonzero(net.model.bias[net.layer_slice(l)]) for l in range(net.layers)]
    fed = input_ == "current"
    for l in (1, 2, 3):
        updates = n_img * T * n[l]
        cur = updates if fed and l == 1 else 0
        assert total[l, A["synop"]] == spikes[l - 1] * n[l]
        assert total[l, A["state_read"]] == updates + cur
        assert total[l, A["state_write"]] == updates + (n_img * n[l] if cur else 0)
        assert total[l, A["add"]] == updates + cur + spikes[l]
        assert total[l, A["bias_add"]] == n_img * T * nonzero_bias[l]
        assert total[l, A["compare"]] == (updates if l < 3 else 0)
        assert total[l, A["spike_out_pos"]] == spikes[l]
    # the input current: one MAC per synapse, once per image, at step 1
    assert c[1, 0, A["mac"]] == (n_img * 64 * 128 if fed else 0)
    assert c[:, 1:, A["mac"]].sum() == 0 and c[2:, :, A["mac"]].sum() == 0
    encoder = total[0]
    draws = n_img * T * 64
    assert encoder[A["compare"]] == (0 if fed else draws)
    assert encoder[A["shift"]] == (draws if input_ == "poisson" else 0)
    assert encoder[A["state_read"]] == (draws if input_ == "regular" else 0)
    assert encoder[A["add"]] == (draws + spikes[0] if input_ == "regular" else 0)
    assert encoder[A["spike_out_pos"]] == spikes[0] and (spikes[0] > 0) != fed
    for action in ("spike_out_neg", "fifo_read", "fifo_write", "weight_read", "overflow"):
        assert total[:, A[action]].sum() == 0, action
    assert np.array_equal(ci.sum(axis=0), total)  # per image sums to the same


# ---- decoding and accuracy -----------------------------------------------------------------

@pytest.mark.parametrize("v_init", [0.0, 0.5])
def test_decoded_error_shrinks_with_T(v_init):
    """Spike count/T·λ approaches the ANN's activations as T grows (about as 1/T)."""
    g, lams = lams99_9("digits_cnn")
    x = TEST.x[:20]
    _, acts = ann.run(g, x, keep=True)
    # what each population decodes to in the ANN: a hidden layer's activation, the readout's
    # pre-activation
    want = {p.name: acts[p.pre if p.kind == "readout" else p.name] for p in populations(g)}
    errors = []
    for T in (16, 64, 256):
        snn = convert(g, lams, rate_params(T=T, v_init=v_init))
        res = simulate(snn, x)
        layer_err = [np.abs(res.decoded[layer.name] - want[layer.name]).mean() / layer.lam
                     for layer in snn.populations[1:]]
        assert max(layer_err) < 1.25 / T, (T, layer_err)
        errors.append(layer_err)
    errors = np.array(errors)
    assert np.all(errors[1:] < errors[:-1]), errors


def test_float_and_fixed_accuracy_near_the_ann():
    """digits_cnn, T=64, whole test split: float within 2 points of the ANN, fixed (loihi_like)
    within 1 point of float, no overflow."""
    g, lams = lams99_9("digits_cnn")
    ann_acc = float(np.mean(ann.run(g, TEST.x)[0].argmax(axis=1) == TEST.y))
    snn = convert(g, lams, rate_params(T=64))
    flt = simulate(snn, TEST.x)
    fx = simulate_fixed(quantize(snn, LOIHI), TEST.x)
    assert flt.accuracy(TEST.y) >= ann_acc - 0.02
    assert fx.accuracy(TEST.y) >= flt.accuracy(TEST.y) - 0.01
    assert sum(fx.extra["overflow_by_layer"].values()) == 0
    assert np.abs(fx.outputs - flt.outputs).mean() < 0.02 * np.abs(flt.outputs).mean()


# ---- the plug-in -----------------------------------------------------------------------------

def test_parameters_and_timing():
    name, p = parse_coding("rate")
    assert p == {"T": 256, "input": "current", "v_init": 0.0, "percentile": 99.9, "seed": 0}
    _, p = parse_coding("rate:T=32,input=poisson,v_init=0.5,seed=3")
    assert (p["T"], p["input"], p["v_init"], p["seed"]) == (32, "poisson", 0.5, 3)
    for spec, key in (("rate:T=0", "'T'"), ("rate:v_init=0.3", "'v_init'"),
                      ("rate:input=poison", "'input'"), ("rate:seed=-1", "'seed'"),
                      ("rate:percentile=0", "'percentile'")):
        with pytest.raises(UserError, match=key):
            parse_coding(spec)
    scheme = get_scheme("rate")
    g, lams = lams99_9("digits_mlp")
    snn = scheme.build(g, CALIB, p, scales=lams)
    assert scheme.timing(snn) == (32, 32)


def test_maxpool_is_an_error_naming_the_node():
    rng = np.random.default_rng(0)
    nodes = {"x": Input("x", (), (1, 4, 4)),
             "c": Conv("c", ("x",), (2, 4, 4), weight=rng.normal(size=(2, 1, 3, 3)),
                       bias=np.zeros(2), pads=(1, 1, 1, 1)),
             "r": Relu("r", ("c",), (2, 4, 4)),
             "mp": MaxPool("mp", ("r",), (2, 2, 2), kernel=(2, 2), stride=(2, 2)),
             "f": Reshape("f", ("mp",), (8,)),
             "d": Dense("d", ("f",), (3,), weight=rng.normal(size=(3, 8)), bias=np.zeros(3))}
    g = Graph("mp", "mp.onnx", nodes, "x", "d")
    with pytest.raises(UserError, match=r"MaxPool node 'mp'.*'rate'"):
        get_scheme("rate").build(g, rng.uniform(size=(4, 1, 4, 4)), parse_coding("rate")[1])


@pytest.mark.parametrize("frac_bits", [8, 30, 60])
def test_wide_fractional_bits_do_not_wrap_the_input_current(frac_bits):
    """The input current is an exact int64 product of input and weights; with many
    fractional bits the input's own precision gives way (it used to wrap silently: fixed
    accuracy fell to chance at frac_bits ≥ 26 with no overflow counted)."""
    g, lams = lams99_9("digits_cnn")
    net = quantize(convert(g, lams, rate_params(T=32)),
                   dataclasses.replace(LOIHI, state_bits=62, frac_bits=frac_bits))
    x = TEST.x[:40]
    assert net.info.input_bits >= 8  # the input keeps a useful precision
    fixed = simulate_fixed(net, x)
    assert fixed.accuracy(TEST.y[:40]) >= simulate(convert(g, lams, rate_params(T=32)),
                                                   x).accuracy(TEST.y[:40]) - 0.05
    assert_bit_exact(net, x[:3])


def test_an_input_current_beyond_int64_is_an_error_not_a_wrapped_number():
    g, lams = lams99_9("digits_cnn")
    net = quantize(convert(g, lams, rate_params(T=32)), LOIHI)
    encode_input(net, TEST.x[:2] * 16)  # 16× the calibration's scale still fits
    with pytest.raises(UserError, match="64-bit integers"):
        encode_input(net, TEST.x[:2] * 2.0 ** 50)
