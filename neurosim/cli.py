"""The ``neurosim`` command line (DESIGN §8).

Exit codes: 0 success, 2 a user error (one message on stderr, no traceback),
1 a bug (Python's traceback, so it can be reported).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import UserError, did_you_mean

DEFAULT_MODEL = "digits_cnn"
DEFAULT_HW = "loihi_like"
MODELS_DIR = Path(__file__).resolve().parent / "models"

MAIN_HELP = """\
neurosim tells you what a spike coding scheme costs on neuromorphic hardware.

Give it a trained ANN exported to ONNX and a hardware profile; it imports the
network, measures the ANN, and (as the coding schemes land) converts it to a
spiking network under SWS/CSS, TSC, TTFS, rate or phase coding, simulates it
bit-accurately in fixed point, counts every hardware action and prices them.

Start with:   neurosim run            (bundled digits CNN on a Loihi-like profile)
"""

RUN_HELP = """\
Import MODEL, print its populations (spiking layers), parameters and MACs, and
the ANN's accuracy on the data. With a hardware profile (default loihi_like) it
also prints the ANN baseline energy (MACs × the profile's mac price) and how the
network maps onto the chip's cores.
"""

NOT_YET = {
    "coding": "spike coding schemes (--coding) are not available yet: the SWS/CSS "
              "conversion is the next issue",
    "precision": "--precision is not available yet: it selects float/fixed SNN simulation, "
                 "which comes with the coding schemes",
    "out": "--out (report files) is not available yet; use --json PATH for the machine-readable "
           "result",
    "seed": "--seed is not available yet: nothing random runs until the rate/Poisson encoder lands",
}


def _models_manifest() -> dict:
    path = MODELS_DIR / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {}


def resolve_model(spec: str | None) -> Path:
    """A bare bundled name, or a path to an ONNX file."""
    spec = spec or DEFAULT_MODEL
    manifest = _models_manifest()
    if spec in manifest:
        return MODELS_DIR / manifest[spec]["file"]
    p = Path(spec)
    if p.exists() or p.suffix == ".onnx" or "/" in spec:
        if not p.is_file():
            raise UserError(f"{p}: model file not found")
        return p
    raise UserError(f"'{spec}' is neither an ONNX file nor a bundled model; bundled models: "
                    f"{', '.join(manifest)}{did_you_mean(spec, manifest)}")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="neurosim", description=MAIN_HELP,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"neurosim {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    def common(p, many_hw=False):
        p.add_argument("model", nargs="?", metavar="MODEL",
                       help=f"ONNX file or bundled model name (default: {DEFAULT_MODEL}; "
                            f"see 'neurosim models')")
        if many_hw:
            p.add_argument("--hw", action="append", metavar="PROFILE",
                           help=f"hardware profile YAML or bundled name (repeatable; default "
                                f"{DEFAULT_HW}; see 'neurosim profiles')")
        else:
            p.add_argument("--hw", metavar="PROFILE",
                           help=f"hardware profile YAML or bundled name (default {DEFAULT_HW}; "
                                f"see 'neurosim profiles')")
        p.add_argument("--data", metavar="DATA",
                       help="'digits' (bundled test split, default), 'digits:calibration', or "
                            "PATH.npz with arrays x (N, *input shape) and y (N,) labels")
        p.add_argument("--limit", type=int, metavar="N", help="use only the first N images")
        p.add_argument("--coding", action="append", metavar="SPEC",
                       help="NAME[:key=value,...], repeatable; NAME in sws, rate, ttfs, tsc, phase, all")
        p.add_argument("--json", metavar="PATH", help="write the result document (DESIGN §8) here")
        p.add_argument("--out", metavar="DIR", help="directory for report files")
        p.add_argument("--seed", type=int, metavar="S", help="seed for random encoders")

    run = sub.add_parser("run", help="import a model and measure it (the main job)",
                         description=RUN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    common(run)
    run.add_argument("--precision", choices=["fixed", "float", "both"],
                     help="simulate the SNN in fixed point, float, or both")
    cmp_ = sub.add_parser("compare", help="every coding scheme side by side (not available yet)")
    common(cmp_, many_hw=True)
    chk = sub.add_parser("check", help="fixed point versus float, per scheme and layer (not available yet)")
    common(chk)
    sub.add_parser("models", help="list the bundled models")
    prof = sub.add_parser("profiles", help="list the bundled hardware profiles, or validate files")
    prof.add_argument("paths", nargs="*", metavar="PROFILE",
                      help="profile files or names to validate (default: list the bundled ones)")
    return ap


def _reject_unavailable(args) -> None:
    for key, msg in NOT_YET.items():
        if getattr(args, key, None) is not None:
            raise UserError(msg)


def cmd_run(args) -> int:
    from . import ann, report
    from .data import load_data
    from .energy import ann_energy
    from .hw.mapping import format_mapping, map_layers, mapping_to_dict
    from .hw.profile import load_profile
    from .onnx_import import load_onnx

    _reject_unavailable(args)
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be a positive number of images, found {args.limit}")
    model_path = resolve_model(args.model)
    graph = load_onnx(model_path, model_path.stem)
    profile = load_profile(args.hw or DEFAULT_HW)
    data = load_data(args.data, graph.input_shape).head(args.limit)

    print(f"model  {graph.name}  ({graph.path})")
    print(report.model_table(graph))
    acc = ann.accuracy(graph, data.x, data.y)
    macs = graph.macs()
    e_mac = ann_energy(macs, profile)
    mapping = map_layers(report.layer_sizes(graph), profile)
    print(f"\ndata   {data.name}: {len(data)} images")
    print(f"ANN    accuracy {acc:.4f}  ({round(acc * len(data))}/{len(data)})")
    print(f"\nhw     {profile.name}  ({profile.path})")
    print(f"ANN baseline energy  {e_mac / 1e6:.3f} µJ per inference "
          f"({macs:,} MACs × {profile.price('mac')} pJ)")
    print(format_mapping(mapping))
    if args.json:
        doc = report.document(
            model=report.model_dict(graph),
            data={"name": data.name, "images": len(data)},
            hw={"name": profile.name, "path": str(profile.path), "mapping": mapping_to_dict(mapping)},
            ann={"accuracy": acc, "macs": macs, "energy_pj": e_mac},
        )
        report.write_json(doc, args.json)
        print(f"\nwrote {args.json}")
    return 0


def cmd_models(args) -> int:
    from tabulate import tabulate

    rows = [[name, m["description"], f"{m['parameters']:,}", f"{m['macs']:,}",
             f"{m['test_accuracy']:.4f}"] for name, m in _models_manifest().items()]
    print(tabulate(rows, headers=["model", "description", "params", "MACs", "test acc"],
                   maxcolwidths=[None, 44, None, None, None]))
    print(f"\n(test accuracy: float ANN on the bundled digits test split, from {MODELS_DIR / 'manifest.json'})")
    return 0


def cmd_profiles(args) -> int:
    from .hw.mapping import format_profiles_table
    from .hw.profile import load_profile

    if args.paths:
        for p in args.paths:
            prof = load_profile(p)
            print(f"{prof.path}: valid profile '{prof.name}'")
        return 0
    print(format_profiles_table())
    return 0


def cmd_unavailable(args) -> int:
    raise UserError(f"'neurosim {args.command}' is not available yet: it needs the coding schemes "
                    f"(next issues). 'neurosim run' works now.")


COMMANDS = {"run": cmd_run, "models": cmd_models, "profiles": cmd_profiles,
            "compare": cmd_unavailable, "check": cmd_unavailable}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser()
    if not argv:
        parser.print_help()
        return 0
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"neurosim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neurosim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
