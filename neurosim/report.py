"""Terminal tables and the JSON document (DESIGN §8). Formatting only: no computing."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

from tabulate import tabulate

from . import __version__
from .errors import UserError
from .graph import Graph, populations
from .hw.mapping import LayerSize


def population_rows(graph: Graph) -> list[dict]:
    """One row per population: what it is, how big, what feeds it, what that costs."""
    pops = populations(graph)
    index = {p.name: i for i, p in enumerate(pops)}
    rows = []
    for i, p in enumerate(pops):
        nodes = {n for proj in p.projections for n in proj.path}
        if p.pre in graph.nodes:
            nodes.add(p.pre)
        rows.append({
            "index": i,
            "name": p.name,
            "kind": p.kind,
            "shape": list(p.shape),
            "neurons": p.neurons,
            "incoming": [{"from": index[q.source], "ops": q.describe(graph)} for q in p.projections],
            "synapses": sum(q.synapses(graph, p.neurons) for q in p.projections),
            "parameters": sum(graph.nodes[n].params() for n in nodes),
            "macs": sum(graph.nodes[n].macs() for n in nodes),
        })
    return rows


def layer_sizes(graph: Graph) -> list[LayerSize]:
    """Neurons and stored synapses of every spiking layer (input excluded), for core mapping."""
    return [LayerSize(r["name"], r["neurons"], r["synapses"]) for r in population_rows(graph)
            if r["kind"] != "input"]


def _short(name: str, width: int = 22) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1):]


def model_table(graph: Graph) -> str:
    rows = population_rows(graph)
    body = [[r["index"], _short(r["name"]), r["kind"], "×".join(map(str, r["shape"])), r["neurons"],
             ", ".join(f"#{q['from']} {q['ops']}" for q in r["incoming"]) or "-",
             r["parameters"], r["macs"]] for r in rows]
    body.append(["", "total", "", "", sum(r["neurons"] for r in rows[1:]), "",
                 graph.params(), graph.macs()])
    return tabulate(body, headers=["#", "population", "kind", "shape", "neurons", "incoming",
                                   "params", "MACs"], intfmt=",")


def model_dict(graph: Graph) -> dict:
    pops = populations(graph)
    return {"name": graph.name, "path": graph.path,
            "populations": sum(1 for p in pops if p.kind != "input"),
            "parameters": graph.params()}


def document(model: dict, data: dict, ann: dict, hw: dict | None = None,
             runs: list | None = None) -> dict:
    return {"neurosim_version": __version__, "model": model, "data": data, "hw": hw,
            "ann": ann, "runs": runs or []}


def check_output_path(path: str | Path, option: str = "--json") -> Path:
    """Fail now, before any simulation, if ``path`` cannot receive a file: it names a
    directory, or nothing can be created where it points (a missing or read-only folder,
    /proc, /sys). A probe file is created and removed in the target folder."""
    if str(path) == "":
        raise UserError(f"{option}: an empty path; give a file name, e.g. result.json")
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {path}: is a directory; give a file name, e.g. {path}/result.json")
    folder = path.parent
    if not folder.is_dir():
        raise UserError(f"{option} {path}: folder {folder} does not exist")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{option} {path}: cannot write in {folder} ({exc.strerror})") from None
    return path


def finite_or_null(doc, where: str = "", found: list | None = None):
    """``doc`` with every non-finite float (NaN, ±inf) replaced by None; their key paths are
    appended to ``found`` (JSON has no NaN, and a reader must not get a silent number)."""
    found = found if found is not None else []
    if isinstance(doc, float) and not math.isfinite(doc):
        found.append(where or "(document)")
        return None
    if isinstance(doc, dict):
        return {k: finite_or_null(v, f"{where}.{k}" if where else str(k), found)
                for k, v in doc.items()}
    if isinstance(doc, (list, tuple)):
        return [finite_or_null(v, f"{where}[{i}]", found) for i, v in enumerate(doc)]
    return doc


def write_json(doc: dict, path: str | Path) -> list[str]:
    """Write the whole document or nothing: a temp file in the same folder, then a rename,
    with the permissions a newly created file gets (mode 0666 less the umask). Non-finite
    numbers are written as null; their key paths are returned for a warning."""
    path = Path(path)
    nulls: list[str] = []
    text = json.dumps(finite_or_null(doc, found=nulls), indent=2, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return nulls
