"""The SimPy pipeline model and the placement (issue 11): closed forms out of the simulation.

With unit cost per step (every action 0 ns, a 1 ns tick, no barrier cost, no hop latency) the
simulated latency of a frame must be the scheme's closed form computed from its parameters and
the network's depth, and SWS must sustain one frame per Tc+Ts steps. Real counts of the
bit-accurate runs on digits_cnn feed the model.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from neurosim.api import load_inputs
from neurosim.counts import ACTION_INDEX, ACTIONS, Counts
from neurosim.graph import populations
from neurosim.hw.mapping import map_layers
from neurosim.hw.placement import hop_counts, place, round_robin_shares, router_position
from neurosim.hw.profile import load_profile
from neurosim.pipeline import pipeline_for_run, simulate_pipeline
from neurosim.report import layer_sizes
from neurosim.schemes import expand_codings, get_scheme

IMAGES = 4


def unit_cost(profile, sync: str):
    """Every action free, a 1 ns tick per step, no barrier cost, no hop latency."""
    t = profile.timing
    timing = dataclasses.replace(t, per_action_ns={a: 0.0 for a in t.per_action_ns}, sync=sync,
                                 barrier_ns=0.0, min_step_ns=1.0)
    cores = dataclasses.replace(profile.cores, hop_latency_ns=0.0)
    return dataclasses.replace(profile, timing=timing, cores=cores)


def with_sync(profile, sync: str):
    t = profile.timing
    barrier = t.barrier_ns if sync == "barrier" else 0.0
    return dataclasses.replace(profile, timing=dataclasses.replace(t, sync=sync,
                                                                   barrier_ns=barrier))


@pytest.fixture(scope="module")
def runs():
    """Each scheme (defaults) in fixed point on digits_cnn, loihi_like, a few images."""
    inp = load_inputs("digits_cnn", "loihi_like", ["all"], None, None, IMAGES, None, False,
                      default_codings=["all"])
    profile = load_profile("loihi_like")
    mapping = map_layers(layer_sizes(inp.graph), profile)
    hidden = sum(1 for p in populations(inp.graph) if p.kind in ("hidden", "maxpool"))
    out = {}
    for name, params in expand_codings(["all"]):
        scheme = get_scheme(name)
        snn = scheme.build(inp.graph, inp.calib.x, params)
        fixed = scheme.quantize(snn, profile.arithmetic)
        result = scheme.simulate_fixed(fixed, inp.data.x)
        out[name] = dict(params=params, scheme=scheme, snn=snn, fixed=fixed, result=result)
    return out, profile, mapping, hidden


def closed_form_latency(name: str, p: dict, hidden: int) -> int:
    if name == "sws":
        return p["Tc"] + p["Ts"] * hidden
    if name == "ttfs":
        return p["T"] * (hidden + 1)
    if name == "rate":
        return p["T"]
    if name == "tsc":
        return p["N"]
    if name == "phase":
        return p["K"] * p["periods"]
    raise AssertionError(name)


@pytest.mark.parametrize("sync", ["barrier", "dataflow"])
@pytest.mark.parametrize("name", ["sws", "ttfs", "rate", "tsc", "phase"])
def test_unit_cost_latency_is_the_closed_form(runs, name, sync):
    by_name, profile, mapping, hidden = runs
    r = by_name[name]
    if name == "phase" and r["params"].get("early"):
        pytest.skip("early decision: latency per image")
    _, per_frame = r["scheme"].timing(r["snn"])
    pr = pipeline_for_run(r["result"], unit_cost(profile, sync), mapping, r["fixed"], per_frame)
    expected = closed_form_latency(name, r["params"], hidden)
    assert pr.latency_s * 1e9 == pytest.approx(expected)
    assert pr.latency_steps == expected


@pytest.mark.parametrize("sync", ["barrier", "dataflow"])
def test_sws_sustains_one_frame_per_tc_plus_ts_steps(runs, sync):
    by_name, profile, mapping, _ = runs
    r = by_name["sws"]
    pr = pipeline_for_run(r["result"], unit_cost(profile, sync), mapping, r["fixed"],
                          r["scheme"].timing(r["snn"])[1])
    steps = r["params"]["Tc"] + r["params"]["Ts"]
    assert pr.frame_interval_s * 1e9 == pytest.approx(steps)
    assert pr.throughput_fps == pytest.approx(1e9 / steps)


def _doubled_synops(counts: Counts, layer: str) -> Counts:
    data = counts.data.copy()
    li = counts.layers.index(layer)
    data[li, :, ACTION_INDEX["synop"]] *= 2
    return Counts(counts.layers, data, counts.images)


@pytest.mark.parametrize("name", ["sws", "ttfs", "rate"])
def test_doubling_one_layers_synop_time_lengthens_its_share(runs, name):
    """Twice the synop work of one layer (= its synop time doubled) adds exactly its synop time
    to that layer's busy time per frame, nothing to the others', and the frame gets slower."""
    by_name, profile, mapping, _ = runs
    r = by_name[name]
    per_frame = r["scheme"].timing(r["snn"])[1]
    counts = r["result"].counts
    layer = max(counts.layers, key=lambda l: counts.by_layer()[l]["synop"])
    base = pipeline_for_run(r["result"], profile, mapping, r["fixed"], per_frame)
    slower_result = dataclasses.replace(r["result"], counts=_doubled_synops(counts, layer))
    slower = pipeline_for_run(slower_result, profile, mapping, r["fixed"], per_frame)
    added = counts.by_layer()[layer]["synop"] / counts.images * profile.action_ns("synop")
    assert added > 0
    assert slower.layer_busy_ns[layer] == pytest.approx(base.layer_busy_ns[layer] + added)
    for other in counts.layers:
        if other != layer:
            assert slower.layer_busy_ns[other] == pytest.approx(base.layer_busy_ns[other])
    assert slower.latency_s > base.latency_s


@pytest.mark.parametrize("name", ["sws", "ttfs", "rate", "tsc", "phase"])
def test_dataflow_frame_never_slower_than_barrier_on_real_counts(runs, name):
    by_name, profile, mapping, _ = runs
    r = by_name[name]
    per_frame = r["scheme"].timing(r["snn"])[1]
    b = pipeline_for_run(r["result"], with_sync(profile, "barrier"), mapping, r["fixed"], per_frame)
    d = pipeline_for_run(r["result"], with_sync(profile, "dataflow"), mapping, r["fixed"],
                         per_frame)
    assert d.latency_s <= b.latency_s * (1 + 1e-12)
    assert d.frame_interval_s <= b.frame_interval_s * (1 + 1e-12)


def _random_pipelines(seed: int, trials: int):
    """Per trial, {sync: PipelineResult} of one random network under barrier and dataflow:
    chains and skips, core counts, per-step work, ticks, barrier costs and frame periods
    (overlapping frames included)."""
    rng = np.random.default_rng(seed)
    base = load_profile("asic_45nm")
    for _ in range(trials):
        n_layers = int(rng.integers(2, 5))
        steps = int(rng.integers(3, 12))
        data = rng.integers(0, 5, size=(n_layers, steps, len(ACTIONS))) * \
            (rng.random((n_layers, steps, 1)) < 0.7)
        names = [f"l{i}" for i in range(n_layers)]
        counts = Counts(names, data, 1)
        edges = [(names[i], names[i + 1], 0) for i in range(n_layers - 1)]
        if n_layers > 2:
            edges.append((names[0], names[2], int(rng.integers(0, 3))))
        cores = [(n, int(rng.integers(1, 3))) for n in names]
        tick = float(rng.choice([0.0, 5.0, 30.0]))
        period = int(rng.integers(1, steps + 1))
        results = {}
        for sync in ("barrier", "dataflow"):
            t = dataclasses.replace(base.timing, sync=sync, min_step_ns=tick,
                                    barrier_ns=float(rng.integers(0, 20)) if sync == "barrier"
                                    else 0.0)
            prof = dataclasses.replace(base, timing=t, cores=dataclasses.replace(
                base.cores, hop_latency_ns=1.5))
            results[sync] = simulate_pipeline(counts, prof, cores, edges, period)
        yield results


def test_dataflow_never_slower_than_barrier_random_networks():
    for trial, results in enumerate(_random_pipelines(7, 25)):
        d, b = results["dataflow"], results["barrier"]
        assert d.latency_s <= b.latency_s * (1 + 1e-12), trial
        assert d.frame_interval_s <= b.frame_interval_s * (1 + 1e-12), trial


def test_pipeline_static_energy_below_the_serial_bound_on_loihi(runs):
    """Static energy per frame = static power × steady-state time per frame, at most the
    serial bound (every layer's work of a step one after another, one frame at a time)."""
    by_name, profile, mapping, _ = runs
    r = by_name["sws"]
    pr = pipeline_for_run(r["result"], profile, mapping, r["fixed"],
                          r["scheme"].timing(r["snn"])[1])
    assert pr.static_pj_per_frame == pytest.approx(
        profile.static_power_w * pr.frame_interval_s * 1e12)
    assert 0 < pr.static_pj_per_frame <= pr.serial_static_pj_per_frame
    assert pr.bottleneck in r["result"].counts.layers
    assert all(0 <= u <= 1 + 1e-9 for u in pr.utilisation.values())
    assert max(pr.utilisation.values()) == pytest.approx(
        pr.utilisation[f"{pr.bottleneck}#0"])
    for core, layer, frame, step, t0, t1 in pr.intervals:
        assert core.startswith(layer) and t1 > t0 and step >= 1 and frame >= 0


def test_intervals_are_capped():
    counts = Counts(["a", "b"], np.ones((2, 50, len(ACTIONS)), np.int64), 1)
    pr = simulate_pipeline(counts, load_profile("asic_45nm"), [("a", 1), ("b", 2)],
                           [("a", "b", 0)], 10, max_intervals=17)
    assert len(pr.intervals) == 17 and pr.intervals_truncated


def test_power_gated_idle_cores(tmp_path):
    from pathlib import Path

    text = Path(load_profile("loihi_like").path).read_text()
    anchor = "  mesh_rows:\n"
    text = text.replace(anchor, "  gateable_static_fraction: {value: 0.5, source: "
                        "neurosim_assumption}\n" + anchor, 1)
    p = tmp_path / "gated.yaml"
    p.write_text(text)
    prof = load_profile(p)
    counts = Counts(["a", "b"], np.ones((2, 6, len(ACTIONS)), np.int64), 1)
    pr = simulate_pipeline(counts, prof, [("a", 1), ("b", 3)], [("a", "b", 0)], 6)
    unused = (prof.cores.count - 4) / prof.cores.count
    assert pr.static_pj_per_frame_gated == pytest.approx(pr.static_pj_per_frame
                                                         * (1 - 0.5 * unused))


# ---------------------------------------------------------------------------- placement
def test_snake_placement_and_hop_closed_form():
    prof = load_profile("asic_45nm")                     # 8 x 8 mesh, one core per router
    assert [router_position(c, 8, 1) for c in (0, 7, 8, 15, 16)] == \
        [(0, 0), (0, 7), (1, 7), (1, 0), (2, 0)]
    pl = place([("a", 7), ("b", 2)], prof)              # a: (0,0)..(0,6); b: (0,7), (1,7)
    spikes = {"a": np.array([7, 3, 0]), "b": np.array([1, 1, 1])}
    hops = hop_counts(pl, [("a", "b")], spikes)
    # per source core i at (0, i): distance to (0,7) is 7-i, to (1,7) is 8-i
    per_core = np.array([(7 - i) + (8 - i) for i in range(7)])
    expected = per_core @ round_robin_shares(spikes["a"], 7)
    assert hops[0].tolist() == expected.tolist() and hops[1].tolist() == [0, 0, 0]


def test_cores_sharing_a_router_are_zero_hops_apart():
    prof = load_profile("loihi_like")                   # 4 cores per tile
    pl = place([("a", 2), ("b", 2), ("c", 1)], prof)
    assert pl.hop_matrix("a", "b").max() == 0
    assert pl.hop_matrix("a", "c").min() == 1


def test_round_robin_shares_sum_to_the_spikes():
    s = np.array([0, 1, 5, 11])
    sh = round_robin_shares(s, 3)
    assert sh.sum(axis=0).tolist() == s.tolist() and sh.max(axis=0).tolist() == [0, 1, 2, 4]


# ---------------------------------------------------------------------------- profile keys
def _loihi_edited(tmp_path, old: str, new: str):
    from pathlib import Path

    text = Path(load_profile("loihi_like").path).read_text()
    assert old in text
    p = tmp_path / "edited.yaml"
    p.write_text(text.replace(old, new, 1))
    return p


@pytest.mark.parametrize("old,new,words", [
    ("  mesh_cols: {value: 8,", "  mesh_cols: {value: 9,", ["cores.mesh_rows", "4 x 9 x 4 = 144"]),
    ("  mesh_cols: {value: 8, source: [davies2018, neurosim_assumption], note: \"See mesh_rows.\"}\n",
     "", ["cores.mesh_cols", "mesh_rows is given"]),
    ("  weight_reuse:\n    value: 1\n", "  weight_reuse:\n    value: 0.5\n",
     ["ann_baseline.weight_reuse.value", ">= 1"]),
    ("  activation_reuse:\n", "  activation_reus:\n", ["ann_baseline.activation_reus"]),
    ("  mesh_rows:\n    value: 4\n", "  mesh_rows:\n    value: -4\n", ["cores.mesh_rows.value"]),
])
def test_new_profile_keys_are_validated(tmp_path, old, new, words):
    from neurosim.errors import UserError

    with pytest.raises(UserError) as e:
        load_profile(_loihi_edited(tmp_path, old, new))
    assert "edited.yaml" in str(e.value)
    for w in words:
        assert w in str(e.value)


# ---------------------------------------------------------------------------- ANN baseline
def _conv_dense_nodes(graph):
    return [n for n in graph.nodes.values() if n.op in ("conv", "dense")]


@pytest.mark.parametrize("hw", ["loihi_like", "asic_45nm"])
def test_fair_ann_baseline_prices_every_macs_memory_traffic(hw):
    from neurosim.energy import ann_energy, ann_energy_fair

    inp = load_inputs("digits_cnn", hw, ["sws"], None, None, 1, None, False)
    prof = load_profile(hw)
    nodes = _conv_dense_nodes(inp.graph)
    macs = sum(n.macs() for n in nodes)
    outputs = sum(int(np.prod(n.shape)) for n in nodes)
    fair = ann_energy_fair(inp.graph, prof)
    assert prof.ann_baseline.weight_reuse == 1 and prof.ann_baseline.activation_reuse == 1
    expected = (macs * (prof.price("mac") + prof.price("weight_read") + prof.price("state_read"))
                + outputs * prof.price("state_write"))
    assert fair["total_pj"] == pytest.approx(expected)
    assert fair["mac_only_pj"] == pytest.approx(ann_energy(macs, prof))
    assert fair["total_pj"] > fair["mac_only_pj"]


def test_fair_ann_baseline_reuse_has_a_floor_of_one_read_per_weight(tmp_path):
    from neurosim.energy import ann_energy_fair

    inp = load_inputs("digits_cnn", "asic_45nm", ["sws"], None, None, 1, None, False)
    reuse = 10 ** 6        # more reuse than any weight has: each weight read exactly once
    p = _loihi_edited(tmp_path, "  weight_reuse:\n    value: 1\n",
                      f"  weight_reuse:\n    value: {reuse}\n")
    prof = load_profile(p)
    nodes = _conv_dense_nodes(inp.graph)
    fair = ann_energy_fair(inp.graph, prof)
    assert fair["accesses"]["weight_reads"] == sum(int(n.weight.size) for n in nodes)
    assert fair["accesses"]["activation_reads"] == sum(n.macs() for n in nodes)


@pytest.mark.parametrize("name", ["sws", "ttfs", "rate"])
def test_a_lone_frame_is_never_slower_than_one_in_the_stream(runs, name):
    by_name, profile, mapping, _ = runs
    r = by_name[name]
    per_frame = r["scheme"].timing(r["snn"])[1]
    for sync in ("barrier", "dataflow"):
        pr = pipeline_for_run(r["result"], with_sync(profile, sync), mapping, r["fixed"],
                              per_frame)
        assert 0 < pr.latency_alone_s <= pr.latency_s * (1 + 1e-12)


@pytest.mark.parametrize("name", ["sws", "ttfs"])
def test_truenorth_tick_holds(runs, name):
    """truenorth_like: no per-action time, a 1 ms tick, dataflow: every step is one tick."""
    by_name, _, _, hidden = runs
    r = by_name[name]
    tn = load_profile("truenorth_like")
    per_frame = r["scheme"].timing(r["snn"])[1]
    pr = pipeline_for_run(r["result"], tn, None, r["fixed"], per_frame)
    tick_s = tn.timing.min_step_ns * 1e-9
    assert pr.latency_s == pytest.approx(closed_form_latency(name, r["params"], hidden) * tick_s)
    assert pr.frame_interval_s == pytest.approx(per_frame * tick_s)


def test_run_entry_prices_hops_and_takes_static_energy_from_the_pipeline():
    """digits_cnn on loihi_like: input, /1 and the two cores of /4 (its 204,800 synapses,
    pooling folded into its conv, need two cores' synapse memory) fill tile 0 (4 cores per
    router); /8 and the readout sit on tile 1 next to it: every spike of /4/Relu crosses
    exactly one hop, and no other layer's does."""
    from neurosim.simulate import run_codings

    inp = load_inputs("digits_cnn", "loihi_like", ["sws"], None, None, IMAGES, None, False)
    prof = load_profile("loihi_like")
    kept = {}
    runs = run_codings(inp.graph, inp.data, inp.calib, ["sws"], "fixed", prof,
                       on_result=lambda run, result, *rest: kept.update(result=result))
    run, counts = runs[0], kept["result"].counts
    li = counts.layers.index("/4/Relu")
    spikes = (counts.data[li, :, ACTION_INDEX["spike_out_pos"]].sum()
              + counts.data[li, :, ACTION_INDEX["spike_out_neg"]].sum()) / counts.images
    assert spikes > 0
    assert run["counts"]["hop"] == pytest.approx(spikes)
    e = run["energy_pj"]
    assert e["by_action"]["hop"] == pytest.approx(spikes * prof.cores.hop_energy_pj)
    assert e["dynamic"] == pytest.approx(sum(e["by_action"].values()))
    pipe = run["pipeline"]
    assert e["static"] == pytest.approx(prof.static_power_w * pipe["frame_interval_s"] * 1e12)
    assert e["total"] == pytest.approx(e["dynamic"] + e["static"])
    assert run["latency_s"] == pipe["latency_s"] and run["throughput_fps"] > 0
    assert e["static"] <= e["static_serial_bound"]


@pytest.mark.parametrize("sync", ["barrier", "dataflow"])
@pytest.mark.parametrize("name", ["sws", "ttfs", "rate", "tsc", "phase"])
def test_pipeline_never_exceeds_the_serial_bound(runs, name, sync):
    """A lone frame, and the steady-state time per frame, are at most the serial time of a frame
    alone (every layer's work and every message of a step one after another), hop latencies
    included; the steady-state latency (the number the report shows beside the serial bound)
    is at most the serial time of the frame in the stream (every frame in flight's work)."""
    by_name, profile, mapping, _ = runs
    r = by_name[name]
    prof = with_sync(profile, sync)
    prof = dataclasses.replace(prof, cores=dataclasses.replace(prof.cores, hop_latency_ns=50.0))
    pr = pipeline_for_run(r["result"], prof, mapping, r["fixed"], r["scheme"].timing(r["snn"])[1])
    assert pr.latency_s <= pr.serial_latency_s * (1 + 1e-12)
    assert pr.latency_alone_s <= pr.serial_frame_s * (1 + 1e-12)
    assert pr.frame_interval_s <= pr.serial_frame_s * (1 + 1e-12)
    assert pr.serial_frame_s <= pr.serial_latency_s * (1 + 1e-12)
    assert pr.static_pj_per_frame <= pr.serial_static_pj_per_frame * (1 + 1e-12)


def _ttfs_like_counts(window: int = 4) -> Counts:
    """A TTFS-like chain input → hidden → readout: the input fires in window 1, the hidden
    layer receives in window 1 and fires in window 2, the readout receives in window 2; a frame
    lasts two windows and a new one enters every window, so frames overlap."""
    steps = 2 * window
    data = np.zeros((3, steps, len(ACTIONS)), np.int64)
    syn, spk = ACTION_INDEX["synop"], ACTION_INDEX["spike_out_pos"]
    data[0, :window, spk] = 3
    data[1, :window, syn] = 40
    data[1, window:, spk] = 2
    data[2, window:, syn] = 10
    return Counts(["input", "hidden", "readout"], data, 1)


@pytest.mark.parametrize("sync", ["barrier", "dataflow"])
def test_serial_bound_covers_the_steady_state_latency_of_overlapping_frames(sync):
    """The black-box report: TTFS's steady-state latency (a frame sharing every step, and with
    ``barrier`` every barrier, with the frames before and after it) exceeded the serial figure
    of a frame alone. ``serial_latency_s`` serialises the work of every frame in flight, so it
    bounds ``latency_s``; ``serial_frame_s`` (the frame alone) still bounds the lone latency
    and the time per frame, and prices the serial static energy."""
    window = 4
    counts = _ttfs_like_counts(window)
    base = load_profile("loihi_like")
    prof = with_sync(base, sync)
    prof = dataclasses.replace(prof, cores=dataclasses.replace(prof.cores, hop_latency_ns=50.0))
    edges = [("input", "hidden", 0), ("hidden", "readout", 0)]
    pr = simulate_pipeline(counts, prof, [("input", 1), ("hidden", 1), ("readout", 1)], edges,
                           window)
    assert pr.frames_simulated > 2  # frames overlap: the measured one is not alone
    assert pr.latency_alone_s < pr.latency_s
    assert pr.serial_frame_s < pr.latency_s  # what the report called the bound before
    assert pr.latency_s <= pr.serial_latency_s * (1 + 1e-12)
    assert pr.latency_alone_s <= pr.serial_frame_s * (1 + 1e-12)
    assert pr.frame_interval_s <= pr.serial_frame_s * (1 + 1e-12)
    assert pr.serial_static_pj_per_frame == pytest.approx(
        prof.static_power_w * pr.serial_frame_s * 1e12)
    d = pr.to_dict()
    assert d["serial_latency_s"] == pr.serial_latency_s
    assert d["serial_frame_s"] == pr.serial_frame_s


def test_serial_bounds_hold_on_random_networks():
    """The pipeline never beats its serial figures, on random networks and frame periods."""
    tol = 1 + 1e-12
    for trial, results in enumerate(_random_pipelines(11, 40)):
        for sync, pr in results.items():
            assert pr.latency_s <= pr.serial_latency_s * tol, (trial, sync)
            assert pr.latency_alone_s <= pr.serial_frame_s * tol, (trial, sync)
            assert pr.frame_interval_s <= pr.serial_frame_s * tol, (trial, sync)
            assert pr.serial_frame_s <= pr.serial_latency_s * tol, (trial, sync)


@pytest.mark.parametrize("model", ["digits_cnn", "digits_resnet"])
def test_stored_synapses_are_what_events_fan_out_through(model):
    """The mapping's synapses per layer, from the graph and from each scheme's EventNetwork,
    agree, and a pool multiplied into a dense map counts the product (a probe saw a global
    pool + 16→4 Linear listed as 640 synapses where the engine fans out through 576×4)."""
    from neurosim.data import digits
    from neurosim.pipeline import network_layer_sizes
    from neurosim.schemes import parse_coding

    graph = load_inputs(model, "loihi_like", ["sws"], None, None, 1, None, False).graph
    from_graph = [(s.name, s.synapses) for s in layer_sizes(graph)]
    arithmetic = load_profile("loihi_like").arithmetic
    for spec in ("sws", "ttfs"):
        name, params = parse_coding(spec)
        scheme = get_scheme(name)
        fixed = scheme.quantize(scheme.build(graph, digits("calibration").x, params), arithmetic)
        assert [(s.name, s.synapses) for s in network_layer_sizes(fixed)] == from_graph, spec
    if model == "digits_resnet":  # global average pool of 32×4×4, then 32 → 10
        assert dict(from_graph)["/8/Gemm"] == 512 * 10
