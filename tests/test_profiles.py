import math
import re
from pathlib import Path

import pytest

from neurosim.counts import PRICED_ACTIONS
from neurosim.errors import UserError
from neurosim.hw import (
    LayerSize, bundled_profiles, format_mapping, format_profiles_table, load_profile,
    map_layers, mapping_to_dict, profile_to_dict, profiles_to_dict,
)
from neurosim.hw import profile as profile_module
from neurosim.hw.profile import TIMED_ACTIONS

HERE = Path(__file__).parent
BROKEN = HERE / "broken_profiles"
LOIHI = Path(__file__).resolve().parents[1] / "hw_configs" / "loihi_like.yaml"

# broken file -> the key path its message must name (and, where useful, a word it must contain)
EXPECTED = {
    "missing_name.yaml": ("name", "present"),
    "unknown_top_key.yaml": ("static_powr_w", "did you mean 'static_power_w'"),
    "unknown_energy_action.yaml": ("energy_pj.weigth_read", "did you mean 'weight_read'"),
    "missing_price_synop.yaml": ("energy_pj.synop", "'synop'"),
    "price_wrong_type.yaml": ("energy_pj.spike_out.value", "a number"),
    "bare_number_price.yaml": ("energy_pj.compare", "sourced number"),
    "negative_energy.yaml": ("energy_pj.fifo_read.value", ">= 0"),
    "nan_energy.yaml": ("energy_pj.state_write.value", "finite"),
    "inf_static_power.yaml": ("static_power_w.value", "finite"),
    "weight_bits_too_large.yaml": ("arithmetic.weight_bits.value", "from 2 to 32"),
    "weight_bits_too_small.yaml": ("arithmetic.weight_bits.value", "from 2 to 32"),
    "state_below_weight_bits.yaml": ("arithmetic.state_bits.value", "weight_bits"),
    "frac_bits_too_large.yaml": ("arithmetic.frac_bits.value", "state_bits"),
    "bad_overflow_enum.yaml": ("arithmetic.overflow", "saturate, wrap"),
    "bad_sync_enum.yaml": ("timing.sync", "did you mean 'barrier'"),
    "unknown_source_id.yaml": ("cores.count.source", "davis2018"),
    "barrier_without_cost.yaml": ("timing.barrier_ns", "barrier"),
    "cycles_without_clock.yaml": ("timing.clock_hz", "cycles"),
    "missing_timing_action.yaml": ("timing.per_action.spike_out", "'spike_out'"),
    "split_spike_price.yaml": ("energy_pj.spike_out_pos", "spike_out"),
    "cores_not_whole.yaml": ("cores.neurons_per_core.value", "whole number"),
    "no_sources.yaml": ("sources", "non-empty"),
    "arithmetic_not_mapping.yaml": ("arithmetic", "mapping"),
    "yaml_syntax_error.yaml": ("(top level)", "line 40"),
    "empty_file.yaml": ("(top level)", "empty file"),
    "comment_only.yaml": ("(top level)", "empty document"),
    "top_level_list.yaml": ("(top level)", "list"),
    # a 400-digit integer has no float (was an OverflowError traceback)
    "huge_integer.yaml": ("energy_pj.synop.value", "too large for a float"),
    # '? [a, b]' is a list as a key (was a TypeError traceback)
    "complex_key.yaml": ("the key at line 8", "a list"),
    # YAML 1.1 reads 0100 as 64 and 7:45 as 465: refused, not silently changed
    "octal_number.yaml": ("cores.neurons_per_core.value", "octal 64; write 100"),
    "sexagesimal_number.yaml": ("timing.barrier_ns.value", "base-60 number 465; write 465"),
    "sci_without_sign.yaml": ("static_power_w.value", "write 104.0e-3 or 0.104"),
    "clock_in_ghz.yaml": ("timing.clock_hz.value", "at least 1000 Hz"),
    "hop_as_action.yaml": ("energy_pj.hop", "cores.hop_energy_pj"),
    # a long name heads the tables' columns (compare printed 150 columns)
    "name_too_long.yaml": ("name", "at most 32 printable characters"),
}


def test_corpus_is_complete_and_large_enough():
    files = sorted(p.name for p in BROKEN.glob("*.yaml"))
    assert files == sorted(EXPECTED), "every broken profile needs an expected key path"
    assert len(files) >= 12


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_profile_is_rejected_with_file_and_key(name):
    key, word = EXPECTED[name]
    with pytest.raises(UserError) as e:
        load_profile(BROKEN / name)
    msg = str(e.value)
    assert name in msg, msg
    assert f": {key}:" in msg, msg
    assert word in msg, msg
    assert "expected" in msg or "unknown" in msg, msg
    assert "\n" not in msg


def test_missing_price_names_the_action(tmp_path):
    for action in ("shift", "spike_out", "mac"):
        lines = LOIHI.read_text().splitlines(keepends=True)
        start = lines.index(f"  {action}:\n")
        end = start + 1
        while lines[end].startswith("    "):
            end += 1
        p = tmp_path / f"no_{action}.yaml"
        p.write_text("".join(lines[:start] + lines[end:]))
        with pytest.raises(UserError, match=rf"energy_pj\.{action}: .*'{action}'"):
            load_profile(p)


@pytest.mark.parametrize("path", bundled_profiles(), ids=lambda p: p.stem)
def test_bundled_profile_validates(path):
    prof = load_profile(path)
    assert prof.name == path.stem
    assert set(prof.energy_pj) == set(PRICED_ACTIONS)
    assert all(math.isfinite(v) and v >= 0 for v in prof.energy_pj.values())
    assert set(TIMED_ACTIONS) <= set(prof.timing.per_action_ns)
    a = prof.arithmetic
    assert 2 <= a.weight_bits <= a.state_bits <= 62 and 0 <= a.frac_bits < a.state_bits
    ids = {s.id for s in prof.sources}
    # every number has at least one declared source, and every priced action is in provenance
    for key, sourced in prof.provenance.items():
        assert sourced.source and set(sourced.source) <= ids, key
    for act in PRICED_ACTIONS:
        assert f"energy_pj.{act}" in prof.provenance


def test_three_profiles_are_bundled_and_found_by_name():
    names = {p.stem for p in bundled_profiles()}
    assert {"loihi_like", "asic_45nm", "truenorth_like"} <= names
    assert load_profile("loihi_like").path.resolve() == LOIHI.resolve()


def test_headline_numbers_match_their_papers():
    lo = load_profile("loihi_like")
    assert lo.energy_pj["synop"] == 23.6 and lo.energy_pj["spike_out"] == 1.7
    assert lo.timing.sync == "barrier" and lo.timing.barrier_ns == 465
    assert (lo.cores.count, lo.cores.neurons_per_core) == (128, 1024)
    assert lo.cores.synapse_memory_bits == 128 * 1024 * 8
    tn = load_profile("truenorth_like")
    assert tn.energy_pj["synop"] == 26.0 and tn.timing.min_step_ns == 1e6
    assert (tn.cores.count, tn.cores.neurons_per_core, tn.cores.synapse_memory_bits) == (4096, 256, 65536)
    asic = load_profile("asic_45nm")
    assert asic.energy_pj["mac"] == pytest.approx(0.2 + 0.1)
    assert asic.energy_pj["synop"] == pytest.approx(asic.energy_pj["weight_read"] + asic.energy_pj["add"])
    assert asic.timing.ns("synop") == pytest.approx(2.0)      # 1 cycle at 500 MHz


def test_unknown_bundled_name_and_missing_file():
    with pytest.raises(UserError, match="did you mean 'loihi_like'"):
        load_profile("loihi_lik")
    with pytest.raises(UserError, match="nope.yaml: hardware profile file not found"):
        load_profile("nope.yaml")


def test_profiles_table_fits_100_columns():
    table = format_profiles_table()
    assert max(len(l) for l in table.splitlines()) <= 100
    for name in ("loihi_like", "asic_45nm", "truenorth_like"):
        assert name in table
    assert {d["name"] for d in profiles_to_dict()} >= {"loihi_like", "truenorth_like"}
    hw = profile_to_dict(load_profile("loihi_like"))
    assert hw["name"] == "loihi_like" and hw["path"].endswith("loihi_like.yaml")


def test_profiles_table_reports_a_bad_file():
    with pytest.raises(UserError, match="negative_energy.yaml"):
        format_profiles_table([BROKEN / "negative_energy.yaml"])


def test_mapping_counts_cores_by_the_binding_limit():
    prof = load_profile("loihi_like")            # 1024 neurons, 1 Mbit, 8-bit weights
    m = map_layers([LayerSize("a", 1025, 0), LayerSize("b", 10, 131072 + 1), ("c", 0, 0)], prof)
    cores = {l.name: l.cores for l in m.layers}
    assert cores == {"a": 2, "b": 2, "c": 0}     # 1025/1024 -> 2; (131073*8)/2^20 -> 2
    assert m.total_cores == 4 and m.fits
    assert "fits: 4 of 128" in format_mapping(m)


def test_mapping_that_does_not_fit_names_the_layer():
    prof = load_profile("truenorth_like")        # 4096 cores x 256 neurons, 65536 one-bit synapses
    layers = [LayerSize("small", 100, 100), LayerSize("huge_fc", 2_000_000, 10)]
    m = map_layers(layers, prof)
    assert not m.fits and m.total_cores == 1 + math.ceil(2_000_000 / 256)
    text = format_mapping(m)
    assert "DOES NOT FIT" in text and "huge_fc" in text and "4096" in text
    assert max(len(l) for l in text.splitlines()) <= 100
    d = mapping_to_dict(m)
    assert d["fits"] is False and any("huge_fc" in p for p in d["problems"])


def test_mapping_rejects_bad_layer_sizes():
    with pytest.raises(UserError, match="neurons"):
        map_layers([LayerSize("x", -1, 0)], load_profile("asic_45nm"))


def _edited(tmp_path, old: str, new: str, name: str = "edited.yaml") -> Path:
    text = LOIHI.read_text()
    assert old in text
    p = tmp_path / name
    p.write_text(text.replace(old, new, 1))
    return p


def test_duplicate_key_names_both_lines(tmp_path):
    old = "  synop:\n    value: 23.6\n"
    p = _edited(tmp_path, old, "  synop:\n    value: 23.6\n    value: 2.36\n")
    first = LOIHI.read_text().index(old)
    line = LOIHI.read_text()[:first].count("\n") + 2  # the line of "value: 23.6"
    with pytest.raises(UserError, match=rf"edited\.yaml: key 'value' is given twice, at line "
                                        rf"{line} and at line {line + 1}"):
        load_profile(p)


@pytest.mark.parametrize("old, new, key", [
    ("  synop:\n    value: 23.6\n", "  synop:\n    value: 2.36e+13\n", "energy_pj.synop.value"),
    ("static_power_w:\n  value: 0.104\n", "static_power_w:\n  value: 1.0e+40\n",
     "static_power_w.value"),
])
def test_absurd_values_are_rejected_with_their_unit(tmp_path, old, new, key):
    with pytest.raises(UserError, match=rf": {key}: expected at most"):
        load_profile(_edited(tmp_path, old, new))


@pytest.mark.parametrize("bits, ok", [(62, True), (63, False), (64, False)])
def test_state_bits_beyond_what_64_bit_arithmetic_holds_are_refused(tmp_path, bits, ok):
    """A register plus one step's input and a bias must not wrap in the engine's int64."""
    p = _edited(tmp_path, "  state_bits:\n    value: 24\n", f"  state_bits:\n    value: {bits}\n")
    if ok:
        assert load_profile(p).arithmetic.state_bits == bits
        return
    with pytest.raises(UserError, match=r"arithmetic\.state_bits\.value: expected a whole number "
                                        r"from weight_bits \(8\) to 62 \(the engine computes in "
                                        rf"64-bit integers.*found the number {bits}"):
        load_profile(p)


def test_empty_profile_name_is_an_error():
    with pytest.raises(UserError, match="empty profile name"):
        load_profile("")



def test_merge_keys_are_read_and_still_refuse_duplicates(tmp_path):
    """<<: *anchor reuses a sourced number; the mapping's own keys override the merged ones."""
    old = "  synop:\n    value: 23.6\n"
    text = LOIHI.read_text().replace(old, "  synop: &SYN\n    value: 23.6\n", 1)
    old_read = text[text.index("  weight_read:"):text.index("  state_read:")]
    merged = text.replace(old_read, "  weight_read:\n    <<: *SYN\n    value: 5.0\n", 1)
    p = tmp_path / "merge.yaml"
    p.write_text(merged)
    prof = load_profile(p)
    assert prof.energy_pj["weight_read"] == 5.0 and prof.energy_pj["synop"] == 23.6
    assert prof.provenance["energy_pj.weight_read"].source == ("davies2018",)
    p.write_text(merged.replace("    value: 5.0\n", "    value: 5.0\n    value: 6.0\n", 1))
    with pytest.raises(UserError, match=r"merge\.yaml: key 'value' is given twice"):
        load_profile(p)


def test_hex_and_underscore_numbers_keep_their_value(tmp_path):
    """Unlike 0100 (octal 64), 0x400 and 1_024 read as what they say: accepted."""
    for written in ("0x400", "1_024"):
        p = _edited(tmp_path, "neurons_per_core: {value: 1024,",
                    f"neurons_per_core: {{value: {written},")
        assert load_profile(p).cores.neurons_per_core == 1024


@pytest.mark.parametrize("written, advice", [
    ("1e-3", "write 1.0e-3 or 0.001"), ("1.0e5", "write 1.0e+5 or 100000.0"),
])
def test_scientific_notation_yaml_reads_as_text_gets_a_hint(tmp_path, written, advice):
    p = _edited(tmp_path, "  synop:\n    value: 23.6\n", f"  synop:\n    value: {written}\n")
    with pytest.raises(UserError, match=rf"energy_pj\.synop\.value: expected a number, found the "
                                        rf"string '{written}' \(YAML reads {written} as text: "
                                        rf"{re.escape(advice)}\)"):
        load_profile(p)


def test_a_clock_that_makes_times_non_finite_is_refused(tmp_path, monkeypatch):
    """Even without the 1 kHz lower bound, a clock of 1e-300 Hz must not give inf / nan ns
    (the pipeline would count a nan time as no work)."""
    monkeypatch.setattr(profile_module, "SANE_LOWER_LIMITS", ())
    p = _edited(tmp_path, "  unit: ns\n",
                "  unit: cycles\n  clock_hz: {value: 1.0e-300, source: neurosim_assumption}\n")
    with pytest.raises(UserError, match=r"timing\.per_action\.synop\.value: expected a time "
                                        r"that is finite in ns.*= inf ns"):
        load_profile(p)


def test_hop_timing_points_to_the_cores_section(tmp_path):
    p = _edited(tmp_path, "  per_action:\n",
                "  per_action:\n    hop: {value: 6.5, source: davies2018}\n")
    with pytest.raises(UserError, match=r"timing\.per_action\.hop: unknown action \(hop energy "
                                        r"and latency live under .*cores\.hop_latency_ns\)"):
        load_profile(p)
