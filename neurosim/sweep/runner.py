"""One point of a sweep, in image shards: prepare once, simulate shards, merge exactly.

The three stages are plain functions of plain data, so the serial executor calls them in a
loop and the Dask executor submits them as tasks (``execute.py``):

* ``calibrate_scales(graph, calib_x, q)``           once per (model, percentile);
* ``convert(graph, calib_x, scheme, params, scales)`` once per (model, coding parameters);
* ``quantize(snn, scheme, arithmetic)``              once per (model, coding, arithmetic);
* ``run_shard(...)``                                 per image shard: the float and fixed
  simulations of a slice of the images, returning integer counts and readout outputs;
* ``merge_point(...)``                               the shards of a point, in shard order:
  counts add as integers and outputs concatenate, so the result does not depend on which worker
  ran which shard or in what order they finished, and equals one whole run on the same images
  (the engine simulates every image independently).

A refused point (a register range that does not fit the profile's ``state_bits``) is a
:class:`Refused` value from ``convert`` or ``quantize`` (their UserError's message), handed on
to the shards like a network, so a Dask task never fails for it; the executor records it as a
row with ``status = refused``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..counts import ACTION_INDEX, ACTIONS
from ..errors import UserError
from ..results import SimResult


@dataclass(frozen=True)
class Refused:
    """Why a point cannot run: the UserError's message, as a value."""

    message: str


@dataclass
class ShardResult:
    """What one shard hands back: only what the merge needs (no decoded traces)."""

    point: str                    # Point.key
    shard: int                    # shard number within the point
    start: int
    stop: int
    float_result: SimResult | None
    fixed_result: SimResult | None
    refused: str | None = None    # the point's Refused message; no results then


def calibrate_scales(graph, calib_x: np.ndarray, percentile: float):
    from ..calibrate import calibrate

    return calibrate(graph, calib_x, percentile)


def convert(graph, calib_x: np.ndarray, scheme_name: str, params: dict, scales):
    from ..schemes import get_scheme

    try:
        return get_scheme(scheme_name).build(graph, calib_x, dict(params), scales=scales)
    except UserError as exc:
        return Refused(str(exc))


def profile_arithmetic(profile, overrides: tuple, allow_overflow: bool):
    """The profile's arithmetic with the grid's overrides (and --allow-overflow) applied."""
    return dataclasses.replace(profile.arithmetic, **dict(overrides),
                               allow_overflow=allow_overflow or profile.arithmetic.allow_overflow)


def quantize(snn, scheme_name: str, arithmetic):
    from ..schemes import get_scheme

    if isinstance(snn, Refused):
        return snn
    try:
        return get_scheme(scheme_name).quantize(snn, arithmetic)
    except UserError as exc:
        return Refused(str(exc))


def _slim(result: SimResult | None) -> SimResult | None:
    """Drop what the merge does not use (decoded values of every population)."""
    if result is None:
        return None
    extra = {k: v for k, v in result.extra.items() if k == "decision_step"}
    return dataclasses.replace(result, decoded={}, extra=extra)


def run_shard(point_key: str, shard: int, start: int, stop: int, x: np.ndarray,
              scheme_name: str, snn, fixed, run_float: bool,
              numba_threads: int | None = None) -> ShardResult:
    """Simulate images ``x`` (= the point's images ``start:stop``) in float and/or fixed point."""
    from ..schemes import get_scheme

    if numba_threads is not None:  # one worker per core: numba's own threads would oversubscribe
        import numba

        numba.set_num_threads(min(numba_threads, numba.config.NUMBA_NUM_THREADS))
    if isinstance(fixed, Refused):
        return ShardResult(point_key, shard, start, stop, None, None, fixed.message)
    scheme = get_scheme(scheme_name)
    flt = scheme.simulate(snn, x) if run_float else None
    fx = scheme.simulate_fixed(fixed, x) if fixed is not None else None
    return ShardResult(point_key, shard, start, stop, _slim(flt), _slim(fx))


def _merge_results(parts: list[SimResult | None]) -> SimResult | None:
    if parts[0] is None:
        return None
    counts = parts[0].counts
    for p in parts[1:]:
        counts = counts + p.counts
    extra = {}
    if any("decision_step" in p.extra for p in parts):
        extra["decision_step"] = np.concatenate([p.extra["decision_step"] for p in parts])
    extra["overflow_by_layer"] = dict(zip(
        counts.layers, counts.data[:, :, ACTION_INDEX["overflow"]].sum(axis=1).tolist()))
    first = parts[0]
    return SimResult(np.concatenate([p.outputs for p in parts]), counts, first.latency_steps,
                     first.steps_per_frame, {}, extra)


def merge_shards(shards: list[ShardResult], edges: list[tuple[int, int]]) -> tuple:
    """(float, fixed) SimResults of the whole point from its shards, merged in shard order.

    Each shard number counts once (a shard that came back twice, from a retried task whose
    first attempt also reported, is not counted twice) and the shards must be exactly
    ``edges``: a missing one is an error, not a smaller sample."""
    by_number: dict[int, ShardResult] = {}
    for s in shards:
        by_number.setdefault(s.shard, s)
    ordered = [by_number[k] for k in sorted(by_number)]
    if [(s.start, s.stop) for s in ordered] != list(edges):
        raise RuntimeError(f"sweep: shards {[(s.start, s.stop) for s in ordered]} are not the "
                           f"point's shards {list(edges)}")
    return (_merge_results([s.float_result for s in ordered]),
            _merge_results([s.fixed_result for s in ordered]))


def shard_edges(images: int, shard_size: int) -> list[tuple[int, int]]:
    """Fixed by the grid's shard_size, never by the number of workers."""
    return [(a, min(a + shard_size, images)) for a in range(0, images, shard_size)]


def point_row(point, grid, model_name: str, data_name: str, calib_name: str, labels,
              ann_accuracy: float, ann_energy_pj: float, arithmetic, profile, snn, fixed,
              flt, fx, graph=None) -> dict:
    """The table row of a computed point (DESIGN §8 entry, flattened). ``profile`` carries the
    point's arithmetic; the ANN ``graph``'s layers are mapped onto its cores for the pipeline
    model, as ``neurosim run`` maps them."""
    from ..hw.mapping import map_layers
    from ..report import layer_sizes
    from ..schemes import get_scheme
    from ..simulate import run_entry

    scheme = get_scheme(point.scheme)
    params = dict(point.params)
    mapping = None if graph is None else map_layers(layer_sizes(graph), profile)
    run = run_entry(point.scheme, params, scheme, snn, fixed, flt, fx, labels, profile, mapping)
    row = base_row(point, grid, model_name, data_name, calib_name, len(labels), ann_accuracy,
                   ann_energy_pj, arithmetic)
    e = run["energy_pj"] or {}
    row.update({
        # a network that does not fit the point's chip keeps its numbers (accuracy and counts
        # hold; times and static energy are a bigger chip's) but no place on a Pareto front
        "status": "ok" if mapping is None or mapping.fits else "does_not_fit",
        "message": "; ".join(run["warnings"]),
        "accuracy_float": run["accuracy"]["float"],
        "accuracy_fixed": run["accuracy"]["fixed"],
        "correct_float": None if flt is None else int((flt.predictions() == labels).sum()),
        "correct_fixed": None if fx is None else int((fx.predictions() == labels).sum()),
        "latency_steps": run["latency_steps"],
        "latency_steps_mean": run.get("latency_steps_mean", float(run["latency_steps"])),
        "steps_per_frame": run["steps_per_frame"],
        "latency_s": run["latency_s"],
        "throughput_fps": run["throughput_fps"],
        "spikes_pos": run["spikes"]["pos"],
        "spikes_neg": run["spikes"]["neg"],
        "overflows": run["overflows"],
        "overflows_total": run.get("overflows_total"),
        "overflow_images": run.get("overflow_images"),
        "energy_dynamic_pj": e.get("dynamic"),
        "energy_static_pj": e.get("static"),
        "energy_total_pj": e.get("total"),
    })
    pipe = run.get("pipeline") or {}  # the SimPy pipeline model's summary, when it ran
    row.update({"latency_alone_s": pipe.get("latency_alone_s"),
                "frame_interval_s": pipe.get("frame_interval_s"),
                "bottleneck": pipe.get("bottleneck"),
                "energy_static_serial_bound_pj": e.get("static_serial_bound")})
    # the counted actions, then what the pipeline model adds (hop: spikes moved between cores)
    for a in list(ACTIONS) + sorted(set(run["counts"]) - set(ACTIONS)):
        row[f"count_{a}"] = run["counts"].get(a)
    return row


def base_row(point, grid, model_name, data_name, calib_name, images, ann_accuracy,
             ann_energy_pj, arithmetic) -> dict:
    """The columns every row has, refused or not: what the point is."""
    import json

    row = {"point": point.key, "index": point.index, "model": point.model,
           "model_name": model_name, "data": data_name, "calibration": calib_name,
           "images": images, "profile": point.profile, "coding": point.coding,
           "scheme": point.scheme, "params": json.dumps(dict(point.params), sort_keys=True)}
    row.update({f"param_{k}": dict(point.params).get(k) for k in all_param_keys()})
    for k in ("weight_bits", "state_bits", "frac_bits", "overflow", "round"):
        row[k] = getattr(arithmetic, k)
    row.update({"ann_accuracy": ann_accuracy, "ann_energy_pj": ann_energy_pj})
    return row


def all_param_keys() -> list[str]:
    """Every scheme's parameter names: one column each, empty where a scheme has no such key
    (no two schemes give one name different types)."""
    from ..schemes import schemes

    return sorted({p.name for s in schemes().values() for p in s.params})


def refused_row(point, grid, model_name, data_name, calib_name, images, ann_accuracy,
                ann_energy_pj, arithmetic, message: str) -> dict:
    row = base_row(point, grid, model_name, data_name, calib_name, images, ann_accuracy,
                   ann_energy_pj, arithmetic)
    row.update({"status": "refused", "message": message})
    return row

