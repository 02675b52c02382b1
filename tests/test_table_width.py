"""Every table neurosim prints or writes into report.md fits 100 columns (README), whatever the
coding labels and number sizes; a coding label wraps only at its colon or commas."""

from __future__ import annotations

import copy
import re

import pytest

import neurosim
from neurosim.report import coding_lines, format_markdown, format_summary

LONG_CODINGS = ["ttfs:synapse=reaccumulate", "tsc:emission=switch,thresholds=lambda",
                "sws:negative_spikes=off,relu_counterpart=off", "rate:T=4"]
PAIRS = [pair for spec in LONG_CODINGS for pair in spec.partition(":")[2].split(",")]


@pytest.fixture(scope="module")
def compare_result():
    """compare on two profiles in float (about a second: no fixed-point compile)."""
    return neurosim.run("digits_mlp", hw=["loihi_like", "asic_45nm"], codings=LONG_CODINGS,
                        limit=8, precision="float", progress=False, command="compare")


def with_big_numbers(result):
    """``result`` with every run given the numbers of a large fixed-point run (rate T=4096 on a
    64-channel net: 12 million spikes, tens of thousands of µJ), so every table has them."""
    big = copy.copy(result)
    big.profiles = [copy.copy(p) for p in result.profiles]
    for p in big.profiles:
        p.ann_energy_pj = 0.8436e6  # big64's ANN: its rate T=4096 run is 53,040× that
        p.runs = copy.deepcopy(p.runs)
        for r in p.runs:
            actions = {"synop": 3.4e10, "state_write": 6.7e9, "hop": 3.1e9, "add": 1.2e7}
            r.update(accuracy={"float": 0.9375, "fixed": 0.9375}, latency_steps=4096,
                     steps_per_frame=4096, overflows=123456.0, latency_s=0.0123,
                     throughput_fps=81.3, spikes={"pos": 12_024_271.0, "neg": 11_987_654.0},
                     counts={"synop": 3.4e10 / 0.3, "weight_read": 1.2e9, "add": 4.0e7,
                             "shift": 2.0e6, "spike_out_pos": 12_024_271.0},
                     energy_pj={"dynamic": 4.4743376e10, "static": 3.9624221e10,
                                "total": 8.4367597e10, "static_serial_bound": 6.10585199e11,
                                "by_action": actions,
                                "by_layer": {"/2/Relu": 3.0e10, "/5/Relu": 1.4e10,
                                             "/6/Gemm": 7.4e8}},
                     pipeline={"sync": "barrier", "latency_s": 0.0123,
                               "serial_latency_s": 0.0456, "frame_interval_s": 0.0123,
                               "bottleneck": "/5/Relu", "utilisation": {"/5/Relu#0": 0.6}})
    return big


def check_lines(text: str) -> None:
    lines = [line for line in text.splitlines() if not line.startswith("![")]
    too_wide = [line for line in lines if len(line) > 100]
    assert not too_wide, "\n".join(too_wide)
    for line in lines:
        for pair in PAIRS:  # wherever a key appears, its whole key=value is on that line
            key = pair.split("=")[0] + "="
            if re.search(rf"(?<![\w]){re.escape(key)}", line):
                assert re.search(rf"(?<![\w]){re.escape(pair)}(?![\w])", line), (pair, line)
    # the label as typed: no space inserted after the colon
    assert not re.search(r"\b(?:phase|rate|sws|tsc|ttfs): \w+=", text)


@pytest.mark.parametrize("big", [False, True], ids=["small numbers", "big numbers"])
def test_tables_fit_100_columns_with_long_codings(compare_result, big):
    result = with_big_numbers(compare_result) if big else compare_result
    terminal_compare = format_summary(result)
    result_run = copy.copy(result)
    result_run.command = "run"
    markdown = format_markdown(result)
    for text in (terminal_compare, format_summary(result_run), markdown):
        check_lines(text)
        assert "rate:T=4" in text
    if big:  # the energy by action has a column per coding, headed by its whole spec
        heads = " ".join(line for line in markdown.splitlines() if line.startswith("| action"))
        assert all(f" {spec} " in heads for spec in LONG_CODINGS), heads


def test_coding_lines_wrap_at_commas_only():
    spec = "sws:negative_spikes=off,relu_counterpart=off"
    assert coding_lines(spec, 100) == spec
    assert coding_lines(spec, 24).split("\n") == ["sws:negative_spikes=off,",
                                                  "relu_counterpart=off"]
    # narrower than a pair: the pair gets a line of its own, whole
    assert coding_lines(spec, 10).split("\n") == ["sws:", "negative_spikes=off,",
                                                  "relu_counterpart=off"]
    assert coding_lines("rate", 2) == "rate"
    assert "".join(coding_lines(spec, 12).split("\n")) == spec


def test_model_table_wraps_a_long_incoming_cell(monkeypatch):
    """A population fed by many others (a wide residual join): its 'incoming' cell wraps, the
    table stays within 100 columns."""
    from types import SimpleNamespace

    from neurosim import report

    many = [{"from": i, "ops": "conv 3×3 s1 p1 → +bias"} for i in range(1, 9)]
    rows = [{"index": i, "name": f"/layer{i}/relu", "kind": "hidden", "shape": (64, 16, 16),
             "neurons": 16384, "incoming": many if i == 9 else many[:1], "parameters": 36928,
             "macs": 9453568} for i in range(1, 10)]
    monkeypatch.setattr(report, "population_rows", lambda graph: rows)
    graph = SimpleNamespace(params=lambda: 332352, macs=lambda: 85082112)
    table = report.model_table(graph)
    assert max(len(line) for line in table.splitlines()) <= 100
    assert all(f"#{i}" in table for i in range(1, 9))  # every source is still shown


def test_overflow_counts_are_plain_numbers():
    from neurosim.report import _overflows

    assert [_overflows(v) for v in (None, 0, 0.25, 12.5, 6660.4, 2.5e7)] == [
        "-", "0", "0.25", "12.5", "6,660", "25,000,000"]


def test_many_profiles_side_by_side_go_on_to_further_tables():
    """Nine profiles do not fit one table of 100 columns: the profiles go on to a second
    table that repeats the coding column; each line fits, every profile is shown."""
    from types import SimpleNamespace

    from neurosim.hw.profile import load_profile
    from neurosim.report import profiles_side_by_side

    run = {"coding": "ttfs:synapse=reaccumulate", "accuracy": {"fixed": 0.9375},
           "energy_pj": {"total": 43_368_512.0}, "latency_s": 4.59e-3}
    profiles = [SimpleNamespace(name=f"profile_{i}", profile=load_profile("loihi_like"),
                                runs=[run], ann_energy_pj=27_532.8) for i in range(9)]
    result = SimpleNamespace(profiles=profiles, ann_accuracy=0.875, macs=91_776)
    for markdown in (False, True):
        text = profiles_side_by_side(result, markdown=markdown)
        assert max(len(line) for line in text.splitlines()) <= 100
        assert all(f"profile_{i}" in text for i in range(9))
        assert text.count("coding") >= 2
