"""SWS / CSS: conversion, float simulator, paper claims, and the coding-spec parser."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurosim import ann
from neurosim.calibrate import calibrate
from neurosim.data import digits
from neurosim.errors import UserError
from neurosim.graph import populations
from neurosim.onnx_import import load_onnx
from neurosim.projection import chain_apply, population_bias
from neurosim.report import format_runs
from neurosim.schemes import format_spec, get_scheme, parse_coding
from neurosim.schemes.sws import csd_terms, encode, run_neuron
from neurosim.simulate import run_codings

ROOT = Path(__file__).parents[1]
BUNDLED = {n: ROOT / "neurosim" / "models" / f"{n}.onnx"
           for n in ("digits_mlp", "digits_cnn", "digits_resnet")}
FIXTURES = {n: ROOT / "tests" / "fixtures" / f"{n}.onnx" for n in ("resnet", "vgg")}
SWS = get_scheme("sws")

# SWS §4.4 / Fig. 5: (threshold_ratio, Ts) -> name in the paper
ABLATION = {(1.0, 0): "Vth=θ, Ts=0", (0.5, 0): "Vth=θ/2, Ts=0",
            (1.0, 2): "Vth=θ, Ts=2", (0.5, 2): "Vth=θ/2, Ts=2"}


def _params(spec: str = "sws") -> dict:
    """The SWS paper's settings: its `current` encoder (eq. 9) unless the spec names one."""
    if "encoder=" not in spec:
        spec += ("," if ":" in spec else ":") + "encoder=current"
    return parse_coding(spec)[1]


@pytest.fixture(scope="module")
def test_data():
    return digits("test")


@pytest.fixture(scope="module")
def calib_data():
    return digits("calibration")


@pytest.fixture(scope="module")
def ablation_runs(test_data, calib_data):
    """The four ablation settings at Tc=8, β=2 on the full test split of cnn and resnet."""
    runs = {}
    for name in ("digits_cnn", "digits_resnet"):
        graph = load_onnx(BUNDLED[name])
        scales = calibrate(graph, calib_data.x)
        for (ratio, ts) in ABLATION:
            net = SWS.build(graph, calib_data.x, _params(f"sws:Tc=8,Ts={ts},beta=2,"
                                                         f"threshold_ratio={ratio}"), scales=scales)
            result = SWS.simulate(net, test_data.x)
            residual = np.concatenate([np.abs(result.extra["residual"][p.name]).ravel()
                                       for p in net.populations if p.kind == "hidden"])
            runs[name, ratio, ts] = (result.accuracy(test_data.y), residual.mean())
        runs[name, "ann"] = ann.accuracy(graph, test_data.x, test_data.y)
    return runs


# --------------------------------------------------------------------------- accuracy and ablation

@pytest.mark.parametrize("name", ["digits_cnn", "digits_resnet"])
def test_tc8_ts2_beta2_within_one_point_of_the_ann(ablation_runs, name):
    snn_acc, _ = ablation_runs[name, 0.5, 2]
    assert abs(snn_acc - ablation_runs[name, "ann"]) <= 0.01


@pytest.mark.parametrize("name", ["digits_cnn", "digits_resnet"])
def test_ablation_ordering(ablation_runs, name):
    """SWS §4.4 claims accuracy (θ,0) ≈ chance < (θ/2,0) 35.41% < (θ,2) 84.21% < (θ/2,2) 95.68%
    and that each adjustment shrinks the residuals, both together most.

    Asserted here: the unadjusted neuron is strictly worst, each adjustment alone is better,
    both together are at least as good as either alone; the mean |residual| is largest without
    either adjustment and smallest with both. The paper's middle order (θ/2,0) < (θ,2) is NOT
    asserted: on these small nets lowering the threshold alone already recovers most accuracy
    (the reproduction report shows the numbers).
    """
    acc = {k: ablation_runs[(name,) + k][0] for k in ABLATION}
    res = {k: ablation_runs[(name,) + k][1] for k in ABLATION}
    single = [acc[0.5, 0], acc[1.0, 2]]
    assert acc[1.0, 0] < min(single)
    assert max(single) <= acc[0.5, 2]
    assert res[1.0, 0] == max(res.values())
    assert res[0.5, 2] == min(res.values())
    assert res[0.5, 2] < 0.25  # quantisation-level residuals (threshold θ/2: |r| ≤ θ/2)


# --------------------------------------------------------------------------- CSS toy and Theorem 2

def test_css_temporal_coupling_toy():
    """CSS §4.2.1: two inputs (w=1) fire at t=2, β=2, T=2, θ=1 -> the input current is 2 in
    step 2. Without negative spikes or a silent period the output fires at t=2 (encodes 1) and
    leaves half (1) in the membrane; the TSA neuron with a one-step silent period encodes 2."""
    z = np.array([[0.0], [1.0 + 1.0]])
    spikes, decoded, residual = run_neuron(z, Tc=2, Ts=0, beta=2.0, threshold_ratio=1.0,
                                           negative_spikes=False)
    assert spikes[:, 0].tolist() == [0, 1]
    assert decoded[0] == 1.0 and residual[0] == 1.0
    spikes, decoded, residual = run_neuron(z, Tc=2, Ts=1, beta=2.0)
    assert spikes[:, 0].tolist() == [1, 0]  # fires in the first step of its window: weight β
    assert decoded[0] == 2.0 and residual[0] == 0.0


@settings(max_examples=300, deadline=None)
@given(fraction=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=16),
       Tc=st.integers(1, 16), beta=st.sampled_from([1.25, 1.5, 2.0]))
def test_css_theorem2_potential_encoder_error_below_theta(fraction, Tc, beta):
    """CSS Theorem 2: with u(0) = a/β^T and β ≤ 2, any 0 ≤ a < Σθβ^k is encoded within θ."""
    max_codable = sum(beta ** k for k in range(Tc))  # θ = 1
    a = np.array(fraction) * max_codable
    spikes, decoded, residual = encode(a, Tc, beta, "potential")
    weights = beta ** np.arange(Tc - 1, -1, -1.0)
    np.testing.assert_allclose(decoded, weights @ spikes, rtol=0, atol=1e-9 * max_codable)
    np.testing.assert_allclose(decoded + residual, a, rtol=0, atol=1e-9 * max_codable)
    assert np.all(np.abs(decoded - a) < 1.0)


# --------------------------------------------------------------------------- conservation (eq. A7)

def _images(graph, n, seed):
    if graph.input_shape == (1, 8, 8):
        return digits("test").x[:n] if seed == 0 else digits("calibration").x
    return np.random.default_rng(seed).random((n,) + graph.input_shape)


CONSERVATION_CASES = [(n, "sws") for n in list(BUNDLED) + list(FIXTURES)] + [
    ("digits_resnet", "sws:Tc=5,Ts=1,beta=1.5,encoder=potential"),
    ("digits_cnn", "sws:Tc=6,Ts=0,beta=1.75,negative_spikes=off,threshold_ratio=1"),
    ("resnet", "sws:Tc=4,Ts=3,beta=1.25,relu_counterpart=off"),
    ("vgg", "sws:Tc=7,Ts=1,beta=2,amplitude_adjust=1"),
]


@pytest.mark.parametrize("name,spec", CONSERVATION_CASES)
def test_conservation_identity_in_every_layer(name, spec):
    """CSS eq. A7 in ANN units, per TSA layer l with sources k:
    decoded_l = Σ_k Ŵ·decoded_k + b̂ − θ_l·(h − g)/β^Ts   (h − g: the membrane / TSA-ReLU state),
    and with the ReLU counterpart also decoded_l = ReLU(Ŵ·decoded + b̂) − θ_l·o/β^Ts.
    The right-hand side uses the ANN's own nodes on the decoded spike trains (not the SNN's
    normalised maps), so this checks weights, biases, β-weighting, delays and resets together.
    MaxPool (vgg) is a spike gate, not a neuron: no identity holds for it; its decoded output
    is what the next layer's identity uses, and test_maxpool_gate checks the gate itself."""
    path = {**BUNDLED, **FIXTURES}[name]
    graph = load_onnx(path)
    params = _params(spec)
    net = SWS.build(graph, _images(graph, 100, 1), params)
    x = _images(graph, 40, 0)
    result = SWS.simulate(net, x)
    decoded, residual, membrane = (result.decoded, result.extra["residual"],
                                   result.extra["membrane"])
    for pop in populations(graph):
        spiking = net.by_name(pop.name)
        tol = 1e-9 * max(spiking.lam, 1.0)
        if pop.kind == "input":
            np.testing.assert_allclose(decoded[pop.name], x - spiking.theta * residual[pop.name],
                                       rtol=0, atol=tol)
            continue
        if pop.kind == "maxpool":
            continue
        pre = sum(chain_apply(graph, q, decoded[q.source]) for q in pop.projections)
        pre = pre + population_bias(graph, pop)
        if pop.kind == "readout":  # integrates without firing: no residual
            expect = np.maximum(pre, 0) if spiking.relu_output else pre
            np.testing.assert_allclose(decoded[pop.name], expect, rtol=0, atol=tol)
            continue
        np.testing.assert_allclose(decoded[pop.name],
                                   pre - spiking.theta * membrane[pop.name], rtol=0, atol=tol)
        if params["relu_counterpart"]:
            np.testing.assert_allclose(decoded[pop.name],
                                       np.maximum(pre, 0) - spiking.theta * residual[pop.name],
                                       rtol=0, atol=tol)


def _gate_reference(source_spikes, pool, beta):
    """Plain-loop MaxPool gate: per output, pass the spike of the window input whose running
    value P = βP + S is largest (first in row-major window order on ties)."""
    steps, n, c, h, w = source_spikes.shape
    _, oh, ow = pool.shape
    out = np.zeros((steps, n, c, oh, ow), np.int8)
    running = np.zeros((n, c, h, w))
    for t in range(steps):
        running = beta * running + source_spikes[t]
        for i in range(oh):
            for j in range(ow):
                cells = [(r, q) for a in range(pool.kernel[0]) for b in range(pool.kernel[1])
                         for r, q in [(i * pool.stride[0] - pool.pads[0] + a * pool.dilation[0],
                                       j * pool.stride[1] - pool.pads[1] + b * pool.dilation[1])]
                         if 0 <= r < h and 0 <= q < w]
                values = np.stack([running[:, :, r, q] for r, q in cells], axis=-1)
                trains = np.stack([source_spikes[t][:, :, r, q] for r, q in cells], axis=-1)
                pick = values.argmax(axis=-1)[..., None]
                out[t, :, :, i, j] = np.take_along_axis(trains, pick, axis=-1)[..., 0]
    return out


def test_maxpool_gate():
    """What holds for MaxPool: in every step each output passes exactly the spike of the input
    with the largest running decoded value; it fires in its source's window (no silent period);
    where that winner never changes, the output decodes to the max of the decoded inputs."""
    graph = load_onnx(FIXTURES["vgg"])
    net = SWS.build(graph, _images(graph, 100, 1), _params("sws:Tc=6,Ts=1"))
    result = SWS.simulate(net, _images(graph, 12, 0), trace=True)
    trace = result.extra["trace"]
    for pop in net.populations:
        if pop.kind != "maxpool":
            continue
        source = pop.projections[0].source
        first, spikes = trace[pop.name]
        assert first == trace[source][0] == net.fire_window(pop)[0]
        expect = _gate_reference(trace[source][1], pop.pool, net.beta)
        np.testing.assert_array_equal(spikes, expect)
        assert np.any(spikes)


# --------------------------------------------------------------------------- timing

def _tsa_depth(graph) -> int:
    """L: the most TSA (ReLU) populations on any path from input to readout."""
    depth = {}
    for p in populations(graph):
        sources = [depth[q.source] for q in p.projections]
        depth[p.name] = {"input": 0, "maxpool": max(sources or [0]), "hidden": 1 + max(sources or [0]),
                         "readout": max(sources or [0])}[p.kind]
    return depth[populations(graph)[-1].name]


@pytest.mark.parametrize("name", list(BUNDLED) + ["vgg"])
@pytest.mark.parametrize("Tc,Ts", [(8, 2), (5, 0), (3, 3)])
def test_latency_is_tc_plus_ts_times_layers(name, Tc, Ts):
    graph = load_onnx({**BUNDLED, **FIXTURES}[name])
    L = _tsa_depth(graph)
    net = SWS.build(graph, _images(graph, 100, 1), _params(f"sws:Tc={Tc},Ts={Ts}"))
    result = SWS.simulate(net, _images(graph, 30, 0), trace=True)
    assert net.tsa_layers == L
    assert result.latency_steps == Tc + Ts * L == result.counts.n_steps
    assert result.steps_per_frame == Tc + Ts
    # measured: the readout's last input arrives in the last step, never later
    assert result.extra["readout_last_input_step"] == Tc + Ts * L
    # every spiking population fires only inside [Ts·l+1, Ts·l+Tc]
    for pop in net.populations:
        if pop.name in result.extra["trace"]:
            first, spikes = result.extra["trace"][pop.name]
            assert first == Ts * pop.level + 1 and len(spikes) == Tc


def test_residual_shortcuts_are_delayed_to_the_target_window():
    graph = load_onnx(BUNDLED["digits_resnet"])
    net = SWS.build(graph, digits("calibration").x, _params("sws:Ts=3"))
    level = {p.name: p.level for p in net.populations}
    delays = [(q.delay, 3 * (p.level - 1 - level[q.source]))
              for p in net.populations for q in p.projections]
    assert all(d == expect for d, expect in delays)
    assert sorted({d for d, _ in delays}) == [0, 3]  # the identity/projection shortcuts wait Ts


# --------------------------------------------------------------------------- spec parsing

def test_parse_defaults_and_types():
    name, p = parse_coding("sws")
    assert name == "sws"
    assert p == {"Tc": 8, "Ts": 2, "beta": 2.0, "threshold_ratio": 0.5, "negative_spikes": True,
                 "relu_counterpart": True, "encoder": "potential", "amplitude_adjust": 0,
                 "percentile": 99.99}
    _, p = parse_coding(" sws : Tc=6, beta=1.75 ,negative_spikes=off,encoder=potential ")
    assert (p["Tc"], p["beta"], p["negative_spikes"], p["encoder"]) == (6, 1.75, False, "potential")
    assert parse_coding(format_spec("sws", p)) == ("sws", p)


@pytest.mark.parametrize("spec,key", [
    ("rat", "rat"), ("sws:Tcc=4", "Tcc"), ("sws:Tc=0", "Tc"), ("sws:Tc=-3", "Tc"),
    ("sws:Tc=2.5", "Tc"), ("sws:Ts=-1", "Ts"), ("sws:beta=1", "beta"), ("sws:beta=0.5", "beta"),
    ("sws:beta=1.3", "beta"), ("sws:threshold_ratio=0", "threshold_ratio"),
    ("sws:threshold_ratio=1.5", "threshold_ratio"), ("sws:encoder=spikes", "encoder"),
    ("sws:negative_spikes=maybe", "negative_spikes"), ("sws:Tc=4,Tc=5", "Tc"),
    ("sws:percentile=0", "percentile"), ("sws:amplitude_adjust=-1", "amplitude_adjust"),
])
def test_bad_specs_are_user_errors_naming_the_key(spec, key):
    with pytest.raises(UserError, match=f"'{key}'"):
        parse_coding(spec)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(UserError, match=r"available: .*sws.*did you mean 'sws'"):
        parse_coding("swss")
    with pytest.raises(UserError, match=r"valid keys: Tc, Ts, beta.*did you mean 'Tc'"):
        parse_coding("sws:tc=4")


@pytest.mark.parametrize("beta,terms", [(2.0, ((1, 1),)), (1.5, ((1, 0), (1, -1))),
                                        (1.25, ((1, 0), (1, -2))), (1.75, ((1, 1), (-1, -2))),
                                        (3.0, ((1, 1), (1, 0))), (1.9375, ((1, 1), (-1, -4)))])
def test_beta_csd_decomposition(beta, terms):
    assert csd_terms(beta) == terms
    net = SWS.build(load_onnx(BUNDLED["digits_mlp"]), digits("calibration").x,
                    _params(f"sws:beta={beta}"))
    assert net.beta_csd == terms


@settings(max_examples=200, deadline=None)
@given(digits_=st.lists(st.tuples(st.sampled_from([-1, 1]), st.integers(-12, 6)),
                        min_size=1, max_size=6))
def test_csd_is_exact_and_minimal(digits_):
    value = sum(s * 2.0 ** e for s, e in digits_)
    if value <= 0:
        assert csd_terms(value) is None
        return
    terms = csd_terms(value, max_terms=64)
    assert sum(s * 2.0 ** e for s, e in terms) == value
    assert len(terms) <= len(digits_)  # never more terms than any signed-digit form
    assert len({e for _, e in terms}) == len(terms)


# --------------------------------------------------------------------------- the CLI-facing API

def test_run_codings_entries_and_table(test_data, calib_data):
    graph = load_onnx(BUNDLED["digits_mlp"])
    data = test_data.head(100)
    runs = run_codings(graph, data, calib_data, ["sws", "sws:Tc=4,Ts=1"], "float")
    assert [r["coding"] for r in runs] == ["sws", "sws:Tc=4,Ts=1"]
    for r in runs:
        assert set(r) >= {"coding", "params", "accuracy", "latency_steps", "steps_per_frame",
                          "spikes", "counts", "energy_pj", "latency_s", "throughput_fps"}
        assert 0.0 <= r["accuracy"]["float"] <= 1.0 and r["accuracy"]["fixed"] is None
        assert r["spikes"]["pos"] > 0 and r["spikes"]["neg"] >= 0
    assert (runs[1]["latency_steps"], runs[1]["steps_per_frame"]) == (4 + 1 * 2, 5)
    table = format_runs(runs, ann.accuracy(graph, data.x, data.y))
    assert max(len(line) for line in table.splitlines()) <= 100
    with pytest.raises(UserError, match="needs a hardware profile"):
        run_codings(graph, data, calib_data, ["sws"], "fixed")
    with pytest.raises(UserError, match="--precision must be one of"):
        run_codings(graph, data, calib_data, ["sws"], "double")
