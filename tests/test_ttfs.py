"""TTFS coding (DESIGN §3.3): the decode bound of the float simulator, the fixed-point neuron
against its closed form, the event engine against the dense reference bit for bit, the counts
of both synapse modes, and accuracy on the digits data."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurosim import ann
from neurosim.calibrate import calibrate
from neurosim.core import engine
from neurosim.core.network import CONV
from neurosim.core.reference import apply_conv, conv_node
from neurosim.counts import ACTION_INDEX
from neurosim.data import digits
from neurosim.errors import UserError
from neurosim.schemes import parse_coding
from neurosim.schemes._layered import input_sum
from neurosim.schemes.ttfs import (SCHEME, convert, encode_input, encode_steps, quantize,
                                   simulate, simulate_fixed)

from engine_cases import LOIHI, assert_engine_matches_reference, bundled, small_networks

A = ACTION_INDEX
MODELS = ("digits_mlp", "digits_cnn", "digits_resnet")
_SCALES: dict = {}


def scales(model: str):
    """(graph, λ at TTFS's default percentile 99.9) of a bundled model."""
    if model not in _SCALES:
        g, _ = bundled(model)
        _SCALES[model] = (g, calibrate(g, digits("calibration").x, 99.9))
    return _SCALES[model]


def ttfs(model: str, T: int = 8, synapse: str = "current", squeeze: float = 1.0):
    """The float TTFS net of a bundled model; ``squeeze`` < 1 shrinks every hidden λ (values
    beyond the registers' range)."""
    g, lams = scales(model)
    lams = {k: v if k == g.input else v * squeeze for k, v in lams.items()}
    return convert(g, lams, dict(T=T, synapse=synapse, percentile=99.9))


def firing_offsets(spikes: np.ndarray, net, l: int) -> np.ndarray:
    """(images, neurons) offset of each neuron's spike in layer l's firing window, −1 if
    none, from engine spike trains (core order)."""
    T = net.info.T
    first = int(net.info.levels[l]) * T
    window = spikes[:, first:first + T, net.layer_slice(l)]
    return np.where(window.any(axis=1), window.argmax(axis=1), -1)


# ---- parameters and timing -------------------------------------------------------------------

def test_parameters_and_timing():
    name, params = parse_coding("ttfs")
    assert params == {"T": 32, "synapse": "current", "percentile": 99.9}
    with pytest.raises(UserError, match="key 'T'"):
        parse_coding("ttfs:T=1")
    with pytest.raises(UserError, match="key 'synapse'"):
        parse_coding("ttfs:synapse=dense")
    with pytest.raises(UserError, match="key 'percentile'"):
        parse_coding("ttfs:percentile=0")
    snn = ttfs("digits_resnet", T=5)
    assert SCHEME.timing(snn) == (5 * 8, 5)  # 7 hidden levels: T·(L+1); a frame per window
    assert quantize(snn, LOIHI).steps == 40


def test_state_too_narrow_for_the_window_is_an_error():
    with pytest.raises(UserError, match=r"T=300: layer '.+' needs \d+ state bits.*has 8"
                                        r".*largest T that fits is \d+"):
        quantize(ttfs("digits_mlp", T=300), dataclasses.replace(LOIHI, state_bits=8))


def test_encoder_offsets_follow_design():
    T = 9
    v = np.array([-0.5, 0.0, 1e-3, 0.5 / 8, 0.3, 1.0, 2.5])
    n = encode_steps(v, T)
    assert n.tolist() == [-1, -1, 0, 1, 2, 8, 8]  # round half up, clipped; v ≤ 0: no spike
    k = np.where(n >= 0, T - 1 - n, -1)
    assert k.tolist() == [-1, -1, 8, 7, 6, 0, 0]


# ---- float: what a spike decodes to ----------------------------------------------------------

@pytest.mark.parametrize("model", ["digits_cnn", "digits_resnet"])
def test_float_decode_is_the_clipped_relu_up_to_time_quantisation(model):
    """Each layer's decoded values are clip(ReLU(z̃), 0, 1) of its decoded inputs within half
    a step, 1/(2(T−1)); against the ANN with activations clipped at λ the errors add up
    through |W| layer by layer; on the first hidden layer that ANN is the ANN itself."""
    T = 8
    snn = ttfs(model, T)
    x = digits("test").x[:20]
    res = simulate(snn, x)
    _, acts = ann.run(scales(model)[0], x, keep=True)
    half = 0.5 / (T - 1)
    first = snn.populations[0]
    decoded = {first.name: res.decoded[first.name] / first.lam}
    clipped_ann = {first.name: x / first.lam}
    bound = {first.name: np.full(x.shape, half)}
    for layer in snn.populations[1:]:
        bias = layer.bias.reshape(layer.shape)
        z_local = input_sum(layer, decoded) + bias
        z_ann = input_sum(layer, clipped_ann) + bias
        abs_layer = dataclasses.replace(layer, projections=tuple(
            dataclasses.replace(q, map=dataclasses.replace(q.map, weight=np.abs(q.map.weight)))
            for q in layer.projections))
        carried = input_sum(abs_layer, bound)
        got = res.decoded[layer.name] / layer.lam
        if layer.kind == "readout":
            assert np.allclose(got, z_local, atol=1e-9)  # V/(T−1): exact
            assert np.all(np.abs(got - z_ann) <= carried + 1e-9)
            continue
        assert np.all(np.abs(got - np.clip(z_local, 0, 1)) <= half + 1e-9), layer.name
        fired = res.extra["fire_offset"][layer.name] >= 0  # a value > 0 fires, ≤ 0 never
        assert np.all(fired[z_local > 1e-9]) and not np.any(fired[z_local < -1e-9]), layer.name
        assert np.all(np.abs(got - np.clip(z_ann, 0, 1)) <= half + carried + 1e-9), layer.name
        if layer.level == 1:
            assert np.allclose(np.clip(z_ann, 0, 1), np.clip(acts[layer.name] / layer.lam, 0, 1))
        decoded[layer.name] = got
        clipped_ann[layer.name] = np.clip(z_ann, 0, 1)
        bound[layer.name] = half + carried


def test_every_neuron_fires_at_most_once():
    snn = ttfs("digits_resnet", T=6)
    x = digits("test").x[:5]
    res = simulate(snn, x, trace=True)
    for name, train in res.extra["trace"].items():
        assert train.sum(axis=1).max() <= 1, name
        assert train.sum() > 0, name
    net = quantize(snn, LOIHI)
    spikes = simulate_fixed(net, x, trace=True).extra["spikes"]
    assert np.abs(spikes).sum(axis=1).max() == 1


# ---- fixed point: the neuron against its closed form -----------------------------------------

def _integer_input(net, l: int, n_by_layer: dict) -> np.ndarray:
    """Σ over projections into l of (integer weights in state units) · n of the source:
    the membrane a layer must hold after its integration offsets, before the bias."""
    total = 0
    for p in np.flatnonzero(net.p_dst == l):
        s = net.p_src[p]
        if net.p_kind[p] == CONV:
            total = total + apply_conv(conv_node(net, p), n_by_layer[s], net.shapes[s])
        else:
            size = net.size[s] * net.size[l]
            w = net.weights[net.p_woff[p]:net.p_woff[p] + size].reshape(net.size[s], net.size[l])
            total = total + n_by_layer[s] @ w
    return total


@pytest.mark.parametrize("model", ["digits_cnn", "digits_resnet"])
def test_fixed_firing_offset_is_the_closed_form(model):
    """Every hidden layer fires at k = max(0, ⌈(θ − U)/Q⌉) if that is ≤ T−2, else at T−1 if
    U > 0, else never; U = Σ w·n + B from the decoded spikes of its sources (residual ones
    delayed by their FIFO); the readout ends with V = U: the decode of DESIGN §3.3 in
    integers."""
    T = 7
    net = quantize(ttfs(model, T), LOIHI)
    x = digits("test").x[:6]
    drive = encode_input(net, x)
    state, _, by_image, spikes = engine.run(net, drive, trace=True)
    assert by_image[..., A["overflow"]].sum() == 0
    m = net.model
    n_by_layer = {}
    for l in range(net.layers):
        sl = net.layer_slice(l)
        if l == 0:
            k = firing_offsets(spikes, net, 0)
            assert np.array_equal(k, np.where(drive >= 0, T - 1 - drive, -1))  # the encoder
        else:
            u = _integer_input(net, l, n_by_layer) + m.bias[sl]
            if l == net.layers - 1:
                assert np.array_equal(state[:, 0, sl], u)
                continue
            steps = -((u - m.threshold[l]) // m.alpha[l])  # ⌈(θ − U)/Q⌉
            expected = np.where(steps <= T - 2, np.maximum(steps, 0), np.where(u > 0, T - 1, -1))
            k = firing_offsets(spikes, net, l)
            assert np.array_equal(k, expected), net.names[l]
        n_by_layer[l] = np.where(k >= 0, T - 1 - k, 0)


# ---- bit-exact on the bundled models ---------------------------------------------------------

OVERFLOWING = dataclasses.replace(LOIHI, state_bits=9, allow_overflow=True)  # below the worst case


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("synapse", ["current", "reaccumulate"])
@pytest.mark.parametrize("arith", ["loihi", "saturate", "wrap"])
def test_core_equals_reference_on_bundled_models(model, synapse, arith):
    """loihi_like (no overflow), and 9-bit state with λ squeezed tenfold so that values of
    10 λ overflow the registers (saturating, and wrapping)."""
    if arith == "loihi":
        net = quantize(ttfs(model, 6, synapse), LOIHI)
    else:
        net = quantize(ttfs(model, 6, synapse, squeeze=0.1),
                       dataclasses.replace(OVERFLOWING, overflow=arith))
    _, c, _, _ = assert_engine_matches_reference(net, encode_input(net, digits("test").x[:4]))
    overflows = c[..., A["overflow"]].sum()
    assert (overflows == 0) if arith == "loihi" else (overflows > 0)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(net_rng=small_networks(), T=st.integers(2, 7),
       synapse=st.sampled_from(["current", "reaccumulate"]),
       overflow=st.sampled_from(["saturate", "wrap"]), rnd=st.sampled_from(["floor", "nearest"]),
       wb=st.integers(3, 8), sb=st.integers(8, 24), fb=st.integers(0, 4),
       scale=st.sampled_from(["per_layer_pow2", "per_layer"]), squeeze=st.sampled_from([0.2, 1.0]))
def test_core_equals_reference_on_random_networks(net_rng, T, synapse, overflow, rnd, wb, sb,
                                                  fb, scale, squeeze):
    g, rng = net_rng
    x = rng.uniform(0, 1, (4,) + g.input_shape)
    lams = {k: v if k == g.input else v * squeeze for k, v in calibrate(g, x, 99.9).items()}
    ar = dataclasses.replace(LOIHI, weight_bits=wb, state_bits=max(sb, wb), frac_bits=fb,
                             weight_scale=scale, overflow=overflow, round=rnd,
                             allow_overflow=True)
    net = quantize(convert(g, lams, dict(T=T, synapse=synapse, percentile=99.9)), ar)
    _, _, _, spikes = assert_engine_matches_reference(net, encode_input(net, x))
    assert np.abs(spikes).sum(axis=1).max(initial=0) <= 1  # once, overflow or not


# ---- counting semantics ----------------------------------------------------------------------

def test_reaccumulate_reads_every_active_synapse_again():
    """Same spikes and membranes as synapse=current; weight reads at integration offset s =
    the synapses activated at earlier offsets, i.e. Σ_{s'} synop(s')·(T−2−s') over the
    offsets s' ≤ T−3; fewer state accesses (no current register), more adds."""
    T = 6
    x = digits("test").x[:4]
    runs = {}
    for synapse in ("current", "reaccumulate"):
        net = quantize(ttfs("digits_resnet", T, synapse), LOIHI)
        runs[synapse] = engine.run(net, encode_input(net, x), trace=True)
    (st_c, c_c, _, s_c), (st_r, c_r, _, s_r) = runs["current"], runs["reaccumulate"]
    assert np.array_equal(s_c, s_r)
    assert np.array_equal(st_c[:, 0], st_r[:, 0])
    assert np.array_equal(c_c[..., A["synop"]], c_r[..., A["synop"]])
    assert c_c[..., A["weight_read"]].sum() == 0
    for l in range(1, net.layers):
        start = net.model.start[l] - 1
        synops = c_r[l, start:start + T - 2, A["synop"]]
        expected = (synops * (T - 2 - np.arange(T - 2))).sum()
        assert c_r[l, :, A["weight_read"]].sum() == expected > 0, net.names[l]
        assert c_r[l, :, A["add"]].sum() - c_c[l, :, A["add"]].sum() == \
            expected - net.size[l] * (T - 1) * len(x)
    assert c_r[..., A["state_read"]].sum() < c_c[..., A["state_read"]].sum()


def test_counts_per_image_of_a_hidden_layer():
    """synapse=current, one hidden layer, per image: integration 2 reads, 2 writes, 2 adds per
    neuron and offset (T−1 offsets); the bias once per biased neuron; the firing window a
    read and a compare per neuron and offset, a ramp add and write from offset 1 on, a write
    at offset 0 only for a spike."""
    T = 8
    net = quantize(ttfs("digits_cnn", T), LOIHI)
    x = digits("test").x[:3]
    _, _, by_image, spikes = engine.run(net, encode_input(net, x), trace=True)
    l = 2
    n, nb = net.size[l], net.model.bias_nonzero[l]
    k = firing_offsets(spikes, net, l)
    c = by_image[:, l]
    assert np.all(c[:, A["state_read"]] == 2 * n * (T - 1) + nb + n * T)
    assert np.all(c[:, A["state_write"]] == 2 * n * (T - 1) + nb + n * (T - 1) + (k == 0).sum(1))
    assert np.all(c[:, A["add"]] == 2 * n * (T - 1) + n * (T - 1))
    assert np.all(c[:, A["compare"]] == n * T)
    assert np.all(c[:, A["bias_add"]] == nb)
    assert np.all(c[:, A["spike_out_pos"]] == (k >= 0).sum(1))
    assert c[:, A["spike_out_neg"]].sum() == c[:, A["shift"]].sum() == c[:, A["mac"]].sum() == 0


def test_residual_spikes_go_through_a_fifo_of_gap_windows():
    """digits_resnet: every skip projection has delay gap·T, and each spike of its source is
    written into and read from the FIFO once."""
    T = 5
    snn = ttfs("digits_resnet", T)
    net = quantize(snn, LOIHI)
    delays = sorted(set(net.p_delay.tolist()))
    assert delays == [0, T]
    _, _, by_image, spikes = engine.run(net, encode_input(net, digits("test").x[:3]), trace=True)
    for p in np.flatnonzero(net.p_delay > 0):
        s = net.p_src[p]
        fired = np.abs(spikes[:, :, net.layer_slice(s)]).sum(axis=(1, 2))
        assert np.array_equal(by_image[:, s, A["fifo_write"]], fired)
    assert by_image[..., A["fifo_read"]].sum() == by_image[..., A["fifo_write"]].sum() > 0


# ---- accuracy ------------------------------------------------------------------------------

def test_default_T_is_as_accurate_as_the_ann_float_and_fixed():
    """digits_cnn, all 360 test images, T=32 (default), loihi_like: the ANN is 0.9667."""
    g, lams = scales("digits_cnn")
    test = digits("test")
    out, _ = ann.run(g, test.x)
    ann_acc = float(np.mean(out.argmax(1) == test.y))
    snn = SCHEME.build(g, digits("calibration").x, dict(parse_coding("ttfs")[1]), scales=lams)
    flt = SCHEME.simulate(snn, test.x)
    fx = SCHEME.simulate_fixed(SCHEME.quantize(snn, LOIHI), test.x)
    assert flt.accuracy(test.y) >= ann_acc - 0.01
    assert fx.accuracy(test.y) >= flt.accuracy(test.y) - 0.01
    assert np.mean(fx.predictions() == flt.predictions()) >= 0.98
    assert sum(fx.extra["overflow_by_layer"].values()) == 0
    assert fx.counts.by_image.shape == (len(test.x), 5, len(A))
