"""What a user sees when part of a request cannot be honoured: compare leaves out the codings a
model cannot take and says why, profiles reports every bad file, data and range problems are
named (cases found by trying the tool on networks and data that are not bundled)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import helper

from neurosim.cli import main
from neurosim.core.ranges import NARROWED_BITS_WARN, LayerFit, check_ranges
from neurosim.data import digits
from neurosim.hw.profile import load_profile
from onnx_builders import model

RNG = np.random.default_rng(3)


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _maxpool_net(path):
    """conv(1→4, 3×3, pad 1) → ReLU → MaxPool 2×2 → Flatten → Gemm, on 1×8×8 digits."""
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2],
                              strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["h"], name="flat"),
             helper.make_node("Gemm", ["h", "GW", "GB"], ["y"], name="gemm", transB=1)]
    inits = [("W", RNG.normal(0, 0.5, (4, 1, 3, 3))), ("B", RNG.normal(0, 0.1, 4)),
             ("GW", RNG.normal(0, 0.3, (10, 64))), ("GB", RNG.normal(0, 0.1, 10))]
    onnx.save(model(nodes, [("x", ("N", 1, 8, 8))], "y", inits), path)
    return path


def test_compare_leaves_out_the_codings_a_model_cannot_take(capsys, tmp_path):
    """A MaxPool net: only SWS's float simulator gates MaxPool, so compare in float runs sws
    and lists every other coding as not run with its reason (terminal, JSON, report.md); in
    fixed point no coding can take it, and that is one error naming them all."""
    net = _maxpool_net(tmp_path / "mp.onnx")
    out_json = tmp_path / "mp.json"
    code, out, err = run_cli(capsys, "compare", net, "--limit", 4, "--precision", "float",
                             "--json", out_json, "--out", tmp_path / "rep")
    assert code == 0, err
    doc = json.loads(out_json.read_text())
    (block,) = doc["comparisons"]
    assert [r["coding"] for r in block["runs"]] == ["sws"]
    assert sorted(n["coding"] for n in block["not_run"]) == ["phase", "rate", "tsc", "ttfs"]
    assert all("MaxPool" in n["reason"] and "'pool'" in n["reason"] for n in block["not_run"])
    assert "Not run on loihi_like: rate:" in out
    assert all(len(line) <= 100 for line in out.splitlines())
    assert "## Not run" in (tmp_path / "rep" / "report.md").read_text()
    code, _, err = run_cli(capsys, "compare", net, "--limit", 4, "--precision", "fixed")
    assert code == 2 and "no coding can run on this model" in err and "Traceback" not in err
    # run was asked for one coding: its refusal is the error, with advice that works
    code, _, err = run_cli(capsys, "run", net, "--limit", 4, "--coding", "rate")
    assert code == 2 and "MaxPool" in err
    code, _, err = run_cli(capsys, "run", net, "--limit", 4, "--coding", "tsc",
                           "--precision", "float")
    assert code == 2 and "--coding sws --precision float" in err
    assert run_cli(capsys, "run", net, "--limit", 4, "--coding", "sws",
                   "--precision", "float")[0] == 0


def test_profiles_reports_every_bad_file(capsys, tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text("name: x\nenergy_pj: {}\nbogus_key: 1\n")
    worse = tmp_path / "list.yaml"
    worse.write_text("- 1\n- 2\n")
    good = load_profile("asic_45nm").path
    code, out, err = run_cli(capsys, "profiles", bad, worse, good)
    assert code == 2
    assert "typo.yaml" in err and "list.yaml" in err and "Traceback" not in err
    assert "valid profile 'asic_45nm'" in out


def _npz(path, x, y=None):
    np.savez(path, x=x, **({} if y is None else {"y": y}))
    return path


def test_empty_and_sign_flipped_data_are_named(capsys, tmp_path):
    x = digits("test").x[:4]
    empty = _npz(tmp_path / "empty.npz", x[:0], np.zeros(0, np.int64))
    code, _, err = run_cli(capsys, "run", "--data", empty, "--precision", "float")
    assert code == 2 and "holds no images" in err and "empty.npz" in err
    flipped = _npz(tmp_path / "neg.npz", -x, np.zeros(4, np.int64))
    code, _, err = run_cli(capsys, "run", "--data", flipped, "--precision", "float")
    assert code == 2 and "never negative" in err and "neg.npz" in err
    huge = _npz(tmp_path / "huge.npz", x * 30, np.zeros(4, np.int64))
    code, _, err = run_cli(capsys, "run", "--data", huge, "--precision", "float")
    assert code == 2 and "scaled differently" in err and "uint8" not in err  # 30×, not 255×


def test_all_with_keys_suggests_a_scheme_that_has_them(capsys):
    code, _, err = run_cli(capsys, "run", "--coding", "all:T=5")
    assert code == 2 and "--coding rate:T=5" in err


def test_weights_narrowed_to_fit_the_registers_are_a_warning():
    """A layer whose worst case fits the state bits only with weights several bits narrower
    than the profile's is run, with a warning naming it and the bits it keeps."""
    arith = load_profile("loihi_like").arithmetic
    sb, wb = int(arith.state_bits), int(arith.weight_bits)
    fits = [LayerFit("ok", 4, 0, True, sb, sb - 4, -8, 8),
            LayerFit("narrow", 4, 0, True, sb + NARROWED_BITS_WARN, sb - 2, -8, 8)]
    (warning,) = check_ranges("'x'", fits, arith, "its membrane", ("T", 64, 2, lambda v: 0))
    assert "'narrow'" in warning and f"about {wb - NARROWED_BITS_WARN} of" in warning
    assert "a smaller T" in warning


def test_two_profiles_with_one_name_are_refused(capsys, tmp_path):
    """Tables, report sections and CSV rows go by the profile's name: two of one name could
    not be told apart."""
    copy = tmp_path / "copy.yaml"
    copy.write_text(load_profile("loihi_like").path.read_text())
    code, _, err = run_cli(capsys, "compare", "--hw", "loihi_like", "--hw", copy, "--limit", 2)
    assert code == 2 and "copy.yaml" in err and "'loihi_like'" in err


def test_a_coding_given_twice_runs_once():
    from neurosim.schemes import expand_codings

    assert [n for n, _ in expand_codings(["sws", "sws:Tc=8", "all", "rate:T=64"])] == [
        "sws", "phase", "rate", "tsc", "ttfs", "rate"]


def test_a_float_snn_far_below_the_ann_is_a_warning(tmp_path):
    """TSC's single emission on the digits CNN loses tens of points in the conversion itself:
    the run says so; SWS, within a point of the ANN, gets no such warning."""
    from neurosim import api

    result = api.compare("digits_cnn", codings=["tsc", "sws"], limit=32, precision="float",
                         progress=False)
    tsc, sws = result.runs
    assert any("the conversion itself loses" in w for w in tsc["warnings"])
    assert not any("the conversion itself loses" in w for w in sws["warnings"])
    # TSC's advice is its own: more steps do not cure a running-maximum neuron
    assert any("it can rise or fall with N" in w for w in tsc["warnings"])
    assert not any("more steps," in w for w in tsc["warnings"])


@pytest.mark.parametrize("flt, fixed, images, warned", [
    (0.84, 0.76, 100, True),  # a probe's depthwise CNN: 8 images, no warning before
    (0.84, 0.80, 100, True),
    (0.84, 0.82, 100, False),  # 2 points: within FIXED_LOSS_WARN
    (1.00, 0.90, 20, False),  # 10 points but 2 images
    (0.80, 0.85, 100, False),  # fixed above float
    (None, 0.5, 100, False),  # fixed only: nothing to compare
])
def test_fixed_point_far_below_its_float_snn_is_a_warning(flt, fixed, images, warned):
    from neurosim.fixed_vs_float import warn_fixed_loss

    entry = {"coding": "sws:Tc=4", "accuracy": {"float": flt, "fixed": fixed},
             "overflows_total": 0, "warnings": []}
    warn_fixed_loss(entry, images)
    assert bool(entry["warnings"]) == warned
    if warned:
        (w,) = entry["warnings"]
        assert "with no register overflow" in w and "neurosim check" in w
        assert f"{100 * (flt - fixed):.1f} points" in w


def test_check_warns_of_a_float_snn_far_below_the_ann():
    """``check`` compares fixed point with float; a float SNN already tens of points below
    the ANN is the larger loss, and check says so too, with the ANN's accuracy beside."""
    from neurosim import api
    from neurosim.fixed_vs_float import format_check

    result = api.check("digits_cnn", codings=["tsc"], limit=32)
    (r,) = result.results
    assert r["ann_accuracy"] - r["accuracy"]["float"] > 0.10
    assert any("the conversion itself loses" in w for w in r["warnings"])
    assert "WARNING: tsc: the float SNN reaches" in format_check(result.results, "loihi_like")


def test_a_codings_own_seed_wins_over_the_seed_option():
    """``--seed 5`` seeds every coding that draws random numbers, but not one whose spec sets
    ``seed=`` itself (found by a probe: its seed=7 was silently replaced by 5)."""
    from neurosim import api

    result = api.run("digits_mlp", codings=["rate:T=8,input=poisson,seed=7",
                                            "rate:T=16,input=poisson"],
                     seed=5, limit=4, precision="float", progress=False)
    assert [r["params"]["seed"] for r in result.runs] == [7, 5]


def test_counts_csv_leaves_uncounted_actions_empty():
    """A float run counts spikes only: its counts.csv row must not claim 0 synops (found by
    a probe); a fixed run fills every column."""
    import csv
    import io

    from neurosim import api

    for precision, empty in (("float", True), ("fixed", False)):
        result = api.run("digits_mlp", codings=["sws"], limit=4, precision=precision,
                         progress=False)
        rows = list(csv.DictReader(io.StringIO(result.counts_csv())))
        hidden = rows[1]
        assert (hidden["synop"] == "") is empty and float(hidden["spike_out_pos"]) > 0
        assert all((hidden[a] == "") is empty for a in ("add", "state_read", "compare"))


def test_scale_messages_name_bundled_data_and_hint_uint8_only_for_it(capsys, tmp_path):
    """The bundled split is named as the option spells it, not by this machine's install
    path; the uint8 hint needs a 0..255 side; all-zero test images have no scale to mismatch
    (found by a probe: a 0.01-scaled calibration got the uint8 hint and the install path)."""
    x = digits("calibration").x
    tiny = _npz(tmp_path / "tiny.npz", x * 0.01)
    code, _, err = run_cli(capsys, "run", "--calib", tiny, "--precision", "float")
    assert code == 2 and "--data digits:test holds" in err and "tiny.npz" in err
    assert "uint8" not in err and "/neurosim/data/" not in err
    zeros = _npz(tmp_path / "zeros.npz", np.zeros((4, 1, 8, 8)), np.zeros(4, np.int64))
    code, out, err = run_cli(capsys, "run", "--data", zeros, "--precision", "float")
    assert code == 0, err
    big = _npz(tmp_path / "u8.npz", np.round(digits("test").x[:4] * 255), np.zeros(4, np.int64))
    code, _, err = run_cli(capsys, "run", "--data", big, "--precision", "float")
    assert code == 2 and "uint8" in err and "divide by 255" in err


def test_sws_warns_too_when_its_weights_give_up_bits_to_the_registers():
    """SWS narrows its weights to fit the registers like the other codings, and now says so
    as they do (a probe: 4.3 of 8 weight bits at Tc=14 with no word); at Tc=8 it loses none."""
    from neurosim.api import MODELS_DIR
    from neurosim.calibrate import calibrate
    from neurosim.core.tsa import quantize_sws
    from neurosim.onnx_import import load_onnx
    from neurosim.schemes import get_scheme
    from neurosim.schemes.sws import convert

    graph = load_onnx(MODELS_DIR / "digits_mlp.onnx")
    lams = calibrate(graph, digits("calibration").x)
    arithmetic = load_profile("loihi_like").arithmetic
    for tc, warned in ((14, True), (8, False)):
        params = dict(get_scheme("sws").defaults(), Tc=tc)
        net = quantize_sws(convert(graph, lams, params), arithmetic)
        narrowed = [w for w in net.info.warnings if "keeps only about" in w]
        assert bool(narrowed) is warned, (tc, net.info.warnings)
        if warned:
            assert all(f"Tc={tc}" in w and "smaller Tc" in w for w in narrowed)
            used = net.info.weight_bits_used[1:]
            assert min(used) <= arithmetic.weight_bits - NARROWED_BITS_WARN + 1


def test_report_folder_holds_one_run_whole(tmp_path):
    """A second report into the same folder removes the first one's figures it does not
    make; an interrupted write leaves the folder as it was (found by a probe: old figures
    beside a new report, and a half-written folder after Ctrl-C)."""
    from neurosim import api

    out = tmp_path / "rep"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    first = api.run("digits_mlp", codings=["sws"], limit=4, progress=False)
    names = {p.name for p in first.write(out)}
    assert "energy_by_action.png" in names
    second = api.run("digits_mlp", codings=["sws"], limit=4, precision="float", progress=False)
    second_names = {p.name for p in second.write(out)}
    assert "energy_by_action.png" not in second_names
    assert {p.name for p in out.iterdir()} == second_names | {"notes.txt"}
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def interrupted(directory):
        raise KeyboardInterrupt

    first.plots = interrupted
    with pytest.raises(KeyboardInterrupt):
        first.write(out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing half-new


def test_codings_that_send_negative_inputs_as_zero_say_so():
    """Normalised data holds negative inputs: TTFS, phase and rate with spike-train inputs
    send them as 0 and say so, whatever the accuracy lost (a probe: TTFS lost 9 points on
    an MLP with no word); SWS, TSC and rate:input=current keep the sign and say nothing."""
    from neurosim import api

    test, calib = digits("test"), digits("calibration")
    centred = dict(data=(test.x - 0.5, test.y), calib=calib.x - 0.5)
    result = api.run("digits_mlp", codings=["ttfs:T=8", "phase", "rate:T=16,input=regular",
                                            "rate:T=16", "sws", "tsc"],
                     limit=4, precision="float", progress=False, **centred)
    said = {r["coding"]: any("hold negative values" in w for w in r["warnings"])
            for r in result.runs}
    assert said == {"ttfs:T=8": True, "phase": True, "rate:T=16,input=regular": True,
                    "rate:T=16": False, "sws": False, "tsc": False}, said


def test_sws_without_negative_spikes_compares_once_per_firing_step():
    """A TSA neuron tests +v, and −v only when negative spikes exist: with them off the
    compare count halves (an audit: it stayed at 2 per neuron and firing step)."""
    from neurosim import api

    result = api.run("digits_mlp", codings=["sws", "sws:negative_spikes=off"], limit=2,
                     precision="fixed", progress=False)
    on, off = (r["counts"]["compare"] for r in result.runs)
    assert on == 2 * off > 0


def test_latency_is_marked_approximate_only_when_images_ended_early():
    """A probe saw phase without early decision printed as "~64.0": every image took the
    full 64 steps, so the latency is exact."""
    from neurosim.report import _latency_steps

    assert _latency_steps({"latency_steps": 64}) == "64"
    assert _latency_steps({"latency_steps": 64, "latency_steps_mean": 64.0}) == "64"
    assert _latency_steps({"latency_steps": 64, "latency_steps_mean": 40.25}) == "~40.2"


def test_a_dead_layer_is_named_beside_results_and_refusals():
    """A hidden layer that is 0 on every calibration image gets a stand-in scale; a probe saw
    TSC refuse such a net asking for 57 state bits and blaming N. Every coding now says which
    layer is silent, in its warnings or beside its refusal."""
    from neurosim import api

    rng = np.random.default_rng(0)
    w1, w2, w3 = rng.normal(0, 1, (16, 8)), rng.normal(0, 1, (8, 16)), rng.normal(0, 1, (3, 8))
    nodes = [helper.make_node("Gemm", ["x", "W1", "B1"], ["h1"], transB=1),
             helper.make_node("Relu", ["h1"], ["r1"], name="live"),
             helper.make_node("Gemm", ["r1", "W2", "B2"], ["h2"], transB=1),
             helper.make_node("Relu", ["h2"], ["r2"], name="dead"),
             helper.make_node("Gemm", ["r2", "W3", "B3"], ["y"], transB=1)]
    net = model(nodes, [("x", ("N", 8))], "y",
                [("W1", w1), ("B1", np.zeros(16)), ("W2", w2), ("B2", np.full(8, -1e3)),
                 ("W3", w3), ("B3", [0.1, 0.0, -0.1])], out_shape=("N", 3))
    x = rng.uniform(0, 1, (40, 8)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    result = api.compare(net, data=(x, y), calib=x, codings=["sws", "tsc"], progress=False)
    notes = [w for r in result.runs for w in r["warnings"]] + \
        [n["reason"] for p in result.profiles for n in p.not_run]
    assert len(notes) >= 2 and all("dead" in n for n in notes if "calibration image" in n)
    assert sum("is 0 on every calibration image" in n for n in notes) == 2


def test_huge_ratios_stay_narrow():
    """Extreme but accepted prices (every action 1e6 pJ, mac 1e-9 pJ) gave an 18-digit ratio
    and a 103-column comparison (a probe): from a million on, ratios are powers of ten."""
    from neurosim.report import _compact, _ratio

    assert _ratio(663.43, 1) == "663.4×" and _ratio(10614, 1) == "10,614.0×"
    assert _ratio(1.3837e17, 1) == "1.38e+17×" and _compact(1.3837e17, 1) == "1.38e+17"
    assert max(len(_ratio(10.0 ** k, 1)) for k in range(30)) <= 10
