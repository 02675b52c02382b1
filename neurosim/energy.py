"""Energy of a run: counted actions × the profile's prices, plus static power × run time.

Dynamic energy (pJ) = Σ over layers, steps and actions of ``count × price``; both
``spike_out_pos`` and ``spike_out_neg`` are priced by the profile's one ``spike_out`` price.
``mac`` counts (if any) are priced too (rate coding's analog input, phase coding's decision unit).

Run time (first-order model, to be refined by the SimPy pipeline of DESIGN §6). For each step:

    work(l, t)  = Σ_a count[l, t, a] / images × time_ns(a)       (one layer's work, one image)
    step_ns(t)  = max( max_l work(l, t) + barrier_ns,  min_step_ns )

``barrier_ns`` is the profile's barrier cost when ``timing.sync`` is ``barrier`` and 0 for
``dataflow``; ``min_step_ns`` is a floor such as TrueNorth's 1 ms tick (0 when not given). A
layer's work is treated as serial on one core (no split across the layer's cores), so the time
is an upper bound for large layers. Run time per inference = Σ_t step_ns(t); the batch is taken
as run image after image, so static energy of the batch = static_power_w × images × that time.

Hop energies and latencies (``cores.hop_*``) are NOT included: they need a placement.

A fixed-point run replaces this run time and its static energy by the SimPy pipeline model
(``neurosim.pipeline``, wired in ``neurosim.simulate.add_pipeline_costs``), which also adds the
hops; this first-order run time stays as the serial reference where no network is at hand.
``ann_energy`` is the ANN's MAC-only lower bound; ``ann_energy_fair`` adds its memory traffic
under the profile's ``ann_baseline`` reuse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurosim.counts import ACTIONS, PRICE_OF, Counts

PJ_PER_J = 1e12


@dataclass(frozen=True)
class EnergyReport:
    """Energies in pJ. Totals are for the whole batch; ``per_inference`` divides by images."""

    profile_name: str
    images: int
    by_action_pj: dict          # counted action -> pJ (dynamic, batch)
    by_layer_pj: dict           # layer -> pJ (dynamic, batch)
    dynamic_pj: float
    static_pj: float
    run_time_s: float           # per inference
    step_time_ns: np.ndarray    # per step, per inference

    @property
    def total_pj(self) -> float:
        return self.dynamic_pj + self.static_pj

    def per_inference(self) -> dict:
        """Means per image (JSON-ready), in the shape of DESIGN §8 ``energy_pj``."""
        n = self.images or 1
        k = (1.0 / n) if self.images else 0.0
        return {
            "total": self.total_pj * k,
            "dynamic": self.dynamic_pj * k,
            "static": self.static_pj * k,
            "by_action": {a: v * k for a, v in self.by_action_pj.items()},
            "by_layer": {l: v * k for l, v in self.by_layer_pj.items()},
            "latency_s": self.run_time_s,
        }

    def to_dict(self) -> dict:
        return {"profile": self.profile_name, "images": self.images,
                "batch": {"total_pj": self.total_pj, "dynamic_pj": self.dynamic_pj,
                          "static_pj": self.static_pj, "by_action": dict(self.by_action_pj),
                          "by_layer": dict(self.by_layer_pj)},
                "per_inference": self.per_inference()}


def price_vector(profile) -> np.ndarray:
    """pJ per counted action, aligned with ``ACTIONS``."""
    return np.array([float(profile.energy_pj[PRICE_OF[a]]) for a in ACTIONS])


def time_vector_ns(profile) -> np.ndarray:
    """ns per counted action, aligned with ``ACTIONS`` (0 where the profile gives no time)."""
    return np.array([profile.timing.ns(PRICE_OF[a]) for a in ACTIONS])


def step_times_ns(counts: Counts, profile) -> np.ndarray:
    """Wall time of each step for one inference (see the module docstring)."""
    t = profile.timing
    if counts.n_steps == 0:
        return np.zeros(0)
    per_image = counts.data.astype(np.float64) / (counts.images or 1)
    work = per_image @ time_vector_ns(profile)           # (layers, steps)
    slowest = work.max(axis=0) if work.shape[0] else np.zeros(counts.n_steps)
    barrier = t.barrier_ns if t.sync == "barrier" else 0.0
    return np.maximum(slowest + barrier, t.min_step_ns)


def energy(counts: Counts, profile) -> EnergyReport:
    """Energy of a counted run on ``profile`` (a loaded ``Profile``)."""
    prices = price_vector(profile)
    per_action_counts = counts.data.sum(axis=(0, 1)).astype(np.float64)
    by_action = {a: float(per_action_counts[i] * prices[i]) for i, a in enumerate(ACTIONS)}
    per_layer = counts.data.sum(axis=1).astype(np.float64) @ prices
    by_layer = {l: float(per_layer[i]) for i, l in enumerate(counts.layers)}
    dynamic = float(sum(by_action.values()))
    steps = step_times_ns(counts, profile)
    run_time_s = float(steps.sum()) * 1e-9
    static = profile.static_power_w * run_time_s * counts.images * PJ_PER_J
    return EnergyReport(profile.name, counts.images, by_action, by_layer, dynamic, static,
                        run_time_s, steps)


def ann_energy(macs: int, profile) -> float:
    """ANN baseline energy in pJ: ``macs × energy_pj.mac`` and nothing else (no memory traffic,
    no activation function, no static power): a lower bound for a real accelerator."""
    if isinstance(macs, bool) or int(macs) != macs or macs < 0:
        raise ValueError(f"ann_energy: macs must be a whole number >= 0, got {macs!r}")
    return int(macs) * float(profile.energy_pj["mac"])


def ann_memory_traffic(graph) -> dict:
    """Memory accesses of one ANN inference under no assumption yet: per Conv/Dense node its
    MACs, stored weights, input activations (the tensor it reads) and output activations."""
    out = {"macs": 0, "weights": 0, "inputs": 0, "outputs": 0}
    for node in graph.nodes.values():
        if node.op not in ("conv", "dense"):
            continue
        out["macs"] += node.macs()
        out["weights"] += int(node.weight.size)
        out["inputs"] += int(np.prod(graph.nodes[node.inputs[0]].shape))
        out["outputs"] += int(np.prod(node.shape))
    return out


def ann_energy_fair(graph, profile) -> dict | None:
    """The ANN on the profile's memory model (issue 11): beside ``ann_energy``'s MAC-only lower
    bound, every MAC's weight and input-activation reads and every output's write, priced
    like the SNN's memory (``energy_pj.weight_read``, ``state_read``, ``state_write``).

    Reuse (the profile's ``ann_baseline``, a stated assumption): one weight fetch serves
    ``weight_reuse`` MACs and one activation read ``activation_reuse`` MACs, but every stored
    weight and every input activation is read at least once; partial sums stay in the MAC's
    accumulator, so each output activation is written once. None when the profile has no
    ``ann_baseline`` section. pJ per inference, with the access counts."""
    reuse = profile.ann_baseline
    if reuse is None:
        return None
    t = ann_memory_traffic(graph)
    weight_reads = max(t["macs"] / reuse.weight_reuse, t["weights"])
    activation_reads = max(t["macs"] / reuse.activation_reuse, t["inputs"])
    parts = {
        "mac": t["macs"] * profile.price("mac"),
        "weight_read": weight_reads * profile.price("weight_read"),
        "activation_read": activation_reads * profile.price("state_read"),
        "activation_write": t["outputs"] * profile.price("state_write"),
    }
    return {"total_pj": float(sum(parts.values())), "mac_only_pj": float(parts["mac"]),
            "by_part_pj": {k: float(v) for k, v in parts.items()},
            "accesses": {"macs": t["macs"], "weight_reads": float(weight_reads),
                         "activation_reads": float(activation_reads),
                         "activation_writes": t["outputs"]},
            "weight_reuse": reuse.weight_reuse, "activation_reuse": reuse.activation_reuse}
