"""Run coding schemes on a model and data: the ``runs`` entries of the JSON document (DESIGN §8).

This is the one entry point the command line needs; it knows no scheme by name.
What this issue fills: ``accuracy.float``, ``latency_steps``, ``steps_per_frame``, ``spikes``
and, in ``counts``, only ``spike_out_pos`` / ``spike_out_neg`` (mean per inference). The fixed-
point accuracy, the other counted actions, energy, latency in seconds, throughput and overflows
come with the bit-accurate core and the hardware pipeline, and are null until then.
"""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

from .calibrate import calibrate
from .data import Dataset
from .errors import UserError
from .graph import Graph
from .schemes import expand_codings, format_spec, get_scheme

PRECISIONS = ("float", "fixed", "both")


def run_codings(graph: Graph, data: Dataset, calib_data: Dataset, specs: list[str],
                precision: str | None = "float") -> list[dict[str, Any]]:
    """One DESIGN §8 ``runs`` entry per coding spec (``all`` expands to every scheme)."""
    precision = precision or "float"
    if precision not in PRECISIONS:
        raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, found '{precision}'")
    if precision != "float":
        raise UserError(f"--precision {precision}: fixed point comes with the bit-accurate core "
                        f"(next issue); use --precision float")
    codings = expand_codings(specs)
    scales_by_percentile: dict[float, dict[str, float]] = {}  # calibrate once per percentile
    runs = []
    for name, params in codings:
        scheme = get_scheme(name)
        q = params.get("percentile")
        scales = None
        if q is not None:
            if q not in scales_by_percentile:
                scales_by_percentile[q] = calibrate(graph, calib_data.x, q)
            scales = scales_by_percentile[q]
        snn = scheme.build(graph, calib_data.x, params, scales=scales)
        result = scheme.simulate(snn, data.x)
        per_image = result.counts.per_inference()
        latency, per_frame = scheme.timing(snn)
        runs.append({
            "coding": format_spec(name, params, only_changed=True),
            "params": dict(params),
            "accuracy": {"float": result.accuracy(data.y), "fixed": None},
            "latency_steps": int(latency),
            "steps_per_frame": int(per_frame),
            "spikes": {"pos": per_image["spike_out_pos"], "neg": per_image["spike_out_neg"]},
            "counts": {"spike_out_pos": per_image["spike_out_pos"],
                       "spike_out_neg": per_image["spike_out_neg"]},
            "energy_pj": None,
            "latency_s": None,
            "throughput_fps": None,
            "overflows": None,
        })
    return runs


def format_runs(runs: list[dict[str, Any]], ann_accuracy: float) -> str:
    """Terminal table (≤ 100 columns): SNN float accuracy next to the ANN's, timing, spikes."""
    rows = []
    for r in runs:
        acc = r["accuracy"]["float"]
        label = r["coding"].replace(":", ": ").replace(",", ", ")  # lets tabulate wrap at keys
        rows.append([label, f"{acc:.4f}", f"{ann_accuracy:.4f}",
                     f"{100 * (acc - ann_accuracy):+.2f}", r["latency_steps"], r["steps_per_frame"],
                     f"{r['spikes']['pos']:,.0f}", f"{r['spikes']['neg']:,.0f}"])
    return tabulate(rows, headers=["coding", "SNN acc", "ANN acc", "Δ pp", "latency\nsteps",
                                   "steps/\nframe", "spikes +\n/ image", "spikes −\n/ image"],
                    maxcolwidths=[24, None, None, None, None, None, None, None],
                    disable_numparse=True, colalign=("left",) + ("right",) * 7)
