"""Phase coding / weighted spikes (DESIGN §3.5): the paper's noise-spike example (Fig. 3), the
event engine's phase neuron model with and without early decision against the dense integer
reference, bit for bit; counting identities; decoded values converging over periods; what
early decision saves; accuracy at the defaults; parameter errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from neurosim import ann
from neurosim.calibrate import calibrate, population_values
from neurosim.counts import ACTION_INDEX
from neurosim.data import digits
from neurosim.errors import UserError
from neurosim.graph import Dense, Graph, Input, Relu
from neurosim.schemes import get_scheme, parse_coding
from neurosim.core.ranges import signed_bits
from neurosim.schemes.phase import (DEC_STEP, SCHEME, convert, decision_steps,
                                    encode_input, input_codes, quantize, register_extents,
                                    simulate, simulate_fixed)

from engine_cases import LOIHI, assert_engine_matches_reference, bundled, small_networks

A = ACTION_INDEX
CALIB = digits("calibration").x
TEST = digits("test")
_LAMS: dict = {}


def phase_params(**kw):
    return dict(SCHEME.defaults(), **kw)


def lams99_9(model: str):
    """(graph, λ at phase's default percentile 99.9) of a bundled model."""
    if model not in _LAMS:
        g, _ = bundled(model)
        _LAMS[model] = (g, calibrate(g, CALIB, 99.9))
    return _LAMS[model]


def squeezed(lams: dict, factor: float) -> dict:
    """λ of every population but the input times ``factor``: weights and biases grow by
    1/factor, so membranes exceed the registers' reserved range."""
    first = next(iter(lams))
    return {k: v if k == first else v * factor for k, v in lams.items()}


def assert_bit_exact(net, x):
    """Engine and dense reference on the phase encoding of ``x``, bit for bit."""
    return assert_engine_matches_reference(net, encode_input(net, x))


def flag(net, state):
    """(N,) the decision-step register of each image (0: not decided)."""
    return state[:, net.model.dec_row[DEC_STEP], net.model.dec_col[DEC_STEP]]


# ---- the paper's noise-spike example (§4.3, Fig. 3) ------------------------------------------

def noise_spike_net(periods: int):
    """N¹₁ and N¹₂ (weights +1 and −1) into one hidden neuron, K = 8; every unit λ' is 1, so
    the inputs 128/256 and 127/256 are sent as the codes 128 and 127."""
    nodes = {"x": Input("x", (), (2,)),
             "h": Dense("h", ("x",), (1,), weight=np.array([[1.0, -1.0]]), bias=np.zeros(1)),
             "r": Relu("r", ("h",), (1,)),
             "o": Dense("o", ("r",), (1,), weight=np.ones((1, 1)), bias=np.zeros(1))}
    g = Graph("fig3", "fig3", nodes, "x", "o")
    lam = 255 / 256  # λ' = λ·2^8/(2^8 − 1) = 1
    return convert(g, {"x": lam, "r": lam, "o": lam},
                   phase_params(K=8, periods=periods, skip_periods=0))


def test_noise_spike_example():
    """The trains 10000000 (128/256) and 01111111 (127/256) into weights +1 and −1: the neuron
    fires the noise train 10000000 instead of 00000001 and is left at −127/256 (float, and the
    core in the scaled form V' = V/ω); its negative membrane keeps it silent in the next
    periods, so its average 0.5/periods approaches the true 1/256."""
    x = np.array([[128 / 256, 127 / 256]])
    one = noise_spike_net(periods=1)
    assert input_codes(x, one.populations[0].lam, 8).tolist() == [[128, 127]]
    flt = simulate(one, x, trace=True)
    assert flt.extra["trace"]["r"][0, :, 0].tolist() == [1, 0, 0, 0, 0, 0, 0, 0]
    assert flt.extra["membrane"]["r"][0, 0] == -127 / 256
    net = quantize(one, LOIHI)
    state, _, _, spikes = assert_bit_exact(net, x)
    hidden = net.offset[1]
    assert spikes[0, :, hidden].tolist() == [1, 0, 0, 0, 0, 0, 0, 0]
    q = net.model.threshold[1]
    assert state[0, 0, hidden] == -127 * q  # V' in the last phase is 2^8·V thresholds

    four = noise_spike_net(periods=4)
    flt = simulate(four, x, trace=True)
    assert flt.extra["trace"]["r"][0, 8:].sum() == 0  # silent in periods 2–4
    assert flt.decoded["r"][0, 0] == pytest.approx(0.5 / 4)
    fixed = simulate_fixed(quantize(four, LOIHI), x, trace=True)
    assert fixed.decoded["r"][0, 0] == pytest.approx(0.5 / 4)


# ---- bit-exact on the bundled models ---------------------------------------------------------

CASES = [(m, early, ovf) for m in ("digits_mlp", "digits_cnn", "digits_resnet")
         for early in (False, True) for ovf in ("saturate", "wrap")]


NARROW_STATE = {"digits_mlp": 10, "digits_cnn": 12, "digits_resnet": 13}


@pytest.mark.parametrize("model, early, overflow", CASES)
def test_core_equals_reference_on_bundled_models(model, early, overflow):
    """λ squeezed tenfold into a state narrower than the registers' worst case (run with
    --allow-overflow): registers overflow (the mode is exercised); with early decision some
    images stop before the end (the stop flag is exercised). The widths are the narrowest
    at which early decision still decides on these images."""
    g, lams = lams99_9(model)
    snn = convert(g, squeezed(lams, 0.1),
                  phase_params(K=4, periods=3, skip_periods=1, early=early, theta=0.3))
    ar = dataclasses.replace(LOIHI, state_bits=NARROW_STATE[model], overflow=overflow,
                             round="nearest" if overflow == "wrap" else "floor",
                             allow_overflow=True)
    net = quantize(snn, ar)
    assert net.info.warnings
    state, c, _, spikes = assert_bit_exact(net, TEST.x[:4])
    assert c[..., A["overflow"]].sum() > 0
    assert spikes[:, :, net.layer_slice(1)].any()
    if early:
        decided = flag(net, state)
        assert np.any((decided > 0) & (decided < net.steps)), decided


# ---- bit-exact on random small networks ----------------------------------------------------

@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(net_rng=small_networks(), K=st.integers(1, 8), periods=st.integers(1, 3),
       skip=st.integers(0, 2), early=st.booleans(), theta=st.sampled_from([0.0, 0.01, 0.3]),
       overflow=st.sampled_from(["saturate", "wrap"]), rnd=st.sampled_from(["floor", "nearest"]),
       wb=st.integers(3, 8), sb=st.integers(10, 24), fb=st.integers(0, 4),
       scale=st.sampled_from(["per_layer_pow2", "per_layer"]), squeeze=st.sampled_from([0.3, 1.0]))
def test_core_equals_reference_on_random_networks(net_rng, K, periods, skip, early, theta,
                                                  overflow, rnd, wb, sb, fb, scale, squeeze):
    g, rng = net_rng
    assume(skip < periods and sb > wb + fb + 2)
    x = rng.uniform(0, 1, (4,) + g.input_shape)
    snn = convert(g, squeezed(calibrate(g, x, 99.9), squeeze),
                  phase_params(K=K, periods=periods, skip_periods=skip, early=early, theta=theta))
    ar = dataclasses.replace(LOIHI, weight_bits=wb, state_bits=sb, frac_bits=fb,
                             weight_scale=scale, overflow=overflow, round=rnd,
                             allow_overflow=True)  # narrow states run, counted
    assert_bit_exact(quantize(snn, ar), x)


# ---- counting semantics --------------------------------------------------------------------

def test_counts_per_neuron_and_step():
    """Without early decision, per image (module docstring's table): the encoder reads each
    code every step and shifts it where the bit is not the LSB; a hidden neuron reads, writes,
    shifts and compares once per step and adds once per step and per spike; the readout runs
    only after its skipped periods, so no synapse into it works before; dense synops are
    spikes × targets."""
    K, P, skip = 4, 3, 1
    g, lams = lams99_9("digits_mlp")
    net = quantize(convert(g, lams, phase_params(K=K, periods=P, skip_periods=skip)), LOIHI)
    x = TEST.x[:3]
    _, c, per_image, spikes = assert_bit_exact(net, x)
    T = K * P
    n = net.size
    codes = encode_input(net, x)
    popcount = sum(((codes >> b) & 1).sum(axis=1) for b in range(K))
    enc = per_image[:, 0]
    assert np.all(enc[:, A["state_read"]] == n[0] * T)
    assert np.all(enc[:, A["shift"]] == n[0] * (K - 1) * P)
    assert np.all(enc[:, A["spike_out_pos"]] == P * popcount)
    assert np.all(enc[:, A["compare"]] == 0)
    for l in range(1, net.layers - 1):
        mine = per_image[:, l]
        fired = spikes[:, :, net.layer_slice(l)].sum(axis=(1, 2))
        for action in ("state_read", "state_write", "shift", "compare"):
            assert np.all(mine[:, A[action]] == n[l] * T), action
        assert np.all(mine[:, A["add"]] == n[l] * T + fired)
        assert np.all(mine[:, A["spike_out_pos"]] == fired)
        assert np.all(mine[:, A["bias_add"]] == np.count_nonzero(net.model.bias[net.layer_slice(l)]) * T)
        src = spikes[:, :, net.layer_slice(l - 1)].sum(axis=(0, 2))
        assert np.array_equal(c[l, :, A["synop"]], src * n[l])  # dense: every target
    ro = per_image[:, -1]
    assert np.all(ro[:, A["state_read"]] == n[-1] * (T - skip * K))
    assert np.all(ro[:, A["compare"]] == 0)
    assert c[-1, :skip * K].sum() == 0  # nothing reaches the readout in its skipped period
    assert spikes[:, :skip * K, net.layer_slice(net.layers - 2)].any()  # though spikes were sent
    for action in ("spike_out_neg", "fifo_read", "fifo_write", "weight_read", "mac"):
        assert c[..., A[action]].sum() == 0, action


def test_early_decision_stops_all_work_after_the_decision_step():
    """An image decided in step d counts its full work up to d in every layer and nothing
    after: hidden layers read/write each neuron in d steps; the readout in its d − skip·K
    integrating steps plus the decision unit's 3 writes per step from T1 (and the stop flag)."""
    K, P, skip = 4, 4, 1
    g, lams = lams99_9("digits_cnn")
    snn = convert(g, lams, phase_params(K=K, periods=P, skip_periods=skip, early=True, theta=0.3))
    net = quantize(snn, LOIHI)
    x = TEST.x[:6]
    state, _, per_image, spikes = assert_bit_exact(net, x)
    decided = flag(net, state) > 0
    ends = decision_steps(net, state[:, :, net.layer_slice(net.layers - 1)])
    assert decided.sum() >= 4 and ends[decided].max() < net.steps, ends
    assert np.array_equal(ends, np.where(decided, flag(net, state), net.steps))
    t1 = skip * K + 1
    for l in range(1, net.layers - 1):
        assert np.array_equal(per_image[:, l, A["state_write"]], net.size[l] * ends)
    ro = per_image[:, -1, A["state_write"]]
    assert np.array_equal(ro, net.size[-1] * (ends - skip * K) + 3 * (ends - t1 + 1) + decided)
    for i, d in enumerate(ends):
        assert not spikes[i, d:].any()
    # a batch of only the decided images: after its last decision step, no work at all
    _, c_decided, _, _ = assert_bit_exact(net, x[decided])
    assert c_decided[:, ends[decided].max():].sum() == 0
    assert c_decided[:, :ends[decided].max(), A["synop"]].sum() > 0


# ---- decoded values and accuracy -------------------------------------------------------------

def test_decoded_values_converge_over_periods():
    """The mean |decoded − ANN activation| / λ' of every population does not grow with more
    periods (paper eq. 14, Fig. 5), in float and in fixed point, and halves from 1 to 8."""
    g, lams = lams99_9("digits_cnn")
    x = TEST.x[:24]
    truth = population_values(g, x)
    errors = {"float": [], "fixed": []}
    for periods in (1, 2, 4, 8):
        snn = convert(g, lams, phase_params(periods=periods, skip_periods=0))
        runs = {"float": simulate(snn, x), "fixed": simulate_fixed(quantize(snn, LOIHI), x, trace=True)}
        for kind, r in runs.items():
            errors[kind].append([
                np.abs(r.decoded[p.name] - (truth[p.name] if p.kind == "readout"
                                            else np.maximum(truth[p.name], 0.0))).mean() / p.lam
                for p in snn.populations[1:]])
    for kind, e in errors.items():
        e = np.array(e)  # (periods, layers)
        assert np.all(np.diff(e, axis=0) <= 0), (kind, e)
        assert np.all(e[-1] < 0.5 * e[0]), (kind, e)


def test_early_decision_saves_latency_and_synops():
    """digits_cnn, default timing (64 steps): early decision (θ = 0.9) ends images after about
    24 steps, with far fewer synops, and about the same accuracy. Float and fixed membranes
    differ by weight quantization, so a decision can move a step or two (spike timing shifts,
    a stable count restarts), but not on average (exact agreement: the dyadic test below)."""
    g, lams = lams99_9("digits_cnn")
    x, y = TEST.x[:90], TEST.y[:90]
    full = convert(g, lams, phase_params())
    early = convert(g, lams, phase_params(early=True))
    f_full, f_early = simulate(full, x), simulate(early, x)
    x_full = simulate_fixed(quantize(full, LOIHI), x)
    x_early = simulate_fixed(quantize(early, LOIHI), x)
    report = (f"float {f_full.accuracy(y):.4f} -> {f_early.accuracy(y):.4f}, fixed "
              f"{x_full.accuracy(y):.4f} -> {x_early.accuracy(y):.4f}, latency "
              f"{x_full.latency_steps} -> {x_early.latency_steps:.1f} steps")
    print(report)
    assert f_early.latency_steps < 0.6 * full.steps and x_early.latency_steps < 0.6 * full.steps
    assert x_early.counts.total()["synop"] < 0.6 * x_full.counts.total()["synop"]
    assert x_early.accuracy(y) >= x_full.accuracy(y) - 0.03, report
    assert f_early.accuracy(y) >= f_full.accuracy(y) - 0.03, report
    apart = np.abs(f_early.extra["decision_step"] - x_early.extra["decision_step"])
    assert np.mean(apart <= 2) >= 0.85, apart
    assert abs(f_early.latency_steps - x_early.latency_steps) <= 1.0


def dyadic_network(seed: int):
    """(graph, λ, images): dense 8-6-5-3, weights in {0, ±1/4, ±1/2}, no biases, every λ a
    power of two, so float arithmetic is exact and the fixed-point weights, shifts and
    thresholds lose nothing: float and fixed must agree exactly."""
    rng = np.random.default_rng(seed)
    sizes = [8, 6, 5, 3]
    nodes = {"x": Input("x", (), (8,))}
    src = "x"
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        nodes[f"d{i}"] = Dense(f"d{i}", (src,), (b,), weight=rng.integers(-2, 3, (b, a)) / 4,
                               bias=np.zeros(b))
        src = f"d{i}"
        if i < len(sizes) - 2:
            nodes[f"r{i}"] = Relu(f"r{i}", (src,), (b,))
            src = f"r{i}"
    g = Graph("dyadic", "dyadic", nodes, "x", src)
    x = rng.uniform(0, 1, (40, 8))
    lams = {k: 2.0 ** np.ceil(np.log2(v)) for k, v in calibrate(g, x, 100.0).items()}
    return g, lams, x


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("early", [False, True])
def test_float_and_fixed_are_the_same_model(seed, early):
    """Where fixed point is exact (dyadic network), the float simulator (paper eqs. 8–10) and
    the core (eq. 18's scaled form) give the same spikes, outputs and decision steps: one
    model, one decision rule, two precisions."""
    g, lams, x = dyadic_network(seed)
    snn = convert(g, lams, phase_params(K=4, periods=4, skip_periods=1, early=early, theta=0.05))
    flt = simulate(snn, x, trace=True)
    fixed = simulate_fixed(quantize(snn, LOIHI), x, trace=True)
    trains = np.concatenate([flt.extra["trace"][p.name].reshape(len(x), snn.steps, -1)
                             for p in snn.populations[:-1]], axis=2)
    assert np.array_equal(trains, fixed.extra["spikes"][:, :, :trains.shape[2]])
    assert np.array_equal(flt.outputs, fixed.outputs)
    assert np.array_equal(flt.extra["decision_step"], fixed.extra["decision_step"])
    if early:  # the rule really decided, at different steps for different images
        assert len(np.unique(flt.extra["decision_step"])) > 2


@pytest.mark.parametrize("model", ["digits_cnn", "digits_resnet"])
def test_accuracy_at_defaults(model):
    """Default parameters (K=8, 8 periods, 2 skipped), loihi_like, half the test split (the
    float simulator's convolutions take most of this file's time; the whole split is in the
    scheme's report): float within a point of the ANN, fixed within a point of float, no
    register overflows."""
    g, _ = lams99_9(model)
    snn = SCHEME.build(g, CALIB, SCHEME.defaults())
    net = quantize(snn, LOIHI)
    assert not net.info.warnings
    # every layer's worst case (the range analysis) fits state_bits at the chosen scale
    for l, (_, _, extent, fixed) in enumerate(register_extents(snn, LOIHI, snn.periods)):
        lo, hi = fixed or extent(int(net.info.scale[l]), int(net.info.frac[l]))
        assert signed_bits(lo, hi) <= LOIHI.state_bits
    x, y = TEST.x[:180], TEST.y[:180]
    ann_acc = ann.accuracy(g, x, y)
    flt = simulate(snn, x).accuracy(y)
    fx = simulate_fixed(net, x)
    assert flt >= ann_acc - 0.01, (ann_acc, flt)
    assert fx.accuracy(y) >= flt - 0.01, (flt, fx.accuracy(y))
    assert fx.counts.total()["overflow"] == 0


# ---- parameters --------------------------------------------------------------------------------

def test_parameters_and_their_errors():
    assert [p.name for p in get_scheme("phase").params] == [
        "K", "periods", "skip_periods", "early", "theta", "percentile"]
    name, params = parse_coding("phase:K=4,periods=6,early=on")
    assert (name, params["K"], params["periods"], params["early"]) == ("phase", 4, 6, True)
    for spec, key in (("phase:K=0", "'K'"), ("phase:theta=-1", "'theta'"),
                      ("phase:percentile=0", "'percentile'"), ("phase:periods=0", "'periods'"),
                      ("phase:periods=2,skip_periods=2", "skip_periods=2")):
        with pytest.raises(UserError, match=key):
            parse_coding(spec)
    nodes = {"x": Input("x", (), (3,)),
             "d": Dense("d", ("x",), (1,), weight=np.ones((1, 3)), bias=np.zeros(1))}
    single = Graph("one", "one.onnx", nodes, "x", "d")
    with pytest.raises(UserError, match="early=on needs a readout of at least 2 neurons.*'d'"):
        convert(single, {"x": 1.0, "d": 1.0}, phase_params(early=True))


def test_theta_without_early_decision_is_a_warning():
    """A probe's phase:theta=0.5 ran silently: θ only matters with early=on."""
    scheme = get_scheme("phase")
    g, _ = bundled("digits_mlp")
    x = digits("calibration").x
    assert any("theta=0.5 has no effect without early=on" in w
               for w in scheme.build(g, x, parse_coding("phase:theta=0.5")[1]).warnings)
    assert not scheme.build(g, x, parse_coding("phase:theta=0.5,early=on")[1]).warnings
