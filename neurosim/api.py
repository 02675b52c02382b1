"""The library entry point: one call measures a model under codings on hardware profiles.

    import neurosim
    result = neurosim.run("digits_cnn", hw="loihi_like", codings=["sws", "rate:T=128"])
    result.runs[0]["energy_pj"]["dynamic"]      # the DESIGN §8 entries
    result.to_json()                            # the whole §8 document (a dict)
    print(result.to_markdown())                 # the report.md text
    result.plots("figures")                     # PNG files; result.write("out") writes all files

The command line (``neurosim run``, ``compare``, ``check``) is a thin shell over ``run``,
``compare`` and ``check`` here: it parses options, prints ``Result.summary()`` and writes
files. A bundled model or profile is named by its name, a user file by its path; outputs show
bundled ones by name and user files by the path as given, never a path of this machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .errors import UserError
from .fixed_vs_float import warn_conversion_loss, warn_fixed_loss
# the names a run's inputs go by, re-exported: neurosim.api.resolve_model, models_manifest, ...
from .inputs import (DEFAULT_CODINGS, DEFAULT_HW, DEFAULT_MODEL, MODELS_DIR,  # noqa: F401
                     check_progress, codings_specs, load_inputs, models_manifest, resolve_model,
                     shown_value)
from .report import images


# ------------------------------------------------------------------------ the result
@dataclass
class CodingTrace:
    """What the plots and counts.csv need of one coding's run beyond its JSON entry: per-layer
    counts and spikes over time, means per inference."""

    coding: str
    layers: tuple[str, ...]
    counts_by_layer: np.ndarray   # (layers, actions), mean per inference
    spikes_by_step: np.ndarray    # (layers, steps), spikes (+ and −) per inference
    gantt: list | None = None     # pipeline intervals (core, frame, start_s, end_s), when modelled


def _fmt_acc(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _run_brief(run: dict) -> str:
    """``rate:T=16 fixed 0.8750 float 0.9000``: a run entry in a repr."""
    acc = run.get("accuracy") or {}
    return (f"{run.get('coding')} fixed {_fmt_acc(acc.get('fixed'))} "
            f"float {_fmt_acc(acc.get('float'))}")


@dataclass
class ProfileResult:
    """Every coding's run on one hardware profile."""

    profile: Any
    path: str | None              # as given; None when bundled
    mapping: Any
    ann_energy_pj: float          # MACs only: a lower bound
    ann_memory: dict | None       # the ANN with its memory traffic (energy.ann_energy_fair)
    runs: list[dict]
    traces: list[CodingTrace]
    # ``compare``: the codings this model or profile cannot take, {"coding", "reason"}
    not_run: list[dict] = field(default_factory=list)

    @property
    def ann_energy_with_memory_pj(self) -> float | None:
        return None if self.ann_memory is None else self.ann_memory["total_pj"]

    @property
    def name(self) -> str:
        return self.profile.name

    def __repr__(self) -> str:
        return (f"<neurosim ProfileResult {self.name}: "
                + (", ".join(_run_brief(r) for r in self.runs) or "no runs")
                + (f"; not run: {', '.join(n['coding'] for n in self.not_run)}"
                   if self.not_run else "") + ">")

    def hw_dict(self, with_mapping: bool = True) -> dict:
        from .hw.mapping import mapping_to_dict

        d = {"name": self.profile.name, "path": self.path, "bundled": self.path is None}
        if with_mapping:
            d["mapping"] = mapping_to_dict(self.mapping)
        return d


@dataclass
class Result:
    """A model measured under one or more codings on one or more profiles.

    ``runs`` are the DESIGN §8 entries on the first profile; ``profiles`` holds every profile's.
    """

    command: str                  # "run" or "compare": which document shape to_json gives
    graph: Any
    model_path: str | None
    data: Any
    calib: Any
    ann_accuracy: float
    macs: int
    precision: str
    profiles: list[ProfileResult] = field(default_factory=list)

    @property
    def runs(self) -> list[dict]:
        return self.profiles[0].runs

    def __repr__(self) -> str:
        """A few lines: the inputs, and each profile's codings with their accuracies (the
        generated repr would print the whole graph and pipeline, ~60,000 characters)."""
        head = (f"<neurosim.Result {self.command}: model {self.graph.name}, data "
                f"{self.data.name} ({images(len(self.data))}), precision {self.precision}, "
                f"ANN accuracy {_fmt_acc(self.ann_accuracy)}")
        lines = [f"  {p.name}: " + (", ".join(_run_brief(r) for r in p.runs) or "no runs")
                 for p in self.profiles]
        return "\n".join([head] + lines) + ">"

    @property
    def profile(self):
        return self.profiles[0].profile

    def model_dict(self) -> dict:
        from .report import model_dict

        d = model_dict(self.graph)
        d["path"] = self.model_path
        d["bundled"] = self.model_path is None
        d["macs"] = self.macs
        return d

    def to_json(self) -> dict:
        """The DESIGN §8 document (a JSON-ready dict; non-finite numbers are made null when it
        is written)."""
        from .report import document

        first = self.profiles[0]
        doc = document(
            model=self.model_dict(),
            data={"name": self.data.name, "images": len(self.data)},
            hw=first.hw_dict(with_mapping=self.command == "run"),
            ann={"accuracy": self.ann_accuracy, "macs": self.macs,
                 "energy_pj": first.ann_energy_pj,
                 "energy_with_memory_pj": first.ann_energy_with_memory_pj,
                 "memory_model": first.ann_memory},
            runs=first.runs,
        )
        doc["calibration"] = {"name": self.calib.name, "images": len(self.calib)}
        doc["precision"] = self.precision
        if self.command == "compare" or len(self.profiles) > 1:
            doc["comparisons"] = [{"hw": p.hw_dict(with_mapping=False),
                                   "ann_energy_pj": p.ann_energy_pj,
                                   "ann_energy_with_memory_pj": p.ann_energy_with_memory_pj,
                                   "runs": p.runs, "not_run": p.not_run}
                                  for p in self.profiles]
        return doc

    def summary(self) -> str:
        """The terminal text of ``neurosim run`` / ``compare`` (lines ≤ 100 columns)."""
        from .report import format_summary

        return format_summary(self) + "".join("\n" + line for line in self.not_run_lines())

    def not_run_lines(self, markdown: bool = False) -> list[str]:
        """The codings ``compare`` left out, per profile, with why (lines ≤ 100 columns)."""
        import textwrap

        lines = []
        for p in self.profiles:
            for entry in p.not_run:
                head = f"Not run on {p.name}: {entry['coding']}: "
                if markdown:
                    head = f"- Not run on {p.name}: `{entry['coding']}`: "
                lines += textwrap.wrap(head + entry["reason"], 100, subsequent_indent="  ",
                                       break_on_hyphens=False)
        return lines

    def to_markdown(self, figures: Sequence[str] = ()) -> str:
        """report.md: inputs, the ANN, each profile's table, energy by action and by layer,
        relative to the ANN, and links to ``figures`` (file names beside report.md)."""
        from .report import format_markdown

        text = format_markdown(self, figures)
        skipped = self.not_run_lines(markdown=True)
        return text + ("\n## Not run\n\n" + "\n".join(skipped) + "\n" if skipped else "")

    def counts_csv(self) -> str:
        """counts.csv: one row per profile × coding × layer, one column per counted action
        (means per inference)."""
        from .report import format_counts_csv

        return format_counts_csv(self)

    def plots(self, directory) -> list[Path]:
        """Write the PNG figures into ``directory`` (created if missing); returns their paths."""
        from .plots import write_plots

        return write_plots(self, Path(directory))

    def write(self, directory) -> list[Path]:
        """Write report.md, report.json (validated against the shipped schema), counts.csv and
        the PNG figures into ``directory``, each file whole or not at all."""
        from .report import write_report_files

        return write_report_files(self, Path(directory))


# ------------------------------------------------------------------------ timing of a run
def run_timing(run: dict, sim_result, profile, mapping, network) -> dict:
    """Latency (s), sustained throughput (frames/s) and the busy intervals of the cores for
    one run, from the SimPy pipeline model (``neurosim.pipeline``) fed with the run's real
    counts, its network's projections and the profile's core mapping.

    A float-only run has no counted work: no timing. The model's result that
    ``simulate.run_codings`` keeps in ``sim_result.extra["pipeline"]`` is used, not run again."""
    if network is None or run.get("energy_pj") is None:
        return {"latency_s": run.get("latency_s"), "throughput_fps": run.get("throughput_fps"),
                "pipeline": run.get("pipeline"), "gantt": None}
    pipe = sim_result.extra.get("pipeline")  # run_codings ran the model for this entry
    if pipe is None:
        from .pipeline import pipeline_for_run

        pipe = pipeline_for_run(sim_result, profile, mapping, network,
                                int(run["steps_per_frame"]))
    gantt = [(core, frame, start_ns * 1e-9, end_ns * 1e-9)
             for core, _layer, frame, _step, start_ns, end_ns in pipe.intervals]
    return {"latency_s": pipe.latency_s, "throughput_fps": pipe.throughput_fps,
            "pipeline": run.get("pipeline") or pipe.to_dict(), "gantt": gantt}


def _trace(run: dict, sim_result) -> CodingTrace:
    from .counts import ACTION_INDEX

    c = sim_result.counts
    n = c.images or 1
    per_layer = c.data.sum(axis=1).astype(np.float64) / n
    spikes = (c.data[:, :, ACTION_INDEX["spike_out_pos"]]
              + c.data[:, :, ACTION_INDEX["spike_out_neg"]]).astype(np.float64) / n
    return CodingTrace(run["coding"], tuple(c.layers), per_layer, spikes)


# ------------------------------------------------------------------------ entry points
def run(model=None, hw=DEFAULT_HW, codings=DEFAULT_CODINGS, data=None, calib=None,
        limit: int | None = None, seed: int | None = None, precision: str = "both",
        allow_overflow: bool = False, progress: Callable | bool | None = None,
        command: str = "run") -> Result:
    """Measure ``model`` under each coding on each profile.

    model      bundled name (``digits_cnn``, default), ONNX path or an ``onnx.ModelProto``
    hw         bundled profile name, YAML path or loaded ``Profile``, or a list of them (one
               result each)
    codings    coding specs, e.g. ``["sws:Tc=6", "rate:T=128"]`` or ``{"rate": {"T": 128},
               "sws": None}``; ``"all"`` = every scheme
    data       ``digits`` (default), ``digits:calibration``, an .npz path with x and y, or
               arrays: ``(x, y)``, ``{"x": x, "y": y}`` or a ``neurosim.data.Dataset``
    calib      calibration images (default: the digits calibration split, for 1×8×8 models),
               given as ``data`` is, or as an array ``x`` alone (no labels needed)
    limit      only the first ``limit`` images; ``seed`` for codings that draw random numbers
    precision  ``float``, ``fixed`` or ``both``
    allow_overflow  True: run a coding whose registers overflow, with a warning
    progress   ``None``/``True``: a progress bar on stderr when it is a terminal and the run
               takes over ~2 s; ``False``: none; a callable ``(label, done, total)``: yours
    """
    from . import ann
    from .data import scale_note
    from .energy import ann_energy, ann_energy_fair
    from .hw.mapping import map_layers
    from .progress import ProgressBars
    from .report import layer_sizes
    from .simulate import PRECISIONS, run_codings

    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise UserError(f"precision: expected one of {', '.join(PRECISIONS)}, found "
                        f"{shown_value(precision)}")
    if command not in ("run", "compare"):
        raise UserError(f"command: expected 'run' or 'compare', found {shown_value(command)}")
    progress = check_progress(progress)
    inputs = load_inputs(model, hw, codings, data, calib, limit, seed, allow_overflow,
                         default_codings=["all"] if command == "compare" else DEFAULT_CODINGS)
    graph, test = inputs.graph, inputs.data
    bars = None
    if progress is None or progress is True:
        bars = ProgressBars()
        progress = bars
    elif progress is False:
        progress = None
    acc = ann.accuracy(graph, test.x, test.y)
    macs = graph.macs()
    result = Result(command, graph, inputs.model_path, test, inputs.calib, acc, macs, precision)
    sizes = layer_sizes(graph)
    scale = scale_note(test, inputs.calib)
    refused_profiles: list[str] = []
    try:
        for profile, shown in zip(inputs.profiles, inputs.profile_paths):
            traces: list[CodingTrace] = []
            # compare, and run with 'all', measure what they can: a coding this model or
            # profile cannot take is reported with why, not a stop for the others (run with
            # named codings stops: each was asked for)
            not_run = [] if command == "compare" or _asks_all(codings) else None

            mapping = map_layers(sizes, profile)

            def keep(run_entry, sim_result, network, _traces=traces, _profile=profile,
                     _mapping=mapping):
                timing = run_timing(run_entry, sim_result, _profile, _mapping, network)
                run_entry["latency_s"] = timing["latency_s"]
                run_entry["throughput_fps"] = timing["throughput_fps"]
                if timing["pipeline"] is not None:
                    run_entry["pipeline"] = timing["pipeline"]
                trace = _trace(run_entry, sim_result)
                trace.gantt = timing["gantt"]
                _traces.append(trace)

            where = f"profile '{profile.name}'" + (f" ({shown})" if shown else "")
            try:
                runs = run_codings(graph, test, inputs.calib, inputs.codings, precision, profile,
                                   progress=progress, seed=inputs.seed, on_result=keep,
                                   not_run=not_run)
            except UserError as e:
                if len(inputs.profiles) == 1:
                    raise
                raise UserError(f"on {where}: {e}") from None
            if not runs:
                reasons = "; ".join(f"{n['coding']}: {n['reason']}" for n in not_run or [])
                # the other profiles' tables are still worth printing; each refusal is
                # listed under them, and it is an error only if no profile ran anything
                refused_profiles.append(f"on {where}: no coding can run on this model: "
                                        f"{reasons}")
            for r in runs:
                warn_conversion_loss(r, acc, len(test), scale)
                warn_fixed_loss(r, len(test))
            result.profiles.append(ProfileResult(profile, shown, mapping,
                                                 ann_energy(macs, profile),
                                                 ann_energy_fair(graph, profile), runs, traces,
                                                 not_run or []))
    finally:
        if bars is not None:
            bars.close()
    if refused_profiles and not any(p.runs for p in result.profiles):
        raise UserError("; ".join(refused_profiles))
    return result


def _asks_all(codings) -> bool:
    """Whether ``codings`` (as ``run`` takes it) asks for every scheme with ``all``."""
    if isinstance(codings, str):
        return codings.strip() == "all"
    return isinstance(codings, (list, tuple)) and any(
        isinstance(c, str) and c.strip() == "all" for c in codings)


def compare(model=None, hw=DEFAULT_HW, codings=("all",), **kwargs) -> Result:
    """Every coding (or the given ones) in float and fixed point on each profile of ``hw``:
    ``neurosim compare``. Its JSON adds ``comparisons``, one block per profile."""
    kwargs.setdefault("precision", "both")
    return run(model, hw=hw, codings=codings, command="compare", **kwargs)


@dataclass
class CheckResult:
    """``neurosim check``: fixed point versus float per coding and layer on one profile."""

    graph: Any
    model_path: str | None
    data: Any
    profile: Any
    profile_path: str | None
    results: list[dict]

    def __repr__(self) -> str:
        codings = list(dict.fromkeys(str(r.get("coding")) for r in self.results
                                     if isinstance(r, dict)))
        return (f"<neurosim.CheckResult: model {self.graph.name}, data {self.data.name} "
                f"({images(len(self.data))}), hw {self.profile.name}, "
                f"{len(self.results)} result(s) for {', '.join(codings) or 'no coding'}>")

    def to_json(self) -> dict:
        from .report import document, model_dict

        model = dict(model_dict(self.graph), path=self.model_path,
                     bundled=self.model_path is None)
        doc = document(model=model, data={"name": self.data.name, "images": len(self.data)},
                       hw={"name": self.profile.name, "path": self.profile_path,
                           "bundled": self.profile_path is None}, ann=None, runs=None)
        del doc["ann"], doc["runs"]  # a check has neither: schema $defs/check_document
        doc["check"] = self.results
        return doc

    def summary(self) -> str:
        from .fixed_vs_float import format_check

        return (f"model {self.graph.name}, data {self.data.name} ({images(len(self.data))}), "
                f"hw {self.profile.name}\n\n" + format_check(self.results, self.profile.name))


def check(model=None, hw=DEFAULT_HW, codings=DEFAULT_CODINGS, data=None, calib=None,
          limit: int | None = None, seed: int | None = None, allow_overflow: bool = False,
          progress: Callable | bool | None = None) -> CheckResult:
    """Fixed point versus float for each coding on one profile (``neurosim check``).

    ``progress``: a callable ``(what)`` called with each step's label; ``True``: those labels
    on stderr; ``None``/``False``: none. The other arguments are those of ``run``."""
    import sys

    from .fixed_vs_float import check as check_codings

    progress = check_progress(progress)
    if progress is True:
        def progress(what):
            print(f"  {what}", file=sys.stderr)
    elif progress is False:
        progress = None
    inputs = load_inputs(model, hw, codings, data, calib, limit, seed, allow_overflow)
    results = check_codings(inputs.graph, inputs.data, inputs.calib, inputs.codings,
                            inputs.profiles[0], progress=progress)
    return CheckResult(inputs.graph, inputs.model_path, inputs.data, inputs.profiles[0],
                       inputs.profile_paths[0], results)
