"""Benchmark of the event-driven TSA core against the dense integer reference.

    python benchmarks/bench_core.py            # writes reports/benchmarks.md

Measured in one run, on this machine:
* synaptic events (synops) per second per core and images per second, with 1 and 2
  threads, on ``digits_resnet`` (bundled, real test images) and on a VGG-style 32×32
  network generated here (random He-initialised weights, random images);
* the dense numpy integer reference on the same network (a subset of the images, scaled
  per image): the speed-up is the figure, next to what the spike density allows;
* that both give identical spikes, states and counts on that subset;
* the machine's own parallel ceiling (two single-thread processes at once), since two
  vCPUs need not deliver two cores' throughput;
* first-call compile time versus a start from numba's on-disk cache.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from neurosim.calibrate import calibrate  # noqa: E402
from neurosim.core.network import quantize_sws  # noqa: E402
from neurosim.core.reference import run_reference  # noqa: E402
from neurosim.core.tsa import run_core  # noqa: E402
from neurosim.counts import ACTION_INDEX  # noqa: E402
from neurosim.data import digits  # noqa: E402
from neurosim.graph import AvgPool, Conv, Dense, Graph, Input, Relu, Reshape  # noqa: E402
from neurosim.hw.profile import load_profile  # noqa: E402
from neurosim.onnx_import import load_onnx  # noqa: E402
from neurosim.schemes.sws import convert  # noqa: E402

PARAMS = dict(Tc=8, Ts=2, beta=2.0, threshold_ratio=0.5, negative_spikes=True,
              relu_counterpart=True, encoder="current")
SYNOP = ACTION_INDEX["synop"]


def vgg32(seed: int = 0) -> Graph:
    """conv16-conv16-pool-conv32-conv32-pool-conv64-pool-fc10 on 3×32×32, He init."""
    rng = np.random.default_rng(seed)
    nodes = {"x": Input("x", (), (3, 32, 32))}
    c, hw, last, k = 3, 32, "x", 0

    def conv(cout):
        nonlocal c, last, k
        k += 1
        w = rng.normal(0, np.sqrt(2 / (9 * c)), (cout, c, 3, 3))
        nodes[f"conv{k}"] = Conv(f"conv{k}", (last,), (cout, hw, hw), weight=w,
                                 bias=rng.normal(0, 0.05, cout), pads=(1, 1, 1, 1))
        nodes[f"relu{k}"] = Relu(f"relu{k}", (f"conv{k}",), (cout, hw, hw))
        c, last = cout, f"relu{k}"

    def pool():
        nonlocal hw, last
        hw //= 2
        nodes[f"pool{k}"] = AvgPool(f"pool{k}", (last,), (c, hw, hw), kernel=(2, 2), stride=(2, 2))
        last = f"pool{k}"

    for step in (16, 16, "p", 32, 32, "p", 64, "p"):
        pool() if step == "p" else conv(step)
    nodes["flat"] = Reshape("flat", (last,), (c * hw * hw,))
    nodes["fc"] = Dense("fc", ("flat",), (10,), weight=rng.normal(0, np.sqrt(1 / (c * hw * hw)),
                                                                   (10, c * hw * hw)),
                        bias=np.zeros(10))
    return Graph("vgg32", "(generated)", nodes, "x", "fc")


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench(name: str, graph: Graph, calib_x: np.ndarray, x: np.ndarray, n_ref: int) -> dict:
    snn = convert(graph, calibrate(graph, calib_x), PARAMS)
    net = quantize_sws(snn, load_profile("loihi_like").arithmetic)
    drive = net.encode_input(x)
    run_core(net, drive[:1])  # compiled (or loaded from cache) before timing
    h, g, counts, spikes = run_core(net, drive[:n_ref], trace=True)
    t_ref = best_of(lambda: run_reference(net, drive[:n_ref]), repeats=1)
    h2, g2, c2, s2 = run_reference(net, drive[:n_ref])
    exact = (np.array_equal(spikes, s2) and np.array_equal(h, h2) and np.array_equal(g, g2)
             and np.array_equal(counts, c2))
    out = {"name": name, "images": len(x), "neurons": net.neurons, "steps": net.steps,
           "exact": exact, "ref_img_s": n_ref / t_ref, "ref_images": n_ref}
    _, _, counts, _ = run_core(net, drive)
    synops = int(counts[..., SYNOP].sum())
    out["synops_per_img"] = synops / len(x)
    conv_layers = [l for l in range(net.layers) if any(net.p_kind[p] == 0 for p in
                                                       np.flatnonzero(net.p_dst == l))]
    out["conv_share"] = counts[:, conv_layers, :, SYNOP].sum() / max(synops, 1)
    # spike density: spikes per (neuron, step) of the firing windows of the spiking layers
    fired = counts[..., ACTION_INDEX["spike_out_pos"]].sum() + counts[..., ACTION_INDEX["spike_out_neg"]].sum()
    slots = sum(net.size[l] * (net.fire[l, 1] - net.fire[l, 0] + 1) for l in range(net.layers - 1))
    out["density"] = fired / (slots * len(x))
    for threads in (1, 2):
        numba.set_num_threads(threads)
        dt = best_of(lambda: run_core(net, drive))
        out[f"img_s_{threads}"] = len(x) / dt
        out[f"synops_s_core_{threads}"] = synops / dt / threads
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    return out


def parallel_ceiling() -> float:
    """Throughput of two single-thread processes at once over one alone (ideal: 2.0)."""
    code = ("import time\nt=time.perf_counter()\ns=0\nfor i in range(30_000_000): s+=i\n"
            "print(time.perf_counter()-t)")
    alone = float(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                 text=True).stdout)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    both = max(float(p.communicate()[0]) for p in procs)
    return 2 * alone / both


def start_times() -> tuple[float, float]:
    """(first call with an empty numba cache, first call with the cache filled), seconds."""
    code = ("import time, numpy as np\nt=time.perf_counter()\n"
            "from neurosim.core.tsa import run_core\n"
            "import sys; sys.path.insert(0, %r)\n"
            "from bench_core import tiny_net\nnet, d = tiny_net()\nrun_core(net, d)\n"
            "print(time.perf_counter()-t)") % str(Path(__file__).parent)
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(ROOT))
        runs = [float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                     text=True, check=True).stdout.split()[-1]) for _ in range(2)]
    return runs[0], runs[1]


def tiny_net():
    g = load_onnx(ROOT / "neurosim" / "models" / "digits_mlp.onnx")
    x = digits("calibration").x[:4]
    net = quantize_sws(convert(g, calibrate(g, x), PARAMS), load_profile("loihi_like").arithmetic)
    return net, net.encode_input(x)


def main() -> None:
    test = digits("test")
    rng = np.random.default_rng(1)
    results = [
        bench("digits_resnet", load_onnx(ROOT / "neurosim" / "models" / "digits_resnet.onnx"),
              digits("calibration").x, test.x, n_ref=60),
        bench("vgg32 (generated)", vgg32(), rng.uniform(0, 1, (32, 3, 32, 32)),
              rng.uniform(0, 1, (64, 3, 32, 32)), n_ref=4),
    ]
    ceiling = parallel_ceiling()
    compile_s, cached_s = start_times()
    lines = [
        "# Core benchmark",
        "",
        "Written by `python benchmarks/bench_core.py`; every number below comes from that run.",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} vCPUs, "
        f"Python {platform.python_version()}, numba {numba.__version__}, numpy {np.__version__}. "
        f"SWS Tc={PARAMS['Tc']}, Ts={PARAMS['Ts']}, β={PARAMS['beta']}, profile loihi_like "
        f"(8-bit weights, 24-bit state). Times are the best of 3 runs.",
        "",
        "| network | neurons | steps | spike density | synops / image | conv share | "
        "img/s 1 thr | img/s 2 thr | Msynops/s/core 1 thr | Msynops/s/core 2 thr | "
        "reference img/s | speed-up (1 thr) | 1/density | bit-exact |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['name']} | {r['neurons']:,} | {r['steps']} | {r['density']:.3f} | "
            f"{r['synops_per_img']:,.0f} | {r['conv_share']:.0%} | {r['img_s_1']:.1f} | "
            f"{r['img_s_2']:.1f} | {r['synops_s_core_1'] / 1e6:.0f} | "
            f"{r['synops_s_core_2'] / 1e6:.0f} | {r['ref_img_s']:.2f} | "
            f"{r['img_s_1'] / r['ref_img_s']:.1f}× | {1 / r['density']:.1f} | "
            f"{'yes' if r['exact'] else 'NO'} ({r['ref_images']} images) |")
    lines += [
        "",
        f"- **Parallel ceiling of this machine**: two single-thread processes at once deliver "
        f"{ceiling:.2f}× the throughput of one (2.00 would be two full cores). The 2-thread "
        f"column should be read against that, not against 2×.",
        f"- **Start-up**: first call with an empty numba cache {compile_s:.1f} s (compiling), "
        f"first call with the cache filled {cached_s:.1f} s (import + load + a 4-image run).",
        "- *Spike density* is spikes per (neuron, step) over the firing windows of the spiking "
        "layers. The dense reference does work for every synapse every step, the core only for "
        "the synapses of the spikes, so 1/density bounds the speed-up that event-driven "
        "processing can buy; the reference's vectorised numpy also amortises differently, so "
        "the measured ratio is the figure, the bound is context.",
        "- The VGG network has random weights and random inputs: its spike density is not that "
        "of a trained network on real images.",
    ]
    out = ROOT / "reports" / "benchmarks.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
