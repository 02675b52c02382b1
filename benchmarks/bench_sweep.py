"""The bundled sweep grid serially and on Dask workers: speed-up, and what Dask adds per shard.

    python benchmarks/bench_sweep.py [--limit 60] [--shard-size 20] [--workers 2]

writes reports/bench_sweep.md and its summary row into the `sweep` section of
reports/benchmarks.md (``sections.py``: bench_core.py rewrites the rest and keeps it).
Every number in it comes from the run that wrote it:

* serial: ``neurosim sweep --serial`` of ``codings_digits`` (its images cut to ``--limit``), in
  a fresh process with the thread environment Dask's nanny gives its workers (one BLAS/OpenMP
  thread) and numba on one thread, and again with numba on every core;
* Dask: the same grid on a LocalCluster of ``--workers`` single-thread processes, and on one
  such worker (the cluster's start-up is timed apart: a real cluster is started once);
* the machine's parallel ceiling (two single-thread processes at once over one alone,
  ``ceiling.parallel_ceiling``), which the speed-up is set against;
* Dask's own cost per task: empty tasks submitted and gathered, per task; and per shard, the
  one-worker Dask time less the one-thread serial time, over the shards.

Before timing, one small sweep compiles (or loads from numba's cache) every kernel in this
process and in the workers, so compile time is not counted against either side.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import sections  # noqa: E402
from ceiling import cpu_model, parallel_ceiling  # noqa: E402

from neurosim.sweep import load_grid, run_sweep  # noqa: E402
from neurosim.sweep.command import resolve_grid  # noqa: E402
from neurosim.sweep.store import Store  # noqa: E402


REPEATS = 2


def _grid(limit: int, shard_size: int):
    grid = load_grid(resolve_grid("codings_digits"))
    grid.limit, grid.shard_size = limit, shard_size
    return grid


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _noop(i):
    return i


def _serial_child(limit: int, shard_size: int, out: str) -> None:
    """In the child: warm up, then print the seconds one serial sweep takes."""
    Path(out).mkdir(parents=True, exist_ok=True)
    warm = _grid(4, 4)
    run_sweep(warm, Path(out) / "warm", serial=True, echo=lambda *_: None)
    t, _ = _timed(lambda: run_sweep(_grid(limit, shard_size), Path(out) / "run", serial=True,
                                    echo=lambda *_: None))
    print(t)


def _serial(limit: int, shard_size: int, out: Path, numba_threads: int) -> float:
    """Seconds of one serial sweep in a fresh process with Dask's worker environment (the
    benchmark's own process hosts the schedulers, and its BLAS threads are not the workers')."""
    import dask

    env = dict(os.environ, NUMBA_NUM_THREADS=str(numba_threads))
    env.update({k: str(v) for k, v in
                dask.config.get("distributed.nanny.pre-spawn-environ").items()})
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import bench_sweep; "
            f"bench_sweep._serial_child({limit}, {shard_size}, {str(out)!r})")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=60)
    ap.add_argument("--shard-size", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(HERE.parent / "reports" / "bench_sweep.md"))
    args = ap.parse_args()

    import numba
    from distributed import Client, LocalCluster

    grid = _grid(args.limit, args.shard_size)
    points = grid.points()
    shards = len(points) * -(-args.limit // args.shard_size)
    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep."))
    quiet = dict(echo=lambda *_: None)

    warm = _grid(4, 4)

    clusters = {}
    for n in sorted({1, args.workers}):
        t_start, cluster = _timed(lambda: LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
            silence_logs=logging.CRITICAL))
        client = Client(cluster)
        # one numba thread per single-thread worker, as the command line's LocalCluster sets;
        # the warm-up loads every kernel in every worker
        run_sweep(warm, tmp / f"warm-{n}", client=client, numba_threads=1, **quiet)
        clusters[n] = (t_start, cluster, client)

    # best of REPEATS, the configurations interleaved so a burst of load from another session
    # does not fall on one of them only
    best: dict = {}
    reference = None
    for rep in range(REPEATS):
        t = _serial(args.limit, args.shard_size, tmp / f"serial1-{rep}", 1)
        best["serial1"] = min(best.get("serial1", t), t)
        reference = Store(tmp / f"serial1-{rep}" / "run").table(
            [p.key for p in points]).to_pylist()
        for n, (_, _, client) in clusters.items():
            t, out = _timed(lambda: run_sweep(grid, tmp / f"dask{n}-{rep}", client=client,
                                              numba_threads=1, **quiet))
            assert out.table.to_pylist() == reference, "Dask table differs from the serial one"
            best[n] = min(best.get(n, t), t)
    t_serial_n = _serial(args.limit, args.shard_size, tmp / "serialN", os.cpu_count() or 1)
    t_serial1 = best["serial1"]
    timings = {}
    for n, (t_start, cluster, client) in clusters.items():
        t_empty, _ = _timed(lambda: client.gather(client.map(_noop, range(500), pure=False)))
        timings[n] = (t_start, best[n], t_empty / 500)
        client.close()
        cluster.close()
    ceiling = parallel_ceiling()
    load = os.getloadavg()

    speedup = t_serial1 / timings[args.workers][1]
    per_shard = (timings[1][1] - t_serial1) / shards
    # a difference of two timed runs: below zero it is lost in their run-to-run noise
    shard_cost = (f"{1e3 * per_shard:.1f} ms" if per_shard > 0 else
                  f"below noise (1 worker {t_serial1 - timings[1][1]:.2f} s faster than serial)")
    lines = [
        "# Sweep benchmark: serial vs Dask workers", "",
        "Written by `python benchmarks/bench_sweep.py "
        f"--limit {args.limit} --shard-size {args.shard_size} --workers {args.workers}`; "
        "every number below comes from that run.", "",
        f"Machine: {cpu_model()} ({platform.machine()}), {os.cpu_count()} vCPUs, Python "
        f"{platform.python_version()}, numba {numba.__version__}. Load average after the run "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min; the benchmark itself keeps "
        f"up to {args.workers} cores busy, more means other work shared the machine).", "",
        f"Grid: the bundled `codings_digits` (five codings on digits_cnn, three profiles, "
        f"{len(points)} points) on the first {args.limit} test images in shards of "
        f"{args.shard_size}: {shards} shards, float and fixed-point runs. Times are the best "
        f"of {REPEATS} runs, the configurations interleaved. Kernels were "
        f"compiled (or loaded from numba's cache) before timing, in this process and in every "
        f"worker. Serial runs are in a fresh process with the environment Dask's nanny gives "
        f"its workers (OMP/MKL/OPENBLAS_NUM_THREADS=1). The Dask tables were checked equal to "
        f"the serial one, row for row.", "",
        "| run | wall time (s) |", "|---|---:|",
        f"| serial (`--serial`), numba 1 thread | {t_serial1:.2f} |",
        f"| serial (`--serial`), numba {os.cpu_count()} threads | {t_serial_n:.2f} |",
    ]
    for n, (t_start, t_dask, _) in timings.items():
        lines.append(f"| Dask LocalCluster, {n} single-thread worker process"
                     f"{'es' if n > 1 else ''} (start-up {t_start:.2f} s not included) "
                     f"| {t_dask:.2f} |")
    lines += [
        "",
        f"- Speed-up of {args.workers} Dask workers over serial one-thread: **{speedup:.2f}×**; "
        f"the machine's parallel ceiling (two single-thread processes at once over one alone, "
        f"measured now): {ceiling:.2f}×, so the sweep reaches "
        f"{100 * speedup / ceiling:.0f}% of what this machine gives two processes.",
        f"- Dask's cost per task: {1e3 * timings[args.workers][2]:.2f} ms per empty task "
        f"submitted and gathered ({args.workers} workers), "
        f"{1e3 * timings[1][2]:.2f} ms on one worker.",
        f"- Dask's cost per shard, one worker: (Dask one-worker time − serial one-thread "
        f"time) / {shards} shards: {shard_cost} per shard (shipping the "
        f"shard's images, the converted networks and the results; the client's merge and "
        f"Parquet writes are in both times).", "",
    ]
    shutil.rmtree(tmp, ignore_errors=True)
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    # the row reports/benchmarks.md carries (its section; bench_core.py keeps it)
    sections.put("sweep", [
        "## Design-space sweep on Dask", "",
        f"From `python benchmarks/bench_sweep.py --limit {args.limit} --shard-size "
        f"{args.shard_size} --workers {args.workers}` (a separate run; its full report: "
        f"[`bench_sweep.md`](bench_sweep.md)): the bundled grid `codings_digits` ({len(points)} "
        f"points, {shards} shards of {args.shard_size} images), tables checked equal.", "",
        "| run | wall time (s) | speed-up | parallel ceiling | Dask cost per shard | "
        "per empty task |", "|---|---:|---:|---:|---:|---:|",
        f"| serial, 1 thread | {t_serial1:.2f} | 1.00× | | | |",
        f"| Dask, {args.workers} workers | {timings[args.workers][1]:.2f} | **{speedup:.2f}×** | "
        f"{ceiling:.2f}× | {shard_cost} | {1e3 * timings[args.workers][2]:.2f} ms |",
        "",
    ])
    return 0


if __name__ == "__main__":
    sys.exit(main())
