"""Fixed point versus float (DESIGN §4): the same SNN at two precisions, side by side.

For each coding scheme: accuracy of both, agreement of their predictions, and per layer
the mean |decoded fixed − decoded float| / λ, the overflows and the weight bits really
used; then a sweep of ``weight_bits`` (4…12, the rest of the profile unchanged) with the
fixed accuracy per width.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from tabulate import tabulate

from .data import Dataset
from .graph import Graph
from .schemes import expand_codings, format_spec, get_scheme

SWEEP_BITS = tuple(range(4, 13))


def check(graph: Graph, data: Dataset, calib: Dataset, specs: list[str], profile,
          sweep: tuple[int, ...] = SWEEP_BITS, progress=None) -> list[dict[str, Any]]:
    results = []
    for name, params in expand_codings(specs):
        scheme = get_scheme(name)
        snn = scheme.build(graph, calib.x, params)
        flt = scheme.simulate(snn, data.x)
        fixed = scheme.quantize(snn, profile.arithmetic)
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
                           "frac_bits": fx.extra["frac_bits"].get(pop.name)})
        widths = []
        for bits in sweep:
            ar = dataclasses.replace(profile.arithmetic, weight_bits=bits,
                                     state_bits=max(profile.arithmetic.state_bits,
                                                    bits + profile.arithmetic.frac_bits + 2))
            r = scheme.simulate_fixed(scheme.quantize(snn, ar), data.x)
            widths.append({"weight_bits": bits, "state_bits": ar.state_bits,
                           "accuracy": r.accuracy(data.y),
                           "overflows": int(r.counts.total()["overflow"])})
            if progress:
                progress(f"{name}: weight_bits={bits}")
        results.append({
            "coding": format_spec(name, params, only_changed=True),
            "accuracy": {"float": flt.accuracy(data.y), "fixed": fx.accuracy(data.y)},
            "agreement": float(np.mean(flt.predictions() == fx.predictions())),
            "overflows": int(fx.counts.total()["overflow"]),
            "layers": layers,
            "weight_bits_sweep": widths,
        })
    return results


def _finite(v):
    return None if v is None or not np.isfinite(v) else float(v)


def format_check(results: list[dict[str, Any]], profile_name: str) -> str:
    out = []
    for r in results:
        a = r["accuracy"]
        out.append(f"{r['coding']} on {profile_name}: float {a['float']:.4f}, fixed {a['fixed']:.4f} "
                   f"({100 * (a['fixed'] - a['float']):+.2f} pp), predictions agree on "
                   f"{100 * r['agreement']:.1f}%, {r['overflows']:,} overflows")
        out.append(tabulate(
            [[_short(l["layer"]), l["kind"], f"{l['mean_abs_error_over_lambda']:.4f}",
              f"{l['overflows']:,}",
              "-" if l["weight_bits_used"] is None else f"{l['weight_bits_used']:.1f}",
              "-" if l["frac_bits"] is None else l["frac_bits"]]
             for l in r["layers"]],
            headers=["layer", "kind", "mean |fixed−float|/λ", "overflows", "weight bits used",
                     "frac bits"],
            disable_numparse=True, colalign=("left", "left", "right", "right", "right", "right")))
        out.append("")
        out.append(tabulate(
            [[w["weight_bits"], w["state_bits"], f"{w['accuracy']:.4f}",
              f"{100 * (w['accuracy'] - a['float']):+.2f}", f"{w['overflows']:,}"]
             for w in r["weight_bits_sweep"]],
            headers=["weight bits", "state bits", "fixed acc", "vs float pp", "overflows"],
            disable_numparse=True, colalign=("right",) * 5))
        out.append("")
    return "\n".join(out).rstrip()


def _short(name: str, width: int = 24) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1):]
