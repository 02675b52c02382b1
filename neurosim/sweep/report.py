"""The sweep's report: Pareto fronts per model and profile, figures, cheapest good settings.

For each (model, profile) the points computed there are compared on fixed-point accuracy
(higher is better) against energy per inference (dynamic + static, lower is better) and
against latency per inference in seconds (the run entry's ``latency_s``: the pipeline model's
steady-state latency of one frame, lower is better). A point is on a front when no other point is at least as accurate and at least as
cheap, and strictly better in one of the two. For each scheme the report also names its
cheapest setting (by energy) whose fixed-point accuracy is within 1 point (0.01) of the ANN's
on the same images.
"""

from __future__ import annotations

import io
import re
import textwrap
from pathlib import Path

ENERGY = "energy_total_pj"
LATENCY = "latency_s"
WITHIN = 0.01  # "within 1 point of the ANN": one percentage point of accuracy


def pareto_front(rows: list[dict], cost: str) -> list[dict]:
    """The rows no other row dominates on (accuracy_fixed up, ``cost`` down), by cost."""
    front = []
    for r in rows:
        dominated = any(
            o is not r and o["accuracy_fixed"] >= r["accuracy_fixed"] and o[cost] <= r[cost]
            and (o["accuracy_fixed"] > r["accuracy_fixed"] or o[cost] < r[cost])
            for o in rows)
        if not dominated:
            front.append(r)
    return sorted(front, key=lambda r: (r[cost], -r["accuracy_fixed"], r["index"]))


def cheapest_within(rows: list[dict], ann_accuracy: float) -> dict | None:
    good = [r for r in rows if r["accuracy_fixed"] >= ann_accuracy - WITHIN - 1e-12]
    return min(good, key=lambda r: (r[ENERGY], r["index"])) if good else None


def _unfit_reason(message: str) -> str:
    """The pipeline model's does-not-fit sentence out of a row's joined warnings."""
    start = message.find("the network does not fit")
    return message[start:].split(" (the mapping")[0] if start >= 0 else message


def _usable(r: dict) -> bool:
    return r["status"] == "ok" and r.get("accuracy_fixed") is not None \
        and r.get(ENERGY) is not None and r.get(LATENCY) is not None and not _overflowed(r)


def _overflowed(r: dict) -> bool:
    """A point run with ``allow_overflow`` whose registers saturated or wrapped: its numbers
    are not the arithmetic the point names, so it is on no front and listed apart."""
    return bool(r.get("overflows_total"))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def _energy(pj: float) -> str:
    return f"{pj / 1e6:.3f} µJ"


def _latency(s: float) -> str:
    return f"{s * 1e6:.1f} µs" if s < 1e-2 else f"{s * 1e3:.1f} ms"


def _figure(rows, fronts, model, profile, ann_accuracy) -> bytes:
    from ..plots import _pyplot

    plt = _pyplot()
    from matplotlib.ticker import NullFormatter
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    schemes = sorted({r["scheme"] for r in rows})
    colours = {s: plt.cm.tab10(i % 10) for i, s in enumerate(schemes)}
    for ax, cost, label, scale in ((axes[0], ENERGY, "energy per inference (µJ)", 1e-6),
                                   (axes[1], LATENCY, "latency per inference (µs)", 1e6)):
        for s in schemes:
            mine = [r for r in rows if r["scheme"] == s]
            ax.scatter([r[cost] * scale for r in mine], [r["accuracy_fixed"] for r in mine],
                       color=colours[s], label=s, alpha=0.6, s=22)
        front = fronts[cost]
        ax.plot([r[cost] * scale for r in front], [r["accuracy_fixed"] for r in front],
                color="black", lw=1.2, drawstyle="steps-post", zorder=3)
        ax.scatter([r[cost] * scale for r in front], [r["accuracy_fixed"] for r in front],
                   facecolors="none", edgecolors="black", s=80, lw=1.4, zorder=4,
                   label="Pareto front")
        ax.axhline(ann_accuracy, color="grey", ls="--", lw=0.8, label="ANN")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks overlap
        ax.set_xlabel(label)
        ax.set_ylabel("fixed-point accuracy")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{model} on {profile}: every point, the front circled", fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def write_report(table, out: Path, grid_name: str) -> list[Path]:
    """report.md and one figure per (model, profile) in ``out``; returns the paths written."""
    from ..report import write_atomic

    out = Path(out)
    rows = table.to_pylist() if table is not None else []
    written = []
    intro = (f"{len(rows)} points; every number below is from this sweep's table "
             f"(`sweep.parquet`, `sweep.csv`). Energy is per inference, dynamic + static "
             f"(the profile's static power over the pipeline model's steady-state time per "
             f"frame); latency is the pipeline model's latency of one frame in steady state. "
             f"Accuracy is the bit-accurate fixed-point model's, on the same images as the "
             f"ANN's.")
    lines = [f"# Sweep: {grid_name}", "", textwrap.fill(intro, 100), ""]
    refused = [r for r in rows if r["status"] == "refused"]
    unfit = [r for r in rows if r["status"] == "does_not_fit"]
    overflowed = [r for r in rows if r["status"] == "ok" and _overflowed(r)]
    groups: dict = {}
    for r in rows:
        if _usable(r):
            groups.setdefault((r["model"], r["profile"]), []).append(r)
    for (model, profile), mine in groups.items():
        ann = mine[0]["ann_accuracy"]
        fronts = {ENERGY: pareto_front(mine, ENERGY), LATENCY: pareto_front(mine, LATENCY)}
        name = f"pareto_{_slug(model)}_{_slug(profile)}.png"
        write_atomic(out / name, _figure(mine, fronts, model, profile, ann))
        written.append(out / name)
        lines += [f"## {model} on {profile}", "",
                  f"ANN accuracy {ann:.4f} on {mine[0]['images']} images "
                  f"({mine[0]['data']}); ANN MAC energy {_energy(mine[0]['ann_energy_pj'])}; "
                  f"{len(mine)} points.", "", f"![Pareto fronts]({name})", "",
                  "Pareto front, fixed accuracy vs energy:", "",
                  "| coding | bits w/s | fixed acc | energy | latency | steps |",
                  "|---|---|---:|---:|---:|---:|"]
        lines += [_front_line(r) for r in fronts[ENERGY]]
        lines += ["", "Pareto front, fixed accuracy vs latency:", "",
                  "| coding | bits w/s | fixed acc | energy | latency | steps |",
                  "|---|---|---:|---:|---:|---:|"]
        lines += [_front_line(r) for r in fronts[LATENCY]]
        lines += ["", f"Each scheme's cheapest setting within 1 point of the ANN "
                      f"(fixed accuracy ≥ {ann - WITHIN:.4f}):", "",
                  "| scheme | cheapest setting | fixed acc | energy | latency |",
                  "|---|---|---:|---:|---:|"]
        for scheme in sorted({r["scheme"] for r in mine}):
            theirs = [r for r in mine if r["scheme"] == scheme]
            best = cheapest_within(theirs, ann)
            if best is None:
                top = max(r["accuracy_fixed"] for r in theirs)
                lines.append(f"| {scheme} | none of {len(theirs)} (best fixed acc "
                             f"{top:.4f}) | | | |")
            else:
                lines.append(f"| {scheme} | `{best['coding']}` {_bits(best)} | "
                             f"{best['accuracy_fixed']:.4f} | {_energy(best[ENERGY])} | "
                             f"{_latency(best[LATENCY])} |")
        lines.append("")
    if refused:
        lines += ["## Refused points", "",
                  textwrap.fill("Not run (a register range that does not fit the profile's "
                                "state bits; `allow_overflow: true` in the grid runs them with "
                                "overflow counted):", 100), ""]
        for r in refused:
            first = r["message"].splitlines()[0] if r["message"] else ""
            lines.append(textwrap.fill(f"- {r['model']} on {r['profile']} {_bits(r)}, "
                                       f"`{r['coding']}`: {first}", 100,
                                       subsequent_indent="  ", break_on_hyphens=False))
        lines.append("")
    if unfit:
        lines += ["## Points whose network does not fit the chip", "",
                  textwrap.fill("Run, but on no Pareto front: their latency and static energy "
                                "are those of a chip with enough cores:", 100), ""]
        lines += [textwrap.fill(f"- {r['model']} on {r['profile']} {_bits(r)}, `{r['coding']}`: "
                                f"{_unfit_reason(r['message'])}", 100, subsequent_indent="  ",
                                break_on_hyphens=False) for r in unfit]
        lines.append("")
    if overflowed:
        lines += ["## Points whose registers overflowed", "",
                  textwrap.fill("Run with `allow_overflow: true`, their registers saturated or "
                                "wrapped: on no Pareto front and in no cheapest-setting table "
                                "(their accuracy is not that of the arithmetic they name; the "
                                "quantizer may also have taken weight bits away, see `message` "
                                "in the table):", 100), ""]
        lines += [textwrap.fill(f"- {r['model']} on {r['profile']} {_bits(r)}, `{r['coding']}`: "
                                f"fixed acc {r['accuracy_fixed']:.4f}, {r['overflows']:g} "
                                f"overflows per image on {r['overflow_images']} of "
                                f"{r['images']} images", 100, subsequent_indent="  ",
                                break_on_hyphens=False) for r in overflowed]
        lines.append("")
    write_atomic(out / "report.md", "\n".join(lines))
    written.append(out / "report.md")
    # a figure of an earlier sweep into this folder whose (model, profile) this one has not
    # is not this report's: it goes (a probe saw one left beside a smaller grid's report)
    for old in out.glob("pareto_*.png"):
        if old not in written:
            old.unlink(missing_ok=True)
    return written


def _bits(r: dict) -> str:
    return f"{r['weight_bits']}/{r['state_bits']}"


def _front_line(r: dict) -> str:
    return (f"| `{r['coding']}` | {_bits(r)} | {r['accuracy_fixed']:.4f} | {_energy(r[ENERGY])} "
            f"| {_latency(r[LATENCY])} | {r['latency_steps_mean']:g} |")
