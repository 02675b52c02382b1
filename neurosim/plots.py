"""The PNG figures of a report (matplotlib, Agg backend: no display needed).

energy_by_action.png    stacked bar per coding: dynamic energy per inference by counted action,
                        and the static energy beside it
energy_by_layer.png     stacked bar per coding: dynamic energy per inference by layer
accuracy_vs_latency.png fixed-point accuracy (float where no fixed run) against latency in
                        steps, one point per coding, the ANN's accuracy as a line
energy_vs_accuracy.png  energy per inference (log) against accuracy, one point per coding and
                        profile, the ANN's MAC energy on each profile as a line
spikes_over_time.png    spikes per image in each layer at each time step, one panel per coding
pipeline_gantt.png      busy intervals of each core over time (once the pipeline model gives
                        them)

Each file is rendered to memory and written whole (``report.write_atomic``).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

MAX_PANELS = 12
# every figure a report may hold (write_plots makes those that have data)
FIGURES = ("energy_by_action.png", "energy_by_layer.png", "accuracy_vs_latency.png",
           "energy_vs_accuracy.png", "spikes_over_time.png", "pipeline_gantt.png")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    from .report import write_atomic

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    write_atomic(path, buf.getvalue())
    return path


def _label(result, profile, run) -> str:
    return run["coding"] if len(result.profiles) == 1 else f"{run['coding']} @ {profile.name}"


def _priced(result):
    """The runs with an energy above zero (a profile may price every action 0 pJ: nothing to
    draw, and a log axis cannot show it)."""
    return [(p, r) for p in result.profiles for r in p.runs
            if r["energy_pj"] and r["energy_pj"]["total"] > 0]


def _stacked(result, key: str, title: str, path: Path, static: bool) -> Path | None:
    plt = _pyplot()
    items = _priced(result)
    if not items:
        return None
    parts = list(dict.fromkeys(k for _, r in items for k, v in r["energy_pj"][key].items()
                               if v > 0))
    statics = np.array([r["energy_pj"].get("static", 0.0) for _, r in items]) / 1e6
    if not parts and not (static and statics.any()):
        return None
    labels = [_label(result, p, r) for p, r in items]
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(items) + 1.8))
    left = np.zeros(len(items))
    cmap = plt.get_cmap("tab20")
    for i, part in enumerate(parts):
        vals = np.array([r["energy_pj"][key].get(part, 0.0) for _, r in items]) / 1e6
        ax.barh(labels, vals, left=left, color=cmap(i % 20), label=part)
        left += vals
    if static and statics.any():
        ax.barh(labels, statics, left=left, color="lightgrey", hatch="//", label="static")
    ax.invert_yaxis()
    ax.set_xlabel("µJ per inference")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, path)


def _accuracy(run) -> float | None:
    acc = run["accuracy"]
    return acc["fixed"] if acc["fixed"] is not None else acc["float"]


def _accuracy_vs_latency(result, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    from matplotlib.ticker import FuncFormatter

    points: dict[tuple, list[str]] = {}  # codings at one point share one label, not overprint
    for r in result.profiles[0].runs:  # steps and accuracy do not depend on prices
        acc = _accuracy(r)
        if acc is not None:
            points.setdefault((r.get("latency_steps_mean") or r["latency_steps"], acc),
                              []).append(r["coding"])
    for k, ((steps, acc), codings) in enumerate(sorted(points.items())):
        ax.scatter(steps, acc, s=30)
        # neighbours in latency alternate above and below their point: long labels of
        # nearby points do not run into each other
        ax.annotate("\n".join(codings), (steps, acc), fontsize=7, textcoords="offset points",
                    xytext=(4, 4) if k % 2 == 0 else (4, -6), va="bottom" if k % 2 == 0 else "top")
    ax.axhline(result.ann_accuracy, color="k", ls="--", lw=0.8, label="ANN")
    ax.set_xscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")  # 20, not 2×10^1
    ax.xaxis.set_major_formatter(plain)
    lo, hi = ax.get_xlim()
    # over less than a decade every minor tick is labelled (there may be no major one); over
    # more, only 2× and 5× a power of ten: all of them ran together ("60 70 8090 100", a probe)
    ax.xaxis.set_minor_formatter(plain if hi < 10 * lo else FuncFormatter(
        lambda v, _: f"{v:g}" if v > 0 and round(v / 10 ** math.floor(math.log10(v))) in (2, 5)
        else ""))
    ax.set_xlabel("latency (time steps to the result)")
    ax.set_ylabel("accuracy (fixed point)" if result.precision != "float" else "accuracy (float)")
    ax.set_title(f"{result.graph.name}: accuracy against latency")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _energy_vs_accuracy(result, path: Path) -> Path | None:
    plt = _pyplot()
    items = _priced(result)
    if not items:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    cmap = plt.get_cmap("tab10")
    for k, p in enumerate(result.profiles):
        color = cmap(k % 10)
        for q, r in items:
            if q is not p or _accuracy(r) is None:
                continue
            e = r["energy_pj"]["total"] / 1e6
            ax.scatter(_accuracy(r), e, color=color, s=30)
            ax.annotate(r["coding"], (_accuracy(r), e), fontsize=7, xytext=(4, 3),
                        textcoords="offset points")
        if p.ann_energy_pj > 0:
            ax.axhline(p.ann_energy_pj / 1e6, color=color, ls="--", lw=0.8,
                       label=f"ANN MACs on {p.name}")
        ax.scatter([], [], color=color, label=f"SNN on {p.name} (dynamic + static)")
    ax.set_yscale("log")
    ax.set_xlabel("accuracy (fixed point)")
    ax.set_ylabel("µJ per inference")
    ax.set_title(f"{result.graph.name}: energy against accuracy")
    ax.legend(fontsize=7)
    return _save(fig, path)


def _spikes_over_time(result, path: Path) -> Path | None:
    plt = _pyplot()
    traces = result.profiles[0].traces[:MAX_PANELS]
    if not traces:
        return None
    cols = min(3, len(traces))
    rows = -(-len(traces) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.9 * rows), squeeze=False)
    for ax, t in zip(axes.flat, traces):
        steps = np.arange(1, t.spikes_by_step.shape[1] + 1)
        for i, layer in enumerate(t.layers):
            if t.spikes_by_step[i].any():
                ax.plot(steps, t.spikes_by_step[i], lw=1, label=layer[-18:])
        ax.set_title(t.coding, fontsize=9)
        ax.set_xlabel("time step", fontsize=8)
        ax.set_ylabel("spikes per image", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(traces):]:
        ax.axis("off")
    fig.suptitle(f"{result.graph.name}: spikes per layer over time ({result.profiles[0].name})")
    fig.tight_layout()
    return _save(fig, path)


def _gantt(result, path: Path) -> Path | None:
    """Cores × time: each bar a core busy on a frame (from the pipeline model's intervals)."""
    plt = _pyplot()
    traces = [t for t in result.profiles[0].traces if t.gantt]
    if not traces:
        return None
    fig, axes = plt.subplots(len(traces), 1, figsize=(9, 2.2 * len(traces) + 0.6), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, t in zip(axes[:, 0], traces):
        cores = list(dict.fromkeys(iv[0] for iv in t.gantt))
        row = {c: i for i, c in enumerate(cores)}
        for core, frame, start, end in t.gantt:
            ax.barh(row[core], (end - start) * 1e6, left=start * 1e6, color=cmap(int(frame) % 10),
                    height=0.8)
        # at most ~24 labelled cores: a probe's 87 cores made the labels one black smear
        every = -(-len(cores) // 24)
        ax.set_yticks(range(0, len(cores), every), [str(c) for c in cores[::every]], fontsize=6)
        ax.invert_yaxis()  # the input's cores on top, the readout's at the bottom
        ax.set_title(f"{t.coding}: busy cores (colour = frame)", fontsize=9)
        ax.set_xlabel("µs")
    fig.tight_layout()
    return _save(fig, path)


def write_plots(result, directory: Path) -> list[Path]:
    """Every figure that has data, into ``directory`` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    by_action, by_layer, acc_latency, energy_acc, spikes, gantt = (directory / f for f in FIGURES)
    made = [
        _stacked(result, "by_action", f"{result.graph.name}: energy by action", by_action,
                 static=True),
        _stacked(result, "by_layer", f"{result.graph.name}: dynamic energy by layer", by_layer,
                 static=False),
        _accuracy_vs_latency(result, acc_latency),
        _energy_vs_accuracy(result, energy_acc),
        _spikes_over_time(result, spikes),
        _gantt(result, gantt),
    ]
    return [p for p in made if p is not None]
