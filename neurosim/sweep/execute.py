"""Running a grid's points: serially in this process, or as tasks on a Dask cluster.

Both paths do the same work in the same units (``runner.py``): per model the inputs are loaded
and the ANN measured here, once; calibration once per (model, percentile), conversion once per
(model, coding parameters), quantization once per (model, coding, arithmetic); then each point
is simulated in image shards fixed by the grid's ``shard_size``. A point's row is written the
moment its last shard is merged (``store.py``); points already written are skipped.

On Dask every stage is a task whose inputs are earlier tasks or values held in the task itself
(the model, the shard's images): nothing lives only in one worker's memory, so when a worker
dies the scheduler reruns what it held elsewhere, and the client merges each shard number once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import sys
import textwrap
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import UserError
from . import runner
from .grid import Grid, Point
from .store import Store


@dataclass
class ModelInputs:
    name: str
    graph: Any
    data: Any
    calib: Any
    ann_accuracy: float
    macs: int


@dataclass
class Context:
    """Everything loaded once per sweep, on the client."""

    grid: Grid
    models: dict[str, ModelInputs]
    profiles: dict[str, Any]

    def arithmetic(self, p: Point):
        return runner.profile_arithmetic(self.profiles[p.profile], p.arithmetic,
                                         self.grid.allow_overflow)

    def edges(self, p: Point) -> list[tuple[int, int]]:
        return runner.shard_edges(len(self.models[p.model].data), self.grid.shard_size)

    def priced_profile(self, p: Point):
        import dataclasses

        return dataclasses.replace(self.profiles[p.profile], arithmetic=self.arithmetic(p))

    def row(self, p: Point, snn, fixed, flt, fx) -> dict:
        from ..energy import ann_energy

        m = self.models[p.model]
        return runner.point_row(p, self.grid, m.name, m.data.name, m.calib.name, m.data.y,
                                m.ann_accuracy, ann_energy(m.macs, self.profiles[p.profile]),
                                self.arithmetic(p), self.priced_profile(p), snn, fixed, flt, fx,
                                m.graph)

    def refused(self, p: Point, message: str) -> dict:
        from ..energy import ann_energy

        m = self.models[p.model]
        return runner.refused_row(p, self.grid, m.name, m.data.name, m.calib.name, len(m.data),
                                  m.ann_accuracy, ann_energy(m.macs, self.profiles[p.profile]),
                                  self.arithmetic(p), message)


def load_context(grid: Grid) -> Context:
    """Models, data and profiles, checked (a bad one is a UserError naming it)."""
    from .. import ann
    from ..inputs import resolve_model
    from ..data import check_labels, check_scale, load_calibration, load_data
    from ..hw.profile import bit_width_problems, load_profile
    from ..onnx_import import load_onnx

    profiles = {}
    for name in grid.profiles:
        try:
            profiles[name] = load_profile(grid.profile_path(name))
        except UserError as exc:
            raise UserError(f"{grid.path}: profiles: {exc}") from None
        for overrides in grid.arithmetic:  # the widths each point would run with
            a = dataclasses.replace(profiles[name].arithmetic, **dict(overrides))
            for key, expected in bit_width_problems(a.weight_bits, a.state_bits, a.frac_bits):
                raise UserError(f"{grid.path}: arithmetic.{key}: expected {expected}, found "
                                f"{getattr(a, key)} (with profile {name}'s arithmetic and the "
                                f"grid's {', '.join(f'{k}={v}' for k, v in overrides)})")
    models = {}
    for spec in grid.models:
        try:
            path = resolve_model(grid.model_path(spec))
            graph = load_onnx(path, path.stem)
        except UserError as exc:
            raise UserError(f"{grid.path}: models: {exc}") from None
        out = tuple(graph.output_shape)
        if len(out) != 1 or out[0] < 2:
            raise UserError(f"{grid.path}: models: {spec}: the output has shape {out} per "
                            f"image; expected (classes,)")
        try:
            data = load_data(grid.data_path(grid.data), graph.input_shape).head(grid.limit)
            check_labels(data, out[0])
            calib = load_calibration(grid.data_path(grid.calibration), graph.input_shape)
            check_scale(data, calib, "data", "calibration")
        except UserError as exc:
            raise UserError(f"{grid.path}: data/calibration for model {spec}: {exc}") from None
        models[spec] = ModelInputs(graph.name, graph, data, calib,
                                   ann.accuracy(graph, data.x, data.y), graph.macs())
    return Context(grid, models, profiles)


@dataclass
class SweepOutcome:
    points: list[Point]
    skipped: int                       # already in the store
    computed: int = 0
    refused: int = 0
    table: Any = None                  # pyarrow Table of every point of the grid
    files: list[Path] = field(default_factory=list)


def _label(outcome: SweepOutcome, todo: list) -> str:
    """The progress bar's title: points finished; its count is shards."""
    return f"{outcome.computed + outcome.refused}/{len(todo)} points, shards"


# ---------------------------------------------------------------------------- serial
class _Prepared:
    """Calibration, conversion and quantization, each once per distinct input."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.scales: dict = {}
        self.snns: dict = {}
        self.fixed: dict = {}

    def snn(self, p: Point):
        key = (p.model, p.scheme, p.params)
        if key not in self.snns:
            m = self.ctx.models[p.model]
            q = dict(p.params).get("percentile")
            if (p.model, q) not in self.scales:
                self.scales[(p.model, q)] = None if q is None else runner.calibrate_scales(
                    m.graph, m.calib.x, q)
            self.snns[key] = runner.convert(m.graph, m.calib.x, p.scheme, dict(p.params),
                                            self.scales[(p.model, q)])
        return self.snns[key]

    def quantized(self, p: Point):
        arith = self.ctx.arithmetic(p)
        key = (p.model, p.scheme, p.params, arith)
        if key not in self.fixed:
            self.fixed[key] = runner.quantize(self.snn(p), p.scheme, arith)
        return self.fixed[key]


def run_serial(ctx: Context, todo: list[Point], store: Store, shard_runner: Callable,
               progress: Callable | None, outcome: SweepOutcome) -> None:
    prepared = _Prepared(ctx)
    total = sum(len(ctx.edges(p)) for p in todo)
    finished = 0
    run_float = ctx.grid.precision == "both"
    for p in todo:
        snn, fixed = prepared.snn(p), prepared.quantized(p)
        if isinstance(fixed, runner.Refused):
            store.write_point(ctx.refused(p, fixed.message))
            outcome.refused += 1
            finished += len(ctx.edges(p))
            continue
        x = ctx.models[p.model].data.x
        shards = []
        for k, (a, b) in enumerate(ctx.edges(p)):
            shards.append(shard_runner(p.key, k, a, b, x[a:b], p.scheme, snn, fixed, run_float))
            finished += 1
            if progress:
                progress(_label(outcome, todo), finished, total)
        flt, fx = runner.merge_shards(shards, ctx.edges(p))
        store.write_point(ctx.row(p, snn, fixed, flt, fx))
        outcome.computed += 1


# ---------------------------------------------------------------------------- Dask
def _hold(value):
    """A task that returns its argument: a value the scheduler can recompute if lost."""
    return value


def run_dask(ctx: Context, todo: list[Point], store: Store, shard_runner: Callable,
             progress: Callable | None, outcome: SweepOutcome, client,
             numba_threads: int | None) -> None:
    from distributed import KilledWorker, as_completed

    run_id = uuid.uuid4().hex[:8]  # task keys of this run never meet an earlier run's
    numbers = itertools.count()
    held, scales, snns, fixed = {}, {}, {}, {}

    def task(name, fn, *args):
        return client.submit(fn, *args, key=f"{name}-{run_id}-{next(numbers)}", pure=False)

    futures: dict = {}          # shard future -> (point, shard number)
    for p in todo:
        m = ctx.models[p.model]
        if p.model not in held:
            held[p.model] = (task("model", _hold, m.graph), task("calibration", _hold, m.calib.x))
        graph_f, calib_f = held[p.model]
        q = dict(p.params).get("percentile")
        if (p.model, q) not in scales:
            scales[(p.model, q)] = None if q is None else task(
                "calibrate", runner.calibrate_scales, graph_f, calib_f, q)
        skey = (p.model, p.scheme, p.params)
        if skey not in snns:
            snns[skey] = task("convert", runner.convert, graph_f, calib_f, p.scheme,
                              dict(p.params), scales[(p.model, q)])
        arith = ctx.arithmetic(p)
        fkey = skey + (arith,)
        if fkey not in fixed:
            fixed[fkey] = task("quantize", runner.quantize, snns[skey], p.scheme, arith)
        for k, (a, b) in enumerate(ctx.edges(p)):
            f = task(f"shard-{p.key}-{k}", shard_runner, p.key, k, a, b, m.data.x[a:b],
                     p.scheme, snns[skey], fixed[fkey], ctx.grid.precision == "both",
                     numba_threads)
            futures[f] = (p, k)

    # a converted or quantized network is dropped from the workers once no open point needs it
    open_users: dict = {}
    for p in todo:
        skey = (p.model, p.scheme, p.params)
        for key in (skey, skey + (ctx.arithmetic(p),)):
            open_users[key] = open_users.get(key, 0) + 1

    def close(p: Point) -> None:
        closed.add(p.key)
        skey = (p.model, p.scheme, p.params)
        for key, store_of in ((skey, snns), (skey + (ctx.arithmetic(p),), fixed)):
            open_users[key] -= 1
            if open_users[key] == 0:
                store_of.pop(key).release()

    by_point: dict[str, list] = {p.key: [] for p in todo}
    closed: set[str] = set()
    total, finished = len(futures), 0
    for f in as_completed(list(futures)):
        p, _ = futures[f]
        finished += 1
        if progress:
            progress(_label(outcome, todo), finished, total)
        if p.key in closed:
            f.release()
            continue
        if f.status == "error":
            exc = f.exception()
            if isinstance(exc, KilledWorker):
                raise UserError(
                    f"point {p.index} ({p.model}, {p.profile}, {p.coding}): a shard took down "
                    f"every worker that ran it ({exc}); out of memory? The {outcome.computed} "
                    f"points finished in this run are kept: re-run the same command to resume"
                ) from None
            raise exc  # a bug: a user error is a Refused value, not an exception
        shard = f.result()
        f.release()
        if shard.refused is not None:
            store.write_point(ctx.refused(p, shard.refused))
            outcome.refused += 1
            close(p)
            continue
        by_point[p.key].append(shard)
        if len(by_point[p.key]) == len(ctx.edges(p)):
            skey = (p.model, p.scheme, p.params)
            snn, fx_net = client.gather([snns[skey], fixed[skey + (ctx.arithmetic(p),)]])
            flt, fx = runner.merge_shards(by_point.pop(p.key), ctx.edges(p))
            store.write_point(ctx.row(p, snn, fx_net, flt, fx))
            outcome.computed += 1
            close(p)


@contextlib.contextmanager
def _sigint_ignored():
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread sets handlers; a library caller keeps its own
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _client(workers: int | None, scheduler: str | None, echo):
    """(client, cluster or None, numba threads per task): an existing cluster at ``scheduler``,
    or a LocalCluster of ``workers`` processes with one thread each."""
    import logging

    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise UserError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        echo(f"dask: connected to {scheduler}; dashboard {client.dashboard_link}")
        return client, None, 1  # a task per worker thread: numba's threads would oversubscribe
    n = workers or os.cpu_count() or 1
    # the worker processes start with Ctrl-C ignored (they inherit it): a terminal's Ctrl-C
    # reaches the whole process group, and each worker printed a KeyboardInterrupt traceback
    # while this process was already closing the cluster
    with _sigint_ignored():
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.CRITICAL)
    client = Client(cluster)
    echo(f"dask: local cluster of {n} worker processes; dashboard {client.dashboard_link}")
    return client, cluster, 1


def run_sweep(grid: Grid, out, workers: int | None = None, scheduler: str | None = None,
              serial: bool = False, shard_runner: Callable = runner.run_shard,
              progress: Callable | None = None, echo: Callable = print,
              client=None, numba_threads: int | None = None) -> SweepOutcome:
    """Compute the grid's points not yet in ``out`` and write the table (Parquet and CSV).

    ``serial`` runs everything in this process (no Dask); otherwise a LocalCluster of
    ``workers`` processes (default: one per core), the cluster at ``scheduler``, or ``client``
    (an open ``distributed.Client``, e.g. a test's; ``numba_threads`` then sets each shard
    task's numba threads, as one per worker on a LocalCluster of single-thread workers)."""
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise UserError(f"--workers must be a positive number of worker processes, found "
                        f"{workers}")
    store = Store(Path(out))
    store.open()
    points = grid.points()
    done = store.done()
    todo = [p for p in points if p.key not in done]
    outcome = SweepOutcome(points, skipped=len(points) - len(todo))
    if todo:
        ctx = load_context(grid)
        if serial:
            run_serial(ctx, todo, store, shard_runner, progress, outcome)
        else:
            own = client is None
            cluster, threads = None, numba_threads
            if own:
                client, cluster, threads = _client(workers, scheduler, echo)
            try:
                run_dask(ctx, todo, store, shard_runner, progress, outcome, client, threads)
            finally:
                if own:
                    client.close()
                    if cluster is not None:
                        cluster.close()
    outcome.table = store.table([p.key for p in points])
    if outcome.table is not None:
        outcome.files = store.write_table(outcome.table)
    return outcome


def estimate(grid: Grid, probe_images: int = 8, echo: Callable = print) -> dict:
    """``--dry-run``: the points, and the work measured on a few images per (model, coding):
    synaptic events and spikes per image, times the images and the points that share it."""
    from ..counts import ACTION_INDEX

    points = grid.points()
    ctx = load_context(grid)
    prepared = _Prepared(ctx)
    per_image: dict = {}
    for p in points:
        key = (p.model, p.scheme, p.params)
        if key in per_image:
            continue
        fixed = prepared.quantized(p)
        if isinstance(fixed, runner.Refused):
            per_image[key] = fixed.message
            continue
        x = ctx.models[p.model].data.x[:probe_images]
        res = runner.run_shard(p.key, 0, 0, len(x), x, p.scheme, None, fixed, False)
        c = res.fixed_result.counts.data.sum(axis=(0, 1))
        per_image[key] = float(c[ACTION_INDEX["synop"]] + c[ACTION_INDEX["weight_read"]]
                               + c[ACTION_INDEX["spike_out_pos"]]
                               + c[ACTION_INDEX["spike_out_neg"]]) / max(len(x), 1)
    events = 0.0
    lines = []
    for p in points:
        m = ctx.models[p.model]
        est = per_image[(p.model, p.scheme, p.params)]
        arith = ",".join(f"{k}={v}" for k, v in p.arithmetic) or "-"
        if isinstance(est, str):
            lines.append(f"{p.index:4d}  {p.model}  {p.profile}  {arith}  {p.coding}  "
                         f"(refused on {grid.profiles[0]}'s arithmetic: {est.splitlines()[0]})")
            continue
        events += est * len(m.data)
        lines.append(f"{p.index:4d}  {p.model}  {p.profile}  {arith}  {p.coding}  "
                     f"~{est * len(m.data):,.0f} events")
    shards = sum(len(ctx.edges(p)) for p in points)
    for line in lines:
        echo(line)
    images = {name: len(m.data) for name, m in ctx.models.items()}
    echo(textwrap.fill(
        f"{len(points)} points, {shards} shards of ≤ {grid.shard_size} images "
        f"(images per model: {', '.join(f'{k} {v}' for k, v in images.items())}); "
        f"~{events:,.0f} events in all (synops, extra weight reads and spikes, measured on "
        f"{probe_images} images per model and coding on the first profile's arithmetic)", 100))
    return {"points": len(points), "shards": shards, "events": events}


def progress_bars() -> Callable | None:
    """A tqdm bar over shards on a terminal (after 2 s, like the run's); none on a pipe or
    a file."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    bar = {}

    def show(label: str, done: int, total: int) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, desc=label, unit="shard", delay=2.0, file=sys.stderr,
                              leave=False, dynamic_ncols=True)
        if bar["bar"].desc != label:
            bar["bar"].set_description(label, refresh=False)
        bar["bar"].update(done - bar["bar"].n)
        if done >= total:
            bar.pop("bar").close()

    return show
