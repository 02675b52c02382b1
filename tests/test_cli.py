"""The command line contract (DESIGN §8) and the bundled data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from neurosim.cli import main
from neurosim.data import SPLIT_SIZES, digits, load_data
from neurosim.errors import UserError

ROOT = Path(__file__).parents[1]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# ---- data ---------------------------------------------------------------------------------

def test_digits_split_is_fixed_and_stratified():
    sets = {s: digits(s) for s in SPLIT_SIZES}
    assert {s: len(d) for s, d in sets.items()} == SPLIT_SIZES
    assert sum(SPLIT_SIZES.values()) == 1797
    for d in sets.values():
        assert d.x.shape[1:] == (1, 8, 8) and 0.0 <= d.x.min() and d.x.max() <= 1.0
        counts = np.bincount(d.y, minlength=10)
        assert counts.max() - counts.min() <= 0.05 * len(d) + 2, counts
    # no image is in two splits (the same 64 pixels may repeat in the raw data, so compare
    # by position in the file)
    with np.load(ROOT / "neurosim" / "data" / "digits.npz") as f:
        split = f["split"]
    assert sorted(np.bincount(split)) == sorted(SPLIT_SIZES.values())


def test_npz_data_checks(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, x=np.zeros((5, 1, 8, 8)), y=np.arange(5))
    assert len(load_data(str(good), (1, 8, 8))) == 5
    cases = {
        "shape.npz": (dict(x=np.zeros((5, 64)), y=np.arange(5)), ["shape.npz", "(64,)", "(1, 8, 8)"]),
        "noy.npz": (dict(x=np.zeros((5, 1, 8, 8))), ["noy.npz", "'y'"]),
        "ylen.npz": (dict(x=np.zeros((5, 1, 8, 8)), y=np.arange(4)), ["ylen.npz", "(5,)"]),
        "nan.npz": (dict(x=np.full((2, 1, 8, 8), np.nan), y=np.arange(2)), ["nan.npz", "NaN"]),
    }
    for name, (arrays, words) in cases.items():
        np.savez(tmp_path / name, **arrays)
        with pytest.raises(UserError) as exc:
            load_data(str(tmp_path / name), (1, 8, 8))
        assert all(w in str(exc.value) for w in words), str(exc.value)
    with pytest.raises(UserError, match="not found"):
        load_data(str(tmp_path / "missing.npz"), (1, 8, 8))


# ---- run ----------------------------------------------------------------------------------

def test_default_run_reports_cnn_accuracy_and_json(capsys, tmp_path):
    out_json = tmp_path / "r.json"
    code, out, err = run_cli(capsys, "run", "--json", str(out_json))
    assert code == 0, err
    doc = json.loads(out_json.read_text())
    assert doc["model"]["name"] == "digits_cnn"
    assert doc["model"]["populations"] == 4  # 3 hidden + readout
    assert doc["data"] == {"name": "digits/test", "images": 360}
    assert doc["ann"]["accuracy"] >= 0.95
    assert doc["ann"]["macs"] == 91776
    assert f"{doc['ann']['accuracy']:.4f}" in out
    manifest = json.loads((ROOT / "neurosim" / "models" / "manifest.json").read_text())
    assert doc["ann"]["accuracy"] == pytest.approx(manifest["digits_cnn"]["test_accuracy"], abs=1e-4)
    assert doc["hw"]["name"] == "loihi_like"
    assert doc["ann"]["energy_pj"] > 0
    # the default run: SWS in float and in the profile's fixed point, counted and priced
    (run,) = doc["runs"]
    assert run["coding"] == "sws" and run["latency_steps"] == 8 + 2 * 3
    assert run["accuracy"]["float"] >= doc["ann"]["accuracy"] - 0.01
    assert abs(run["accuracy"]["fixed"] - run["accuracy"]["float"]) <= 0.02
    e = run["energy_pj"]
    assert e["total"] == pytest.approx(e["dynamic"] + e["static"])
    assert e["dynamic"] == pytest.approx(sum(e["by_action"].values()))
    assert e["dynamic"] == pytest.approx(sum(e["by_layer"].values()))
    assert run["counts"]["synop"] > 0 and run["spikes"]["pos"] == run["counts"]["spike_out_pos"]
    assert run["overflows"] == sum(run["overflows_by_layer"].values())
    # every table line fits a 100-column terminal
    assert max(map(len, out.splitlines())) <= 100


def test_run_with_npz_and_limit(capsys, tmp_path):
    test = digits("test")
    p = tmp_path / "mine.npz"
    np.savez(p, x=test.x[:20], y=test.y[:20])
    out_json = tmp_path / "r.json"
    code, out, err = run_cli(capsys, "run", "digits_mlp", "--data", str(p), "--limit", "7",
                             "--json", str(out_json))
    assert code == 0, err
    doc = json.loads(out_json.read_text())
    assert doc["data"] == {"name": "mine", "images": 7}
    assert doc["model"]["name"] == "digits_mlp"


@pytest.mark.parametrize("argv, words", [
    (["run", "digits_cnnn"], ["digits_cnnn", "did you mean 'digits_cnn'"]),
    (["run", "--coding", "sws:Tc=0"], ["Tc", "positive"]),
    (["run", "--coding", "swss"], ["swss", "did you mean 'sws'"]),
    (["run", "--seed", "-3"], ["--seed", "non-negative"]),
    (["run", "--data", "digits:calibration", "--calib", "nowhere.npz"], ["nowhere.npz", "not found"]),
    (["run", "--limit", "0"], ["--limit", "positive"]),
    (["run", "--hw", "loihi"], ["loihi", "loihi_like"]),
    (["run", "--data", "nowhere.npz"], ["nowhere.npz", "not found"]),
    (["compare", "--hw", "loihi_like", "--hw", "nowhere.yaml"], ["nowhere.yaml"]),
])
def test_user_errors_exit_2(capsys, argv, words):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.startswith("neurosim: error: ") and "Traceback" not in err
    for w in words:
        assert w in err, err


def test_check_reports_layers_and_weight_sweep(capsys, tmp_path):
    out_json = tmp_path / "c.json"
    code, out, err = run_cli(capsys, "check", "digits_mlp", "--limit", "60", "--json",
                             str(out_json))
    assert code == 0, err
    doc = json.loads(out_json.read_text())
    from neurosim.schema import report_schema, validate_check

    assert validate_check(doc) == [] and "ann" not in doc and "runs" not in doc
    jsonschema = pytest.importorskip("jsonschema")
    schema = report_schema()
    jsonschema.validate(doc, {"$ref": "#/$defs/check_document", "$defs": schema["$defs"],
                              "properties": schema["properties"]})
    bad = dict(doc, check=[dict(doc["check"][0], agreement=1.5)])
    assert validate_check(bad)
    (r,) = doc["check"]
    assert [w["weight_bits"] for w in r["weight_bits_sweep"]] == list(range(4, 13))
    assert len(r["layers"]) == 4  # encoder, two hidden layers, readout
    assert r["layers"][0]["mean_abs_error_over_lambda"] == 0.0  # the encoder is exact
    assert 0.0 <= r["agreement"] <= 1.0
    assert r["warnings"] == [] and 0.9 <= r["ann_accuracy"] <= 1.0  # SWS converts well
    accs = [w["accuracy"] for w in r["weight_bits_sweep"]]
    assert accs[-1] >= accs[0]  # 12-bit weights are no worse than 4-bit ones
    assert "weight bits" in out and max(map(len, out.splitlines())) <= 100
    # what a chip designer needs: state bits per layer from the registers' high-water marks,
    # the weight width that keeps accuracy, and the ANN with the same quantized weights
    need = [l["state_bits_needed"] for l in r["layers"]]
    assert all(isinstance(n, int) and 2 <= n <= 24 for n in need), need
    assert r["state_bits_needed"] == max(need) and "state bits" in out
    assert r["weight_bits_within_half_point"] in range(4, 13)
    assert all(0.0 <= w["ann_quantized_accuracy"] <= 1.0 for w in r["weight_bits_sweep"])


def test_compare_two_profiles_side_by_side(capsys, tmp_path):
    out_json = tmp_path / "c.json"
    code, out, err = run_cli(capsys, "compare", "digits_mlp", "--coding", "sws:Tc=4",
                             "--hw", "loihi_like", "--hw", "asic_45nm", "--limit", "20",
                             "--json", str(out_json))
    assert code == 0, err
    doc = json.loads(out_json.read_text())
    assert [c["hw"]["name"] for c in doc["comparisons"]] == ["loihi_like", "asic_45nm"]
    (a,), (b,) = (c["runs"] for c in doc["comparisons"])
    # each profile's own arithmetic runs and its own prices apply
    assert a["accuracy"]["fixed"] is not None and b["accuracy"]["fixed"] is not None
    assert a["energy_pj"]["dynamic"] > 0 and b["energy_pj"]["dynamic"] > 0
    assert a["energy_pj"]["dynamic"] != b["energy_pj"]["dynamic"]
    assert out.count("ANN") >= 2 and max(map(len, out.splitlines())) <= 100


def test_json_written_whole_or_not_at_all(capsys, tmp_path):
    out_json = tmp_path / "r.json"
    code, _, _ = run_cli(capsys, "run", "digits_cnnn", "--json", str(out_json))
    assert code == 2 and not out_json.exists()
    assert not list(tmp_path.iterdir())


def test_models_and_profiles_listings(capsys):
    code, out, _ = run_cli(capsys, "models")
    assert code == 0 and all(m in out for m in ("digits_mlp", "digits_cnn", "digits_resnet"))
    code, out, _ = run_cli(capsys, "profiles")
    assert code == 0 and all(p in out for p in ("loihi_like", "asic_45nm", "truenorth_like"))


@pytest.mark.parametrize("path", sorted((ROOT / "tests" / "broken_profiles").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_broken_profiles_exit_2(capsys, path):
    code, _, err = run_cli(capsys, "profiles", str(path))
    assert code == 2 and path.name in err and "Traceback" not in err


def test_console_script_exit_code_and_help():
    exe = [sys.executable, "-m", "neurosim.cli"]
    r = subprocess.run(exe + ["run", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--hw" in r.stdout and "MODEL" in r.stdout
    r = subprocess.run(exe + ["run", "no_such_model"], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "no_such_model" in r.stderr


def test_an_unknown_option_shows_its_commands_usage(capsys):
    """A probe followed a message's advice into 'neurosim check --precision float' and got
    the top-level usage line, which lists no options."""
    code, out, err = run_cli(capsys, "check", "--precision", "float")
    assert code == 2 and out == ""
    assert err.startswith("usage: neurosim check") and "unrecognized arguments: --precision" in err
