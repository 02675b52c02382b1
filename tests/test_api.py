"""The library entry point (neurosim.run) and the report files of --out."""

from __future__ import annotations

import copy
import csv
import json
import shutil
from pathlib import Path

import pytest

import neurosim
from neurosim.cli import main
from neurosim.counts import ACTIONS
from neurosim.hw.profile import load_profile
from neurosim.report import finite_or_null
from neurosim.schema import report_schema, validate_report

ROOT = Path(__file__).parents[1]
CODINGS = ["all"]  # the must-show: neurosim run --coding all --hw loihi_like --out DIR
SCHEMES = ["phase", "rate", "sws", "tsc", "ttfs"]
FIGURES = {"energy_by_action.png", "energy_by_layer.png", "accuracy_vs_latency.png",
           "energy_vs_accuracy.png", "spikes_over_time.png", "pipeline_gantt.png"}


def cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _strings(doc):
    if isinstance(doc, str):
        yield doc
    elif isinstance(doc, dict):
        for k, v in doc.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from _strings(v)


@pytest.fixture(scope="module")
def cli_out(tmp_path_factory):
    """One CLI run with --json and --out, shared by the tests below."""
    d = tmp_path_factory.mktemp("cli")
    argv = ["run", "digits_mlp", "--hw", "loihi_like", "--limit", "20",
            "--json", str(d / "r.json"), "--out", str(d / "report")]
    for c in CODINGS:
        argv += ["--coding", c]
    assert main(argv) == 0
    return d


def test_api_json_equals_cli_json(cli_out):
    result = neurosim.run("digits_mlp", hw="loihi_like", codings=CODINGS, limit=20)
    assert isinstance(result, neurosim.Result)
    api_doc = json.loads(json.dumps(finite_or_null(result.to_json())))
    cli_doc = json.loads((cli_out / "r.json").read_text())
    assert api_doc == cli_doc
    assert json.loads((cli_out / "report" / "report.json").read_text()) == cli_doc
    assert sorted(r["coding"] for r in result.runs) == SCHEMES
    # bundled inputs are named, never located on this machine
    assert cli_doc["model"]["path"] is None and cli_doc["model"]["bundled"] is True
    assert cli_doc["hw"]["path"] is None and cli_doc["hw"]["name"] == "loihi_like"
    # (layer names such as '/2/Relu' are ONNX node names, not paths)
    assert not any(str(ROOT) in s or str(cli_out) in s or "site-packages" in s
                   for s in _strings(cli_doc))


def test_out_writes_every_file(cli_out):
    out = cli_out / "report"
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "report.json", "counts.csv"} | FIGURES <= names
    assert not [n for n in names if n.startswith(".")]  # no temp files left behind
    for f in FIGURES:
        assert (out / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f
    doc = json.loads((out / "report.json").read_text())
    # counts.csv: one row per coding × layer; its columns summed over the layers are the
    # run's counts per inference in the JSON
    with open(out / "counts.csv") as f:
        rows = list(csv.DictReader(f))
    for run in doc["runs"]:
        mine = [r for r in rows if r["coding"] == run["coding"]]
        assert len(mine) == len(run["energy_pj"]["by_layer"]) >= 3
        for a in ACTIONS:
            assert sum(float(r[a]) for r in mine) == pytest.approx(run["counts"][a], rel=1e-5)
        # hops too (a probe found them missing): each layer's Σ count × price is its energy
        assert sum(float(r["hop"]) for r in mine) == pytest.approx(run["counts"]["hop"])
        prof = load_profile("loihi_like")
        for r in mine:
            pj = sum(float(r[a]) * prof.price(a) for a in ACTIONS if r[a]) \
                + float(r["hop"]) * prof.cores.hop_energy_pj
            assert pj == pytest.approx(run["energy_pj"]["by_layer"][r["layer"]], rel=1e-9)
    # latency and throughput come from the pipeline model, one frame no faster than its steps
    for run in doc["runs"]:
        assert run["throughput_fps"] > 0 and run["latency_s"] == run["pipeline"]["latency_s"]
        assert run["latency_s"] * run["throughput_fps"] >= 1.0 - 1e-9
    # the ANN twice: MACs only (a lower bound) and with its memory traffic (like for like)
    ann = doc["ann"]
    assert ann["memory_model"]["mac_only_pj"] == pytest.approx(ann["energy_pj"])
    assert ann["energy_with_memory_pj"] == ann["memory_model"]["total_pj"] > ann["energy_pj"]
    md = (out / "report.md").read_text()
    assert "with its memory traffic" in md and "dyn vs ANN+mem" in md
    assert all(f"]({f})" in md for f in FIGURES)
    assert all(r["coding"] in md for r in doc["runs"])
    assert f"{doc['ann']['accuracy']:.4f}" in md
    assert max(len(line) for line in md.splitlines() if not line.startswith("![")) <= 100
    assert "/work/" not in md and str(ROOT) not in md


def test_report_json_validates_and_corruptions_do_not(cli_out):
    jsonschema = pytest.importorskip("jsonschema")
    doc = json.loads((cli_out / "report" / "report.json").read_text())
    schema = report_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert validate_report(doc) == []
    jsonschema.validate(doc, schema)

    def corrupt(edit):
        bad = copy.deepcopy(doc)
        edit(bad)
        return bad

    cases = {
        "accuracy above 1": lambda d: d["runs"][0]["accuracy"].update(fixed=1.5),
        "no runs key": lambda d: d.pop("runs"),
        "steps as text": lambda d: d["runs"][1].update(latency_steps="32"),
        "fractional steps": lambda d: d["runs"][1].update(latency_steps=3.5),
        "throughput negative": lambda d: d["runs"][2].update(throughput_fps=-1.0),
        "negative energy": lambda d: d["runs"][0]["energy_pj"].update(total=-1.0),
        "missing coding": lambda d: d["runs"][1].pop("coding"),
        "count as text": lambda d: d["runs"][0]["counts"].update(synop="many"),
        "model name a number": lambda d: d["model"].update(name=3),
        "utilisation above 1": lambda d: d["runs"][0]["pipeline"]["utilisation"].update(x=1.5),
        "unknown sync": lambda d: d["runs"][0]["pipeline"].update(sync="async"),
    }
    for what, edit in cases.items():
        bad = corrupt(edit)
        assert validate_report(bad), what
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_user_files_shown_as_given_and_compare_two_profiles(tmp_path, monkeypatch, capsys):
    shutil.copy(ROOT / "neurosim" / "models" / "digits_mlp.onnx", tmp_path / "mine.onnx")
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "compare", "mine.onnx", "--coding", "sws:Tc=4", "--hw",
                         "loihi_like", "--hw", "asic_45nm", "--limit", "20", "--out", "rep")
    assert code == 0, err
    doc = json.loads(Path("rep/report.json").read_text())
    assert doc["model"]["path"] == "mine.onnx" and doc["model"]["bundled"] is False
    assert [c["hw"]["name"] for c in doc["comparisons"]] == ["loihi_like", "asic_45nm"]
    assert validate_report(doc) == []
    md = Path("rep/report.md").read_text()
    assert "## loihi_like" in md and "## asic_45nm" in md
    # the side-by-side table: one column per profile, each profile's own energy in it
    assert "The profiles side by side" in out and "## The profiles side by side" in md
    for c in doc["comparisons"]:
        total = c["runs"][0]["energy_pj"]["total"] / 1e6
        assert f"{total:.3f} µJ" in md and f"{total:.3f} µJ" in out
    assert str(tmp_path) not in md and str(tmp_path) not in json.dumps(doc)
    assert max(map(len, out.splitlines())) <= 100


def test_a_profile_that_runs_nothing_does_not_hide_the_others(tmp_path):
    """compare on two profiles, one with registers too narrow for every coding: the other's
    results stand and the refusal is listed under them; alone, it is an error."""
    import dataclasses

    loihi = load_profile("loihi_like")
    narrow = dataclasses.replace(
        loihi, name="narrow", arithmetic=dataclasses.replace(loihi.arithmetic, weight_bits=4,
                                                             state_bits=6, frac_bits=2))
    res = neurosim.compare("digits_mlp", hw=[loihi, narrow], codings=["sws:Tc=4"], limit=10,
                           precision="fixed", progress=False)
    ran, refused = res.profiles
    assert [r["coding"] for r in ran.runs] == ["sws:Tc=4"] and not refused.runs
    assert refused.not_run[0]["coding"] == "sws:Tc=4"
    assert "Not run on narrow: sws:Tc=4" in res.summary()
    assert validate_report(res.to_json()) == []
    narrower = dataclasses.replace(narrow, name="narrower")
    with pytest.raises(neurosim.UserError, match="profile 'narrow'.*no coding can run.*"
                                                 "profile 'narrower'.*no coding can run"):
        neurosim.compare("digits_mlp", hw=[narrow, narrower], codings=["sws:Tc=4"], limit=10,
                         precision="fixed", progress=False)


def test_bad_out_paths_exit_2_before_running(tmp_path, capsys):
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    code, out, err = cli(capsys, "run", "digits_mlp", "--out", str(a_file))
    assert code == 2 and "--out" in err and "is a file" in err and out == ""
    code, out, err = cli(capsys, "run", "digits_mlp", "--out", str(tmp_path / "no" / "dir"))
    assert code == 2 and "does not exist" in err and out == ""
    code, _, err = cli(capsys, "check", "digits_mlp", "--out", str(tmp_path / "c"))
    assert code == 2 and "--out" in err and not (tmp_path / "c").exists()


def test_json_paths_a_user_might_give(tmp_path, capsys):
    """A symlink is written through, not replaced; a FIFO is written to; '-' and a path
    under a file are refused before running, saying what is wrong."""
    import os

    (tmp_path / "real.json").write_text("old")
    (tmp_path / "link.json").symlink_to("real.json")
    code, _, err = cli(capsys, "run", "digits_mlp", "--coding", "sws:Tc=4", "--limit", "3",
                       "--precision", "fixed", "--json", str(tmp_path / "link.json"))
    assert code == 0, err
    assert (tmp_path / "link.json").is_symlink()
    assert json.loads((tmp_path / "real.json").read_text())["runs"][0]["coding"] == "sws:Tc=4"
    (tmp_path / "taken").write_text("x")
    code, out, err = cli(capsys, "run", "digits_mlp", "--json", str(tmp_path / "taken" / "x.json"))
    assert code == 2 and "taken is a file, not a folder" in err and out == ""
    code, out, err = cli(capsys, "run", "digits_mlp", "--json", "-")
    assert code == 2 and "give a file name" in err and out == ""
    from neurosim.report import write_atomic

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        write_atomic(fifo, "through the pipe")
        assert os.read(reader, 100) == b"through the pipe"
    finally:
        os.close(reader)
    assert fifo.exists() and not fifo.is_file()


def test_no_progress_bar_when_stderr_is_not_a_terminal(capsys):
    result = neurosim.run("digits_mlp", codings=["rate:T=16"], limit=20)
    err = capsys.readouterr().err
    assert "\r" not in err and "img/s" not in err
    assert result.runs[0]["accuracy"]["fixed"] is not None


def test_progress_reaches_every_image_of_float_and_fixed_runs():
    """A progress callback hears from the float simulators too (a long float run on a large
    model is where a researcher waits), batch by batch up to the last image."""
    calls = []
    neurosim.run("digits_mlp", codings=["sws", "rate:T=16"], limit=300, precision="both",
                 progress=lambda label, done, total: calls.append((label, done, total)))
    labels = list(dict.fromkeys(c[0] for c in calls))
    assert labels == ["sws float", "sws fixed point", "rate float", "rate fixed point"]
    for label in labels:
        mine = [(d, t) for lab, d, t in calls if lab == label]
        assert mine[0] == (0, 300) and mine[-1] == (300, 300)  # from the start to the end
        assert all(a[0] < b[0] for a, b in zip(mine, mine[1:]))
        # fixed point (integers: the batch does not matter) reports about 20 times; the
        # float simulators keep their batches of 256 (their float sums depend on the batch)
        assert len(mine) >= (20 if "fixed" in label else 3)


def test_fixed_point_results_do_not_depend_on_a_progress_bar():
    """With a progress callback the engine runs smaller batches: every count and output the
    same as without (a bar on a terminal must not change a number)."""
    quiet = neurosim.run("digits_mlp", codings=["rate:T=16,input=poisson"], limit=100,
                         precision="fixed", progress=False).runs[0]
    seen = neurosim.run("digits_mlp", codings=["rate:T=16,input=poisson"], limit=100,
                        precision="fixed", progress=lambda *a: None).runs[0]
    assert quiet["counts"] == seen["counts"] and quiet["accuracy"] == seen["accuracy"]
    assert quiet["energy_pj"] == seen["energy_pj"]
