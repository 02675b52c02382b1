"""Placement of layers on the profile's core mesh, and the hops their spikes travel (DESIGN §6).

Plain data in, plain data out:

    place(layer_cores, profile) -> Placement
    hop_counts(placement, edges, spikes) -> int64 array (layers, steps): hops per layer and step

``layer_cores`` lists ``(layer name, cores)`` in network order (the mapping's core counts; a
layer the mapping does not hold, such as the input encoder, is given one core by the caller).
Cores are taken in order along the mesh in a boustrophedon (snake) walk: row 0 left to right,
row 1 right to left, ... so consecutive layers sit next to each other. With
``cores_per_router`` > 1 (Loihi: 4 cores per tile) that many consecutive cores share one
router position and a spike between them crosses 0 hops.

Distance between two cores = Manhattan distance of their router positions on the
``mesh_rows × mesh_cols`` mesh (dimension-order routing, as on Loihi's and TrueNorth's meshes).

Hops of the real events. A layer's neurons, and hence its spikes, are split evenly over its
cores (the spikes of a step dealt round-robin, so the split is exact in integers). A spike is
delivered to every core of every layer it projects to (a multicast counted per destination
core: an upper bound for a convolution split over several cores, where a spike reaches only
the cores holding its receptive field). So per layer and step

    hops[l, t] = Σ_i s_i(l, t) · Σ_{m ∈ targets(l)} Σ_{d ∈ cores(m)} dist(core_i(l), d)

with ``s_i`` the share of the step's spikes emitted by the layer's i-th core. Energy
``hops × cores.hop_energy_pj`` (priced as the action ``hop``); latency ``h × hop_latency_ns``
on every spike message that crosses h hops (see neurosim.pipeline).

A profile without ``cores.mesh_rows`` / ``mesh_cols`` has no placement: ``place`` returns
``None`` and no hops are counted (said in the run's warnings by the caller).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurosim.errors import UserError


@dataclass(frozen=True)
class Placement:
    """Where each layer's cores sit. ``positions[name]`` lists (row, col) per core of the
    layer; ``core_ids[name]`` the global core indices (0-based, in placement order)."""

    mesh_rows: int
    mesh_cols: int
    cores_per_router: int
    layers: tuple[str, ...]
    core_ids: dict
    positions: dict

    @property
    def total_cores(self) -> int:
        return sum(len(v) for v in self.core_ids.values())

    def distance(self, a: tuple[int, int], b: tuple[int, int]) -> int:
        return abs(a[0] - b[0]) + abs(a[1] - b[1])

    def hop_matrix(self, src: str, dst: str) -> np.ndarray:
        """(cores of src, cores of dst) hop distances."""
        ps, pd = np.array(self.positions[src]), np.array(self.positions[dst])
        return (np.abs(ps[:, None, 0] - pd[None, :, 0])
                + np.abs(ps[:, None, 1] - pd[None, :, 1])).astype(np.int64)

    def to_dict(self) -> dict:
        return {"mesh": [self.mesh_rows, self.mesh_cols],
                "cores_per_router": self.cores_per_router,
                "layers": {n: {"cores": list(self.core_ids[n]),
                               "positions": [list(p) for p in self.positions[n]]}
                           for n in self.layers}}


def router_position(core: int, mesh_cols: int, cores_per_router: int) -> tuple[int, int]:
    """(row, col) of a core's router in the snake walk over the mesh."""
    router = core // cores_per_router
    row, k = divmod(router, mesh_cols)
    col = k if row % 2 == 0 else mesh_cols - 1 - k
    return row, col


def place(layer_cores, profile) -> Placement | None:
    """Place ``[(name, cores), ...]`` in order on ``profile``'s mesh (None: no mesh given).

    More cores than the chip has is a ``UserError`` naming the profile (a mapping that does
    not fit cannot be placed)."""
    mesh = getattr(profile.cores, "mesh", None)
    if mesh is None:
        return None
    rows, cols, per_router = mesh
    capacity = rows * cols * per_router
    names, ids, pos = [], {}, {}
    nxt = 0
    for name, k in layer_cores:
        k = int(k)
        if k < 1:
            raise ValueError(f"place: layer {name!r} needs at least one core, got {k}")
        names.append(str(name))
        ids[str(name)] = tuple(range(nxt, nxt + k))
        pos[str(name)] = tuple(router_position(c, cols, per_router) for c in range(nxt, nxt + k))
        nxt += k
    if nxt > capacity:
        # the profile's name, not its path: reports show no path of the machine
        raise UserError(f"the network needs {nxt} cores but the "
                        f"{rows}×{cols} mesh of {profile.name} holds {capacity}; it cannot be "
                        f"placed")
    return Placement(rows, cols, per_router, tuple(names), ids, pos)


def round_robin_shares(spikes: np.ndarray, k: int) -> np.ndarray:
    """(k, steps) integer spikes per core when each step's spikes are dealt over k cores."""
    spikes = np.asarray(spikes, np.int64)
    base, extra = np.divmod(spikes, k)
    i = np.arange(k)[:, None]
    return base[None, :] + (i < extra[None, :]).astype(np.int64)


def hop_counts(placement: Placement | None, edges, spikes) -> np.ndarray:
    """Hops per layer and step caused by the real spikes (see the module docstring).

    ``edges``: ``(source layer, target layer)`` pairs; ``spikes``: {layer: int array (steps,)}
    of emitted spikes (both signs) summed over the batch. Returns int64 (layers, steps) in the
    placement's layer order; all zeros without a placement."""
    names = list(spikes)
    steps = len(next(iter(spikes.values()))) if spikes else 0
    out = np.zeros((len(names), steps), np.int64)
    if placement is None:
        return out
    for src, dst in edges:
        if src not in spikes or dst not in placement.positions:
            continue
        per_src_core = placement.hop_matrix(src, dst).sum(axis=1)   # hops to all dst cores
        shares = round_robin_shares(spikes[src], len(placement.core_ids[src]))
        out[names.index(src)] += per_src_core @ shares
    return out
