import numpy as np
import pytest

from neurosim.counts import ACTION_INDEX, Counts
from neurosim.energy import ann_energy, energy
from neurosim.hw import load_profile


def _hand_counts():
    """Two layers, three steps, a batch of 2 images."""
    c = Counts.zeros(["conv", "fc"], steps=3, images=2)
    c.add("conv", 1, "synop", 100)
    c.add("conv", 2, "synop", 40)
    c.add("conv", 1, "state_write", 10)
    c.add("conv", 1, "spike_out_pos", 6)
    c.add("conv", 3, "spike_out_neg", 4)
    c.add("fc", 2, "add", 50)
    c.add("fc", 3, "fifo_read", 3)
    c.add("fc", 3, "shift", 8)
    return c


def test_loihi_energy_equals_hand_sum():
    e = energy(_hand_counts(), load_profile("loihi_like"))
    # synop 140 x 23.6 = 3304; state_write 10 x 81 = 810; spike_out (6 + 4) x 1.7 = 17;
    # add 50 x 0.1 = 5; fifo_read 3 x 10 = 30; shift 8 x 0.1 = 0.8
    assert e.by_action_pj["synop"] == pytest.approx(3304.0)
    assert e.by_action_pj["spike_out_pos"] == pytest.approx(10.2)
    assert e.by_action_pj["spike_out_neg"] == pytest.approx(6.8)
    assert e.dynamic_pj == pytest.approx(3304 + 810 + 17 + 5 + 30 + 0.8)
    assert e.by_layer_pj["conv"] == pytest.approx(3304 + 810 + 17)
    assert e.by_layer_pj["fc"] == pytest.approx(5 + 30 + 0.8)
    # time per image (barrier 465 ns each step):
    # step 1: conv = (100*3.5 + 10*8.4 + 6*2.1)/2 = (350 + 84 + 12.6)/2 = 223.3; fc = 0
    # step 2: conv = 40*3.5/2 = 70; fc = 50*0/2 = 0          -> 70
    # step 3: conv = 4*2.1/2 = 4.2; fc = (3*3.5 + 8*0)/2 = 5.25 -> 5.25
    step_ns = [223.3 + 465, 70 + 465, 5.25 + 465]
    np.testing.assert_allclose(e.step_time_ns, step_ns)
    assert e.run_time_s == pytest.approx(sum(step_ns) * 1e-9)
    # static: 0.104 W x run time per image x 2 images, in pJ
    assert e.static_pj == pytest.approx(0.104 * sum(step_ns) * 1e-9 * 2 * 1e12)
    per = e.per_inference()
    assert per["total"] == pytest.approx((e.dynamic_pj + e.static_pj) / 2)
    assert per["by_layer"]["fc"] == pytest.approx(35.8 / 2)


def test_asic_energy_and_dataflow_time():
    e = energy(_hand_counts(), load_profile("asic_45nm"))
    # synop 140 x 2.6 = 364; state_write 10 x 5 = 50; spike_out 10 x 5 = 50;
    # add 50 x 0.1 = 5; fifo_read 3 x 5 = 15; shift 8 x 0.1 = 0.8
    assert e.dynamic_pj == pytest.approx(364 + 50 + 50 + 5 + 15 + 0.8)
    assert e.static_pj == 0.0
    # 2 ns per action (1 cycle at 500 MHz), no barrier:
    # step 1: conv (100 + 10 + 6) x 2 / 2 = 116; step 2: max(40, 50) x 2 / 2 = 50;
    # step 3: max(4, 3 + 8) x 2 / 2 = 11
    np.testing.assert_allclose(e.step_time_ns, [116, 50, 11])


def test_truenorth_tick_floor_sets_run_time():
    e = energy(_hand_counts(), load_profile("truenorth_like"))
    assert e.dynamic_pj == pytest.approx(140 * 26.0)        # everything else is inside 26 pJ
    np.testing.assert_allclose(e.step_time_ns, [1e6, 1e6, 1e6])
    assert e.run_time_s == pytest.approx(3e-3)


def test_energy_is_linear_in_counts_and_merges():
    prof = load_profile("loihi_like")
    c = _hand_counts()
    one = energy(c, prof)
    two = energy(c + c, prof)
    assert two.dynamic_pj == pytest.approx(2 * one.dynamic_pj)
    assert two.per_inference()["dynamic"] == pytest.approx(one.per_inference()["dynamic"])
    empty = energy(Counts.zeros(["x"], 0, 0), prof)
    assert empty.total_pj == 0.0 and empty.per_inference()["total"] == 0.0


def test_every_counted_action_changes_energy():
    prof = load_profile("asic_45nm")
    for action, i in ACTION_INDEX.items():
        c = Counts.zeros(["l"], 1, 1)
        c.data[0, 0, i] = 1000
        expected = 1000 * prof.price(action)
        assert energy(c, prof).dynamic_pj == pytest.approx(expected), action


def test_ann_energy_is_macs_times_mac_price():
    # Horowitz 45 nm: 8-bit mult 0.2 pJ + 32-bit add 0.1 pJ = 0.3 pJ per MAC
    assert ann_energy(1_000_000, load_profile("asic_45nm")) == pytest.approx(300_000.0)
    assert ann_energy(10, load_profile("loihi_like")) == pytest.approx(3.0)
    with pytest.raises(ValueError):
        ann_energy(-1, load_profile("asic_45nm"))
