"""TSC, temporal switch coding (DESIGN §3.4): the encoder against eq. 1–2; the event engine's
TSC neuron model against the dense integer reference, bit for bit; what ``single`` and
``switch`` emission guarantee (≤ 2 events per neuron; the internal train reproduced
downstream); counting semantics; the readout's decoding."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from neurosim import ann
from neurosim.calibrate import calibrate
from neurosim.core.reference import apply_conv, conv_node
from neurosim.counts import ACTION_INDEX
from neurosim.data import digits
from neurosim.errors import UserError
from neurosim.schemes import parse_coding
from neurosim.schemes.tsc import (EMISSIONS, THRESHOLDS, convert, emission_stats, encode_input,
                                  encode_times, encoder_trains, on_steps, quantize, simulate,
                                  simulate_fixed)

from engine_cases import LOIHI, assert_engine_matches_reference, bundled, small_networks

A = ACTION_INDEX
CALIB = digits("calibration").x
TEST = digits("test")
_LAMS: dict = {}


def tsc_params(N=12, emission="single", thresholds="lambda", alpha=0.8):
    return dict(N=N, alpha=alpha, emission=emission, thresholds=thresholds, percentile=99.9)


def lams99_9(model: str):
    """(graph, λ at TSC's default percentile 99.9) of a bundled model."""
    if model not in _LAMS:
        g, _ = bundled(model)
        _LAMS[model] = (g, calibrate(g, CALIB, 99.9))
    return _LAMS[model]


def squeezed(lams: dict, factor: float) -> dict:
    """λ of every population but the input times ``factor``: the weights into the first layer
    and every bias grow by 1/factor, so currents exceed the registers' reserved range."""
    first = next(iter(lams))
    return {k: v if k == first else v * factor for k, v in lams.items()}


def assert_bit_exact(net, x):
    """Engine and dense reference on the TSC encoding of ``x``, bit for bit."""
    return assert_engine_matches_reference(net, encode_input(net, x))


def layer_events(net, spikes, l):
    """(images, N, neurons of layer l) int64 events from an engine trace."""
    return spikes[:, :, net.layer_slice(l)].astype(np.int64)


# ---- the encoder (eq. 1–2) -------------------------------------------------------------------

def test_encoder_follows_eq_1_and_2():
    """Hand-picked pixels at N = 9 (|p| quantised to 8 levels): p* = floor(|p|·8) + 1, spikes
    sgn(p) at t = 1 and −sgn(p) at t = p* when p* ≥ 2; the same trains from the numpy
    encoder, the float simulator and the engine."""
    N = 9
    p = np.array([1.0, 0.5, -0.5, 0.1, 0.125, -1.0, 0.0, 1.7, 0.99, -0.3])
    # p* = 9, 5, 5, 1, 2, 9, 1, 9 (clipped), 8, floor(2.4)+1 = 3
    want = {0: (1, 9), 1: (1, 5), 2: (-1, 5), 4: (1, 2), 5: (-1, 9), 7: (1, 9), 8: (1, 8),
            9: (-1, 3)}
    assert encode_times(p, N).tolist() == [9, 5, -5, 0, 2, -9, 0, 9, 8, -3]
    expected = np.zeros((len(p), N), np.int64)
    for j, (sign, pstar) in want.items():
        expected[j, 0] = sign
        expected[j, pstar - 1] = -sign
    trains = encoder_trains(encode_times(p, N)[None], N)[0].T  # (pixels, N)
    assert np.array_equal(trains, expected)
    # the on-period carries sgn(p)·(p* − 1)/(N − 1): |p| quantised to N − 1 levels
    assert np.allclose(on_steps(trains.T[None])[0] / (N - 1),
                       [1, 0.5, -0.5, 0, 0.125, -1, 0, 1, 0.875, -0.25])
    # through a network: the pixels sit in an 8×8 image; λ_0 = 1 on the digits
    g, lams = lams99_9("digits_mlp")
    assert lams["input"] == 1.0
    where = [0, 9, 18, 27, 36, 45, 54, 63, 7, 56]
    x = np.zeros((1, 1, 8, 8))
    x.reshape(-1)[where] = p
    snn = convert(g, lams, tsc_params(N=N))
    flt = simulate(snn, x, trace=True)
    assert np.array_equal(flt.extra["trace"]["input"].reshape(N, 64)[:, where].T, expected)
    net = quantize(snn, LOIHI)
    _, _, _, s = assert_bit_exact(net, x)
    engine_in = net.to_chw(0, layer_events(net, s, 0)[0]).reshape(N, 64)  # (steps, pixels)
    assert np.array_equal(engine_in[:, where].T, expected)


# ---- bit-exact on the bundled models ---------------------------------------------------------

MODELS = ("digits_mlp", "digits_cnn", "digits_resnet")
CASES = [(m, emission, overflow) for m in MODELS for emission in EMISSIONS
         for overflow in ("saturate", "wrap")]


@pytest.mark.parametrize("model, emission, overflow", CASES)
def test_core_equals_reference_on_bundled_models(model, emission, overflow):
    """λ squeezed tenfold and an 8-bit state, below the registers' worst case (run with
    --allow-overflow): currents beyond the registers, so the overflow mode is really
    exercised."""
    g, lams = lams99_9(model)
    snn = convert(g, squeezed(lams, 0.1), tsc_params(N=12, emission=emission))
    net = quantize(snn, dataclasses.replace(LOIHI, state_bits=8, overflow=overflow,
                                            allow_overflow=True))
    assert net.info.warnings
    _, c, _, s = assert_bit_exact(net, TEST.x[:4])
    assert c[..., A["overflow"]].sum() > 0
    assert s[:, :, net.layer_slice(net.layers - 2)].any()  # the last hidden layer spikes


@pytest.mark.parametrize("model, emission", [("digits_cnn", "single"), ("digits_resnet", "switch")])
def test_core_equals_reference_with_balanced_thresholds(model, emission):
    g, lams = lams99_9(model)
    snn = convert(g, lams, tsc_params(N=16, emission=emission, thresholds="balance"), CALIB[:30])
    net = quantize(snn, LOIHI)
    _, c, _, s = assert_bit_exact(net, TEST.x[:4])
    assert c[..., A["overflow"]].sum() == 0
    assert s[:, :, net.layer_slice(net.layers - 2)].any()


# ---- bit-exact on random small networks ----------------------------------------------------

@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(net_rng=small_networks(), N=st.integers(2, 10), emission=st.sampled_from(EMISSIONS),
       thresholds=st.sampled_from(THRESHOLDS), alpha=st.sampled_from([0.3, 0.8, 1.0]),
       overflow=st.sampled_from(["saturate", "wrap"]), rnd=st.sampled_from(["floor", "nearest"]),
       wb=st.integers(3, 8), sb=st.integers(6, 24), fb=st.integers(0, 4),
       scale=st.sampled_from(["per_layer_pow2", "per_layer"]),
       squeeze=st.sampled_from([0.05, 0.3, 1.0]))
def test_core_equals_reference_on_random_networks(net_rng, N, emission, thresholds, alpha,
                                                  overflow, rnd, wb, sb, fb, scale, squeeze):
    g, rng = net_rng
    assume(sb >= wb and fb < sb)  # what a profile may hold
    x = rng.uniform(-1, 1, (4,) + g.input_shape)  # bipolar pixels: spikes of both signs
    snn = convert(g, squeezed(calibrate(g, x, 99.9), squeeze),
                  tsc_params(N=N, emission=emission, thresholds=thresholds, alpha=alpha), x)
    ar = dataclasses.replace(LOIHI, weight_bits=wb, state_bits=sb, frac_bits=fb,
                             weight_scale=scale, overflow=overflow, round=rnd,
                             allow_overflow=True)  # narrow states run, counted
    assert_bit_exact(quantize(snn, ar), x)


# ---- what the emissions guarantee ------------------------------------------------------------

def fan_out(net) -> np.ndarray:
    """Stored synapses of every neuron's fan-out (conv: valid taps × output channels of its
    group; dense: every target neuron)."""
    out = np.zeros(net.neurons, np.int64)
    for p in range(len(net.p_src)):
        s = net.p_src[p]
        sl = net.layer_slice(s)
        if net.p_kind[p] == 0:
            eye = np.eye(net.size[s], dtype=np.int64)
            out[sl] += apply_conv(conv_node(net, p, ones=True), eye, net.shapes[s]).sum(1)
        else:
            out[sl] += net.size[net.p_dst[p]]
    return out


@pytest.mark.parametrize("model", ["digits_cnn", "digits_resnet"])
def test_single_reads_each_synapse_at_most_twice(model):
    """``single``: every neuron (and pixel) sends at most a +1 and then a −1, so the synops
    per image, counted by the engine, are exactly Σ events × fan-out, at most 2 × the
    network's structural fan-out: ≤ 2 weight reads and 2 adds per synapse per inference."""
    g, lams = lams99_9(model)
    snn = convert(g, lams, tsc_params(N=32, emission="single", thresholds="balance"), CALIB[:30])
    net = quantize(snn, LOIHI)
    n_img = 5
    _, c, ci, s = assert_bit_exact(net, TEST.x[:n_img])
    trains = s.astype(np.int64)
    sent = np.abs(trains).sum(axis=1)  # (images, neurons)
    assert sent.max() == 2
    # the first event of a neuron is +1 (hidden) and the second the opposite of the first
    order = np.cumsum(np.abs(trains), axis=1)
    first = (trains * (order == 1)).sum(axis=1)
    second = (trains * (order == 2) * (np.abs(trains) > 0)).sum(axis=1)
    assert np.all(second == -first * (sent == 2))
    assert np.all(first[:, net.size[0]:] >= 0)
    fo = fan_out(net)
    synops = ci[:, :, A["synop"]].sum(axis=1)  # per image
    assert np.array_equal(synops, (sent * fo).sum(axis=1))
    assert np.all(synops <= 2 * fo.sum())
    assert c[..., A["weight_read"]].sum() == 0


def test_switch_reproduces_the_internal_train_downstream():
    """``switch`` in float: the on-state of every emitted train is the internal spike train,
    step for step (``emission_stats``: no mismatch, everything carried). ``single`` on the
    same network carries less, which ``emission_stats`` shows."""
    g, lams = lams99_9("digits_cnn")
    x = TEST.x[:6]
    res = simulate(convert(g, lams, tsc_params(N=24, emission="switch")), x, trace=True)
    for name, internal in res.extra["internal_trace"].items():
        assert internal.any()
        assert np.array_equal(np.cumsum(res.extra["trace"][name], axis=1), internal), name
    for stats in emission_stats(res).values():
        assert stats["mismatch"] == 0.0 and stats["carried"] == 1.0
        assert stats["mean_abs_error"] == 0.0
    single = simulate(convert(g, lams, tsc_params(N=24, emission="single")), x, trace=True)
    lost = emission_stats(single)
    assert all(s["carried"] <= 1.0 for s in lost.values())
    assert any(s["mismatch"] > 0.0 for s in lost.values())


def reconstructed_current(net, spikes, l):
    """I(t) of layer l (images, N, neurons) in state units, from the sources' engine traces:
    Σ_projections W·(on-state of the source at t) + the bias in steps 1..N−1."""
    n_img, N = spikes.shape[:2]
    current = np.zeros((n_img * N, net.size[l]), np.int64)
    for p in np.flatnonzero(net.p_dst == l):
        s = net.p_src[p]
        state = np.cumsum(layer_events(net, spikes, s), axis=1).reshape(n_img * N, -1)
        if net.p_kind[p] == 0:
            current += apply_conv(conv_node(net, p), state, net.shapes[s])
        else:
            w = net.weights[net.p_woff[p]:net.p_woff[p] + net.size[s] * net.size[l]]
            current += state @ w.reshape(net.size[s], net.size[l])
    current = current.reshape(n_img, N, -1)
    current[:, :N - 1] += net.model.bias[net.layer_slice(l)]
    return current


@pytest.mark.parametrize("model", ["digits_mlp", "digits_resnet"])
def test_switch_registers_follow_the_trains_in_fixed_point(model):
    """``switch`` on the engine: each layer's current register ends at W·(its sources'
    on-states) (every switch of a source's internal train changed it once), and its membrane
    at Σ_t I(t) − Q·(its own on-steps): the neuron reset exactly in the steps its emitted
    train was on, so the train downstream is its internal train."""
    g, lams = lams99_9(model)
    net = quantize(convert(g, lams, tsc_params(N=20, emission="switch")), LOIHI)
    state, c, _, s = assert_bit_exact(net, TEST.x[:4])
    assert c[..., A["overflow"]].sum() == 0
    for l in range(1, net.layers):
        sl = net.layer_slice(l)
        current = reconstructed_current(net, s, l)
        assert np.array_equal(state[:, 0, sl], current[:, -1]), net.names[l]
        resets = 0 if l == net.layers - 1 else \
            net.model.threshold[l] * on_steps(layer_events(net, s, l))
        assert np.array_equal(state[:, 1, sl], current.sum(axis=1) - resets), net.names[l]


# ---- counting semantics --------------------------------------------------------------------

@pytest.mark.parametrize("emission", EMISSIONS)
def test_counts_per_neuron_and_step(emission):
    """digits_mlp (dense 64 → 128 → 64 → 10): every counted action from its definition, with
    the live neurons (``single``: not yet past its −1) and the on-steps from the traces."""
    g, lams = lams99_9("digits_mlp")
    N, n_img = 10, 3
    net = quantize(convert(g, lams, tsc_params(N=N, emission=emission)), LOIHI)
    _, c, ci, s = assert_bit_exact(net, TEST.x[:n_img])
    n = net.size
    total = c.sum(axis=1)
    for l in (1, 2):
        ev = layer_events(net, s, l)
        events = int(np.abs(ev).sum())
        if emission == "single":  # dead from the step after its −1
            dead_after = np.cumsum(ev < 0, axis=1) > 0
            live = np.ones_like(ev, bool)
            live[:, 1:] = ~dead_after[:, :-1]
        else:
            live = np.ones_like(ev, bool)
        n_live = int(live.sum())
        # a live neuron spikes internally exactly in the steps its train is on
        fires = int(on_steps(ev).sum())
        bias = net.model.bias[net.layer_slice(l)] != 0
        assert total[l, A["synop"]] == np.abs(layer_events(net, s, l - 1)).sum() * n[l]
        assert total[l, A["state_read"]] == n_img * N * n[l] + 2 * n_live
        assert total[l, A["state_write"]] == 2 * n_live + events
        assert total[l, A["add"]] == 2 * n_live + fires
        assert total[l, A["compare"]] == n_live
        assert total[l, A["bias_add"]] == n_img * bias.sum() + (live[:, -1] & bias).sum()
        assert total[l, A["spike_out_pos"]] == (ev > 0).sum()
        assert total[l, A["spike_out_neg"]] == (ev < 0).sum()
    readout, ro_bias = net.layers - 1, np.count_nonzero(net.model.bias[net.layer_slice(3)])
    for action in ("state_read", "state_write", "add"):
        assert total[readout, A[action]] == 2 * n_img * N * n[readout]
    assert total[readout, A["bias_add"]] == 2 * n_img * ro_bias
    assert total[readout, A["synop"]] == np.abs(layer_events(net, s, 2)).sum() * n[readout]
    for action in ("compare", "spike_out_pos", "spike_out_neg"):
        assert total[readout, A[action]] == 0
    pixels = n_img * N * n[0]
    assert total[0, A["state_read"]] == pixels and total[0, A["compare"]] == pixels
    for action in ("shift", "fifo_read", "fifo_write", "weight_read", "overflow", "mac"):
        assert total[:, A[action]].sum() == 0, action
    assert np.array_equal(ci.sum(axis=0), total)


# ---- decoding and accuracy -----------------------------------------------------------------

@pytest.mark.parametrize("emission", EMISSIONS)
def test_readout_is_the_ann_output_on_decoded_values(emission):
    """V_N = Σ_t I(t) = W·(on-steps of the sources) + b·(N − 1), so the readout's output is
    exactly the ANN's output layer applied to the decoded values of its sources; the input
    decodes to its eq. 1 quantisation."""
    g, lams = lams99_9("digits_cnn")
    x = TEST.x[:8]
    snn = convert(g, lams, tsc_params(N=16, emission=emission))
    res = simulate(snn, x)
    N = 16
    assert np.allclose(res.decoded["input"], np.floor(x * (N - 1)) / (N - 1))
    readout, source = snn.layers[-1], snn.layers[-2]
    ann_map = readout.projections[0].map  # W = Ŵ·s_source/λ_readout
    want = (ann_map.apply(res.decoded[source.name] / source.lam)
            + readout.bias.reshape(readout.shape)) * readout.lam
    assert np.allclose(res.outputs, want, atol=1e-9 * np.abs(want).max())
    # the engine's readout is the same identity in integers: its output is
    # (W_int·on-steps of the source + b_int·(N − 1))/(Q·(N − 1))·λ, exactly
    net = quantize(snn, LOIHI)
    fx = simulate_fixed(net, x, trace=True)
    assert np.array_equal(fx.decoded["input"], res.decoded["input"])
    r, src = net.layers - 1, net.layers - 2
    p = int(np.flatnonzero(net.p_dst == r)[0])
    w = net.weights[net.p_woff[p]:net.p_woff[p] + net.size[src] * net.size[r]]
    total = on_steps(layer_events(net, fx.extra["spikes"], src)) @ w.reshape(net.size[src], -1)
    total += net.model.bias[net.layer_slice(r)] * (N - 1)
    want = total / (net.model.threshold[r] * (N - 1)) * readout.lam
    assert np.array_equal(fx.outputs, want)


def test_switch_accuracy_near_the_ann_float_and_fixed():
    """digits_cnn at the default N = 64 with ``switch`` on 120 test images: float within 2
    points of the ANN, fixed (loihi_like) within 1 point of float, no overflow."""
    g, lams = lams99_9("digits_cnn")
    x, y = TEST.x[:120], TEST.y[:120]
    ann_acc = ann.accuracy(g, x, y)
    snn = convert(g, lams, tsc_params(N=64, emission="switch"))
    flt = simulate(snn, x)
    fx = simulate_fixed(quantize(snn, LOIHI), x)
    assert flt.accuracy(y) >= ann_acc - 0.02
    assert fx.accuracy(y) >= flt.accuracy(y) - 0.01
    assert sum(fx.extra["overflow_by_layer"].values()) == 0


# ---- the plug-in -----------------------------------------------------------------------------

def test_parameters():
    _, p = parse_coding("tsc")
    assert p == {"N": 64, "alpha": 0.8, "emission": "single", "thresholds": "balance",
                 "percentile": 99.9}
    _, p = parse_coding("tsc:N=16,alpha=0.6,emission=switch,thresholds=lambda")
    assert (p["N"], p["alpha"], p["emission"], p["thresholds"]) == (16, 0.6, "switch", "lambda")
    for spec, key in (("tsc:N=1", "'N'"), ("tsc:alpha=0", "'alpha'"), ("tsc:alpha=1.5", "'alpha'"),
                      ("tsc:emission=both", "'emission'"), ("tsc:thresholds=max", "'thresholds'"),
                      ("tsc:percentile=0", "'percentile'"), ("tsc:T=8", "'T'")):
        with pytest.raises(UserError, match=key):
            parse_coding(spec)
