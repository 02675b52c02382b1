"""The chip as a pipeline: latency, throughput and static energy out of a SimPy model (DESIGN §6).

Interface (plain data in, plain data out)::

    from neurosim.pipeline import simulate_pipeline, PipelineResult

    result = simulate_pipeline(
        counts,            # neurosim.counts.Counts of a fixed-point run (per layer × step)
        profile,           # a loaded neurosim.hw.profile.Profile
        layer_cores,       # [(layer name, cores), ...] for every layer of ``counts``, in order
        edges,             # [(source layer, target layer, delay steps), ...]
        steps_per_frame,   # the scheme's frame interval (Scheme.timing(snn)[1])
        placement=None,    # neurosim.hw.placement.Placement; default: place() on the profile
        max_intervals=5000 # cap on the Gantt intervals kept
    ) -> PipelineResult

``pipeline_for_run(result, profile, mapping, network, steps_per_frame)`` builds those
arguments from a ``SimResult``, a ``neurosim.hw.mapping.Mapping`` and the scheme's
``EventNetwork`` (its ``names``, ``p_src``, ``p_dst``, ``p_delay``).

``PipelineResult`` fields: ``latency_steps`` and ``latency_s`` of one frame in steady state
(frames streaming, sharing the cores); ``latency_alone_s`` (the same frame with no other in
flight); ``throughput_fps`` (sustained) and ``frame_interval_s`` (time between two frames'
completions in steady state); ``frame_interval_steps`` (the scheme's steps per frame);
``bottleneck`` (the layer whose core is busiest in steady state); ``utilisation`` {core label
"layer#i": busy fraction of the steady-state interval}; ``layer_busy_ns`` {layer: ns its cores
work on one frame, summed over cores}; ``static_pj_per_frame`` (static power × steady-state
time per frame); ``static_pj_per_frame_gated`` (unused cores power-gated, when the profile
declares ``cores.gateable_static_fraction``, else None); ``serial_frame_s`` (one frame alone
with every layer's work of a step done one after another, each message it waits for at its
longest hop latency, the barrier or tick per step: the first-order serial time, an upper bound
on ``latency_alone_s`` and ``frame_interval_s``) and ``serial_static_pj_per_frame`` (static
power × ``serial_frame_s``, the upper bound on ``static_pj_per_frame``); ``serial_latency_s``
(the same serial sum for a frame in the stream: each of its steps also pays the work and
messages of every other frame in flight at that step, frames entering every
``steps_per_frame`` steps; the upper bound on ``latency_s``, which exceeds ``serial_frame_s``
when frames overlap, as in TTFS and SWS, because a frame in steady state shares its steps,
and with ``barrier`` their barriers, with the frames before and after it); ``hops`` (int64
(layers, steps), summed over the batch like the counts); ``hops_per_frame`` {layer: mean hops of its
spikes per frame}; ``intervals`` [(core label, layer, frame, step, start_ns, end_ns)] for a
Gantt picture (frame 0-based, step 1-based within the frame), at most ``max_intervals``, with
``intervals_truncated``; ``frames_simulated``; ``cores_used``; ``sync``; ``warnings`` (no
placement: the network needs more cores than the mesh, or the profile gives no mesh; then no
hops). ``to_dict()`` is JSON-ready (without ``hops`` and the intervals).

The model
---------
Frames enter one every ``steps_per_frame`` steps: frame f's step t is the chip's global step
g = f·P + t (P = steps_per_frame), so several frames are in flight at once, each layer working
on whichever frames have work for it at g. A frame lasts up to its last step with counted work
in any layer; the work of layer l in a frame's step t is the batch mean of
``Σ_a counts[l, t, a] × time_ns(a)`` (a layer with more spikes is slower), split evenly over
the layer's k cores. Every core is a SimPy process that, for each global step:

1. waits for the step to open: ``barrier`` — every core finished the previous step, then
   ``barrier_ns``; ``dataflow`` — its own previous step is over;
2. for each frame in flight whose step is in its layer's window (a step with counted work),
   oldest first: waits for that frame's same step (a projection with ``delay`` d: step t−d)
   from every core of each source layer that works in that step (a layer outside its window
   sends nothing: the windows are fixed by the scheme's timing), each message arriving
   ``h × hop_latency_ns`` after the source core finished (h hops apart); then works for its
   share of that frame's step and sends its events.

Admission: with ``barrier`` a frame enters at its global step; with ``dataflow`` frame f's first
step (global step f·P) starts on every core once all cores have finished the steps before it (a
frame-level handshake at no cost; without it the input layer runs ahead of the bottleneck and
frames queue without bound). Between admissions the cores run free.

``timing.min_step_ns`` is a tick: with ``barrier`` a step lasts at least that long; with
``dataflow`` a core's step ends no earlier than its previous step's end plus the tick. Between
two admissions a ``dataflow`` schedule is the ``barrier`` one without its waits, so no event
happens later (tests check frame latency and interval on real counts and random networks).

A frame's latency runs from the start of its first step (the earliest core) to the end of its
last step with counted work (the latest core); ``latency_steps`` is the number of that step
(with unit cost per step, ``latency_s`` is ``latency_steps`` ticks). Enough frames are
simulated for one frame in the middle to share its whole life with frames before and after it
(steady state); its latency and the time from its completion to the next one's are reported.
When frames never share a step (frame length ≤ P) two frames suffice and the first is alone.

Assumptions (stated, not published figures): the per-step work of every frame is the batch's
mean per step (Counts keeps per-(layer, step) sums, not per-image ones); a layer's work splits
evenly over its cores; spike messages are pipelined through the mesh (latency h × hop latency,
no link contention); a layer absent from the mapping (the input encoder) takes one core.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import simpy

from neurosim.counts import ACTION_INDEX, Counts
from neurosim.energy import PJ_PER_J, time_vector_ns
from neurosim.errors import UserError
from neurosim.hw.placement import Placement, hop_counts, place

# a huge run (rate T = 1e5) would need millions of SimPy events: the number of frames is
# reduced (never below 3) so that cores × global steps stays under this budget
CORE_STEP_BUDGET = 400_000
MAX_INTERVALS = 5000


@dataclass
class PipelineResult:
    sync: str
    latency_steps: int
    latency_s: float
    latency_alone_s: float
    throughput_fps: float | None
    frame_interval_steps: int
    frame_interval_s: float
    bottleneck: str | None
    utilisation: dict
    layer_busy_ns: dict
    static_pj_per_frame: float
    static_pj_per_frame_gated: float | None
    serial_latency_s: float
    serial_frame_s: float
    serial_static_pj_per_frame: float
    hops: np.ndarray
    hops_per_frame: dict
    frames_simulated: int
    cores_used: int
    intervals: list = field(default_factory=list)
    intervals_truncated: bool = False
    warnings: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"sync": self.sync, "latency_steps": self.latency_steps,
                "latency_s": self.latency_s, "latency_alone_s": self.latency_alone_s,
                "throughput_fps": self.throughput_fps,
                "frame_interval_steps": self.frame_interval_steps,
                "frame_interval_s": self.frame_interval_s, "bottleneck": self.bottleneck,
                "utilisation": dict(self.utilisation), "layer_busy_ns": dict(self.layer_busy_ns),
                "static_pj_per_frame": self.static_pj_per_frame,
                "static_pj_per_frame_gated": self.static_pj_per_frame_gated,
                "serial_latency_s": self.serial_latency_s,
                "serial_frame_s": self.serial_frame_s,
                "serial_static_pj_per_frame": self.serial_static_pj_per_frame,
                "hops_per_frame": dict(self.hops_per_frame),
                "frames_simulated": self.frames_simulated, "cores_used": self.cores_used,
                "intervals_kept": len(self.intervals),
                "intervals_truncated": self.intervals_truncated,
                "warnings": list(self.warnings)}


def layer_step_ns(counts: Counts, profile) -> np.ndarray:
    """(layers, steps) ns of counted work of one frame (batch mean), before splitting."""
    if counts.n_steps == 0 or not counts.layers:
        return np.zeros((len(counts.layers), counts.n_steps))
    per_image = counts.data.astype(np.float64) / (counts.images or 1)
    return per_image @ time_vector_ns(profile)


def _in_flight(per_step: np.ndarray, period: int) -> np.ndarray:
    """Per step of one frame, the sum of ``per_step`` over every frame in flight at that step
    when frames enter every ``period`` steps (its own step t, the others' steps t ± k·period)."""
    out = per_step.copy()
    n = len(per_step)
    for shift in range(period, n, period):
        out[:n - shift] += per_step[shift:]   # later steps of the frames that entered before
        out[shift:] += per_step[:n - shift]   # earlier steps of the frames entering after
    return out


def serial_latency_ns(counts: Counts, profile, hop_step_ns=None,
                      steps_per_frame: int | None = None) -> float:
    """One frame with each step's work of every layer one after another, plus the step's
    spike messages one after another (``hop_step_ns``, per step) and the barrier (or tick):
    the first-order serial time the pipeline replaces.

    ``steps_per_frame`` None: the frame alone (a chip that takes frames one at a time; an
    upper bound on a lone frame's latency and on the steady-state time per frame). Given: the
    frame in the stream the pipeline simulates (a frame entering every ``steps_per_frame``
    steps), so each of its steps also pays the work and messages of every other frame in
    flight at that step; an upper bound on the steady-state latency, which shares its steps
    (and, with ``barrier``, their barriers) with those frames."""
    t = profile.timing
    work = layer_step_ns(counts, profile).sum(axis=0)
    if hop_step_ns is not None:
        work = work + np.asarray(hop_step_ns)[: len(work)]
    if steps_per_frame is not None:
        work = _in_flight(work, int(steps_per_frame))
    barrier = t.barrier_ns if t.sync == "barrier" else 0.0
    return float(np.maximum(work + barrier, t.min_step_ns).sum())


def _frames_to_simulate(frame_steps: int, period: int, cores: int) -> tuple[int, int]:
    """(frames, the steady-state frame index): the measured frame must see frames before it
    for its whole life and frames entering during its whole life."""
    overlap = math.ceil(frame_steps / period)
    if overlap == 1:
        # frames never share a step: every frame meets the chip as the first one did
        return 2, 0
    frames = 2 * overlap + 2
    while frames > 3 and ((frames - 1) * period + frame_steps) * cores > CORE_STEP_BUDGET:
        frames -= 1
    return frames, min(overlap, frames - 2)


def simulate_pipeline(counts: Counts, profile, layer_cores, edges, steps_per_frame: int,
                      placement: Placement | None = None,
                      max_intervals: int = MAX_INTERVALS) -> PipelineResult:
    """Latency, throughput, utilisation and static energy of ``counts`` streamed through the
    chip (see the module docstring)."""
    names = list(counts.layers)
    cores_of = dict((str(n), int(k)) for n, k in layer_cores)
    missing = [n for n in names if n not in cores_of]
    if missing:
        raise ValueError(f"simulate_pipeline: no core count for layers {missing}")
    period = int(steps_per_frame)
    if period < 1:
        raise ValueError(f"simulate_pipeline: steps_per_frame must be >= 1, got {period}")
    timing = profile.timing
    warnings = []
    if placement is None:
        try:
            placement = place([(n, cores_of[n]) for n in names], profile)
        except UserError as e:  # more cores than the chip: timed, but no hops to count
            warnings.append(f"no placement, so no hops: {e}")
        if placement is None and profile.cores.mesh is None:
            warnings.append(f"{profile.name} gives no core mesh (cores.mesh_rows, mesh_cols): "
                            f"no hops counted")
    hop_ns = profile.cores.hop_latency_ns

    # one frame's work per layer and step, and the frame's span (its last step with work)
    per_layer = layer_step_ns(counts, profile)
    active = counts.data.sum(axis=2) > 0
    steps_with_work = np.nonzero(active.any(axis=0))[0]
    frame_steps = int(steps_with_work[-1]) + 1 if len(steps_with_work) else max(counts.n_steps, 1)
    per_layer = per_layer[:, :frame_steps] if per_layer.shape[1] >= frame_steps else \
        np.pad(per_layer, ((0, 0), (0, frame_steps - per_layer.shape[1])))

    # cores: (layer index, core index within the layer)
    core_layer = [li for li, n in enumerate(names) for _ in range(cores_of[n])]
    first_core = np.cumsum([0] + [cores_of[n] for n in names])
    n_cores = len(core_layer)
    frames, measured = _frames_to_simulate(frame_steps, period, n_cores)
    overlap = math.ceil(frame_steps / period)
    if overlap > 1 and frames < 2 * overlap + 1:
        # the budget cut the frames: the measured one does not have all its neighbours in
        # flight, so the chip looks emptier than in steady state (a probe measured the
        # interval 4× short on a deep TTFS net)
        warnings.append(
            f"the pipeline model simulated {frames} frames, fewer than the {2 * overlap + 1} "
            f"its steady state needs ({n_cores} cores × {frame_steps} steps per frame exceed "
            f"its budget): frame interval and static energy are measured while frames drain "
            f"and are low bounds, throughput a high bound")
    active = active[:, :frame_steps]

    share = np.array([1.0 / cores_of[n] for n in names])
    layer_active = active[:, :frame_steps] if active.shape[1] >= frame_steps else \
        np.pad(active, ((0, 0), (0, frame_steps - active.shape[1])))

    # incoming (source core, delay, hop latency) per core
    index = {n: i for i, n in enumerate(names)}
    incoming: list[list[tuple[int, int, float]]] = [[] for _ in range(n_cores)]
    for src, dst, delay in edges:
        if src not in index or dst not in index:
            continue
        si, di = index[src], index[dst]
        hops = placement.hop_matrix(src, dst) if placement is not None else \
            np.zeros((cores_of[src], cores_of[dst]), np.int64)
        for a in range(cores_of[src]):
            for b in range(cores_of[dst]):
                incoming[first_core[di] + b].append(
                    (first_core[si] + a, int(delay), float(hops[a, b]) * hop_ns))

    def run_frames(frames):
        """One SimPy run of ``frames`` frames: per core and global step its start, end and
        busy time, and the busy spans."""
        total_steps = (frames - 1) * period + frame_steps
        def frames_at(g):
            """(frame, local step) pairs in flight at global step g, oldest frame first."""
            lo = max(0, (g - frame_steps) // period + 1)
            return [(f, g - f * period) for f in range(lo, min(frames - 1, g // period) + 1)]

        # an item is one core's work on one frame in one step; only steps where the core's layer
        # has counted work (its window) are items, and only they are waited for: a layer outside
        # its window sends nothing (the windows are fixed by the scheme's timing)
        env = simpy.Environment()
        item_done: dict = {}
        item_finish: dict = {}
        start = np.zeros((n_cores, total_steps))      # first item of the step (or step open)
        finish = np.zeros((n_cores, total_steps))     # last item done
        busy = np.zeros((n_cores, total_steps))
        end = np.zeros((n_cores, total_steps))        # the step is over for this core
        step_done = [[env.event() for _ in range(total_steps)] for _ in range(n_cores)]
        barrier = timing.sync == "barrier"
        step_open = [env.event() for _ in range(total_steps + 1)] if barrier else None
        tick = timing.min_step_ns
        spans: list = []  # (core, frame, local step, start, finish) for the Gantt picture

        for c in range(n_cores):
            li = core_layer[c]
            for g in range(total_steps):
                for f, t in frames_at(g):
                    if layer_active[li, t]:
                        item_done[c, f, t] = env.event()

        def core(c):
            li = core_layer[c]
            prev_end = 0.0
            for g in range(total_steps):
                if barrier:
                    yield step_open[g]
                else:
                    # dataflow: the step opens when this core's previous step is over; a frame's
                    # first step also waits for the admission handshake
                    if g in frame_gate:
                        yield frame_gate[g]
                    if prev_end > env.now:
                        yield env.timeout(prev_end - env.now)
                start[c, g] = env.now
                for f, t in frames_at(g):
                    if not layer_active[li, t]:
                        continue
                    deps = [(u, f, t - d, h) for u, d, h in incoming[c]
                            if t - d >= 0 and (u, f, t - d) in item_done]
                    if deps:
                        yield simpy.AllOf(env, [item_done[u, ff, tt] for u, ff, tt, _ in deps])
                        ready = max(item_finish[u, ff, tt] + h for u, ff, tt, h in deps)
                        if ready > env.now:
                            yield env.timeout(ready - env.now)
                    t0 = env.now
                    w = per_layer[li, t] * share[li]
                    if w > 0:
                        yield env.timeout(w)
                    busy[c, g] += env.now - t0
                    item_finish[c, f, t] = env.now
                    item_done[c, f, t].succeed()
                    spans.append((c, f, t, t0, env.now))
                finish[c, g] = env.now
                prev_end = env.now if barrier else max(env.now, prev_end + tick)
                end[c, g] = prev_end
                step_done[c][g].succeed()

        def clock():
            opened = 0.0
            step_open[0].succeed()
            for g in range(total_steps):
                yield simpy.AllOf(env, [step_done[c][g] for c in range(n_cores)])
                close = max(env.now + timing.barrier_ns, opened + tick)
                if close > env.now:
                    yield env.timeout(close - env.now)
                end[:, g] = env.now
                opened = env.now
                step_open[g + 1].succeed()

        # dataflow admission: frame f enters (global step f·P) once every core has finished the
        # steps before it; without it the input layer would run ahead of the bottleneck and frames
        # would queue without bound
        frame_gate = {} if barrier else {f * period: env.event() for f in range(1, frames)}

        def admit():
            for g in sorted(frame_gate):
                yield simpy.AllOf(env, [step_done[c][g - 1] for c in range(n_cores)])
                frame_gate[g].succeed()

        for c in range(n_cores):
            env.process(core(c))
        env.process(clock() if barrier else admit())
        env.run()
        return start, end, busy, spans

    start, end, busy, spans = run_frames(frames)
    # the same frame with no other frame in flight: no contention (when frames never share a
    # step, the measured frame is already alone)
    lone_start, lone_end = (start, end) if measured == 0 else run_frames(1)[:2]
    latency_alone_ns = float(lone_end[:, frame_steps - 1].max() - lone_start[:, 0].min())

    def frame_span(f):
        g0, g1 = f * period, f * period + frame_steps - 1
        return float(start[:, g0].min()), float(end[:, g1].max())

    entry, done_at = frame_span(measured)
    _, next_done = frame_span(measured + 1)
    latency_ns = done_at - entry
    interval_ns = next_done - done_at
    # steady state: the global steps between the measured frame's completion and the next one's
    g_lo, g_hi = measured * period + frame_steps, (measured + 1) * period + frame_steps
    core_busy = busy[:, g_lo:g_hi].sum(axis=1)
    util = core_busy / interval_ns if interval_ns > 0 else np.zeros(n_cores)
    labels = [f"{names[core_layer[c]]}#{c - first_core[core_layer[c]]}" for c in range(n_cores)]
    by_layer_util = {n: float(util[first_core[i]:first_core[i + 1]].max())
                     for i, n in enumerate(names)}
    bottleneck = max(by_layer_util, key=by_layer_util.get) if any(
        v > 0 for v in by_layer_util.values()) else None

    static_w = profile.static_power_w
    static_pj = static_w * interval_ns * 1e-9 * PJ_PER_J
    gated = None
    frac = profile.cores.gateable_static_fraction
    if frac is not None:
        unused = max(profile.cores.count - n_cores, 0) / profile.cores.count
        gated = static_pj * (1.0 - frac * unused)
    # the serial bound pays every message a step waits for, at its longest hop distance
    hop_step_ns = np.zeros(counts.n_steps)
    for src, dst, delay in edges:
        if src in index and dst in index and placement is not None:
            longest = float(placement.hop_matrix(src, dst).max()) * hop_ns
            si, di = index[src], index[dst]
            for t in range(min(counts.n_steps, frame_steps)):
                if layer_active[di, t] and t - delay >= 0 and layer_active[si, t - delay]:
                    hop_step_ns[t] += longest
    # a frame alone (the time per frame of a chip taking frames one at a time), and the frame
    # in the stream: its steps are shared with every frame in flight, so the steady-state
    # latency is bounded only by the serial time of all their work (TTFS, SWS: frames overlap)
    serial_frame_ns = serial_latency_ns(counts, profile, hop_step_ns)
    serial_ns = serial_latency_ns(counts, profile, hop_step_ns, steps_per_frame=period)

    spikes = (counts.data[:, :, ACTION_INDEX["spike_out_pos"]]
              + counts.data[:, :, ACTION_INDEX["spike_out_neg"]])
    hops = hop_counts(placement, [(s, d) for s, d, _ in edges],
                      {n: spikes[i] for i, n in enumerate(names)})
    per_frame = counts.images or 1
    spans.sort(key=lambda x: (x[3], x[0]))
    truncated = len(spans) > max_intervals
    intervals = [(labels[c], names[core_layer[c]], f, t + 1, t0, t1)
                 for c, f, t, t0, t1 in spans[:max_intervals]]
    return PipelineResult(
        sync=timing.sync,
        latency_steps=frame_steps,
        latency_s=latency_ns * 1e-9,
        latency_alone_s=latency_alone_ns * 1e-9,
        throughput_fps=(1e9 / interval_ns) if interval_ns > 0 else None,
        frame_interval_steps=period,
        frame_interval_s=interval_ns * 1e-9,
        bottleneck=bottleneck,
        utilisation={labels[c]: float(util[c]) for c in range(n_cores)},
        layer_busy_ns={n: float(per_layer[i].sum()) for i, n in enumerate(names)},
        static_pj_per_frame=static_pj,
        static_pj_per_frame_gated=gated,
        serial_latency_s=serial_ns * 1e-9,
        serial_frame_s=serial_frame_ns * 1e-9,
        serial_static_pj_per_frame=static_w * serial_frame_ns * 1e-9 * PJ_PER_J,
        hops=hops,
        hops_per_frame={n: float(hops[i].sum()) / per_frame for i, n in enumerate(names)},
        frames_simulated=frames,
        cores_used=n_cores,
        intervals=intervals,
        intervals_truncated=truncated,
        warnings=warnings,
    )


def network_layer_sizes(network) -> list:
    """(name, neurons, stored synapses) of every layer of an ``EventNetwork``, the input
    encoder included: what the core mapping needs when no graph is at hand, counted as
    ``neurosim.report.layer_sizes`` counts them from the graph (every connection an event
    fans out through: a conv's valid taps, a dense map's non-zero entries)."""
    from neurosim.core.engine import _conv_runs
    from neurosim.core.network import CONV
    from neurosim.hw.mapping import LayerSize

    stored = np.zeros(network.layers, np.int64)
    for p, (src, dst) in enumerate(zip(network.p_src, network.p_dst)):
        if network.p_kind[p] == CONV:  # every channel of a position has its position's taps
            lengths = _conv_runs(network.p_geom[p])[3]
            stored[int(dst)] += int(lengths.sum()) * int(network.p_geom[p][0])
        else:
            rows = network.fanout[network.p_foff[p]:network.p_foff[p] + network.size[src]]
            stored[int(dst)] += int(rows.sum())
    return [LayerSize(str(n), int(network.size[i]), int(stored[i]))
            for i, n in enumerate(network.names)]


def pipeline_for_run(sim_result, profile, mapping, network, steps_per_frame: int,
                     max_intervals: int = MAX_INTERVALS) -> PipelineResult:
    """``simulate_pipeline`` for one fixed-point run: cores from ``mapping`` (a layer it does
    not hold, the input encoder, gets one core; None: mapped from the network's own sizes),
    edges from the scheme's ``EventNetwork``."""
    counts = sim_result.counts
    if mapping is None:
        from neurosim.hw.mapping import map_layers

        mapping = map_layers(network_layer_sizes(network), profile)
    mapped = {lm.name: lm.cores for lm in mapping.layers}
    layer_cores = [(n, max(1, int(mapped.get(n, 1)))) for n in counts.layers]
    names = list(network.names)
    edges = [(names[int(s)], names[int(d)], int(dl))
             for s, d, dl in zip(network.p_src, network.p_dst, network.p_delay)]
    result = simulate_pipeline(counts, profile, layer_cores, edges, steps_per_frame,
                               max_intervals=max_intervals)
    if not mapping.fits:
        # the model still runs, on as many cores as the layers need: say so in every run,
        # compare and sweep row, since the times and static energy are not this chip's
        result.warnings.insert(0, (
            f"the network does not fit {profile.name}: it needs {mapping.total_cores} cores, "
            f"the chip has {mapping.available_cores}; latency, throughput and static energy "
            f"are those of a chip with enough cores (the mapping table says which layers need "
            f"how many)"))
    return result
