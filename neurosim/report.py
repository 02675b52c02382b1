"""Terminal tables and the JSON document (DESIGN §8). Formatting only: no computing."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from tabulate import tabulate

from . import __version__
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


def write_json(doc: dict, path: str | Path) -> None:
    """Write the whole document or nothing: a temp file in the same folder, then a rename."""
    path = Path(path)
    text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
