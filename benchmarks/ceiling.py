"""What this machine can do at best, measured, so the engine's figures have a yardstick.

* ``scatter_ceiling``: synaptic events per second on one core of the simplest possible
  event-driven conv fan-out (numba, channels-last int32 accumulators, a precomputed list of
  (output, weight) offsets per event and tap, one contiguous C_out vector add of constant
  width each). No network, no neurons, no counting: the plain per-tap fan-out, a yardstick
  rather than a bound (the engine merges a kernel row's taps into one run and adds two events
  of a position at once, and can exceed it).
* ``parallel_ceiling``: the throughput of two single-thread processes at once over one alone;
  two vCPUs need not deliver two cores' throughput. ``parallel_ceiling(code)`` measures it
  for a given job (the benchmark passes the engine's own, whose loads and stores a plain
  arithmetic loop does not have); each process prints ``ready`` when set up, waits for a line
  on stdin, then prints its timed seconds.
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
from numba import njit


@njit(cache=True)
def _scatter_fixed(acc, weights, out_off, w_off, width, reps):
    """acc[out:out+width] += weights[w:w+width] for every (out, w) pair, ``reps`` times."""
    for _ in range(reps):
        for i in range(out_off.shape[0]):
            dst = acc[out_off[i]:out_off[i] + width]
            src = weights[w_off[i]:w_off[i] + width]
            if width == 16:
                for j in range(16):
                    dst[j] += src[j]
            elif width == 32:
                for j in range(32):
                    dst[j] += src[j]
            else:
                for j in range(64):
                    dst[j] += src[j]
    return reps * out_off.shape[0] * width


def scatter_ceiling(width: int, hw: int = 16, events: int = 4096, seconds: float = 0.5) -> float:
    """Synops per second on one core for ``width`` output channels (16, 32 or 64): random
    events on an ``hw``×``hw`` map, 3×3 taps each, offsets precomputed."""
    rng = np.random.default_rng(0)
    acc = np.zeros(hw * hw * width, np.int32)
    weights = rng.integers(-127, 128, 9 * width * width).astype(np.int32)
    y, x, ch = rng.integers(1, hw - 1, events), rng.integers(1, hw - 1, events), rng.integers(0, width, events)
    taps = np.arange(9)
    out_off = (((y[:, None] + taps // 3 - 1) * hw + x[:, None] + taps % 3 - 1) * width).ravel()
    w_off = ((taps[None, :] * width + ch[:, None]) * width).ravel()
    _scatter_fixed(acc, weights, out_off, w_off, width, 1)  # compile
    reps, best = 1, 0.0
    while True:
        t = time.perf_counter()
        done = _scatter_fixed(acc, weights, out_off, w_off, width, reps)
        dt = time.perf_counter() - t
        best = max(best, done / dt)
        if dt > seconds:
            return best
        reps *= 2


def cpu_model() -> str:
    """The CPU's model name, family/model and widest vector unit (/proc/cpuinfo), else the
    architecture: the same script on another machine gives other numbers, so the report
    says which machine it ran on. The vector width matters most: the engine's 16-lane adds
    are one AVX-512 instruction or two AVX2 ones (measured: the VGG's SWS ratio to torch
    2.69× on an AVX-512 Zen 4 VM, 1.83× on an AVX2 Zen 3 VM)."""
    import platform

    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    if "model name" not in fields:
        return platform.processor() or platform.machine()
    flags = set(fields.get("flags", "").split())
    simd = ("AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags
            else "NEON" if "asimd" in flags else "no AVX2")
    family = (f", family {fields['cpu family']} model {fields['model']}"
              if "cpu family" in fields and "model" in fields else "")
    return f"{fields['model name']}{family}, {simd}"


ARITHMETIC_JOB = ("import sys, time\nprint('ready', flush=True)\nsys.stdin.readline()\n"
                  "t = time.perf_counter()\ns = 0\nfor i in range(30_000_000): s += i\n"
                  "print(time.perf_counter() - t)")


def _timed_at_once(code: str, n: int, env=None) -> float:
    """The longest timed seconds of ``n`` processes of ``code`` started together, once all
    are set up."""
    procs = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env) for _ in range(n)]
    for p in procs:
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("a ceiling job did not get ready: " + p.communicate()[0])
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    return max(float(p.communicate()[0].split()[-1]) for p in procs)


def parallel_ceiling(code: str = ARITHMETIC_JOB, env=None) -> float:
    """Throughput of two single-thread processes of ``code`` at once over one alone (ideal:
    2.0); the best of two tries each."""
    alone = min(_timed_at_once(code, 1, env) for _ in range(2))
    both = min(_timed_at_once(code, 2, env) for _ in range(2))
    return 2 * alone / both
