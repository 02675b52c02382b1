"""neurosim sweep (issue 12): grids, exact shard merging, Dask, resuming, the report.

Kept small: digits_mlp, 20 images in uneven shards of 7, three codings on one profile.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")
pytest.importorskip("pyarrow")

import neurosim  # noqa: E402
from neurosim.cli import main  # noqa: E402
from neurosim.sweep import load_grid, run_sweep  # noqa: E402
from neurosim.sweep import runner  # noqa: E402
from neurosim.sweep.report import cheapest_within, pareto_front, write_report  # noqa: E402

TINY = """\
models: [digits_mlp]
codings:
  sws: {Tc: [4, 6]}
  rate: {T: 32}
profiles: [loihi_like]
limit: 20
shard_size: 7
"""
SPECS = ["sws:Tc=4", "sws:Tc=6", "rate:T=32"]  # the same points, in grid order


def _grid(tmp_path, text=TINY, name="tiny.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return load_grid(path)


def _rows(table):
    return table.to_pylist()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The serial sweep of TINY: its table's rows."""
    tmp = tmp_path_factory.mktemp("reference")
    outcome = run_sweep(_grid(tmp), tmp / "out", serial=True)
    assert outcome.computed == 3 and outcome.refused == 0
    return _rows(outcome.table)


@pytest.fixture(scope="module")
def client():
    import logging

    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=":0", silence_logs=logging.CRITICAL)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def test_shards_merge_to_one_whole_run(reference):
    """20 images in shards of 7, 7, 6 give the numbers of one neurosim.run on the 20 images."""
    whole = neurosim.run("digits_mlp", hw="loihi_like", codings=SPECS, limit=20, progress=False)
    assert [r["coding"] for r in reference] == SPECS
    for row, run in zip(reference, whole.runs):
        assert row["images"] == 20
        assert row["accuracy_fixed"] == run["accuracy"]["fixed"]
        assert row["accuracy_float"] == run["accuracy"]["float"]
        assert row["energy_total_pj"] == run["energy_pj"]["total"]
        assert row["latency_s"] == run["latency_s"]
        assert row["throughput_fps"] == run["throughput_fps"]
        assert row["energy_static_pj"] == run["energy_pj"]["static"]
        for action, mean in run["counts"].items():
            assert row[f"count_{action}"] == mean
        assert row["ann_accuracy"] == whole.ann_accuracy
    assert reference[0]["count_synop"] > 0


def test_two_dask_workers_give_the_serial_table(tmp_path, reference, client):
    outcome = run_sweep(_grid(tmp_path), tmp_path / "out", client=client)
    assert outcome.computed == 3
    assert _rows(outcome.table) == reference
    on_disk = __import__("pyarrow.parquet").parquet.read_table(tmp_path / "out" / "sweep.parquet")
    assert _rows(on_disk) == reference
    csv = (tmp_path / "out" / "sweep.csv").read_text().splitlines()
    assert len(csv) == 4 and "accuracy_fixed" in csv[0]


class Interrupt(KeyboardInterrupt):
    pass


def _interrupt_at(calls: list, stop_at: int, *args, **kwargs):
    calls.append(args[:2])  # (point key, shard)
    if len(calls) == stop_at:
        raise Interrupt
    return runner.run_shard(*args, **kwargs)


def test_interrupted_sweep_resumes_with_only_missing_points(tmp_path, reference):
    grid = _grid(tmp_path)
    points = grid.points()
    calls: list = []
    # three shards per point: the 5th call is the second point's second shard
    with pytest.raises(Interrupt):
        run_sweep(grid, tmp_path / "out", serial=True,
                  shard_runner=functools.partial(_interrupt_at, calls, 5))
    written = sorted(p.stem for p in (tmp_path / "out" / "points").glob("*.parquet"))
    assert written == [points[0].key]
    again: list = []
    outcome = run_sweep(grid, tmp_path / "out", serial=True,
                        shard_runner=functools.partial(_interrupt_at, again, -1))
    assert outcome.skipped == 1 and outcome.computed == 2
    assert {key for key, _ in again} == {points[1].key, points[2].key}
    assert len(again) == 6
    assert _rows(outcome.table) == reference
    # a lost part (a point that never finished) is the only thing a third run computes
    (tmp_path / "out" / "points" / f"{points[2].key}.parquet").unlink()
    third: list = []
    outcome = run_sweep(grid, tmp_path / "out", serial=True,
                        shard_runner=functools.partial(_interrupt_at, third, -1))
    assert {key for key, _ in third} == {points[2].key} and outcome.computed == 1
    assert _rows(outcome.table) == reference


def _die_once(marker: str, *args, **kwargs):
    """Kill this worker process in the middle of the first shard that gets here."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return runner.run_shard(*args, **kwargs)
    os.close(fd)
    os._exit(1)


def test_worker_killed_during_a_shard_changes_no_number(tmp_path, reference, client):
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    marker = tmp_path / "killed"
    outcome = run_sweep(_grid(tmp_path), tmp_path / "out", client=client,
                        shard_runner=functools.partial(_die_once, str(marker)))
    assert marker.exists()  # a worker did die mid-shard
    assert outcome.computed == 3
    assert _rows(outcome.table) == reference


def test_merge_counts_each_shard_once():
    edges = runner.shard_edges(20, 7)
    assert edges == [(0, 7), (7, 14), (14, 20)]
    parts = [runner.ShardResult("p", k, a, b, None, None) for k, (a, b) in enumerate(edges)]
    runner.merge_shards(parts + [parts[1]], edges)  # a shard reported twice is merged once
    with pytest.raises(RuntimeError, match="not the point's shards"):
        runner.merge_shards(parts[:2], edges)


@pytest.mark.parametrize("on_dask", [False, True])
def test_refused_point_is_a_row_and_the_rest_run(tmp_path, request, on_dask):
    grid = _grid(tmp_path, TINY.replace("Tc: [4, 6]", "Tc: [4, 20]"))
    where = {"client": request.getfixturevalue("client")} if on_dask else {"serial": True}
    outcome = run_sweep(grid, tmp_path / "out", **where)
    rows = _rows(outcome.table)
    assert [r["status"] for r in rows] == ["ok", "refused", "ok"]
    assert "state" in rows[1]["message"] and rows[1]["accuracy_fixed"] is None
    stale = tmp_path / "out" / "pareto_another_model_loihi_like.png"  # an earlier sweep's
    stale.write_bytes(b"png")
    report = write_report(outcome.table, tmp_path / "out", "tiny.yaml")
    text = (tmp_path / "out" / "report.md").read_text()
    assert "Refused points" in text and "sws:Tc=20" in text
    assert all(p.exists() for p in report) and not stale.exists()


def test_pareto_front_and_cheapest_setting():
    def row(i, acc, pj, s):
        return {"index": i, "accuracy_fixed": acc, "energy_total_pj": pj, "latency_s": s}

    rows = [row(0, 0.90, 10.0, 3.0), row(1, 0.95, 20.0, 1.0), row(2, 0.90, 30.0, 2.0),
            row(3, 0.97, 40.0, 4.0), row(4, 0.95, 25.0, 0.5)]
    assert [r["index"] for r in pareto_front(rows, "energy_total_pj")] == [0, 1, 3]
    assert [r["index"] for r in pareto_front(rows, "latency_s")] == [4, 3]
    assert cheapest_within(rows, 0.96)["index"] == 1     # 0.95 is within 1 point of 0.96
    assert cheapest_within(rows, 0.975)["index"] == 3
    assert cheapest_within(rows, 0.99) is None


@pytest.mark.parametrize("text, words", [
    (TINY + "colour: red\n", ["unknown key 'colour'"]),
    (TINY.replace("Tc: [4, 6]", "Tcc: [4, 6]"), ["codings.sws.Tcc", "Tc"]),
    (TINY.replace("Tc: [4, 6]", "Tc: []"), ["codings.sws.Tc", "empty"]),
    (TINY.replace("Tc: [4, 6]", "Tc: [4, -1]"), ["codings.sws", "Tc"]),
    (TINY.replace("rate: {T: 32}", "rat: {T: 32}"), ["codings.rat", "rate"]),
    (TINY.replace("limit: 20", "limit: 0"), ["limit", "integer"]),
    (TINY.replace("models: [digits_mlp]", "models: []"), ["models", "empty"]),
    (TINY.replace("profiles: [loihi_like]", "profiles: [loihi_lik]"), ["profiles", "loihi_lik"]),
    (TINY + "arithmetic: {state_bits: [24, many]}\n", ["arithmetic.state_bits", "many"]),
    (TINY + "arithmetic: {overflow: clip}\n", ["arithmetic.overflow", "saturate"]),
    (TINY + "arithmetic: {state_bits: [24, 80]}\n", ["arithmetic.state_bits", "to 62", "80",
                                                     "loihi_like"]),
    (TINY + "arithmetic: {weight_bits: 40}\n", ["arithmetic.weight_bits", "from 2 to 32"]),
    (TINY + "limit: 5\n", ["limit", "twice"]),
    (TINY.replace("models: [digits_mlp]\n", ""), ["missing key 'models'"]),
    ("[1, 2]\n", ["expected a mapping"]),
])
def test_bad_grids_exit_2_naming_the_key(tmp_path, capsys, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--serial"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "bad.yaml" in err
    for w in words:
        assert w in err


def test_data_scaled_unlike_the_calibration_exits_2(tmp_path, capsys):
    from neurosim.data import digits

    test = digits("test")
    np.savez(tmp_path / "x255.npz", x=np.round(test.x[:20] * 255), y=test.y[:20])
    path = tmp_path / "scaled.yaml"
    path.write_text(TINY + f"data: {tmp_path / 'x255.npz'}\n")
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--serial"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "scaled.yaml" in err
    assert "x255.npz" in err and "scaled differently" in err


def test_cli_dry_run_and_run(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    assert main(["sweep", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "3 points, 9 shards" in out and "events" in out
    assert not (tmp_path / "tiny").exists()
    assert main(["sweep", str(path), "--out", str(tmp_path / "o"), "--serial"]) == 0
    out = capsys.readouterr().out
    assert "3 computed" in out
    assert (tmp_path / "o" / "report.md").exists()
    assert (tmp_path / "o" / "pareto_digits_mlp_loihi_like.png").exists()
    assert main(["sweep", str(path), "--out", str(tmp_path / "o"), "--serial"]) == 0
    assert "0 computed, 0 refused, 3 already" in capsys.readouterr().out


def test_bundled_grid_parses():
    from neurosim.sweep.command import resolve_grid

    grid = load_grid(resolve_grid("codings_digits"))
    assert {s for s, _ in grid.codings} == {"sws", "rate", "ttfs", "tsc", "phase"}
    assert grid.profiles == ["loihi_like", "asic_45nm", "truenorth_like"]
    assert Path(resolve_grid("codings_digits")).name == "codings_digits.yaml"


def _always_die_on(point_key: str, *args, **kwargs):
    if args[0] == point_key:
        os._exit(1)
    return runner.run_shard(*args, **kwargs)


def test_a_shard_that_kills_every_worker_is_a_clear_error(tmp_path, client):
    import cloudpickle

    from neurosim.errors import UserError

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    grid = _grid(tmp_path, TINY.replace("shard_size: 7", "shard_size: 20"))
    points = grid.points()
    with pytest.raises(UserError, match="re-run the same command to resume"):
        run_sweep(grid, tmp_path / "out", client=client,
                  shard_runner=functools.partial(_always_die_on, points[1].key))
    kept = {p.stem for p in (tmp_path / "out" / "points").glob("*.parquet")}
    assert points[1].key not in kept


def test_an_edited_user_file_is_a_new_point_not_a_stale_row(tmp_path):
    """Same grid, same file names, new contents (a profile with another synop price, a
    retrained model): the points that read the changed file are computed again."""
    import shutil

    from neurosim.hw.profile import bundled_dir

    shutil.copy(bundled_dir() / "loihi_like.yaml", tmp_path / "mine.yaml")
    text = TINY.replace("profiles: [loihi_like]", "profiles: [mine.yaml]").replace(
        "  rate: {T: 32}\n", "")
    first = run_sweep(_grid(tmp_path, text), tmp_path / "out", serial=True)
    again = run_sweep(_grid(tmp_path, text), tmp_path / "out", serial=True)
    assert (first.computed, again.computed) == (2, 0)
    prof = (tmp_path / "mine.yaml").read_text()
    edited = prof.replace("synop:\n    value: 23.6", "synop:\n    value: 47.2", 1)
    assert edited != prof
    (tmp_path / "mine.yaml").write_text(edited)
    third = run_sweep(_grid(tmp_path, text), tmp_path / "out", serial=True)
    assert third.computed == 2
    pj = [r["energy_dynamic_pj"] for r in _rows(first.table)]
    assert all(b > a for a, b in zip(pj, [r["energy_dynamic_pj"] for r in _rows(third.table)]))


def test_a_local_file_named_digits_something_is_read_from_the_grid_folder(tmp_path):
    from neurosim.sweep.grid import Grid

    grid = Grid(tmp_path / "g.yaml", ["digits_mlp"], [])
    assert grid.data_path("digits_mine.npz") == str(tmp_path / "digits_mine.npz")
    assert grid.data_path("digits:calibration") == "digits:calibration"


def test_files_relative_to_the_grid_and_shown_as_given(tmp_path):
    import shutil

    from neurosim.hw.profile import bundled_dir

    shutil.copy(bundled_dir() / "asic_45nm.yaml", tmp_path / "mine.yaml")
    text = TINY.replace("profiles: [loihi_like]", "profiles: [mine.yaml]").replace(
        "  rate: {T: 32}\n", "")
    sub = tmp_path / "elsewhere"
    sub.mkdir()
    outcome = run_sweep(_grid(tmp_path, text), sub / "out", serial=True)
    rows = _rows(outcome.table)
    assert {r["profile"] for r in rows} == {"mine.yaml"} and len(rows) == 2
    assert str(tmp_path) not in (sub / "out" / "sweep.csv").read_text()


def test_scheduler_address_runs_on_that_cluster(tmp_path, reference, client):
    """--scheduler ADDRESS: the same command on an existing cluster (here the test's)."""
    lines: list = []
    outcome = run_sweep(_grid(tmp_path), tmp_path / "out", scheduler=client.scheduler.address,
                        echo=lines.append)
    assert any(client.scheduler.address in line for line in lines)
    assert _rows(outcome.table) == reference


def test_a_changed_setting_is_a_new_point_and_the_shard_size_is_not(tmp_path, reference):
    run_sweep(_grid(tmp_path), tmp_path / "out", serial=True)
    resharded = run_sweep(_grid(tmp_path, TINY.replace("shard_size: 7", "shard_size: 5")),
                          tmp_path / "out", serial=True)
    assert resharded.computed == 0 and _rows(resharded.table) == reference
    fewer = run_sweep(_grid(tmp_path, TINY.replace("limit: 20", "limit: 12")),
                      tmp_path / "out", serial=True)
    assert fewer.computed == 3 and {r["images"] for r in _rows(fewer.table)} == {12}


def test_grid_seed_yields_to_a_codings_own_and_yaml_booleans_are_named(tmp_path):
    """The grid's seed seeds every coding that draws random numbers except one that lists its
    own, as --seed does; a YAML true where a number is expected is named as true, not 'on'."""
    from neurosim.errors import UserError

    for own, seeds in (("seed: [7, 8]", [7, 8]), ("T: 16", [5])):
        grid = _grid(tmp_path, f"models: [digits_mlp]\nseed: 5\ncodings:\n"
                               f"  rate: {{input: poisson, {own}}}\n")
        (rate_sets,) = [sets for name, sets in grid.codings if name == "rate"]
        assert [p["seed"] for p in rate_sets] == seeds
    with pytest.raises(UserError, match=r"codings\.rate\.T: expected a whole number, found True"):
        _grid(tmp_path, "models: [digits_mlp]\ncodings: {rate: {T: true}}\n", "b.yaml")


def two_core_profile(tmp_path) -> Path:
    """loihi_like cut to 2 cores on a 1×1 mesh: digits_mlp's 4 layers (input included) do
    not fit."""
    import re

    text = (Path(neurosim.__file__).parent / "hw_configs" / "loihi_like.yaml").read_text()
    text = text.replace("count: {value: 128,", "count: {value: 2,")
    text = text.replace("name: loihi_like", "name: loihi_two_cores", 1)
    text = re.sub(r"mesh_rows:\n    value: 4", "mesh_rows:\n    value: 1", text)
    text = text.replace("mesh_cols: {value: 8,", "mesh_cols: {value: 1,")
    text = text.replace("cores_per_router:\n    value: 4", "cores_per_router:\n    value: 2")
    path = tmp_path / "two.yaml"
    path.write_text(text)
    return path


def test_a_network_that_does_not_fit_its_chip_is_no_pareto_point(tmp_path):
    """A probe saw points on a chip too small for the network as ``status = ok`` rows on the
    Pareto front, their times computed on cores the chip does not have."""
    prof = two_core_profile(tmp_path)
    grid = _grid(tmp_path, TINY.replace("profiles: [loihi_like]", f"profiles: [{prof}]")
                 .replace("sws: {Tc: [4, 6]}", "sws: {Tc: 4}"))
    outcome = run_sweep(grid, tmp_path / "out", serial=True)
    rows = _rows(outcome.table)
    assert [r["status"] for r in rows] == ["does_not_fit"] * 2
    assert all("does not fit loihi_two_cores: it needs 4 cores" in r["message"] for r in rows)
    assert all(r["accuracy_fixed"] is not None for r in rows)  # the numbers are kept
    write_report(outcome.table, tmp_path / "out", "tiny.yaml")
    text = (tmp_path / "out" / "report.md").read_text()
    assert "does not fit the chip" in text and "Pareto front, fixed accuracy" not in text


def test_overflowed_points_are_on_no_front(tmp_path):
    """A probe saw points run with allow_overflow (a dozen saturations per image) on both
    Pareto fronts and as a scheme's cheapest setting, the overflow only in the CSV."""
    grid = _grid(tmp_path, TINY.replace("sws: {Tc: [4, 6]}\n  rate: {T: 32}", "rate: {T: 32}")
                 + "arithmetic: {state_bits: [9, 24]}\nallow_overflow: true\n")
    outcome = run_sweep(grid, tmp_path / "out", serial=True)
    rows = {r["state_bits"]: r for r in _rows(outcome.table)}
    assert rows[9]["overflows_total"] > 0 and rows[24]["overflows_total"] == 0
    write_report(outcome.table, tmp_path / "out", "tiny.yaml")
    text = (tmp_path / "out" / "report.md").read_text()
    fronts, apart = text.split("## Points whose registers overflowed")
    assert "8/24" in fronts and "8/9" not in fronts
    assert "8/9, `rate:T=32`" in apart and "overflows per image" in apart


def test_ctrl_c_on_a_dask_sweep_prints_no_worker_tracebacks(tmp_path):
    """A terminal's Ctrl-C reaches the whole process group: each worker printed a
    KeyboardInterrupt traceback before 'neurosim: interrupted' (a probe)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    grid = tmp_path / "long.yaml"
    grid.write_text(TINY.replace("limit: 20", "limit: 360").replace("digits_mlp", "digits_resnet")
                    .replace("rate: {T: 32}", "rate: {T: [64, 128, 256]}"))
    proc = subprocess.Popen([sys.executable, "-m", "neurosim.cli", "sweep", str(grid), "--out",
                             str(tmp_path / "out"), "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    first = proc.stderr.readline()  # "dask: local cluster of 2 worker processes; ..."
    assert first.startswith("dask: local cluster"), first
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    err = first + err
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.rstrip().endswith("neurosim: interrupted")

