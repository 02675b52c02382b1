"""Two threads of one engine run against two single-thread processes doing the same work.

    python benchmarks/threads_vs_processes.py [ROUNDS]

Does the engine lose anything to running its images on threads of one process (shared
allocations, false sharing, the parallel region's join), beyond what the machine itself
gives two workers? Each round times, on digits_resnet SWS (bench_core's settings, 720
images = the test split twice, five runs per timing):

* one thread on half the images, doubled: the one-thread time for all of them;
* two single-thread processes at once, each on half: the machine's two-worker ceiling for
  this very job;
* one process, two threads, all the images: the engine's parallel run.

The workers are set up (compiled, warmed) before the first round, and the three timings
are interleaved in every round, so load from other processes falls on all of them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

WORKER = r'''
import sys, time, numba, numpy as np
sys.path.insert(0, %r)
import bench_core as bc
g = bc.load_onnx(bc.ROOT / "neurosim" / "models" / "digits_resnet.onnx")
net = bc.quantize_sws(bc.convert(g, bc.calibrate(g, bc.digits("calibration").x), bc.PARAMS),
                      bc.load_profile("loihi_like").arithmetic)
drive = bc.encode_input(net, np.concatenate([bc.digits("test").x] * 2))
threads = int(sys.argv[1])
work = drive[:len(drive) // 2] if sys.argv[2] == "half" else drive
numba.set_num_threads(threads)
for _ in range(2):
    bc.engine.run(net, work, None, readout_only=True)
print("ready", flush=True)
while sys.stdin.readline().strip() == "go":
    t = time.perf_counter()
    for _ in range(5):
        bc.engine.run(net, work, None, readout_only=True)
    print(time.perf_counter() - t, flush=True)
''' % str(Path(__file__).resolve().parent)


def _worker(threads: int, images: str) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", WORKER, str(threads), images],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if p.stdout.readline().strip() != "ready":
        raise RuntimeError("a worker did not get ready")
    return p


def _timed(workers: list[subprocess.Popen]) -> float:
    """Seconds until the last of ``workers`` (started together) is done."""
    for p in workers:
        p.stdin.write("go\n")
        p.stdin.flush()
    return max(float(p.stdout.readline()) for p in workers)


def main(rounds: int = 6) -> None:
    alone, proc_a, proc_b = _worker(1, "half"), _worker(1, "half"), _worker(1, "half")
    threaded = _worker(2, "all")
    try:
        print("round  1 thread (s)  2 processes (s)  ratio  2 threads (s)  ratio")
        for r in range(rounds):
            one = 2 * _timed([alone])
            procs = _timed([proc_a, proc_b])
            threads = _timed([threaded])
            print(f"{r + 1:5d}  {one:12.3f}  {procs:15.3f}  {one / procs:4.2f}×  "
                  f"{threads:13.3f}  {one / threads:4.2f}×", flush=True)
    finally:
        for p in (alone, proc_a, proc_b, threaded):
            p.stdin.close()
            p.wait()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 6)
