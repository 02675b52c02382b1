"""The bad-input corpus (tests/bad_inputs/make_corpus.py): every case exits 2 with one message
that names its culprit, never a traceback; output paths and input files are refused before
anything runs."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest

from neurosim.cli import main

from bad_inputs.make_corpus import make_corpus



def _case_ids() -> list[str]:
    """The ids, needed at collection, before any fixture: from a corpus written into a scratch
    folder and thrown away (the tests use the one the fixture writes into tmp_path)."""
    with tempfile.TemporaryDirectory() as scratch:
        return [c.id for c in make_corpus(scratch)]


_IDS = _case_ids()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_inputs")
    return d, {c.id: c for c in make_corpus(d)}


def test_corpus_is_large_and_covers_every_area(corpus):
    _, cases = corpus
    assert len(cases) == len(_IDS) >= 60  # ids are unique
    areas = Counter(c.area for c in cases.values())
    assert set(areas) == {"onnx", "data", "calibration", "profile", "parameter", "output"}
    assert min(areas.values()) >= 5, areas
    assert all(c.words for c in cases.values())


@pytest.mark.parametrize("case_id", _IDS)
def test_bad_input_exits_2_naming_the_culprit(capsys, corpus, case_id):
    d, cases = corpus
    case = cases[case_id]
    before = set(d.rglob("*"))
    code = main(list(case.argv))
    out, err = capsys.readouterr()
    assert code == 2, f"{case.command()}\nexit {code}\nstdout: {out[-800:]}\nstderr: {err}"
    assert "Traceback" not in out + err, err
    # one message: ours ("neurosim: error: ...") or argparse's usage error
    assert err.startswith("neurosim: error: ") or "error: argument" in err \
        or "unrecognized arguments" in err, err
    message = " ".join(err.split())  # the culprit may sit across a wrapped line
    for word in case.words:
        assert " ".join(word.split()) in message, f"{case.command()}\n{word!r} not in: {err}"
    if case.quiet:
        assert out == "", f"{case.command()} printed before refusing:\n{out[:500]}"
    assert set(d.rglob("*")) == before, "a refused command left a file behind"


def test_corpus_script_runs_standalone(tmp_path):
    script = Path(__file__).parent / "bad_inputs" / "make_corpus.py"
    r = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"{len(_IDS)} cases:" in r.stdout and "neurosim run" in r.stdout
    assert (tmp_path / "leakyrelu.onnx").stat().st_size < 10_000
    assert all(p.stat().st_size < 100_000 for p in tmp_path.rglob("*") if p.is_file())


@pytest.mark.parametrize("case_id", ["onnx-leakyrelu", "data-table", "output-json-proc"])
def test_real_process_exits_2_without_traceback(corpus, case_id):
    """The in-process runs above return what main() returns; a real process must exit with it."""
    _, cases = corpus
    case = cases[case_id]
    r = subprocess.run([sys.executable, "-m", "neurosim.cli", *case.argv], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.startswith("neurosim: error: ")
    assert all(w in r.stderr for w in case.words), r.stderr
