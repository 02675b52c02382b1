"""The bundled models on each bundled profile: reports/bundled/.

    python -m neurosim.repro.reports [--limit N] [--models M ...] [--profiles P ...] [--out DIR]

For every model × profile it runs every coding with its defaults (float and fixed point) through
``neurosim.run`` and writes that run's report files (``neurosim run --coding all --out``) into
``DIR/<model>/<profile>/``; then ``DIR/README.md`` puts each scheme's accuracy, energy and
latency next to the ANN's on the same profile. A coding the profile cannot hold (a register
range beyond its ``state_bits``) is listed with the reason instead of being run with overflow.
Every number is computed by this run; ``--limit`` (default 100 test images) keeps it to a few
minutes on one core and is stated in the report.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..api import models_manifest, run
from ..errors import UserError
from ..hw.profile import bundled_profiles, load_profile
from ..report import ann_latency_s, format_seconds, md_table, wrap_md, write_atomic
from ..schemes import schemes

ROOT = Path(__file__).resolve().parents[2]


def run_model_on_profile(model: str, profile: str, limit: int | None):
    """One result holding every coding the profile can run, and {coding: reason} for the rest.

    Each coding runs on its own so that one coding the profile cannot hold does not stop the
    others; their entries are then gathered into the first result."""
    merged, refused = None, {}
    for name in schemes():
        try:
            result = run(model, hw=profile, codings=[name], limit=limit)
        except UserError as exc:
            refused[name] = str(exc)
            continue
        if merged is None:
            merged = result
        else:
            merged.profiles[0].runs.extend(result.profiles[0].runs)
            merged.profiles[0].traces.extend(result.profiles[0].traces)
    return merged, refused


def _ratio(a, b) -> str:
    if a is None or not b:
        return "-"
    r = a / b
    return f"{r:.1f}×" if r < 10 else f"{r:,.0f}×"


def profile_table(docs: list[dict], profile) -> str:
    """One row for each model's ANN and one per coding, from the runs' report.json documents:
    accuracy, steps, latency, energy, and both relative to the ANN on the same profile."""
    static = any((r["energy_pj"] or {}).get("static") for d in docs for r in d["runs"])
    rows = []
    for d in docs:
        t_ann = ann_latency_s(d["ann"]["macs"], profile)
        e_ann = d["ann"]["energy_pj"]
        rows.append([d["model"]["name"], "ANN", f"{d['ann']['accuracy']:.4f}", "-",
                     format_seconds(t_ann), f"{e_ann / 1e6:.4f}",
                     "1× / 1×" if static else "1×", "-" if t_ann is None else "1×"])
        for r in d["runs"]:
            e = r["energy_pj"]
            energy = (f"{e['dynamic'] / 1e6:.3f} + {e['static'] / 1e6:.3f}" if static
                      else f"{e['total'] / 1e6:.3f}")
            ratio = (f"{_ratio(e['dynamic'], e_ann)} / {_ratio(e['total'], e_ann)}" if static
                     else _ratio(e["total"], e_ann))
            rows.append([d["model"]["name"], r["coding"], f"{r['accuracy']['fixed']:.4f}",
                         str(r["latency_steps"]), format_seconds(r["latency_s"]), energy, ratio,
                         _ratio(r["latency_s"], t_ann)])
    return md_table(rows, ["model", "coding", "acc", "steps", "latency",
                           "µJ dyn + static" if static else "µJ", "× ANN dyn / total" if static
                           else "× ANN µJ", "× ANN time"], left=2)


def write_index(out: Path, models, profiles, limit) -> Path:
    """DIR/README.md from the report.json (and not_run.json) files under ``out``."""
    lines = ["# The bundled models on the bundled profiles", "",
             "Made by `python -m neurosim.repro.reports"
             + (f" --limit {limit}" if limit else "") + "`: every coding with its "
             "defaults, in the profile's fixed point, on the first "
             f"{limit or 'all'} images of the digits test split. Every number comes from "
             "that run. Each model's full report (tables, counts.csv, figures, report.json) is "
             "in `<model>/<profile>/`.", "",
             "*acc* is the fixed-point accuracy (the ANN's: float). Energy is per inference: "
             "dynamic (Σ counted actions × prices) + static (static power × the profile's run "
             "time), where the profile has static power. *× ANN* divides by the ANN on the same "
             "profile: its MACs × the profile's `mac` price and, for time, × its MAC time "
             "(MACs only, no memory traffic: a lower bound, so the ratios are upper bounds; the "
             "time column is left out where the profile gives no MAC time). Latency in seconds "
             "is one frame's latency in the SimPy pipeline model (neurosim/pipeline.py) fed "
             "with the run's counts; each folder's report.md adds its throughput, bottleneck "
             "and Gantt chart. The static energy here is the energy model's (energy.py); the "
             "pipeline's static energy per frame is in each report.md.", ""]
    for profile in profiles:
        docs, notes = [], []
        for model in models:
            folder = out / model / profile
            if (folder / "report.json").exists():
                docs.append(json.loads((folder / "report.json").read_text()))
            if (folder / "not_run.json").exists():
                notes += [f"- `{model}`, {name}: not run: {why}" for name, why in
                          json.loads((folder / "not_run.json").read_text()).items()]
        if docs:
            lines += [f"## {profile}", "", profile_table(docs, load_profile(profile)), ""]
        lines += notes + ([""] if notes else [])
    write_atomic(out / "README.md", "\n".join(wrap_md(lines)))
    return out / "README.md"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m neurosim.repro.reports",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=100, help="test images per run (default 100)")
    ap.add_argument("--models", nargs="*", default=list(models_manifest()))
    ap.add_argument("--profiles", nargs="*", default=[p.stem for p in bundled_profiles()])
    ap.add_argument("--out", default=str(ROOT / "reports" / "bundled"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for profile in args.profiles:
        for model in args.models:
            print(f"{model} on {profile} ...", file=sys.stderr, flush=True)
            result, refused = run_model_on_profile(model, profile, args.limit)
            folder = out / model / profile
            folder.mkdir(parents=True, exist_ok=True)
            if result is not None:
                result.write(folder)
            if refused:
                write_atomic(folder / "not_run.json", json.dumps(refused, indent=2) + "\n")
            else:
                (folder / "not_run.json").unlink(missing_ok=True)
    index = write_index(out, args.models, args.profiles, args.limit)
    print(f"wrote {index}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
