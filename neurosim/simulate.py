"""Run coding schemes on a model and data: the ``runs`` entries of the JSON document (DESIGN §8).

This is the one entry point the command line needs; it knows no scheme by name. A float-only
run fills ``accuracy.float``, the timing and the spike counts; a fixed run (bit-accurate core)
also fills ``accuracy.fixed``, every counted action, the energy on the profile, and from the
SimPy pipeline model (``add_pipeline_costs``) the latency, throughput, hops and static energy,
and the overflows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .calibrate import calibrate
from .counts import ACTION_INDEX
from .data import Dataset
from .energy import energy
from .errors import UserError
from .graph import Graph
from .schemes import ALL, expand_codings, format_spec, get_scheme, given_keys, parse_coding

PRECISIONS = ("float", "fixed", "both")


def run_codings(graph: Graph, data: Dataset, calib_data: Dataset, specs: list[str],
                precision: str | None = "float", profile=None,
                progress=None, seed: int | None = None,
                on_result=None, not_run: list | None = None) -> list[dict[str, Any]]:
    """One DESIGN §8 ``runs`` entry per coding spec (``all`` expands to every scheme).

    ``float`` runs the scheme's float reference simulator; ``fixed`` its bit-accurate core with
    the ``profile``'s arithmetic, whose counted actions are priced by the profile into energy
    and run time; ``both`` does both. Spikes and counts come from the fixed run when there is
    one (it counts every action; the float simulator counts spikes only). ``seed`` (--seed)
    sets the ``seed`` parameter of every coding that has one, except where a spec sets its own
    (``rate:input=poisson,seed=7``: the more specific wins). ``on_result(run, result, fixed)``,
    if given, receives each entry with the ``SimResult`` it came from (the fixed one when there
    is one) and the quantized network (None in float): the per-layer, per-step counts a report
    plots and the network the pipeline model places, which the JSON entry does not keep.

    ``not_run``: if a list, a coding this model or profile cannot take (its conversion or
    quantization refuses, e.g. a MaxPool or a register range that does not fit) is left out
    and appended to it as ``{"coding", "reason"}`` instead of stopping every other coding
    (``neurosim compare``); if None, that refusal is raised.
    """
    precision = precision or "float"
    if precision not in PRECISIONS:
        raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, found '{precision}'")
    if precision != "float" and profile is None:
        raise UserError(f"--precision {precision} needs a hardware profile (--hw)")
    codings = expand_codings(specs)
    if seed is not None:
        if seed < 0:
            raise UserError(f"--seed must be a non-negative integer, found {seed}")
        own = [parse_coding(s) for s in specs if s.strip() != ALL and "seed" in given_keys(s)]
        codings = [(n, {**p, "seed": seed} if "seed" in p and (n, p) not in own else p)
                   for n, p in codings]
    mapping = None
    if precision != "float":
        from .hw.mapping import map_layers
        from .report import layer_sizes

        mapping = map_layers(layer_sizes(graph), profile)
    scales_by_percentile: dict[float, dict[str, float]] = {}  # calibrate once per percentile
    # every coding is converted and quantized before any simulation runs: a bad setting (a
    # register range that does not fit) stops the command before minutes of work, not after
    prepared = []
    for name, params in codings:
        scheme = get_scheme(name)
        q = params.get("percentile")
        scales = None
        if q is not None:
            if q not in scales_by_percentile:
                scales_by_percentile[q] = calibrate(graph, calib_data.x, q)
            scales = scales_by_percentile[q]
        silent = silent_note(scales)
        try:
            snn = scheme.build(graph, calib_data.x, params, scales=scales)
            fixed = scheme.quantize(snn, profile.arithmetic) if precision != "float" else None
        except UserError as e:
            # a refusal on a network with a dead layer is often caused by its stand-in scale
            # (a probe: TSC asked for 57 state bits, blaming N): say so beside the refusal
            reason = f"{e}; {silent}" if silent else str(e)
            if not_run is None:
                raise UserError(reason) from None
            not_run.append({"coding": format_spec(name, params, only_changed=True),
                            "reason": reason})
            continue
        if silent:
            snn.warnings.append(f"coding '{name}': {silent}")
        prepared.append((name, params, scheme, snn, fixed))
    runs = []
    for name, params, scheme, snn, fixed in prepared:
        flt = fx = None
        if precision in ("float", "both"):
            flt = scheme.simulate(snn, data.x, progress=_labelled(progress, f"{name} float"))
        if fixed is not None:
            fx = scheme.simulate_fixed(fixed, data.x,
                                       progress=_labelled(progress, f"{name} fixed point"))
        run = run_entry(name, params, scheme, snn, fixed, flt, fx, data.y, profile, mapping)
        result = fx or flt
        if on_result is not None:
            on_result(run, result, fixed)
        runs.append(run)
    return runs


def _labelled(progress, label: str):
    """``progress(label, done, total)`` as the ``(done, total)`` callback a simulator calls."""
    return (lambda done, total: progress(label, done, total)) if progress else None


def silent_note(scales) -> str:
    """What to say of a calibration whose populations were 0 on every image ('' if none)."""
    silent = list(getattr(scales, "silent", ()))
    if not silent:
        return ""
    return (f"{', '.join(repr(n) for n in silent)} "
            f"{'is' if len(silent) == 1 else 'are'} 0 on every calibration image (a dead "
            f"layer, or calibration images unlike the data): "
            f"{'its' if len(silent) == 1 else 'their'} scale is a stand-in and the layers "
            f"after {'it' if len(silent) == 1 else 'them'} receive nothing from "
            f"{'it' if len(silent) == 1 else 'them'} but biases")


def conversion_warnings(snn, fixed) -> list[str]:
    """What a coding's conversion (``snn``) and its quantizer (``fixed``, None in float) warn
    of: narrowed weights, registers run anyway with --allow-overflow."""
    return (list(getattr(snn, "warnings", []) or [])
            + list(getattr(getattr(fixed, "info", None), "warnings", []) or []))


def run_entry(name: str, params: dict[str, Any], scheme, snn, fixed, flt, fx, labels: np.ndarray,
              profile, mapping=None) -> dict[str, Any]:
    """The DESIGN §8 ``runs`` entry of one coding from its simulation results: ``flt`` (float)
    and/or ``fx`` (fixed) ``SimResult`` on the images whose ``labels`` are given. A result
    merged from image shards (``neurosim.sweep``) gives the same entry as one whole run.
    ``mapping`` (``neurosim.hw.mapping.Mapping``) gives the cores per layer the pipeline model
    places; None maps the quantized network's own sizes."""
    warnings = conversion_warnings(snn, fixed)
    result = fx or flt
    per_image = result.counts.per_inference()
    latency, per_frame = scheme.timing(snn)
    decided = result.extra.get("decision_step")  # early decision: latency per image
    run = {
        "coding": format_spec(name, params, only_changed=True),
        "params": dict(params),
        "accuracy": {"float": flt.accuracy(labels) if flt else None,
                     "fixed": fx.accuracy(labels) if fx else None},
        "latency_steps": int(latency),
        "steps_per_frame": int(per_frame),
        **({} if decided is None else {"latency_steps_mean": float(np.mean(decided)),
                                      "latency_steps_percentiles": {
                                          f"p{q}": float(np.percentile(decided, q))
                                          for q in (10, 50, 90, 100)}}),
        "spikes": {"pos": per_image["spike_out_pos"], "neg": per_image["spike_out_neg"]},
        "counts": per_image if fx else {"spike_out_pos": per_image["spike_out_pos"],
                                        "spike_out_neg": per_image["spike_out_neg"]},
        "energy_pj": None,
        "latency_s": None,
        "throughput_fps": None,  # comes with the SimPy pipeline model (DESIGN §6)
        "overflows": per_image["overflow"] if fx else None,
        "warnings": warnings,
    }
    if fx:
        rep = energy(fx.counts, profile).per_inference()
        run["energy_pj"] = {"total": rep["total"], "dynamic": rep["dynamic"],
                            "static": rep["static"], "by_action": rep["by_action"],
                            "by_layer": rep["by_layer"]}
        run["latency_s"] = rep["latency_s"]
        add_pipeline_costs(run, fx, fixed, profile, int(per_frame), mapping)
        run["overflows_by_layer"] = fx.extra["overflow_by_layer"]
        run["overflows_total"] = int(fx.counts.total()["overflow"])
        hit = fx.counts.by_image[:, :, ACTION_INDEX["overflow"]].sum(axis=1) > 0 \
            if fx.counts.by_image is not None else np.zeros(0, bool)
        run["overflow_images"] = int(hit.sum())
        if run["overflows_total"]:
            acc = run["accuracy"]
            # what overflow did to the result: the float SNN, where it ran, says how much
            effect = ("the fixed-point results are not those of the float SNN, and its "
                      "accuracy may be degraded" if acc["float"] is None else
                      f"fixed {acc['fixed']:.4f} against float {acc['float']:.4f}: "
                      + ("the accuracy is degraded by overflow or rounding"
                         if acc["fixed"] < acc["float"] else
                         "no accuracy lost on these images, though the overflowed registers "
                         "hold wrong values (e.g. neurons driven far below threshold)"))
            warnings.append(
                f"{run['coding']}: {run['overflows_total']:,} register overflows "
                f"(saturated or wrapped) in {run['overflow_images']} of {len(labels)} images; "
                f"{effect} (per layer: "
                + ", ".join(f"{k} {v:,}" for k, v in run["overflows_by_layer"].items() if v)
                + ")")
    return run


def add_pipeline_costs(run: dict[str, Any], fx, network, profile, steps_per_frame: int,
                       mapping=None) -> None:
    """Latency, throughput, routing and static energy of a fixed run from the SimPy pipeline
    model (``neurosim.pipeline``), written into its ``runs`` entry in place.

    Replaces the first-order run time: ``latency_s`` is one frame's latency in steady state,
    ``throughput_fps`` the sustained rate, ``energy_pj.static`` static power × the
    steady-state time per frame (``static_serial_bound``: the same power × one frame with every
    layer's work of a step serial, the old upper bound). Hops of the real spikes between the
    placed layers become the action ``hop`` in ``counts`` and ``energy_pj.by_action`` (priced
    ``cores.hop_energy_pj``, charged to the sending layer) and are dynamic energy.
    ``pipeline`` keeps the model's summary; ``fx.extra["pipeline"]`` the ``PipelineResult``
    with its Gantt intervals. A network without projections (not an ``EventNetwork``) keeps
    the first-order figures."""
    if network is None or not hasattr(network, "p_src"):
        return
    from .pipeline import pipeline_for_run

    pipe = pipeline_for_run(fx, profile, mapping, network, steps_per_frame)
    fx.extra["pipeline"] = pipe
    e = run["energy_pj"]
    hop_pj = {layer: hops * profile.cores.hop_energy_pj
              for layer, hops in pipe.hops_per_frame.items()}
    run["counts"]["hop"] = float(sum(pipe.hops_per_frame.values()))
    e["by_action"]["hop"] = float(sum(hop_pj.values()))
    for layer, pj in hop_pj.items():
        e["by_layer"][layer] = e["by_layer"].get(layer, 0.0) + pj
    e["dynamic"] += e["by_action"]["hop"]
    e["static"] = pipe.static_pj_per_frame
    e["static_serial_bound"] = pipe.serial_static_pj_per_frame
    if pipe.static_pj_per_frame_gated is not None:
        e["static_power_gated"] = pipe.static_pj_per_frame_gated
    e["total"] = e["dynamic"] + e["static"]
    run["latency_s"] = pipe.latency_s
    run["throughput_fps"] = pipe.throughput_fps
    run["pipeline"] = pipe.to_dict()
    run["warnings"].extend(f"{run['coding']}: {w}" for w in pipe.warnings)
