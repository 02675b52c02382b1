"""The event engine with the TSA neuron model (SWS) against the dense integer reference: bit for
bit; fixed-point building blocks; counting semantics."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from neurosim.calibrate import calibrate
from neurosim.core.reference import apply_conv, conv_node
from neurosim.core.tsa import TSA_RELU, encode_input, initial_state, quantize_sws, simulate_fixed
from neurosim.counts import ACTION_INDEX
from neurosim.data import digits
from neurosim.errors import UserError
from neurosim.fixed_point import amplify_np, csd_terms, fit_np, require_terms
from neurosim.schemes.sws import convert

from engine_cases import LOIHI, assert_engine_matches_reference, bundled, small_networks

def sws_params(Tc=4, Ts=2, beta=2.0, **kw):
    p = dict(Tc=Tc, Ts=Ts, beta=beta, threshold_ratio=0.5, negative_spikes=True,
             relu_counterpart=True, encoder="current")
    p.update(kw)
    return p


def fixed(graph, lams, params, arithmetic=LOIHI, squeeze=1.0):
    """Float SWS conversion, then quantization; ``squeeze`` < 1 shrinks every λ (and θ)."""
    snn = convert(graph, {name: lam * squeeze for name, lam in lams.items()}, params)
    return quantize_sws(snn, arithmetic)


def assert_bit_exact(net, x):
    """Engine and dense reference on the SWS encoding of ``x``, bit for bit."""
    drive = encode_input(net, x)
    st, c, _, s = assert_engine_matches_reference(net, drive, initial_state(net, drive))
    return st, c, s


# ---- fixed-point building blocks -----------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(signs=st.lists(st.sampled_from([-1, 0, 0, 1]), max_size=80))
def test_compaction_packs_the_events_in_neuron_order(signs):
    """16 neurons at a time (a vector compress) and the rest one at a time: the indices and
    signs of the non-zero entries, in order, in place; ``negative_events`` counts the −1s
    among them (the neuron models' spike counts come from these two)."""
    from numba import njit

    from neurosim.core.registers import compact_events, negative_events

    ev_sign = np.array(signs, np.int8)
    ev_idx = np.full(len(signs), -1, np.int32)
    want = np.flatnonzero(ev_sign)
    want_signs = ev_sign[want].copy()
    ne = njit(lambda i, s, n: compact_events(i, s, n))(ev_idx, ev_sign, len(signs))
    assert ne == len(want)
    assert np.array_equal(ev_idx[:ne], want) and np.array_equal(ev_sign[:ne], want_signs)
    assert njit(lambda s, n: negative_events(s, n))(ev_sign, ne) == signs.count(-1)


def test_csd_forms():
    assert csd_terms(2.0) == ((1, 1),)
    assert csd_terms(1.5) == ((1, 0), (1, -1))  # u + (u >> 1)
    assert csd_terms(1.25) == ((1, 0), (1, -2))
    assert csd_terms(1.75) == ((1, 1), (-1, -2))  # (u << 1) − (u >> 2)
    assert csd_terms(1.3) is None  # 1.3 is no short dyadic sum
    with pytest.raises(UserError, match="beta=1.3"):
        require_terms(1.3, 4)


def test_beta_terms_beyond_profile_limit_are_an_error():
    g, lams = bundled("digits_mlp")
    p = sws_params(beta=1.75)
    ar = dataclasses.replace(LOIHI, max_beta_terms=1)
    with pytest.raises(UserError, match="max_beta_terms"):
        fixed(g, lams, p, ar)


@given(st.lists(st.integers(-2**20, 2**20), min_size=1, max_size=20),
       st.sampled_from([2.0, 1.5, 1.25, 1.75]), st.booleans())
def test_amplify_is_beta_times_u_up_to_rounding(us, beta, nearest):
    u = np.array(us, np.int64)
    terms = csd_terms(beta)
    out = amplify_np(u, terms, nearest)
    n_right = sum(1 for _, k in terms if k < 0)
    assert np.all(np.abs(out - beta * u) <= n_right)  # each right shift loses < 1 LSB


def test_fit_saturates_and_wraps():
    u = np.array([-200, -129, -128, 0, 127, 128, 300])
    sat, over = fit_np(u, 8, wrap=False)
    assert sat.tolist() == [-128, -128, -128, 0, 127, 127, 127]
    assert over.tolist() == [True, True, False, False, False, True, True]
    wr, _ = fit_np(u, 8, wrap=True)
    assert wr.tolist() == [56, 127, -128, 0, 127, -128, 44]


# ---- bit-exact on the bundled models ---------------------------------------------------------

CASES = [(m, beta, Ts, ovf) for m in ("digits_mlp", "digits_cnn", "digits_resnet")
         for beta in (2.0, 1.5, 1.25) for Ts in (0, 1, 2) for ovf in ("saturate", "wrap")]


@pytest.mark.parametrize("model, beta, Ts, overflow", CASES)
def test_core_equals_reference_on_bundled_models(model, beta, Ts, overflow):
    g, lams = bundled(model)
    p = sws_params(Tc=4, Ts=Ts, beta=beta)
    # a 16-bit state and θ squeezed tenfold make activations exceed the registers' range, so they
    # overflow and the overflow mode is really exercised
    ar = dataclasses.replace(LOIHI, state_bits=16, overflow=overflow, allow_overflow=True,
                             round="nearest" if Ts % 2 else "floor")
    net = fixed(g, lams, p, ar, squeeze=0.1)
    _, c, _ = assert_bit_exact(net, digits("test").x[:6])
    assert c[..., ACTION_INDEX["overflow"]].sum() > 0


@pytest.mark.parametrize("weight_bits, state_bits, frac_bits, stored, accumulated", [
    (8, 24, 4, np.int16, np.int32),  # loihi_like: the weights fit int16
    (12, 32, 8, np.int32, np.int32),  # shifted weights beyond int16, sums within int32
    (16, 48, 16, np.int64, np.int64),  # sums beyond int32
])
def test_every_weight_and_accumulator_width_is_bit_exact(weight_bits, state_bits, frac_bits,
                                                         stored, accumulated):
    """The fan-out adds stored weights into accumulators of the same or a wider type
    (``engine.weight_dtype``, ``engine.accumulator_dtype``): each pairing, bit for bit."""
    from neurosim.core.engine import accumulator_dtype, weight_dtype
    g, lams = bundled("digits_cnn")
    x = digits("test").x[:6]
    ar = dataclasses.replace(LOIHI, weight_bits=weight_bits, state_bits=state_bits,
                             frac_bits=frac_bits, allow_overflow=True)
    net = fixed(g, lams, sws_params(Tc=4, Ts=1), ar)
    assert (weight_dtype(net), accumulator_dtype(net)) == (stored, accumulated)
    assert_bit_exact(net, x)


# ---- bit-exact on random small networks ----------------------------------------------------

@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(net_rng=small_networks(), Tc=st.integers(1, 5), Ts=st.integers(0, 2),
       beta=st.sampled_from([2.0, 1.5, 1.25, 1.75, 1.375]), ratio=st.sampled_from([0.5, 1.0, 0.75]),
       neg=st.booleans(), relu=st.booleans(), encoder=st.sampled_from(["current", "potential"]),
       overflow=st.sampled_from(["saturate", "wrap"]), rnd=st.sampled_from(["floor", "nearest"]),
       wb=st.integers(3, 8), sb=st.integers(12, 24), fb=st.integers(0, 4),
       scale=st.sampled_from(["per_layer_pow2", "per_projection_pow2", "per_layer"]), squeeze=st.sampled_from([0.3, 1.0]))
def test_core_equals_reference_on_random_networks(net_rng, Tc, Ts, beta, ratio, neg, relu, encoder,
                                                  overflow, rnd, wb, sb, fb, scale, squeeze):
    g, rng = net_rng
    assume(sb > wb + fb + 2)
    x = rng.uniform(0, 1, (4,) + g.input_shape)
    p = sws_params(Tc=Tc, Ts=Ts, beta=beta, threshold_ratio=ratio, negative_spikes=neg,
                   relu_counterpart=relu, encoder=encoder)
    ar = dataclasses.replace(LOIHI, weight_bits=wb, state_bits=sb, frac_bits=fb, weight_scale=scale,
                             allow_overflow=True, max_beta_terms=4,  # 1.375 has 3 terms
                             overflow=overflow, round=rnd)
    net = fixed(g, calibrate(g, x), p, ar, squeeze)
    assert_bit_exact(net, x)


# ---- counting semantics --------------------------------------------------------------------

def test_opf_from_counts_equals_closed_form():
    """SWS eq. 10: OPF = (Tc+Ts)·N_TSA + Σ_l Σ_τ f_out · n_l(τ), from counts and from traces."""
    g, lams = bundled("digits_resnet")
    p = sws_params(Tc=6, Ts=2)
    net = fixed(g, lams, p)
    x = digits("test").x[:5]
    h, c, s = assert_bit_exact(net, x)
    L = net.layers - 2
    hidden = range(1, L + 1)
    # from the counts: neuron updates of TSA layers + synops caused by TSA layers' spikes
    regs = [2 if k == TSA_RELU else 1 for k in net.model.kind]
    updates = sum(c[l, :, ACTION_INDEX["state_write"]].sum() // regs[l] for l in hidden)
    synops = sum(c[l, :, ACTION_INDEX["synop"]].sum() for l in range(2, net.layers))
    opf_counts = (updates + synops) / len(x)
    # closed form: fan-out per neuron from the reference's dense structure, spikes from traces
    fanout = np.zeros(net.neurons, np.int64)
    for pi in range(len(net.p_src)):
        sl, n_s = net.offset[net.p_src[pi]], net.size[net.p_src[pi]]
        if net.p_kind[pi] == 0:
            eye = np.eye(n_s, dtype=np.int64)
            fanout[sl:sl + n_s] += apply_conv(conv_node(net, pi, ones=True), eye,
                                               net.shapes[net.p_src[pi]]).sum(1)
        else:
            fanout[sl:sl + n_s] += net.size[net.p_dst[pi]]
    n_tsa = sum(net.size[l] for l in hidden)
    closed = (p["Tc"] + p["Ts"]) * n_tsa
    for l in hidden:
        a, b = net.model.fire[l]
        sl = slice(net.offset[l], net.offset[l] + net.size[l])
        closed += (np.abs(s[:, a - 1:b, sl]).sum(axis=1) * fanout[sl]).sum() / len(x)
    assert opf_counts == pytest.approx(closed, rel=0, abs=1e-9)
    assert net.steps == p["Tc"] + p["Ts"] * L  # latency T_inf = Tc + Ts·L


def test_counts_per_neuron_update():
    """β=1.5 TSA-ReLU: 2 registers × (1 shift + 1 add) per neuron per active step."""
    g, lams = bundled("digits_mlp")
    p = sws_params(Tc=4, Ts=1, beta=1.5)
    net = fixed(g, lams, p)
    _, c, s = assert_bit_exact(net, digits("test").x[:3])
    l = 1
    n, active = net.size[l], p["Tc"] + p["Ts"]
    per_img = c[l].sum(axis=0) / 3
    assert per_img[ACTION_INDEX["shift"]] == 2 * n * active
    assert per_img[ACTION_INDEX["state_read"]] == 2 * n * active
    assert per_img[ACTION_INDEX["compare"]] == 2 * n * p["Tc"]
    spikes = np.abs(s[:, :, net.offset[l]:net.offset[l] + n]).sum() / 3
    # adds: amplification (1 per register) + integrate (1) per update; o = h − g and reset
    assert per_img[ACTION_INDEX["add"]] == 2 * n * active + n * active + n * p["Tc"] + spikes


# ---- fixed versus float accuracy -------------------------------------------------------------

@pytest.mark.parametrize("model", ["digits_cnn", "digits_resnet"])
@pytest.mark.parametrize("beta", [2.0, 1.5])
def test_fixed_loihi_within_one_point_of_float(model, beta):
    """8-bit weights, 24-bit state (loihi_like), Tc=8, Ts=2, on the whole test split."""
    from neurosim.schemes.sws import simulate

    g, lams = bundled(model)
    test = digits("test")
    snn = convert(g, lams, sws_params(Tc=8, Ts=2, beta=beta))
    flt = simulate(snn, test.x).accuracy(test.y)
    fx = simulate_fixed(quantize_sws(snn, LOIHI), test.x).accuracy(test.y)
    assert fx >= flt - 0.01, (flt, fx)


def test_headroom_comes_from_fraction_bits_before_weight_bits():
    """The state limit binds on digits_cnn at β=2: weights keep (nearly) all 8 bits."""
    g, lams = bundled("digits_cnn")
    net = fixed(g, lams, sws_params(Tc=8, Ts=2, beta=2.0))
    assert np.all(net.info.weight_bits_used[1:] > 7.0), net.info.weight_bits_used
    assert np.all(net.info.frac <= LOIHI.frac_bits) and net.info.frac[1:].min() < LOIHI.frac_bits
    tight = fixed(g, lams, sws_params(Tc=8, Ts=2, beta=2.0),
                  dataclasses.replace(LOIHI, state_bits=16, allow_overflow=True))
    assert tight.info.frac[2] == 0 and tight.info.weight_bits_used[2] < 7.0  # only then weights pay


def test_per_projection_exponents_keep_every_projections_weight_bits():
    """At digits_resnet's residual joins the two projections' weights differ in size: with one
    exponent per layer the smaller one loses bits, with one per projection every projection's
    stored integers fill the weight bits (within one bit), still fit them, and enter the
    state at the layer's unit (the same float network, the same state units)."""
    g, lams = bundled("digits_resnet")
    p = sws_params(Tc=8, Ts=2, beta=2.0)
    layer = fixed(g, lams, p, dataclasses.replace(LOIHI, weight_scale="per_layer_pow2"))
    proj = fixed(g, lams, p, dataclasses.replace(LOIHI, weight_scale="per_projection_pow2"))
    per_layer = layer.info.weight_bits_by_projection
    per_proj = proj.info.weight_bits_by_projection
    assert per_layer.keys() == per_proj.keys()
    assert min(per_layer.values()) < LOIHI.weight_bits - 1  # some projection lost bits
    assert all(b > LOIHI.weight_bits - 1 for b in per_proj.values()), per_proj
    assert np.abs(proj.weight_ints).max() <= (1 << (LOIHI.weight_bits - 1)) - 1
    assert proj.p_fine.max() > 0 and np.array_equal(proj.info.scale, layer.info.scale)
    assert np.all(proj.weights == proj.weight_ints << np.repeat(
        proj.info.frac[proj.p_dst] - proj.p_fine, np.diff(np.append(proj.p_woff, proj.weights.size))))
