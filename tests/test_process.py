"""Process hygiene of the command line: Ctrl-C, closed pipes, non-UTF-8 terminals, output
paths checked before anything runs, files written whole with normal permissions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from neurosim.data import digits

CLI = [sys.executable, "-m", "neurosim.cli"]


@pytest.mark.parametrize("delay", [0.3, 1.5, 3.0])
def test_ctrl_c_exits_130_without_traceback_or_partial_file(tmp_path, delay):
    """Interrupted while importing, and twice inside the numba engine (a run of 20× the test
    split takes several seconds)."""
    test = digits("test")
    data = tmp_path / "many.npz"
    np.savez(data, x=np.concatenate([test.x] * 20), y=np.concatenate([test.y] * 20))
    out = tmp_path / "r.json"
    proc = subprocess.Popen(CLI + ["run", "digits_resnet", "--precision", "fixed", "--data",
                                   str(data), "--json", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (130, 0), (proc.returncode, err)  # 0: it finished first
    assert "Traceback" not in err and "Segmentation" not in err
    if proc.returncode == 130:
        assert "interrupted" in err
        assert not out.exists()
    else:
        json.loads(out.read_text())  # whole
    assert sorted(p.name for p in tmp_path.iterdir()) in (["many.npz"], ["many.npz", "r.json"])


def test_closed_pipe_exits_quietly():
    proc = subprocess.Popen(CLI + ["models"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before anything is written
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert proc.returncode in (0, 141)


def test_ascii_terminal_gets_ascii_stand_ins():
    env = dict(os.environ, PYTHONIOENCODING="ascii")
    r = subprocess.run(CLI + ["run", "digits_mlp", "--limit", "10", "--precision", "float"],
                       capture_output=True, env=env)
    assert r.returncode == 0, r.stderr.decode()
    r.stdout.decode("ascii")  # nothing but ASCII
    assert b"Traceback" not in r.stderr


@pytest.mark.parametrize("target, words", [
    ("{tmp}", ["is a directory"]),
    ("{tmp}/missing/r.json", ["does not exist"]),
    ("/proc/r.json", ["cannot write"]),
])
def test_unwritable_json_target_fails_before_simulating(tmp_path, target, words):
    start = time.perf_counter()
    r = subprocess.run(CLI + ["run", "digits_resnet", "--json", target.format(tmp=tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert all(w in r.stderr for w in words), r.stderr
    assert "ANN" not in r.stdout  # nothing was run or printed before the check
    assert time.perf_counter() - start < 30


def test_json_has_normal_permissions_and_no_nan(tmp_path):
    from neurosim.report import write_json

    out = tmp_path / "d.json"
    nulls = write_json({"a": 1.0, "b": [float("nan"), 2], "c": {"d": float("inf")}}, out)
    assert nulls == ["b[0]", "c.d"]
    assert json.loads(out.read_text()) == {"a": 1.0, "b": [None, 2], "c": {"d": None}}
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
