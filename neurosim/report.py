"""Terminal tables and the JSON document (DESIGN §8). Formatting only: no computing."""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import textwrap
from pathlib import Path

from tabulate import tabulate

from . import __version__
from .errors import UserError
from .graph import Graph, populations
from .hw.mapping import LayerSize
from .projection import connections, normal_form


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
            "synapses": sum(connections(normal_form(graph, q, p)) for q in p.projections),
            "parameters": sum(graph.nodes[n].params() for n in nodes),
            "macs": sum(graph.nodes[n].macs() for n in nodes),
        })
    return rows


def layer_sizes(graph: Graph) -> list[LayerSize]:
    """Neurons and stored synapses of every population, for core mapping. The input layer's
    encoder neurons take cores like any layer (no synapses): the pipeline model places them,
    so the fit verdict counts them (a probe found a chip one core short said to fit)."""
    return [LayerSize(r["name"], r["neurons"], r["synapses"]) for r in population_rows(graph)]


def _short(name: str, width: int = 22) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1):]


# ---------------------------------------------------------------- tables of coding runs
MAX_WIDTH = 100  # the README's promise: every table neurosim prints fits 100 columns


def coding_lines(spec: str, width: int, break_pairs: bool = False) -> str:
    """The coding spec as the JSON has it (``sws:negative_spikes=off,Tc=4``), on lines of at
    most ``width`` characters broken only after its colon or a comma, so a key=value pair is
    never split; a pair wider than ``width`` gets a line of its own. ``break_pairs``: such a
    pair is broken after its ``=`` too (the last resort, when the numbers leave no more room)."""
    name, colon, rest = spec.partition(":")
    pairs = rest.split(",") if rest else []
    pieces = [name + colon] + [p + "," for p in pairs[:-1]] + pairs[-1:]
    if break_pairs:
        pieces = [part for piece in pieces for part in
                  ([piece] if len(piece) <= width or "=" not in piece else
                   [piece[:piece.index("=") + 1], piece[piece.index("=") + 1:]])]
    lines = [""]
    for piece in pieces:
        if lines[-1] and len(lines[-1]) + len(piece) > width:
            lines.append("")
        lines[-1] += piece
    return "\n".join(lines)


def _parts_on_lines(cell) -> str:
    """A cell of several numbers ("a / b", "a + b", "a, b µJ, c") with each part after the
    first on a line of its own (the thousands separator "1,234" has no space: kept)."""
    text = str(cell)
    for sep in (" / ", " + ", ", "):
        text = text.replace(sep, sep.rstrip() + "\n")
    return text


def _widest(text: str) -> int:
    return max(map(len, text.splitlines()), default=0)


def coding_table(rows, headers, colalign=None, markdown: bool = False) -> str:
    """A table whose rows start with a coding spec, within MAX_WIDTH columns: the specs whole
    if they fit, else wrapped at their commas into the room the other columns leave; if the
    numbers leave too little, the headers lose their padding, then the number cells of several
    parts go on several lines; only then is a key=value pair broken, after its ``=``."""
    import tabulate as tabulate_module

    def render(cells, header_padding):
        if markdown:
            return md_table(cells, headers)
        padding, tabulate_module.MIN_PADDING = tabulate_module.MIN_PADDING, header_padding
        try:
            return tabulate(cells, headers=headers, disable_numparse=True, colalign=colalign)
        finally:
            tabulate_module.MIN_PADDING = padding

    rows = [list(r) for r in rows]
    parts_on_lines = [[r[0]] + [_parts_on_lines(c) for c in r[1:]] for r in rows]
    longest = max((len(r[0]) for r in rows), default=0)
    table = ""
    for cells, header_padding, break_pairs in ((rows, 2, False), (rows, 0, False),
                                               (parts_on_lines, 0, False),
                                               (parts_on_lines, 0, True)):
        room = longest
        for _ in range(2):  # the specs whole, then narrowed by what the table is over
            table = render([[coding_lines(r[0], room, break_pairs)] + r[1:] for r in cells],
                           header_padding)
            if _widest(table) <= MAX_WIDTH:
                return table
            room -= _widest(table) - MAX_WIDTH
    return table


def model_table(graph: Graph) -> str:
    rows = population_rows(graph)
    body = [[r["index"], _short(r["name"]), r["kind"], "×".join(map(str, r["shape"])), r["neurons"],
             ", ".join(f"#{q['from']} {q['ops']}" for q in r["incoming"]) or "-",
             r["parameters"], r["macs"]] for r in rows]
    body.append(["", "total", "", "", sum(r["neurons"] for r in rows[1:]), "",
                 graph.params(), graph.macs()])
    headers = ["#", "population", "kind", "shape", "neurons", "incoming", "params", "MACs"]
    table = tabulate(body, headers=headers, intfmt=",")
    over = _widest(table) - MAX_WIDTH
    if over > 0:  # a population with many inputs: its 'incoming' cell wraps into what is left
        room = max(12, max(len(str(r[5])) for r in body) - over)
        table = tabulate(body, headers=headers, intfmt=",",
                         maxcolwidths=[None] * 5 + [room, None, None])
    return table


def model_dict(graph: Graph) -> dict:
    pops = populations(graph)
    return {"name": graph.name, "path": graph.path,
            "populations": sum(1 for p in pops if p.kind != "input"),
            "parameters": graph.params()}


def document(model: dict, data: dict, ann: dict, hw: dict | None = None,
             runs: list | None = None) -> dict:
    return {"neurosim_version": __version__, "model": model, "data": data, "hw": hw,
            "ann": ann, "runs": runs or []}


def _existing_folder(path: Path, option: str) -> Path:
    """The folder ``path`` would be created in, or a UserError saying why it cannot be."""
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{option} {path}: {folder} is a file, not a folder")
    if not folder.is_dir():
        raise UserError(f"{option} {path}: folder {folder} does not exist")
    return folder


def check_output_path(path: str | Path, option: str = "--json") -> Path:
    """Fail now, before any simulation, if ``path`` cannot receive a file: it names a
    directory, or nothing can be created where it points (a missing or read-only folder,
    /proc, /sys). A probe file is created and removed in the target folder."""
    if str(path) == "":
        raise UserError(f"{option}: an empty path; give a file name, e.g. result.json")
    if str(path) == "-":
        raise UserError(f"{option} -: give a file name (the tables go to stdout; /dev/stdout "
                        "would mix the two)")
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {path}: is a directory; give a file name, e.g. {path}/result.json")
    folder = _existing_folder(path, option)
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{option} {path}: the file exists and cannot be written "
                        "(read-only or immutable); give another name or remove it")
    if _written_in_place(path):
        return path
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
    write_atomic(path, text)
    return nulls


# ---------------------------------------------------------------- atomic files of a report
def write_atomic(path: str | Path, content: str | bytes) -> None:
    """Write ``content`` whole or not at all: a temp file in the same folder, then a rename,
    with the permissions a newly created file gets (mode 0666 less the umask). A symlink is
    written through (the link stays, its target gets the file); what is not a regular file
    (a device, a FIFO, /dev/stdout) is written to directly, never replaced. A file that
    cannot be replaced (a sticky folder someone else owns the file in) is overwritten in
    place if it can be; else a UserError names it."""
    path = Path(path)
    data = content.encode() if isinstance(content, str) else content
    # /dev/stdout may resolve to a regular file the shell redirected to: replacing that file
    # would send the rest of stdout to an unlinked one
    if _written_in_place(path):
        _write_in_place(path, data, "ab")  # appended to what the shell already wrote there
        return
    real = Path(os.path.realpath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.", suffix=".tmp")
    except OSError as exc:
        raise UserError(f"{path}: cannot write in {real.parent} ({exc.strerror})") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, real)
    except PermissionError:
        Path(tmp).unlink(missing_ok=True)
        _write_in_place(path, data)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _written_in_place(path: Path) -> bool:
    """A device, FIFO or /dev, /proc entry: written to, never replaced by a rename."""
    return path.exists() and (not path.is_file()
                              or path.absolute().parts[1:2] in (("dev",), ("proc",)))


def _is_stdout(path: Path) -> bool:
    try:
        mine, theirs = os.stat(path), os.fstat(sys.stdout.fileno())
    except (OSError, AttributeError, ValueError):  # no real stdout (a notebook, a closed one)
        return False
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


def _write_in_place(path: Path, data: bytes, mode: str = "wb") -> None:
    try:
        if _is_stdout(path):  # through Python's own stream: in order with the tables
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
            return
        with open(path, mode) as f:
            f.write(data)
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror})") from None


def check_output_dir(path: str | Path, option: str = "--out") -> Path:
    """Fail before anything runs if ``path`` cannot become a report folder: it is a file, its
    parent does not exist, or nothing can be written there. The folder is not created here."""
    if str(path) == "":
        raise UserError(f"{option}: an empty path; give a folder name, e.g. report")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path}: is a file; give a folder for the report files")
    folder = path if path.is_dir() else _existing_folder(path, option)
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".neurosim.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{option} {path}: cannot write in {folder} ({exc.strerror})") from None
    return path


REPORT_FILES = ("report.md", "report.json", "counts.csv")


def require_valid(doc: dict, validate, what: str) -> None:
    """Raise if ``doc`` (as written: non-finite numbers as null) breaks the shipped schema
    (``validate``, from ``neurosim.schema``): a document that breaks its own contract is a
    bug, not a user error."""
    problems = validate(finite_or_null(doc))
    if problems:
        raise RuntimeError(f"{what} does not match neurosim/schema/report.schema.json: "
                           + "; ".join(problems[:5]))


def write_report_files(result, directory: Path) -> list[Path]:
    """report.json (validated against the shipped schema first), counts.csv, the figures,
    then report.md linking them. Returns the paths written.

    The report is one set of files or none: they are made in a hidden folder inside
    ``directory`` and moved into place together, Ctrl-C held for the moves; a report file
    of an earlier run that this one does not make (a figure with no data this time) is
    removed, so the folder never mixes two runs. Other files in the folder are left alone."""
    import shutil

    from .interrupt import deferred
    from .plots import FIGURES
    from .schema import validate_report

    check_output_dir(directory)
    directory.mkdir(exist_ok=True)
    doc = finite_or_null(result.to_json())
    require_valid(doc, validate_report, "report.json")
    staging = Path(tempfile.mkdtemp(dir=directory, prefix=".neurosim-report-"))
    try:
        write_json(doc, staging / "report.json")
        write_atomic(staging / "counts.csv", result.counts_csv())
        figures = result.plots(staging)
        write_atomic(staging / "report.md", result.to_markdown([f.name for f in figures]))
        made = ["report.json", "counts.csv", *(f.name for f in figures), "report.md"]
        with deferred():
            for name in set(REPORT_FILES + FIGURES) - set(made):
                (directory / name).unlink(missing_ok=True)
            for name in made:
                os.replace(staging / name, directory / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [directory / name for name in made]


# ---------------------------------------------------------------- text of a result
def images(n: int) -> str:
    """'1 image', '360 images'."""
    return f"{n:,} image" + ("" if n == 1 else "s")


def _shown(name: str, path: str | None) -> str:
    return f"{name}  (bundled)" if path is None else f"{name}  ({path})"


def format_summary(result) -> str:
    """What ``neurosim run`` / ``compare`` print (lines ≤ 100 columns)."""
    from .hw.mapping import format_mapping

    g, acc, n = result.graph, result.ann_accuracy, len(result.data)
    if result.command == "compare":
        lines = [f"model {g.name}, data {result.data.name} ({images(n)}), calibration "
                 f"{result.calib.name} ({images(len(result.calib))})\nANN accuracy {acc:.4f}"]
        for p in result.profiles:
            lines += ["", format_comparison(p.runs, acc, result.macs, p.ann_energy_pj, p.name)]
        if len(result.profiles) > 1:
            lines += ["", "The profiles side by side: fixed-point accuracy, total energy per "
                      "inference (dynamic + static),\nlatency of one frame", "",
                      profiles_side_by_side(result)]
        return "\n".join(lines)
    lines = [f"model  {_shown(g.name, result.model_path)}", model_table(g), "",
             f"data   {result.data.name}: {images(n)}   (calibration: {result.calib.name}, "
             f"{images(len(result.calib))})",
             f"ANN    accuracy {acc:.4f}  ({round(acc * n)}/{n})"]
    for p in result.profiles:
        lines += ["", f"hw     {_shown(p.name, p.path)}",
                  f"ANN baseline energy  {p.ann_energy_pj / 1e6:.3f} µJ per inference "
                  f"({result.macs:,} MACs × {p.profile.price('mac')} pJ: a lower bound)"
                  + _ann_memory_line(p),
                  format_mapping(p.mapping), "", format_runs(p.runs, acc, p.ann_energy_pj)]
    return "\n".join(lines)


def _overflows(v) -> str:
    """Overflows per inference: a mean, so a fraction below 1, whole numbers above (never the
    scientific notation a '.3g' gives from 1000 on)."""
    if v is None:
        return "-"
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def format_warnings(runs: list[dict]) -> list[str]:
    """Every run's warnings, loud and wrapped: they go above the tables, not below."""
    return [textwrap.fill(f"WARNING: {w}", 100, subsequent_indent="  ")
            for r in runs for w in r.get("warnings", [])]


def _si(v: float) -> str:
    """A count in at most 6 characters: 812, 12.4k, 1.24M, 3.10G."""
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{unit}"
    return f"{v:.0f}"


def format_runs(runs: list[dict], ann_accuracy: float, ann_energy_pj: float | None = None) -> str:
    """Terminal table (≤ 100 columns): SNN accuracy (float, fixed) next to the ANN's, timing,
    spikes, energy per inference and its ratio to the ANN's MAC energy, overflows; then
    where each run's energy goes."""
    rows, notes = [], []
    for r in runs:
        e = r["energy_pj"]
        rows.append([
            r["coding"], _acc_text(r["accuracy"]["float"]), _acc_text(r["accuracy"]["fixed"]),
            f"{_latency_steps(r)} / {r['steps_per_frame']}",
            f"{r['spikes']['pos']:,.0f} / {r['spikes']['neg']:,.0f}",
            "-" if e is None else f"{e['dynamic'] / 1e6:.3f} + {e['static'] / 1e6:.3f}",
            # as compare prints it: 663.4×, 3,438×, 1.38e+17×
            "-" if e is None or not ann_energy_pj else f"{_compact(e['dynamic'] / ann_energy_pj, 1)}×",
            _overflows(r["overflows"])])
        if e:
            parts = sorted(e["by_action"].items(), key=lambda kv: -kv[1])
            shares = (", ".join(f"{k} {100 * v / e['dynamic']:.0f}%" for k, v in parts[:4]
                                if v > 0) if e["dynamic"] > 0
                      else "none (the profile prices every counted action at 0 pJ)")
            bound = e.get("static_serial_bound")
            static = (f"; static power over the pipeline's steady-state time per frame adds "
                      f"{e['static'] / 1e6:.3f} µJ (serial bound {bound / 1e6:.3f} µJ)"
                      if e["static"] and bound is not None else
                      f"; static power over the profile's run time adds {e['static'] / 1e6:.3f} µJ"
                      if e["static"] else "")
            notes.append(f"{r['coding']}: dynamic energy by action: {shares}{static}")
    table = coding_table(rows, ["coding", "float\nacc", "fixed\nacc", "steps\nlat / frame",
                                "spikes + / −\nper image", "µJ / image\ndyn + static",
                                "dyn vs\nANN", "over-\nflows"],
                         colalign=("left",) + ("right",) * 7)
    wrapped = [textwrap.fill(n, MAX_WIDTH, subsequent_indent="  ") for n in notes]
    return "\n".join(format_warnings(runs) + [f"ANN accuracy {ann_accuracy:.4f}", table]
                     + wrapped)


def format_comparison(runs: list[dict], ann_accuracy: float, ann_macs: int,
                      ann_energy_pj: float | None, hw_name: str) -> str:
    """The codings side by side on one profile (≤ 100 columns), per inference: accuracy
    (float / fixed), latency in steps, spikes, synops, weight reads (synops + extra reads),
    adds, shifts, dynamic energy, and the ANN on the same profile as the first row."""
    rows = [["ANN", f"{ann_accuracy:.4f}", "-", "-", "-", "-", "-", "-", "-",
             "-" if ann_energy_pj is None else f"{ann_energy_pj / 1e6:.3f}", "1.0×"]]
    for r in runs:
        c, e = r["counts"], r["energy_pj"]
        rows.append([
            r["coding"], _acc_text(r["accuracy"]["float"]), _acc_text(r["accuracy"]["fixed"]),
            _latency_steps(r), _si(r["spikes"]["pos"] + r["spikes"]["neg"]),
            _si(c.get("synop", 0.0)), _si(c.get("synop", 0.0) + c.get("weight_read", 0.0)),
            _si(c.get("add", 0.0)), _si(c.get("shift", 0.0)),
            "-" if e is None else _compact(e["dynamic"] / 1e6, 3),
            "-" if e is None or not ann_energy_pj else
            _compact(e["dynamic"] / ann_energy_pj, 1) + "×"])
    table = coding_table(rows, ["coding", "float\nacc", "fixed\nacc", "lat.\nsteps", "spikes",
                                "synops", "weight\nreads", "adds", "shifts", "µJ\ndyn",
                                "vs\nANN"], colalign=("left",) + ("right",) * 10)
    head = textwrap.fill(f"{hw_name}, per inference (the ANN: {ann_macs:,} MACs at the "
                         f"profile's mac price): weight reads = synops + reads beyond "
                         f"them (TTFS reaccumulate); µJ dyn = dynamic energy (static power "
                         f"excluded)", MAX_WIDTH)
    return "\n".join([head] + format_warnings(runs) + [table])  # warnings under their profile


def _compact(v: float, decimals: int) -> str:
    """``v`` with ``decimals`` decimals below 1000, above it whole with thousands separators
    (44,743 for 44743.376), from a million on in powers of ten (1.38e+17): the comparison's
    11 columns leave no room for 8 digits, and a probe's extreme prices gave 18."""
    if abs(v) < 1000:
        return f"{v:.{decimals}f}"
    return f"{v:,.0f}" if abs(v) < 1e6 else f"{v:.2e}"


def _ann_memory_line(p, markdown: bool = False) -> str:
    """The ANN priced with its memory traffic under the profile's stated reuse (the like-for-
    like baseline: every SNN synop pays its weight read too), or nothing without one."""
    m = p.ann_memory
    if m is None:
        return ""
    if markdown:
        return (f"; with its memory traffic {m['total_pj'] / 1e6:.3f} µJ (weight reuse "
                f"{m['weight_reuse']:g}, activation reuse {m['activation_reuse']:g}: the "
                f"profile's ann_baseline)")
    return (f"\n{'':21}with its memory traffic {m['total_pj'] / 1e6:.3f} µJ (reuse: weights "
            f"{m['weight_reuse']:g}, activations {m['activation_reuse']:g})")


def profiles_side_by_side(result, markdown: bool = False) -> str:
    """The codings (rows) on every profile (columns): fixed-point accuracy, total energy per
    inference and latency of one frame, so profiles compare at a glance (≤ 100 columns: more
    profiles than fit go on to a further table)."""
    codings = list(dict.fromkeys(r["coding"] for p in result.profiles for r in p.runs))
    rows = [["ANN"] + [f"{result.ann_accuracy:.3f}, {p.ann_energy_pj / 1e6:.3g} µJ, "
                       f"{format_seconds(ann_latency_s(result.macs, p.profile))}"
                       for p in result.profiles]]
    for c in codings:
        row = [c]
        for p in result.profiles:
            r = next((x for x in p.runs if x["coding"] == c), None)
            e = (r or {}).get("energy_pj")
            acc = None if r is None else r["accuracy"]["fixed"]
            row.append("-" if r is None else
                       f"{'-' if acc is None else f'{acc:.3f}'}, {_uj(e and e['total'])} µJ, "
                       f"{format_seconds(r.get('latency_s'))}")
        rows.append(row)
    headers = ["coding"] + [p.name for p in result.profiles]
    return tables_by_column(rows, headers,
                               lambda r, h: coding_table(r, h, markdown=markdown))


def ann_latency_s(macs: int, profile) -> float | None:
    """The ANN's time per inference on ``profile`` under the same first-order assumption as
    the SNN's run time (each layer's work serial on one core): MACs × the profile's ``mac``
    time. None when the profile gives no MAC time (a chip without a MAC unit)."""
    ns = profile.timing.ns("mac")
    return macs * ns * 1e-9 if ns > 0 else None


def _ratio(a, b) -> str:
    return "-" if a is None or not b else _times(a / b, ",.1f")


def _times(v: float, fmt: str) -> str:
    """A ratio as ``fmt`` and ×, from a million on in powers of ten: a probe's extreme but
    accepted prices gave 18-digit ratios that pushed a table past 100 columns."""
    return f"{v:{fmt}}×" if abs(v) < 1e6 else f"{v:.2e}×"


def md_table(rows, headers, left: int = 1) -> str:
    """A Markdown pipe table, as narrow as its cells allow; the first ``left`` columns
    left-aligned, the others (numbers) right-aligned."""
    keep = [i for i in range(len(headers))
            if i == 0 or not rows or any(str(r[i]) != "-" for r in rows)]  # drop empty columns
    headers = [headers[i] for i in keep]
    cells = [[str(h) for h in headers]]
    for row in rows:  # a cell of several lines goes on on the rows below, the others empty
        parts = [str(row[i]).split("\n") for i in keep]
        cells += [[p[k] if k < len(p) else "" for p in parts]
                  for k in range(max(map(len, parts)))]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row):
        return "| " + " | ".join(c.ljust(w) if i < left else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(row, widths))) + " |"

    rule = "|" + "|".join(("-" * (w + 2)) if i < left else ("-" * (w + 1) + ":")
                          for i, w in enumerate(widths)) + "|"
    return "\n".join([line(cells[0]), rule] + [line(r) for r in cells[1:]])


def tables_by_column(rows, headers, render=None) -> str:
    """A table (``render(rows, headers)``, md_table by default) cut into several, each
    repeating the first column, where one would be wider than MAX_WIDTH: for a column per
    coding, each headed by its whole spec, or a column per profile."""
    render = render or md_table

    def table(columns):
        return render([[r[0]] + [r[i] for i in columns] for r in rows],
                      [headers[0]] + [headers[i] for i in columns])

    groups = [[]]
    for i in range(1, len(headers)):
        if groups[-1] and _widest(table(groups[-1] + [i])) > MAX_WIDTH:
            groups.append([])
        groups[-1].append(i)
    return "\n\n".join(table(columns) for columns in groups)


def _uj(pj) -> str:
    return "-" if pj is None else f"{pj / 1e6:.3f}"


def _acc_text(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def format_seconds(v) -> str:
    if v is None:
        return "-"
    for unit, k in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if abs(v) >= k:
            return f"{v / k:.3g} {unit}"
    return f"{v:.3g} s"


def _latency_steps(run) -> str:
    """Steps to a result; with early decision the mean over the images (~), unless every
    image took the full latency (then it is exact: phase without ``early`` reports that)."""
    mean = run.get("latency_steps_mean")
    if mean is None or mean == run["latency_steps"]:
        return str(run["latency_steps"])
    return f"~{mean:.1f}"


def wrap_md(lines: list[str]) -> list[str]:
    """Prose and bullets wrapped at 100 columns; tables and headings left as they are."""
    out = []
    for line in lines:
        for part in line.split("\n"):
            if len(part) <= 100 or part.startswith(("|", "#", "![")):
                out.append(part)
            else:
                indent = "  " if part.startswith("- ") else ""
                out += textwrap.wrap(part, 100, subsequent_indent=indent,
                                     break_on_hyphens=False)
    return out


def format_markdown(result, figures=()) -> str:
    """report.md: what ran, per profile the codings' accuracy and time, their energy next to
    the ANN's on the same profile, where the energy goes; then the figures and how to read
    them. Every table fits 100 columns."""
    g, n = result.graph, len(result.data)
    model = f"`{g.name}` ({'bundled' if result.model_path is None else result.model_path})"
    hws = ", ".join(f"`{p.name}` ({'bundled' if p.path is None else p.path})"
                    for p in result.profiles)
    out = [f"# neurosim report: {g.name} on {', '.join(p.name for p in result.profiles)}", "",
           f"Written by neurosim {__version__}; every number below comes from this run.", "",
           f"- model: {model}, {result.model_dict()['populations']} spiking populations, "
           f"{g.params():,} parameters, {result.macs:,} MACs per inference",
           f"- data: {result.data.name}, {images(n)}; calibration: {result.calib.name}, "
           f"{images(len(result.calib))}",
           f"- hardware: {hws}",
           f"- precision: {result.precision} (fixed = the bit-accurate core with the profile's "
           f"arithmetic: every action counted and priced)",
           f"- ANN accuracy: {result.ann_accuracy:.4f}", ""]
    if len(result.profiles) > 1:
        out += ["## The profiles side by side", "",
                "Per coding and profile: fixed-point accuracy, total energy per inference "
                "(dynamic + static) and the latency of one frame; the sections below break "
                "each down.", "", profiles_side_by_side(result, markdown=True), ""]
    for p in result.profiles:
        t_ann = ann_latency_s(result.macs, p.profile)
        out += [f"## {p.name}", "",
                f"The ANN on this profile: {result.macs:,} MACs × {p.profile.price('mac')} pJ = "
                f"{p.ann_energy_pj / 1e6:.3f} µJ per inference (MACs only: a lower bound)"
                + _ann_memory_line(p, markdown=True) + ", "
                + (f"{format_seconds(t_ann)} at the profile's MAC time." if t_ann is not None else
                   "no time (the profile gives no MAC time)."),
                f"The network uses {p.mapping.total_cores} of {p.mapping.available_cores} cores"
                + ("." if p.mapping.fits else " and DOES NOT FIT: " + "; ".join(
                    p.mapping.problems())), ""]
        warn = [w for r in p.runs for w in r.get("warnings", [])]
        if warn:
            out += ["**Warnings**", ""] + [f"- {w}" for w in warn] + [""]
        out += ["Accuracy (float and fixed point) and time per inference (steps: to the result / "
                "between frames; columns without any value are left out):", ""]
        rows = [[r["coding"], _acc_text(r["accuracy"]["float"]),
                 _acc_text(r["accuracy"]["fixed"]),
                 f"{_latency_steps(r)} / {r['steps_per_frame']}", format_seconds(r.get("latency_s")),
                 _ratio(r.get("latency_s"), t_ann),
                 "-" if r.get("throughput_fps") is None else f"{r['throughput_fps']:,.0f}",
                 f"{r['spikes']['pos']:,.0f} / {r['spikes']['neg']:,.0f}"] for r in p.runs]
        out += [coding_table(rows, ["coding", "float", "fixed", "steps", "latency", "vs ANN",
                                     "frames/s", "spikes +/−"], markdown=True), ""]
        rows, ratios = [], []
        mem = p.ann_energy_with_memory_pj
        for r in p.runs:
            e = r["energy_pj"] or {}
            rows.append([r["coding"], _uj(e.get("dynamic")), _uj(e.get("static")),
                         _uj(e.get("total")),
                         _overflows(r["overflows"]),
                         _uj(e.get("static_serial_bound"))])
            ratios.append([r["coding"], _ratio(e.get("dynamic"), p.ann_energy_pj),
                           _ratio(e.get("dynamic"), mem), _ratio(e.get("total"), p.ann_energy_pj),
                           _ratio(e.get("total"), mem)])
        out += ["Energy per inference in µJ (dynamic = Σ counted actions × the profile's prices, "
                "hops included; static = static power × the pipeline model's steady-state time "
                "per frame; *serial static* = the same power over one frame with every layer's "
                "work of a step serial on one core, the first-order upper bound):", "",
                coding_table(rows, ["coding", "dynamic", "static", "total", "overflows",
                                    "serial static"], markdown=True), "",
                "Against the ANN on this profile: *ANN* is its MAC energy alone (a lower bound: "
                "no memory traffic, while every synop above pays its weight read), *ANN+mem* the "
                "ANN with its weight and activation traffic under the profile's stated reuse, "
                "like for like (the ANN has no static part in either):", "",
                coding_table(ratios, ["coding", "dyn vs ANN", "dyn vs ANN+mem", "total vs ANN",
                                      "total vs ANN+mem"], markdown=True), ""]
        piped = [r for r in p.runs if r.get("pipeline")]
        if piped:
            rows = [[r["coding"], r["pipeline"]["sync"],
                     format_seconds(r["pipeline"]["latency_s"]),
                     format_seconds(r["pipeline"]["serial_latency_s"]),
                     format_seconds(r["pipeline"]["frame_interval_s"]),
                     _short(str(r["pipeline"]["bottleneck"]), 16),
                     f"{max(r['pipeline']['utilisation'].values(), default=0.0):.0%}"]
                    for r in piped]
            out += ["The pipeline (SimPy: a process per core, frames streamed in as the coding "
                    "allows, spikes moved over the core mesh): latency of one frame, the serial "
                    "upper bound (every layer's work of a step, for every frame in flight, on "
                    "one core), the time between "
                    "frames in steady state, the busiest layer and its cores' utilisation:", "",
                    # short heads ("interval", "busiest") leave room for the coding specs
                    coding_table(rows, ["coding", "sync", "latency", "serial bound",
                                        "interval", "bottleneck", "busiest"], markdown=True),
                    ""]
        priced = [r for r in p.runs if r["energy_pj"]]
        if priced:
            actions = [a for a in priced[0]["energy_pj"]["by_action"]
                       if any(r["energy_pj"]["by_action"].get(a, 0) > 0 for r in priced)]
            rows = [[a] + [f"{r['energy_pj']['by_action'].get(a, 0.0) / 1e6:.4f}"
                           for r in priced] for a in actions]
            out += ["Dynamic energy by action, µJ per inference:", "",
                    tables_by_column(rows, ["action"] + [r["coding"] for r in priced]), ""]
            layers = list(priced[0]["energy_pj"]["by_layer"])
            rows = [[_short(layer, 22)] + [f"{r['energy_pj']['by_layer'].get(layer, 0.0) / 1e6:.4f}"
                                           for r in priced] for layer in layers]
            out += ["Dynamic energy by layer, µJ per inference:", "",
                    tables_by_column(rows, ["layer"] + [r["coding"] for r in priced]), ""]
    if figures:
        out += ["## Figures", ""]
        out += [f"![{f}]({f})" for f in figures] + [""]
    out += ["## How to read this report", "",
            "- *float acc* is the spiking network in floating point, *fixed acc* the same network "
            "in the profile's integer arithmetic; the gap between them is the cost of the "
            "hardware's bit widths, the gap to the ANN the cost of the coding.",
            "- *vs ANN* divides by the ANN's MAC energy (or MAC time) on the same profile. "
            "That baseline counts MACs only, so the ratio is an upper bound on the SNN's "
            "disadvantage.",
            "- Latency in seconds and frames/s come from the SimPy pipeline model "
            "(neurosim/pipeline.py): each core's share of its layer's counted work at the "
            "profile's time per action, step by step, with the barrier or dataflow "
            "synchronisation and the hop latency of the core mesh; frames stream in as the "
            "coding allows, so several are in flight at once. pipeline_gantt.png shows the "
            "cores' busy intervals.",
            "- counts.csv holds every counted action per coding and layer (means per "
            "inference); report.json is the DESIGN §8 document, valid against "
            "neurosim/schema/report.schema.json.", ""]
    return "\n".join(wrap_md(out))


def format_counts_csv(result) -> str:
    """One row per profile × coding × layer, a column per counted action, means per inference,
    then ``hop`` (spikes the layer sends times the hops they travel, from the pipeline model's
    placement: priced and charged to the sending layer like the JSON's ``by_layer``). An action
    the run did not count (a float run counts spikes only; no placement, no hops) is an empty
    cell, not 0: its JSON entry leaves it out the same way. Values keep 12 significant digits,
    so that Σ count × price reproduces the JSON's energies."""
    import csv
    import io

    from .counts import ACTIONS

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["hw", "coding", "layer", *ACTIONS, "hop"])
    for p in result.profiles:
        runs = {r["coding"]: r for r in p.runs}
        for t in p.traces:
            run = runs.get(t.coding, {})
            keep = set(run.get("counts") or ACTIONS)
            hops = (run.get("pipeline") or {}).get("hops_per_frame") or {}
            for i, layer in enumerate(t.layers):
                w.writerow([p.name, t.coding, layer,
                            *(f"{v:.12g}" if a in keep else "" for a, v in
                              zip(ACTIONS, t.counts_by_layer[i])),
                            f"{hops[layer]:.12g}" if layer in hops else ""])
    return buf.getvalue()
