"""The five codings side by side on the bundled models: reports/coding_comparison.md.

    python -m neurosim.repro.codings        # a few minutes; writes the report and two PNGs

For each model and scheme, the main step parameter is swept in fixed point on loihi_like (all
360 test images); the report gives the smallest value that reaches within 1 point of the ANN
and every cost at that point, and plots accuracy against latency and energy against accuracy
with one curve per scheme. Every number is computed by this run.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..data import digits
from ..energy import ann_energy, ann_energy_fair
from ..hw.profile import load_profile
from ..onnx_import import load_onnx
from ..simulate import run_codings

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("digits_cnn", "digits_resnet")
PROFILE = "loihi_like"
# scheme -> (main step parameter, values swept, other settings of the spec)
SWEEPS = {
    "sws": ("Tc", (2, 3, 4, 6, 8), ""),
    "rate": ("T", (16, 32, 64, 128, 256), ""),
    "ttfs": ("T", (4, 8, 16, 32), ""),
    "tsc": ("N", (16, 32, 64, 128), ""),
    "tsc:emission=switch": ("N", (16, 32, 64, 128, 256), ""),
    "phase": ("periods", (3, 4, 6, 8), ""),
}
# TSC ``single``'s losses are shown per layer at this N, in float, on this many test images
EMISSION_N, EMISSION_IMAGES = 64, 100


def _spec(scheme: str, key: str, value) -> str:
    return f"{scheme}{',' if ':' in scheme else ':'}{key}={value}"


def sweep(model: str, profile, test, calib) -> dict:
    graph = load_onnx(ROOT / "neurosim" / "models" / f"{model}.onnx")
    from ..ann import accuracy

    out = {"ann": accuracy(graph, test.x, test.y),
           "ann_energy_pj": ann_energy(graph.macs(), profile),
           "ann_fair_pj": ann_energy_fair(graph, profile)["total_pj"], "schemes": {},
           "emission": _emission(graph, test, calib)}
    for scheme, (key, values, _) in SWEEPS.items():
        runs = run_codings(graph, test, calib, [_spec(scheme, key, v) for v in values], "fixed",
                           profile)
        out["schemes"][scheme] = [dict(run, value=v) for v, run in zip(values, runs)]
        print(f"{model} {scheme}: " + ", ".join(f"{key}={r['value']} {r['accuracy']['fixed']:.4f}"
                                               for r in out["schemes"][scheme]), file=sys.stderr)
    return out


def _emission(graph, test, calib) -> dict:
    """``emission_stats`` of TSC ``single`` at EMISSION_N: what each hidden layer's single
    on-period carries of its internal spike train (float, traced)."""
    from ..schemes import get_scheme, parse_coding
    from ..schemes.tsc import emission_stats, simulate

    name, params = parse_coding(f"tsc:N={EMISSION_N}")
    snn = get_scheme(name).build(graph, calib.x, params)
    return emission_stats(simulate(snn, test.x[:EMISSION_IMAGES], trace=True))


def _emission_table(stats: dict) -> list[str]:
    head = ["layer", "neurons firing", "internal spikes k", "on-steps sent", "one run",
            "carried Σon/Σk", "mean |on − k|/(N−1)"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for layer, s in stats.items():
        lines.append(f"| {layer} | {s['firing']:.1%} | {s['mean_k']:.2f} | {s['mean_on']:.2f} | "
                     f"{s['one_run']:.1%} | {s['carried']:.1%} | {s['mean_abs_error']:.4f} |")
    return lines


def _cheapest(runs: list[dict], ann: float):
    return next((r for r in runs if r["accuracy"]["fixed"] >= ann - 0.01), None)


def _row(scheme: str, key: str, r: dict, ann_pj: float) -> list[str]:
    c, e = r["counts"], r["energy_pj"]
    return [scheme, f"{key}={r['value']}", f"{r['accuracy']['fixed']:.4f}",
            str(r["latency_steps"]), f"{r['spikes']['pos'] + r['spikes']['neg']:,.0f}",
            f"{c['synop']:,.0f}", f"{c['synop'] + c['weight_read']:,.0f}", f"{c['add']:,.0f}",
            f"{c['shift']:,.0f}", f"{e['dynamic'] / 1e6:.3f}", f"{e['total'] / 1e6:.3f}",
            f"{e['dynamic'] / ann_pj:.1f}×"]


def _plots(results: dict, out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    for what, xlabel, fname in (("latency", "latency (time steps)", "codings_accuracy_vs_latency.png"),
                                ("energy", "dynamic energy per inference on loihi_like (µJ, log)",
                                 "codings_energy_vs_accuracy.png")):
        fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.2), squeeze=False)
        for ax, (model, res) in zip(axes[0], results.items()):
            for scheme, runs in res["schemes"].items():
                acc = [r["accuracy"]["fixed"] for r in runs]
                if what == "latency":
                    ax.plot([r["latency_steps"] for r in runs], acc, "o-", label=scheme)
                else:
                    ax.plot([r["energy_pj"]["dynamic"] / 1e6 for r in runs], acc, "o-", label=scheme)
            ax.axhline(res["ann"], color="k", ls="--", lw=0.8, label="ANN")
            ax.axhline(res["ann"] - 0.01, color="k", ls=":", lw=0.8, label="ANN − 1 pt")
            ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("fixed-point accuracy")
            ax.set_ylim(max(0.0, res["ann"] - 0.25), 1.0)
            ax.set_title(model)
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / fname, dpi=110)
        plt.close(fig)
        names.append(fname)
    return names


def main() -> None:
    profile = load_profile(PROFILE)
    test, calib = digits("test"), digits("calibration")
    results = {m: sweep(m, profile, test, calib) for m in MODELS}
    out_dir = ROOT / "reports"
    plots = _plots(results, out_dir)
    lines = ["# The five codings side by side", "",
             "Written by `python -m neurosim.repro.codings`; every number comes from that run. "
             f"Fixed point on {PROFILE} (8-bit weights, 24-bit state), the 360 digits test images, "
             "each scheme at its defaults except the swept parameter. Costs are means per "
             "inference. *µJ dyn* prices the counted actions; *µJ total* adds static power "
             "over the frame interval of the chip's pipeline model (`neurosim/pipeline.py`); "
             "*dyn vs ANN* sets the dynamic energy against the ANN's on the same profile, "
             "MACs plus weight and activation memory traffic under the profile's stated reuse "
             "(`ann_baseline`).", ""]
    head = ["scheme", "setting", "fixed acc", "latency", "spikes", "synops", "weight reads",
            "adds", "shifts", "µJ dyn", "µJ total", "dyn vs ANN"]
    for model, res in results.items():
        lines += [f"## {model} (ANN {res['ann']:.4f}; {res['ann_fair_pj'] / 1e6:.4f} µJ per "
                  f"inference with its memory traffic, {res['ann_energy_pj'] / 1e6:.4f} µJ in "
                  f"MACs alone)", "",
                  "The smallest swept value within 1 point of the ANN, and its costs:", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for scheme, runs in res["schemes"].items():
            key = SWEEPS[scheme][0]
            best = _cheapest(runs, res["ann"])
            if best is None:
                top = max(runs, key=lambda r: r["accuracy"]["fixed"])
                lines.append(f"| {scheme} | none of {key}={[r['value'] for r in runs]} | best "
                             f"{top['accuracy']['fixed']:.4f} at {key}={top['value']} |"
                             + " |" * (len(head) - 3))
            else:
                lines.append("| " + " | ".join(_row(scheme, key, best, res["ann_fair_pj"])) + " |")
        lines += ["", "Every swept point (fixed accuracy / latency in steps / µJ dynamic):", ""]
        for scheme, runs in res["schemes"].items():
            key = SWEEPS[scheme][0]
            lines.append(f"- {scheme}: " + "; ".join(
                f"{key}={r['value']}: {r['accuracy']['fixed']:.4f} / {r['latency_steps']} / "
                f"{r['energy_pj']['dynamic'] / 1e6:.3f}" for r in runs))
        lines += ["", f"Why `tsc` (`emission=single`) falls short: per hidden layer at N={EMISSION_N}, "
                  f"float, the first {EMISSION_IMAGES} test images (`emission_stats` in "
                  "`neurosim/schemes/tsc.py`). A neuron's internal soft-reset train fires k times; "
                  "`single` sends one on-period, its first run of consecutive internal spikes, "
                  "so the next layer receives `on` steps of current instead of k. *Carried* is "
                  "Σon/Σk over the neurons; *one run* the share of firing neurons for which "
                  "`single` is exact.", ""]
        lines += _emission_table(res["emission"])
        lines.append("")
    lines += [f"![accuracy versus latency]({plots[0]})", "",
              f"![energy versus accuracy]({plots[1]})", "",
              "Reading the table:", "",
              "- `tsc` with its default `emission=single` (the paper's text: one +1 and one −1 per "
              "neuron) carries only each neuron's first run of internal spikes, so most of the "
              "signal is lost on these networks; `tsc:emission=switch` sends every switch of the "
              "internal train and keeps the accuracy at many more events (see `emission_stats` "
              "in `neurosim/schemes/tsc.py`, the per-layer tables above and the README's TSC "
              "section).",
              "- Energies are on loihi_like, where a state read/write per neuron and step is "
              "priced like a synaptic operation's share: schemes that touch every neuron every "
              "step for many steps (rate, phase) pay for it even when few spikes flow.",
              "- Static energy is the profile's static power over the pipeline's frame interval "
              "(the steps between two frames, each as long as its busiest core's work plus, on "
              "loihi_like, a 465 ns barrier): it outweighs the dynamic energy here, most for "
              "schemes with many steps per frame and much work per step (rate, phase); TTFS, "
              "whose frames follow each other every window, pays least.", ""]
    (out_dir / "coding_comparison.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
