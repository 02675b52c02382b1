"""Range analysis before simulating (issue 10) for rate, TTFS, TSC and phase
(``neurosim.core.ranges``): the static worst case bounds what the registers really hold, a
profile that cannot hold it stops with an error naming the layer and the bits (or warns with
--allow-overflow), and ``neurosim check`` reports state bits per layer for every scheme."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurosim.fixed_vs_float import check, format_check
from neurosim.cli import main
from neurosim.core.ranges import membrane_extent, signed_bits
from neurosim.data import digits
from neurosim.errors import UserError
from neurosim.hw.profile import load_profile
from neurosim.schemes import get_scheme

from engine_cases import LOIHI, bundled

CALIB = digits("calibration").x
TEST = digits("test")
# short settings per scheme (fast) and the length parameter the range grows with
SHORT = {"rate": dict(T=24), "ttfs": dict(T=8), "tsc": dict(N=12, thresholds="lambda"),
         "phase": dict(K=4, periods=3, skip_periods=1)}
# the length parameter named as the largest that fits (phase: periods barely move its range)
LENGTH = {"rate": "T", "ttfs": "T", "tsc": "N", "phase": "K"}
SCHEMES = tuple(SHORT)


def build(scheme: str, model: str = "digits_cnn", squeeze: float = 1.0, **params):
    """The float SNN of a bundled model; ``squeeze`` < 1 shrinks every λ but the input's, so
    weights and biases grow (busier, larger registers)."""
    g, lams = bundled(model)
    lams = {k: v if k == g.input else v * squeeze for k, v in lams.items()}
    s = get_scheme(scheme)
    return s, s.build(g, CALIB, {**s.defaults(), **SHORT[scheme], **params}, scales=lams)


def adversarial_images(n: int, rng) -> np.ndarray:
    """Digits plus random images anywhere within the calibrated input range (|x| ≤ λ_0, both
    signs): inputs the bundled data never shows, still inside the analysis' contract."""
    top = float(np.abs(CALIB).max())
    noise = rng.uniform(-top, top, (n,) + TEST.x.shape[1:])
    return np.concatenate([TEST.x[:n], noise, np.sign(noise) * top])


# ---- the interval arithmetic itself --------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(zmin=st.integers(-40, 10), width=st.integers(0, 60), steps=st.integers(1, 12),
       threshold=st.one_of(st.none(), st.integers(1, 30)), v0=st.integers(0, 5),
       phases=st.sampled_from([0, 1, 3]), nearest=st.booleans(), seed=st.integers(0, 2**16))
def test_membrane_extent_bounds_every_input_sequence(zmin, width, steps, threshold, v0, phases,
                                                    nearest, seed):
    """Random input sequences within [zmin, zmax] (ends included) never take the membrane
    outside the extent, and a constant input at one end reaches its upper or lower bound
    when there is no reset or shift (the bound is tight there)."""
    zmax = zmin + width
    lo, hi = membrane_extent(np.array([zmax]), np.array([zmin]), steps, threshold, v0,
                             phases, nearest)
    rng = np.random.default_rng(seed)
    for trial in range(20):
        v, seen = v0, [v0]
        for t in range(steps):
            if phases:
                if t % phases:
                    v <<= 1
                elif phases > 1:
                    v = (v + ((1 << (phases - 2)) if nearest else 0)) >> (phases - 1)
                seen.append(v)
            z = rng.choice([zmin, zmax]) if trial % 2 else int(rng.integers(zmin, zmax + 1))
            v += z
            seen.append(v)
            if threshold is not None and v >= threshold:
                v -= threshold
                seen.append(v)
        assert lo <= min(seen) and max(seen) <= hi, (seen, lo, hi)
    if threshold is None and not phases:
        assert hi == max(v0, v0 + steps * zmax, 0) and lo == min(0, v0 + steps * zmin, v0)


def test_signed_bits():
    assert [signed_bits(0, h) for h in (0, 1, 127, 128)] == [1, 2, 8, 9]
    assert [signed_bits(lo, 0) for lo in (-1, -128, -129)] == [1, 8, 9]


# ---- the static bound holds on the data ------------------------------------------------------

CASES = [(s, m, {}, "loihi_like") for s in SCHEMES for m in ("digits_cnn", "digits_resnet")] + [
    ("rate", "digits_mlp", dict(input="regular", v_init=0.5), "asic_45nm"),
    ("rate", "digits_cnn", dict(input="poisson"), "truenorth_like"),
    ("ttfs", "digits_resnet", dict(synapse="reaccumulate"), "asic_45nm"),
    ("tsc", "digits_cnn", dict(emission="switch", thresholds="balance"), "truenorth_like"),
    ("phase", "digits_cnn", dict(early=True, theta=0.3), "asic_45nm")]


@pytest.mark.parametrize("scheme, model, params, hw", CASES)
def test_high_water_marks_never_exceed_the_static_bound(scheme, model, params, hw):
    """λ squeezed threefold (larger weights, busier registers), digits and random images
    within the calibrated range, each scheme's variants and every bundled profile: no layer's
    high-water mark exceeds its worst case, and nothing overflows."""
    s, snn = build(scheme, model, squeeze=0.3, **params)
    net = s.quantize(snn, load_profile(hw).arithmetic)
    x = adversarial_images(12, np.random.default_rng(1))
    r = s.simulate_fixed(net, x, trace=True)
    bounds = net.info.register_bounds
    for l, name in enumerate(net.names):
        peak = r.extra["register_high"][name] * net.info.scale[l]
        assert peak <= max(-bounds[l, 0], bounds[l, 1]) * (1 + 1e-12), (name, peak, bounds[l])
        need = r.extra["state_bits_needed"][name]
        assert need is not None and need <= r.extra["state_bits_worst_case"][name]
    assert r.counts.total()["overflow"] == 0


@pytest.mark.parametrize("scheme, params", [(s, {}) for s in SCHEMES] + [
    ("phase", dict(early=True, theta=0.3))])  # with the decision unit's δ register
def test_a_state_that_just_fits_never_overflows(scheme, params):
    """The narrowest state width the range analysis accepts runs without one overflow on
    digits and random images (the bound is a bound)."""
    s, snn = build(scheme, squeeze=0.3, **params)
    bits = next(b for b in range(4, 40) if _fits(s, snn, dataclasses.replace(LOIHI, state_bits=b)))
    ar = dataclasses.replace(LOIHI, state_bits=bits)
    net = s.quantize(snn, ar)
    r = s.simulate_fixed(net, adversarial_images(12, np.random.default_rng(2)), trace=True)
    assert r.counts.total()["overflow"] == 0
    assert max(signed_bits(*b) for b in net.info.register_bounds) <= bits


def _fits(scheme, snn, arithmetic) -> bool:
    try:
        scheme.quantize(snn, arithmetic)
        return True
    except UserError:
        return False


# ---- what cannot fit: an error, or with --allow-overflow a warning ------------------------------

NARROW = {"rate": 12, "ttfs": 11, "tsc": 12, "phase": 12}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_range_that_cannot_fit_names_the_layer_the_bits_and_the_largest_length(scheme):
    s, snn = build(scheme)
    ar = dataclasses.replace(LOIHI, state_bits=NARROW[scheme])
    with pytest.raises(UserError) as e:
        s.quantize(snn, ar)
    msg = str(e.value)
    assert f"coding '{scheme}'" in msg and "--allow-overflow" in msg
    layer = msg.split("layer '")[1].split("'")[0]
    assert layer in snn.populations[-1].name or layer in [p.name for p in snn.populations]
    needed = int(msg.split("needs ")[1].split(" state bits")[0])
    assert needed > NARROW[scheme] and f"the profile has {NARROW[scheme]}" in msg
    key = LENGTH[scheme]
    largest = int(msg.split(f"the largest {key} that fits is ")[1].split(";")[0])
    # the value named fits, one more does not
    assert _fits(s, build(scheme, **{key: largest})[1], ar)
    assert not _fits(s, build(scheme, **{key: largest + 1})[1], ar)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_allow_overflow_turns_the_error_into_a_warning(scheme):
    s, snn = build(scheme)
    ar = dataclasses.replace(LOIHI, state_bits=8, allow_overflow=True)  # far too narrow
    net = s.quantize(snn, ar)
    (warning,) = net.info.warnings
    assert "needs" in warning and "running anyway (--allow-overflow)" in warning
    r = s.simulate_fixed(net, TEST.x[:20])
    assert r.counts.total()["overflow"] > 0  # the short registers really saturate


def test_cli_range_error_and_warning(capsys):
    code = main(["run", "--coding", "ttfs:T=3000", "--limit", "5", "--hw", "truenorth_like"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "coding 'ttfs' at T=3000" in err and "the profile has 20" in err
    code = main(["run", "--coding", "ttfs:T=3000", "--limit", "5", "--hw", "truenorth_like",
                 "--precision", "fixed", "--allow-overflow"])
    out = capsys.readouterr().out
    assert code == 0 and out.index("WARNING") < out.index("ANN accuracy")


def test_sws_at_tc20_on_loihi_like_still_stops(capsys):
    code = main(["run", "--coding", "sws:Tc=20", "--hw", "loihi_like", "--precision", "fixed",
                 "--limit", "5"])
    err = capsys.readouterr().err
    assert code == 2 and "needs 31 state bits" in err and "has 24" in err


# ---- neurosim check: state bits per layer for every scheme ---------------------------------------

def test_check_lists_state_bits_per_layer_for_every_scheme():
    g, _ = bundled("digits_cnn")
    profile = load_profile("loihi_like")
    specs = [f"{s}:" + ",".join(f"{k}={v}" for k, v in SHORT[s].items()) for s in SCHEMES]
    results = check(g, TEST.head(20), digits("calibration"), specs, profile, sweep=(8,))
    assert len(results) == len(SCHEMES)
    for r in results:
        assert r["layers"], r["coding"]
        for layer in r["layers"]:
            need, worst = layer["state_bits_needed"], layer["state_bits_worst_case"]
            assert isinstance(need, int) and 1 <= need <= worst <= profile.arithmetic.state_bits
        assert r["state_bits_needed"] == max(la["state_bits_needed"] for la in r["layers"])
    text = format_check(results, profile.name)
    assert text.count("worst case of any input") == len(SCHEMES)  # one summary per scheme
    assert text.count("state bits") >= len(SCHEMES) and text.count("worst") >= 2 * len(SCHEMES)


def test_narrowed_weights_warning_never_counts_below_the_narrowest_weights():
    """A probe read "keeps only about -2 of the profile's 8 weight bits" (12-bit state)."""
    from neurosim.core.ranges import MIN_WEIGHT_BITS, narrowed_weights_warning

    assert narrowed_weights_warning("x", "L", 2, 8, 12, "r", []) is None
    assert "keeps only about 5 of the profile's 8" in narrowed_weights_warning(
        "x", "L", 3, 8, 12, "r", ["T"])
    for lost in (8 - MIN_WEIGHT_BITS + 1, 10):
        text = narrowed_weights_warning("x", "L", lost, 8, 12, "r", ["T"])
        assert f"runs with {MIN_WEIGHT_BITS}-bit weights" in text and "about" not in text
