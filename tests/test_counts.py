import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from neurosim.counts import ACTION_INDEX, ACTIONS, PRICE_OF, PRICED_ACTIONS, Counts


def test_action_axis_is_the_documented_one():
    assert ACTIONS[:3] == ("synop", "weight_read", "state_read")
    assert "spike_out_pos" in ACTIONS and "spike_out_neg" in ACTIONS and "mac" in ACTIONS
    assert [ACTIONS[i] for i in ACTION_INDEX.values()] == list(ACTIONS)
    assert PRICE_OF["spike_out_pos"] == PRICE_OF["spike_out_neg"] == "spike_out"
    assert "spike_out" in PRICED_ACTIONS and "spike_out_pos" not in PRICED_ACTIONS
    assert len(PRICED_ACTIONS) == len(ACTIONS) - 1


def test_layout_layer_step_action():
    c = Counts.zeros(["a", "b"], steps=3, images=2)
    assert c.data.shape == (2, 3, len(ACTIONS)) and c.data.dtype == np.int64
    c.add("b", 3, "synop", 5)           # step 3 -> index 2
    assert c.data[1, 2, ACTION_INDEX["synop"]] == 5
    c.data[0, 0, ACTION_INDEX["spike_out_neg"]] = 4
    assert c.total()["synop"] == 5 and c.total()["spike_out_neg"] == 4
    assert c.by_layer()["b"]["synop"] == 5 and c.by_layer()["a"]["synop"] == 0
    assert c.by_step()[2, ACTION_INDEX["synop"]] == 5
    assert c.per_inference()["synop"] == 2.5


def test_rejects_bad_data():
    with pytest.raises(ValueError):
        Counts(("a",), np.zeros((2, 1, len(ACTIONS))), 1)
    with pytest.raises(ValueError):
        Counts(("a",), -np.ones((1, 1, len(ACTIONS))), 1)
    with pytest.raises(ValueError):
        Counts(("a", "a"), np.zeros((2, 1, len(ACTIONS))), 1)


def test_merge_pads_shorter_run_and_adds_images():
    a = Counts.zeros(["l"], 2, 1)
    b = Counts.zeros(["l"], 4, 3)
    a.add("l", 2, "add", 7)
    b.add("l", 2, "add", 1)
    b.add("l", 4, "compare", 2)
    m = a + b
    assert m.images == 4 and m.n_steps == 4
    assert m.total()["add"] == 8 and m.total()["compare"] == 2
    with pytest.raises(ValueError):
        a + Counts.zeros(["other"], 2, 1)


def test_json_round_trip():
    c = Counts.zeros(["x", "y"], 2, 3)
    c.add("y", 1, "spike_out_pos", 9)
    d = json.loads(c.to_json(per_step=True))
    assert d["total"]["spike_out_pos"] == 9 and d["per_inference"]["spike_out_pos"] == 3.0
    assert Counts.from_dict(d) == c


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 5), st.integers(0, 2**31))
def test_views_agree_with_raw_sum(n_layers, steps, images, seed):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 1000, size=(n_layers, steps, len(ACTIONS)))
    c = Counts(tuple(f"l{i}" for i in range(n_layers)), data, images)
    tot = c.total()
    for a, i in ACTION_INDEX.items():
        assert tot[a] == int(data[:, :, i].sum())
        assert sum(v[a] for v in c.by_layer().values()) == tot[a]
        assert int(c.by_step()[:, i].sum()) == tot[a]
        assert c.per_inference()[a] == pytest.approx(tot[a] / images)
    assert (c + c).total() == {a: 2 * v for a, v in tot.items()}
