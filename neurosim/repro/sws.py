"""Regenerate ``reports/sws_reproduction.md`` and its plots: SWS / CSS paper claims, measured.

    python -m neurosim.repro.sws [--out reports]

Everything is computed here, by this run, from the bundled digits models and data (the float
SNN simulator of ``neurosim.schemes.sws``). Takes a few minutes on two cores.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from .. import ann
from ..calibrate import calibrate, population_values
from ..data import digits
from ..graph import populations
from ..onnx_import import load_onnx
from ..schemes import parse_coding
from ..schemes.sws import SCHEME, encode, run_neuron

COMMAND = "python -m neurosim.repro.sws"
MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
FIXTURES_DIR = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
BUNDLED = ("digits_mlp", "digits_cnn", "digits_resnet")
ABLATED = ("digits_cnn", "digits_resnet")
ABLATION = (((1.0, 0), "Vth=θ, Ts=0", "≈ chance (~10%)"),
            ((0.5, 0), "Vth=θ/2, Ts=0", "35.41%"),
            ((1.0, 2), "Vth=θ, Ts=2", "84.21%"),
            ((0.5, 2), "Vth=θ/2, Ts=2", "95.68%"))
SWEEP_TC = tuple(range(2, 13))
SWEEP_TS = (0, 1, 2)
SWEEP_BETA = (1.5, 2.0)
THEOREM2_BETAS = (1.25, 1.5, 2.0, 3.0, 3.5, 4.0)


def _params(**overrides) -> dict:
    """SWS parameters as the SWS paper runs them: its own `current` encoder (eq. 9) unless a
    section asks for another (neurosim's default is `potential`)."""
    overrides.setdefault("encoder", "current")
    spec = "sws:" + ",".join(f"{k}={v}" for k, v in overrides.items())
    return parse_coding(spec)[1]


def _table(headers, rows) -> str:
    def cell(c):
        return str(c).replace("|", "\\|")  # a bare | would end the markdown cell

    lines = ["| " + " | ".join(map(cell, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines)


class Context:
    """Models, data and calibration, loaded once."""

    def __init__(self):
        self.test, self.calib = digits("test"), digits("calibration")
        self.graphs = {n: load_onnx(MODELS_DIR / f"{n}.onnx") for n in BUNDLED}
        self.scales = {n: calibrate(g, self.calib.x) for n, g in self.graphs.items()}
        self.ann_acc = {n: ann.accuracy(g, self.test.x, self.test.y) for n, g in self.graphs.items()}

    def run(self, model: str, x=None, **overrides):
        net = SCHEME.build(self.graphs[model], self.calib.x, _params(**overrides),
                           scales=self.scales[model])
        return net, SCHEME.simulate(net, self.test.x if x is None else x)


def hidden_residuals(net, result, active=None) -> np.ndarray:
    """|residual| / θ after dividing by β^Ts, over all TSA neurons (or where ``active``)."""
    parts = []
    for pop in net.populations:
        if pop.kind == "hidden":
            r = np.abs(result.extra["residual"][pop.name])
            parts.append(r[active[pop.name] > 0] if active is not None else r.ravel())
    return np.concatenate(parts)


# --------------------------------------------------------------------------- sections

def section_toy() -> str:
    z = np.array([[0.0], [2.0]])  # two inputs, w = 1, both fire at t = 2: current 2 in step 2
    s_a, d_a, r_a = run_neuron(z, Tc=2, Ts=0, beta=2.0, threshold_ratio=1.0, negative_spikes=False)
    s_b, d_b, r_b = run_neuron(z, Tc=2, Ts=1, beta=2.0)
    rows = [["amplified IF: Vth=θ, no negative spikes, Ts=0", s_a[:, 0].tolist(), f"{d_a[0]:g}",
             f"{r_a[0]:g}", "encodes 1, leaves half (1) unencoded"],
            ["TSA: Vth=θβ/2, ±spikes, Ts=1", s_b[:, 0].tolist(), f"{d_b[0]:g}", f"{r_b[0]:g}",
             "desired: a spike worth 2"]]
    return ("## 1. CSS temporal-coupling example (CSS §4.2.1)\n\n"
            "Two input neurons (w = 1, b = 0) both fire at t = 2; β = 2, T = 2, θ = 1; the ideal "
            "output value is 2.\n\n"
            + _table(["neuron", "output spikes (window steps 1, 2)", "decoded", "residual / θ",
                      "paper"], rows) + "\n")


def section_theorem2(ctx: Context) -> str:
    rows = []
    for beta in THEOREM2_BETAS:
        worst = {"potential": 0.0, "current": 0.0}
        for enc in worst:
            for tc in range(1, 13):
                top = sum(beta ** k for k in range(tc))
                a = np.linspace(0.0, top, 4001, endpoint=False)
                _, decoded, _ = encode(a, tc, beta, enc)
                worst[enc] = max(worst[enc], float(np.abs(decoded - a).max()))
        pix = {}
        for enc in worst:
            top = sum(beta ** k for k in range(8))
            pixels = ctx.test.x.ravel() * top  # λ0 = 1 (the largest pixel): θ0 units
            _, decoded, _ = encode(pixels, 8, beta, enc)
            err = np.abs(decoded - pixels)
            pix[enc] = f"{err.max():.3f} / {100 * np.mean(err >= 1):.1f}%"
        rows.append([f"{beta:g}", f"{worst['potential']:.4f}", "yes" if worst["potential"] < 1 else "**no**",
                     f"{worst['current']:.3f}", pix["potential"], pix["current"]])
    return ("## 2. CSS Theorem 2: the `potential` encoder\n\n"
            "Paper: with u(0) = a/β^T and β ≤ 2, every 0 ≤ a < Σθβ^k is encoded with error below θ.\n"
            "Measured: max |decoded − a| / θ over 4000 evenly spaced a in [0, Σβ^k) for each "
            "Tc = 1…12 (threshold θ/2, negative spikes). For comparison the `current` encoder "
            "(SWS eq. 9, constant input for Tc steps, no silent period), and both encoders on the "
            "digits test pixels at Tc = 8 (max error / θ, share of pixels with error ≥ θ).\n\n"
            + _table(["β", "potential: max err/θ", "< θ ?", "current: max err/θ",
                      "digits Tc=8 potential", "digits Tc=8 current"], rows)
            + "\n\nThe theorem holds for β ≤ 2 as claimed; with the threshold at θ/2 the measured "
              "bound is θ/2, and it keeps holding up to β = 3 (an induction on |u| ≤ θ/2: "
              "β·θ/2 − θ ≤ θ/2 iff β ≤ 3), failing beyond. The `current` encoder is *not* covered "
              "by the theorem and shows temporal coupling of its own: a constant input adds "
              "low-order carries that the Ts = 0 encoder cannot take back in time, so some pixel "
              "values are off by many θ.\n")


def section_latency(ctx: Context) -> str:
    rows = []
    for model in BUNDLED:
        for tc, ts in ((8, 2), (4, 1), (6, 0)):
            net, res = ctx.run(model, Tc=tc, Ts=ts)
            rows.append([model, tc, ts, net.tsa_layers, tc + ts * net.tsa_layers,
                         res.extra["readout_last_input_step"], res.counts.n_steps,
                         net.steps_per_frame])
    return ("## 3. Latency T_inf = Tc + Ts·L (SWS eq. 6)\n\n"
            "L = TSA layers on the longest path (residual shortcuts are delayed by FIFOs to the "
            "target's window and add no latency). *Measured* = the last step in which any spike "
            "reached the readout on the 360 test images; *steps run* = length of the simulation "
            "(the readout's integration window closes then).\n\n"
            + _table(["model", "Tc", "Ts", "L", "formula Tc+Ts·L", "measured last input step",
                      "steps run", "steps / frame"], rows) + "\n")


def section_accuracy(ctx: Context) -> str:
    rows = []
    for model in BUNDLED:
        for enc in ("current", "potential"):
            net, res = ctx.run(model, Tc=8, Ts=2, beta=2, encoder=enc)
            sp = res.counts.per_inference()
            acc = res.accuracy(ctx.test.y)
            rows.append([model, enc, f"{ctx.ann_acc[model]:.4f}", f"{acc:.4f}",
                         f"{100 * (acc - ctx.ann_acc[model]):+.2f}", net.latency_steps,
                         f"{sp['spike_out_pos']:.0f}", f"{sp['spike_out_neg']:.0f}"])
    return ("## 4. Accuracy at Tc = 8, Ts = 2, β = 2 (SWS Table 2 setting)\n\n"
            "Paper: SWS with Tc = 8, Ts = 2 loses 0.04–0.70 pp against the ANN on CIFAR-10 / "
            "ImageNet (SWS Table 2, 8-bit QAT networks). Here: float ANNs, percentile 99.99 calibration, 360 "
            "test images, spikes = mean per image over all layers (encoder included).\n\n"
            + _table(["model", "encoder", "ANN acc", "SNN acc", "Δ pp", "latency", "spikes +",
                      "spikes −"], rows) + "\n")


def section_ablation(ctx: Context, out: Path) -> str:
    rows, hist = [], {}
    for model in ABLATED:
        active = population_values(ctx.graphs[model], ctx.test.x)
        for (ratio, ts), label, paper in ABLATION:
            net, res = ctx.run(model, Tc=8, Ts=ts, beta=2, threshold_ratio=ratio)
            r_all = hidden_residuals(net, res)
            r_act = hidden_residuals(net, res, active)
            hist[model, label] = r_all
            rows.append([model, label, f"{res.accuracy(ctx.test.y):.4f}", paper,
                         f"{r_all.mean():.3f}", f"{np.median(r_act):.3f}",
                         f"{np.percentile(r_all, 99):.2f}", f"{100 * np.mean(r_all < 1):.2f}%"])
    _plot_ablation(hist, out / "sws_ablation_residuals.png")
    return ("## 5. Ablation: lowered threshold and silent period (SWS §4.4, Fig. 5)\n\n"
            "Paper (ResNet-18, CIFAR-10): accuracy (Vth=θ, Ts=0) almost random; lowering Vth "
            "→ 35.41%, adding Ts=2 → 84.21%, both → 95.68%. Residuals (|u|/β^Ts in units of θ): "
            "lowering Vth moves them from ≈0.5θ to ≈0.25θ; the silent period concentrates them "
            "further. Here: Tc = 8, β = 2, 360 test images; residual statistics over all TSA "
            "neurons (median over neurons whose ANN activation is > 0, i.e. the ones that encode "
            "something; inactive TSA-ReLU neurons mostly end at exactly 0).\n\n"
            + _table(["model", "setting", "SNN acc", "paper acc", "mean |r|/θ",
                      "median |r|/θ (active)", "99th pct |r|/θ", "|r| < θ"], rows)
            + "\n\n![residual histograms](sws_ablation_residuals.png)\n\n"
              "What reproduces: the unadjusted neuron is by far the worst (chance level on the "
              "ResNet), each adjustment alone helps, both together are best and leave residuals "
              "below θ/2 almost everywhere (the rounding error of the θ/2 threshold); the median "
              "residual of active neurons is ≈0.25θ with the lowered threshold and ≈0.5θ without "
              "it (Ts = 2), as the paper describes. What does "
              "not: the paper's order (Vth=θ/2, Ts=0) < (Vth=θ, Ts=2). On these small digits "
              "networks the lowered threshold alone already recovers most accuracy; the silent "
              "period alone is weaker (see the table). `tests/test_sws.py::test_ablation_ordering` "
              "asserts the parts that reproduce.\n")


def _plot_ablation(hist, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(ABLATED), figsize=(11, 4), sharey=True)
    bins = np.linspace(0, 3, 61)
    for ax, model in zip(axes, ABLATED):
        for _, label, _ in ABLATION:
            r = np.minimum(hist[model, label], bins[-1] - 1e-9)  # last bin: ≥ 3θ
            ax.hist(r, bins=bins, density=True, histtype="step", label=label, linewidth=1.4)
        ax.set_yscale("log")
        ax.set_title(f"{model}: Tc=8, β=2")
        ax.set_xlabel("|residual| / β^Ts  (units of θ; last bin ≥ 3)")
    axes[0].set_ylabel("density (all TSA neurons)")
    axes[-1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def section_sweep(ctx: Context, out: Path) -> str:
    text = ["## 6. Accuracy versus coding steps Tc\n\n",
            "Tc = 2…12 for Ts ∈ {0, 1, 2} and β ∈ {1.5, 2} (CSS uses β = 1.5 and Ts = 1; SWS β = 2, "
            "Ts = 2). 360 test images, `current` encoder, threshold θβ^Ts/2, negative spikes, "
            "TSA-ReLU. Paper: accuracy approaches the ANN's as Tc grows; the silent period lets "
            "fewer coding steps suffice (CSS §5.2).\n"]
    curves = {}
    for model in ABLATED:
        for beta in SWEEP_BETA:
            for ts in SWEEP_TS:
                curves[model, beta, ts] = [ctx.run(model, Tc=tc, Ts=ts, beta=beta)[1].accuracy(ctx.test.y)
                                           for tc in SWEEP_TC]
        headers = ["Tc"] + [f"β={b:g}, Ts={t}" for b in SWEEP_BETA for t in SWEEP_TS]
        rows = [[tc] + [f"{curves[model, b, t][i]:.4f}" for b in SWEEP_BETA for t in SWEEP_TS]
                for i, tc in enumerate(SWEEP_TC)]
        reach = []
        for b in SWEEP_BETA:
            for t in SWEEP_TS:
                ok = [tc for tc, acc in zip(SWEEP_TC, curves[model, b, t])
                      if acc >= ctx.ann_acc[model] - 0.01]
                reach.append(str(ok[0]) if ok else "never")
        rows.append(["**smallest Tc within 1 pp of the ANN**"] + reach)
        text.append(f"\n**{model}** (ANN {ctx.ann_acc[model]:.4f})\n\n" + _table(headers, rows) + "\n")
    _plot_sweep(ctx, curves, out / "sws_accuracy_vs_tc.png")
    text.append("\n![accuracy vs Tc](sws_accuracy_vs_tc.png)\n")
    return "".join(text)


def _plot_sweep(ctx, curves, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(ABLATED), figsize=(11, 4), sharey=True)
    for ax, model in zip(axes, ABLATED):
        for beta in SWEEP_BETA:
            for ts in SWEEP_TS:
                ax.plot(SWEEP_TC, curves[model, beta, ts], marker="o", markersize=3,
                        linestyle="-" if beta == 2.0 else "--", label=f"β={beta:g}, Ts={ts}")
        ax.axhline(ctx.ann_acc[model], color="k", linewidth=0.8, linestyle=":", label="ANN")
        ax.set_title(model)
        ax.set_xlabel("coding steps Tc")
    axes[0].set_ylabel("test accuracy (float SNN)")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def section_layers(ctx: Context) -> str:
    text = ["## 7. Per layer: residuals and decoding error\n\n",
            "Tc = 8, Ts = 2, β = 2, 360 test images. |r| < θ: share of neurons whose final "
            "residual (the TSA-ReLU drive o, divided by β^Ts) is below one spike amplitude — the "
            "condition of CSS Theorem 1. Decoding error: mean over neurons and images of "
            "|decoded − ANN activation| / λ (readout: membrane vs ANN logit). MaxPool rows of "
            "the vgg fixture (random inputs, shown for the gate approximation) have no residual.\n"]
    cases = [(m, ctx.graphs[m], ctx.test.x, ctx.calib.x) for m in BUNDLED]
    vgg = load_onnx(FIXTURES_DIR / "vgg.onnx")
    rng = np.random.default_rng(0)
    cases.append(("vgg fixture", vgg, rng.random((200,) + vgg.input_shape),
                  rng.random((100,) + vgg.input_shape)))
    for label, graph, x, calib_x in cases:
        net = SCHEME.build(graph, calib_x, _params(Tc=8, Ts=2, beta=2))
        res = SCHEME.simulate(net, x)
        truth = population_values(graph, x)
        rows = []
        for p in populations(graph):
            pop = net.by_name(p.name)
            r = res.extra["residual"].get(p.name)
            below = f"{100 * np.mean(np.abs(r) < 1):.2f}%" if r is not None else "–"
            err = np.abs(res.decoded[p.name] - truth[p.name]).mean() / pop.lam
            rows.append([p.name, p.kind, pop.level, f"{pop.lam:.3g}", below, f"{err:.4f}"])
        text.append(f"\n**{label}**\n\n" + _table(["population", "kind", "level", "λ", "|r| < θ",
                                                   "mean |decoded − ANN| / λ"], rows) + "\n")
    return "".join(text)


NOTES = """## 8. Where neurosim follows DESIGN rather than the papers, and other notes

* **Networks.** SWS converts 8-bit QAT networks (appendix A.1); neurosim converts the float
  ANN with percentile calibration (λ = 99.99th percentile, CSS §4.2.2 "initialisation"), θ_l =
  λ_l / Σβ^k, W = Ŵ·θ_{l−1}/θ_l per projection, per-step bias b̂/(θ_l·Σβ^k) (DESIGN §3.1).
  The input's λ is the largest calibration pixel.
* **Reset and threshold.** Threshold `threshold_ratio·β^Ts`, reset by β^Ts (SWS §3.3, CSS
  Algorithm 1 with 2v = θβ^Ts). The encoder has no silent period.
* **TSA-ReLU bias window.** CSS eq. A23 sums the bias up to max(t, T_a+T), which reads like a
  typo for min; neurosim adds the bias in the Tc input steps only (DESIGN).
* **Encoders.** Default `current` (SWS eq. 9). Section 2 shows it has its own temporal
  coupling; `encoder=potential` (CSS Theorem 2) does not. Both are reported in section 4.
* **Amplitude adjustment (CSS A.3)** is available (`amplitude_adjust=N`, default 0), reading
  the paper's u and θ in units of θ (θ = 1), the only dimensionally consistent reading; it is
  off in every number above.
* **MaxPool** (not used by the bundled models) is a spike gate: each output passes the spike
  of the input with the largest β-weighted running value so far. Exact when the winner never
  changes; otherwise an approximation (section 7, vgg fixture rows: decoding error after the
  gates grows compared with the layers before them).
* **Residual shortcuts** around silent periods go through delay FIFOs of Ts·(level gap − 1)
  steps, so every projection's spikes arrive in the target's input window (checked in the
  simulator: a spike outside the window is an error).
* **Counts.** Only spikes (spike_out_pos/neg) are counted so far; every other action, energy
  and fixed point come with the bit-accurate core.
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="reports", help="output folder (default: reports)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    ctx = Context()
    sections = [section_toy(), section_theorem2(ctx), section_latency(ctx), section_accuracy(ctx),
                section_ablation(ctx, out), section_sweep(ctx, out), section_layers(ctx), NOTES]
    header = (f"# SWS / CSS reproduction on the bundled digits models\n\n"
              f"Regenerate with `{COMMAND}` (writes this file and the PNG plots next to it; "
              f"this run took {time.time() - start:.0f} s). Every number below comes from that "
              f"run: float SNN simulator `neurosim.schemes.sws`, bundled digits test split (360 "
              f"images) and calibration split (180 images).\n\n"
              f"ANN test accuracy: " + ", ".join(f"{m} {a:.4f}" for m, a in ctx.ann_acc.items())
              + "\n\n")
    (out / "sws_reproduction.md").write_text(header + "\n".join(sections))
    print(f"wrote {out / 'sws_reproduction.md'} in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
