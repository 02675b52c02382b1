"""Fixed point versus float (DESIGN §4): the same SNN at two precisions, side by side.

For each coding scheme: accuracy of both, agreement of their predictions, and per layer
the mean |decoded fixed − decoded float| / λ, the overflows and the weight bits really
used; then a sweep of ``weight_bits`` (4…12, the rest of the profile unchanged) with the
fixed accuracy per width.
"""

from __future__ import annotations

import dataclasses
import textwrap
from typing import Any

import numpy as np
from tabulate import tabulate

from . import ann
from .data import Dataset, scale_note
from .graph import Conv, Dense, Graph
from .report import format_warnings
from .simulate import conversion_warnings
from .schemes import expand_codings, format_spec, get_scheme, parse_coding

SWEEP_BITS = tuple(range(4, 13))
# a float SNN this far below the ANN on the same images is a warning: the conversion itself
# loses it (a scheme's limit, e.g. TSC's single emission on a net whose neurons fire in
# bursts, or too few steps), and no fixed-point setting will win it back
CONVERSION_LOSS_WARN = 0.10
# a fixed-point run this far below its own float SNN is a warning when at least
# FIXED_LOSS_IMAGES images make the difference (one or two flips near a decision boundary
# are noise on a small set): the table shows both columns, the warning says where to look
FIXED_LOSS_WARN, FIXED_LOSS_IMAGES = 0.03, 3


def warn_conversion_loss(entry: dict, ann_accuracy: float, images: int,
                         scale: str = "") -> None:
    """A warning in ``entry["warnings"]`` (a run's or a check's) when its float SNN loses
    more than CONVERSION_LOSS_WARN against the ANN on the same images (the tables show both;
    the warning says where the loss is). ``scale``: ``neurosim.data.scale_note``'s sentence,
    put first when the test and calibration images differ in scale."""
    flt = entry["accuracy"]["float"]
    if flt is not None and ann_accuracy - flt > CONVERSION_LOSS_WARN:
        advice = get_scheme(parse_coding(entry["coding"])[0]).loss_advice
        entry["warnings"].append(
            f"{entry['coding']}: the float SNN reaches {flt:.4f} against the ANN's "
            f"{ann_accuracy:.4f} on these {images} images: the conversion itself loses "
            f"{100 * (ann_accuracy - flt):.1f} points, before any fixed point ("
            + (f"{scale}; else " if scale else "") + f"{advice})")


def warn_fixed_loss(entry: dict, images: int) -> None:
    """A warning in a run's ``entry["warnings"]`` when its fixed-point accuracy falls more
    than FIXED_LOSS_WARN (and FIXED_LOSS_IMAGES images) below its float SNN's."""
    flt, fixed = entry["accuracy"]["float"], entry["accuracy"]["fixed"]
    if flt is None or fixed is None:
        return
    loss = flt - fixed
    if loss > FIXED_LOSS_WARN and round(loss * images) >= FIXED_LOSS_IMAGES:
        overflows = entry.get("overflows_total") or 0
        entry["warnings"].append(
            f"{entry['coding']}: fixed point reaches {fixed:.4f} against the float SNN's "
            f"{flt:.4f} on these {images} images ({100 * loss:.1f} points"
            + (", with no register overflow" if not overflows else "")
            + "); 'neurosim check' with this coding shows per layer where the two part and "
              "which weight width recovers it")


def check(graph: Graph, data: Dataset, calib: Dataset, specs: list[str], profile,
          sweep: tuple[int, ...] = SWEEP_BITS, progress=None) -> list[dict[str, Any]]:
    results = []
    ann_accuracy = ann.accuracy(graph, data.x, data.y)
    for name, params in expand_codings(specs):
        scheme = get_scheme(name)
        snn = scheme.build(graph, calib.x, params)
        flt = scheme.simulate(snn, data.x)
        fixed = scheme.quantize(snn, profile.arithmetic)
        warnings = conversion_warnings(snn, fixed)
        fx = scheme.simulate_fixed(fixed, data.x, trace=True)
        lams = {p.name: p.lam for p in snn.populations}
        layers = []
        for pop in snn.populations:
            if pop.name not in flt.decoded or pop.name not in fx.decoded:
                continue
            err = np.abs(fx.decoded[pop.name] - flt.decoded[pop.name]).mean() / lams[pop.name]
            layers.append({"layer": pop.name, "kind": pop.kind,
                           "mean_abs_error_over_lambda": float(err),
                           "overflows": int(fx.extra["overflow_by_layer"].get(pop.name, 0)),
                           "weight_bits_used": _finite(fx.extra["weight_bits_used"].get(pop.name)),
                           "frac_bits": fx.extra["frac_bits"].get(pop.name),
                           "register_high_over_theta": _finite(
                               fx.extra.get("register_high", {}).get(pop.name))})
            if "state_bits_needed" in fx.extra:  # None: the register overflowed
                layers[-1]["state_bits_needed"] = fx.extra["state_bits_needed"][pop.name]
            if "state_bits_worst_case" in fx.extra:  # the static range analysis
                layers[-1]["state_bits_worst_case"] = fx.extra["state_bits_worst_case"][pop.name]
        widths = []
        for bits in sweep:
            ar = dataclasses.replace(profile.arithmetic, weight_bits=bits,
                                     state_bits=max(profile.arithmetic.state_bits,
                                                    bits + profile.arithmetic.frac_bits + 2))
            r = scheme.simulate_fixed(scheme.quantize(snn, ar), data.x)
            widths.append({"weight_bits": bits, "state_bits": ar.state_bits,
                           "accuracy": r.accuracy(data.y),
                           "ann_quantized_accuracy": ann.accuracy(
                               quantized_weights(graph, bits, ar.weight_scale != "per_layer"),
                               data.x, data.y),
                           "overflows": int(r.counts.total()["overflow"])})
            if progress:
                progress(f"{name}: weight_bits={bits}")
        results.append({
            "coding": format_spec(name, params, only_changed=True),
            "accuracy": {"float": flt.accuracy(data.y), "fixed": fx.accuracy(data.y)},
            "ann_accuracy": ann_accuracy,
            "warnings": warnings,
            "agreement": float(np.mean(flt.predictions() == fx.predictions())),
            "overflows": int(fx.counts.total()["overflow"]),
            "layers": layers,
            "weight_bits_sweep": widths,
            "weight_bits_within_half_point": next(
                (w["weight_bits"] for w in widths
                 if all(v["accuracy"] >= flt.accuracy(data.y) - 0.005 for v in widths
                        if v["weight_bits"] >= w["weight_bits"])), None),
            "state_bits_needed": _most_needed(layers),
            "state_bits_worst_case": max((l["state_bits_worst_case"] for l in layers
                                          if "state_bits_worst_case" in l), default=None),
            # 'source->target': bits its largest stored weight uses (None: not reported)
            "weight_bits_by_projection": {k: _finite(v) for k, v in
                                          fx.extra.get("weight_bits_by_projection", {}).items()}
                                         or None,
        })
        warn_conversion_loss(results[-1], ann_accuracy, len(data), scale_note(data, calib))
    return results


def _most_needed(layers) -> int | str | None:
    """The largest state-bit need over the layers; 'overflow' if a register overflowed (it
    needed more than it had); None if the scheme does not report it."""
    needs = [l["state_bits_needed"] for l in layers if "state_bits_needed" in l]
    if not needs:
        return None
    if any(n is None for n in needs):
        return "overflow"
    return max(needs)


def quantized_weights(graph: Graph, bits: int, pow2: bool) -> Graph:
    """The ANN with every Conv/Dense weight rounded to ``bits`` signed bits, one scale per
    node (a power of two with ``pow2``), biases kept: weight quantization alone, without
    spikes, so a fixed-point loss can be split into its two causes."""
    top = (1 << (bits - 1)) - 1
    nodes = {}
    for name, node in graph.nodes.items():
        if isinstance(node, (Conv, Dense)) and np.any(node.weight):
            scale = top / np.abs(node.weight).max()
            if pow2:
                scale = 2.0 ** np.floor(np.log2(scale))
            node = dataclasses.replace(node, weight=np.round(node.weight * scale) / scale)
        nodes[name] = node
    return dataclasses.replace(graph, nodes=nodes)


def _finite(v):
    return None if v is None or not np.isfinite(v) else float(v)


def format_check(results: list[dict[str, Any]], profile_name: str) -> str:
    out = []
    for r in results:
        a = r["accuracy"]
        out.append(textwrap.fill(
            f"{r['coding']} on {profile_name}: float {a['float']:.4f}, fixed {a['fixed']:.4f} "
            f"({100 * (a['fixed'] - a['float']):+.2f} pp), predictions agree on "
            f"{100 * r['agreement']:.1f}%, {r['overflows']:,} overflows (ANN "
            f"{r['ann_accuracy']:.4f})", 100, subsequent_indent="  "))
        out += format_warnings([r])
        out.append(tabulate(
            [[_short(l["layer"]), l["kind"], f"{l['mean_abs_error_over_lambda']:.4f}",
              f"{l['overflows']:,}",
              "-" if l["weight_bits_used"] is None else f"{l['weight_bits_used']:.1f}",
              "-" if l["frac_bits"] is None else l["frac_bits"],
              _high(l["register_high_over_theta"]),
              "-" if "state_bits_needed" not in l else (
                  "overflow" if l["state_bits_needed"] is None else l["state_bits_needed"]),
              l.get("state_bits_worst_case", "-")]
             for l in r["layers"]],
            headers=["layer", "kind", "mean |fixed\n−float|/λ", "overflows", "weight\nbits used",
                     "frac\nbits", "high-water\n/θ", "bits\nneeded", "bits\nworst"],
            disable_numparse=True, colalign=("left", "left") + ("right",) * 7))
        out.append("")
        out.append(tabulate(
            [[w["weight_bits"], w["state_bits"], f"{w['accuracy']:.4f}",
              f"{100 * (w['accuracy'] - a['float']):+.2f}", f"{w['ann_quantized_accuracy']:.4f}",
              f"{w['overflows']:,}"]
             for w in r["weight_bits_sweep"]],
            headers=["weight bits", "state bits", "fixed acc", "vs float pp",
                     "ANN, same\nweight bits", "overflows"],
            disable_numparse=True, colalign=("right",) * 6))
        joins = _joins(r["weight_bits_by_projection"])
        if joins:
            out.append(textwrap.fill(
                "Weight bits per projection at layers fed by more than one: " + "; ".join(
                    f"{_short(k, 40)} {'-' if v is None else f'{v:.1f}'}" for k, v in joins), 100))
            out.append("")
        half = r["weight_bits_within_half_point"]
        need = r["state_bits_needed"]
        out.append(textwrap.fill(
            "For a chip designer: "
            + (f"{r['coding']} loses at most 0.5 points against float from {half}-bit weights on"
               if half else f"no swept weight width keeps {r['coding']} within 0.5 points of "
               f"float at that width and every wider one (up to "
               f"{max(w['weight_bits'] for w in r['weight_bits_sweep'])} bits)"
               if r["weight_bits_sweep"] else f"{r['coding']} was not swept over weight widths")
            + "; its registers need "
            + (f"{need} state bits at the weights' resolution (the largest high-water mark "
               f"above, fractional bits excluded)" if isinstance(need, int) else
               "more state bits than the profile has (they overflowed)" if need else
               "(not reported by this scheme) state bits")
            + (f" on this data, and {r['state_bits_worst_case']} to hold the worst case of "
               f"any input (the range analysis, 'bits worst' above)"
               if r.get("state_bits_worst_case") is not None else "")
            + ". The 'ANN, same weight bits' column is the ANN alone with its weights "
              "quantized the same way: a gap between it and float is weight quantization, "
              "the rest is spiking arithmetic.", 100))
        out.append("")
    return "\n".join(out).rstrip()


def _high(v: float | None) -> str:
    """A high-water mark in thresholds: whole numbers up to a million, then 3 digits and an
    exponent (a 62-bit register's 4,423,335,278,542,844 widened the table past 100 columns)."""
    if v is None:
        return "-"
    return f"{v:,.0f}" if v < 1e6 else f"{v:.3g}"


def _joins(by_projection: dict | None) -> list[tuple[str, float | None]]:
    """The projections into layers that have more than one (residual joins), in order."""
    if not by_projection:
        return []
    targets = [k.rsplit("->", 1)[-1] for k in by_projection]
    return [(k, v) for k, v, t in zip(by_projection, by_projection.values(), targets)
            if targets.count(t) > 1]


def _short(name: str, width: int = 24) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1):]
