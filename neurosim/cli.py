"""The ``neurosim`` command line (DESIGN §8).

Exit codes: 0 success, 2 a user error (one message on stderr, no traceback),
1 a bug (Python's traceback, so it can be reported).
"""

from __future__ import annotations

import argparse
import codecs
import os
import sys
from pathlib import Path

from . import __version__
from .errors import UserError

DEFAULT_MODEL = "digits_cnn"
DEFAULT_HW = "loihi_like"

MAIN_HELP = """\
neurosim tells you what a spike coding scheme costs on neuromorphic hardware.

Give it a trained ANN exported to ONNX and a hardware profile; it imports the
network, measures the ANN, converts it to a spiking network under SWS/CSS, TSC,
TTFS, rate or phase coding, simulates it bit-accurately in fixed point, counts
every hardware action, prices them and models the chip's layer pipeline.

Start with:   neurosim run                  (bundled digits CNN, Loihi-like profile)
Then:         neurosim compare net.onnx     (every coding side by side)
              neurosim run net.onnx --coding tsc:N=128 --hw my_chip.yaml --json out.json
"""

RUN_HELP = """\
Import MODEL, print its populations (spiking layers), parameters and MACs, the
ANN's accuracy, its baseline energy on the hardware profile (MACs × the
profile's mac price) and how the network maps onto the chip's cores. Then
convert it to a spiking network under each --coding (default: sws), simulate it
in float and bit-accurately in the profile's fixed point (--precision, default
both), count every hardware action and price it: accuracy, time steps, spikes,
energy per inference, overflows.

examples:
  neurosim run                                   digits CNN, SWS, loihi_like
  neurosim run digits_resnet --coding sws:Tc=6,Ts=1,beta=1.5 --hw asic_45nm
  neurosim run net.onnx --data test.npz --calib calib.npz --json out.json
"""

CHECK_HELP = """\
Fixed point versus float for each --coding (default: sws) on the profile: both
accuracies, agreement of their predictions, per layer the mean |fixed − float|
of the decoded values over λ, overflows and the weight bits really used, and a
sweep of weight_bits 4…12 with the fixed accuracy at each width.
"""

COMPARE_HELP = """\
Run every coding scheme (or the --coding ones) on MODEL in float and in each
profile's fixed point (--hw, repeatable; default loihi_like) and print one table
per profile: accuracy (float, fixed), latency in steps, spikes, synops, weight
reads, adds, shifts and dynamic energy per inference, with the ANN on the same
profile as the first row.

examples:
  neurosim compare                                 digits CNN, all codings, loihi_like
  neurosim compare digits_resnet --hw loihi_like --hw asic_45nm
  neurosim compare --coding rate:T=128 --coding sws --limit 100
"""

DEFAULT_CODING = ["sws"]


def _models_manifest() -> dict:
    from .inputs import models_manifest

    return models_manifest()


def resolve_model(spec: str | None) -> Path:
    """A bare bundled name, or a path to an ONNX file (``neurosim.api.resolve_model``)."""
    from .inputs import resolve_model as resolve

    return resolve(spec)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="neurosim", description=MAIN_HELP,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"neurosim {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    def common(p, many_hw=False, default_coding="sws", report_files=True):
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
        p.add_argument("--calib", metavar="DATA",
                       help="calibration images for the activation scales: 'digits:calibration' "
                            "(default for 1×8×8 models) or PATH.npz with array x")
        p.add_argument("--limit", type=int, metavar="N", help="use only the first N images")
        p.add_argument("--coding", action="append", metavar="SPEC",
                       help=f"NAME[:key=value,...], repeatable (default {default_coding}); "
                            f"e.g. sws:Tc=8,Ts=2,beta=1.5; 'all' = every scheme; see "
                            f"'neurosim codings'")
        p.add_argument("--json", metavar="PATH", help="write the result document (DESIGN §8) here")
        if report_files:
            p.add_argument("--out", metavar="DIR", help="directory for report files")
        p.add_argument("--seed", type=int, metavar="S",
                       help="seed of every coding that draws random numbers (rate:input=poisson) "
                            "unless its spec sets seed= itself; results are identical run to run "
                            "and across thread counts")
        p.add_argument("--allow-overflow", action="store_true",
                       help="run even when a scheme's register range does not fit the profile's "
                            "state_bits (a loud warning instead of an error; overflows are "
                            "counted and reported)")

    def precision(p):
        p.add_argument("--precision", choices=["fixed", "float", "both"], default="both",
                       help="simulate the SNN in fixed point (bit-accurate core, counts, "
                            "energy), float (reference simulator), or both (default)")

    run = sub.add_parser("run", help="import a model and measure it (the main job)",
                         description=RUN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    common(run)
    precision(run)
    cmp_ = sub.add_parser("compare", help="every coding scheme side by side, per profile",
                          description=COMPARE_HELP,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    common(cmp_, many_hw=True, default_coding="all")
    precision(cmp_)
    chk = sub.add_parser("check", help="fixed point versus float, per scheme and layer",
                         description=CHECK_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    common(chk, report_files=False)  # its one output is the --json document
    sub.add_parser("codings", help="list the coding schemes and their parameters")
    sub.add_parser("models", help="list the bundled models")
    prof = sub.add_parser("profiles", help="list the bundled hardware profiles, or validate files")
    prof.add_argument("paths", nargs="*", metavar="PROFILE",
                      help="profile files or names to validate (default: list the bundled ones)")
    sweep = sub.add_parser("sweep", help="a grid of models × codings × profiles on Dask "
                                         "(resumable table, Pareto report)")
    sweep.add_argument("grid", metavar="GRID.yaml",
                       help="the grid file, or a bundled grid's name (codings_digits)")
    sweep.add_argument("--out", metavar="DIR", help="results folder (default: the grid's name)")
    sweep.add_argument("--workers", type=int, metavar="N",
                       help="local Dask worker processes (default: one per core)")
    sweep.add_argument("--scheduler", metavar="ADDRESS",
                       help="use the Dask cluster at ADDRESS (tcp://host:8786) instead")
    sweep.add_argument("--serial", action="store_true", help="run in this process, no Dask")
    sweep.add_argument("--dry-run", action="store_true",
                       help="print the points and an estimate of the work; run nothing")
    return ap


def _check_outputs(args) -> None:
    """Output paths are checked before anything runs, not after minutes of work."""
    from .report import check_output_dir, check_output_path

    if args.json is not None:
        check_output_path(args.json, "--json")
    if getattr(args, "out", None) is not None:
        check_output_dir(args.out, "--out")


def _note_first_compile() -> None:
    from .core import engine

    cache = Path(engine.__file__).parent / "__pycache__"
    if not any(cache.glob("engine._run-*.nbi")):
        print("(first run: compiling the bit-accurate core, about 30 s; later runs load it "
              "from the cache)", file=sys.stderr, flush=True)


def _api_options(args) -> dict:
    """The options every command passes on to ``neurosim.api``."""
    return dict(model=args.model, data=args.data, calib=args.calib, limit=args.limit,
                seed=args.seed, allow_overflow=args.allow_overflow)


def _check_cheap(args) -> None:
    """Limit, seed and codings are checked before the output paths and the model."""
    from .schemes import expand_codings

    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be a positive number of images, found {args.limit}")
    if args.seed is not None and args.seed < 0:
        raise UserError(f"--seed must be a non-negative integer, found {args.seed}")
    expand_codings(args.coding or (["all"] if args.command == "compare" else DEFAULT_CODING))
    if args.model is not None and not args.model.strip():
        raise UserError(f"MODEL is an empty string; expected a bundled model name (see "
                        f"'neurosim models'; default {DEFAULT_MODEL}) or a path to an .onnx file")
    _check_outputs(args)


def _write_json(doc: dict, path: str) -> None:
    from . import report

    nulls = report.write_json(doc, path)
    print(f"\nwrote {path}")
    if nulls:
        print(f"neurosim: warning: {len(nulls)} value(s) are not finite numbers and were written "
              f"as null: {', '.join(nulls[:5])}{' …' if len(nulls) > 5 else ''}", file=sys.stderr)


def _write_outputs(result, args) -> None:
    if args.json:
        _write_json(result.to_json(), args.json)
    if args.out:
        written = result.write(args.out)
        import textwrap

        print("\n" + textwrap.fill(f"wrote {len(written)} files to {args.out}: "
                                   + ", ".join(p.name for p in written), 100,
                                   subsequent_indent="  "))


def cmd_run(args) -> int:
    from . import api

    _check_cheap(args)
    if args.precision != "float":
        _note_first_compile()
    hw = DEFAULT_HW if args.hw is None else args.hw  # '' is a (bad) name, not the default
    result = api.run(hw=hw, codings=args.coding or DEFAULT_CODING,
                     precision=args.precision, **_api_options(args))
    print(result.summary())
    _write_outputs(result, args)
    return 0


def cmd_check(args) -> int:
    from . import api

    _check_cheap(args)
    _note_first_compile()
    hw = DEFAULT_HW if args.hw is None else args.hw
    result = api.check(hw=hw, codings=args.coding or DEFAULT_CODING,
                       progress=lambda what: print(f"  {what}", file=sys.stderr)
                       if sys.stderr.isatty() else None, **_api_options(args))
    print(result.summary())
    if args.json:
        from .report import require_valid
        from .schema import validate_check

        doc = result.to_json()
        require_valid(doc, validate_check, "check's document ($defs/check_document)")
        _write_json(doc, args.json)
    return 0


def cmd_codings(args) -> int:
    from tabulate import tabulate

    from .schemes import schemes

    for name, scheme in schemes().items():
        print(f"{name}: {scheme.summary}")
        print(tabulate([[p.name, p.kind if not p.choices else "|".join(p.choices), p.default, p.doc]
                        for p in scheme.params], headers=["key", "type", "default", "meaning"],
                       maxcolwidths=[None, None, None, 60], disable_numparse=True))
        print()
    return 0


def cmd_models(args) -> int:
    from tabulate import tabulate

    rows = [[name, m["description"], f"{m['parameters']:,}", f"{m['macs']:,}",
             f"{m['test_accuracy']:.4f}"] for name, m in _models_manifest().items()]
    print(tabulate(rows, headers=["model", "description", "params", "MACs", "test acc"],
                   maxcolwidths=[None, 44, None, None, None]))
    print("\n(test accuracy: float ANN on the bundled digits test split, from the package's "
          "models/manifest.json)")
    return 0


def cmd_profiles(args) -> int:
    from .hw.mapping import format_profiles_table
    from .hw.profile import load_profile

    if args.paths:  # every file is checked and reported, not only up to the first bad one
        bad = 0
        for p in args.paths:
            try:
                prof = load_profile(p)
            except UserError as e:
                _print_error(e)
                bad += 1
                continue
            print(f"{prof.path}: valid profile '{prof.name}'")
        return 2 if bad else 0
    print(format_profiles_table())
    return 0


def cmd_compare(args) -> int:
    from . import api

    _check_cheap(args)
    if args.precision != "float":
        _note_first_compile()
    hws = [DEFAULT_HW] if args.hw is None else args.hw
    result = api.compare(hw=hws, codings=args.coding or ["all"], precision=args.precision,
                         **_api_options(args))
    print(result.summary())
    _write_outputs(result, args)
    return 0


def cmd_sweep(args) -> int:
    from .sweep.command import main as sweep_main  # Dask and pyarrow load only for a sweep

    return sweep_main(args)


COMMANDS = {"run": cmd_run, "models": cmd_models, "profiles": cmd_profiles, "codings": cmd_codings,
            "compare": cmd_compare, "check": cmd_check, "sweep": cmd_sweep}


def _print_error(exc: UserError) -> None:
    """A user error as the command line shows it: one message on stderr."""
    print(f"neurosim: error: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(sys.argv[1:] if argv is None else list(argv))
    except UserError as exc:
        _print_error(exc)
        return 2
    except KeyboardInterrupt:  # from the first line on: parsing the options included
        print("neurosim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (``neurosim run | head``): stop quietly; point stdout at
        # /dev/null so the interpreter's final flush does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _main(argv: list[str]) -> int:
    parser = _parser()
    if not argv:
        parser.print_help()
        return 0
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # the command's own usage line, not the top level's (argparse's default)
            commands = next(a for a in parser._actions
                            if isinstance(a, argparse._SubParsersAction))
            command = commands.choices.get(args.command, parser)
            command.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return 0
    _ascii_safe(sys.stdout)
    _ascii_safe(sys.stderr)
    return COMMANDS[args.command](args)


# What the tables print beyond ASCII, for terminals that cannot show it.
ASCII_FOR = {"µ": "u", "×": "x", "−": "-", "–": "-", "—": "-", "…": "...", "θ": "theta",
             "β": "beta", "λ": "lambda", "Σ": "sum", "≤": "<=", "≥": ">=", "·": "*", "²": "^2",
             "ᵏ": "^k", "→": "->"}


def _ascii_replace(err: UnicodeEncodeError):
    text = err.object[err.start:err.end]
    return "".join(ASCII_FOR.get(ch, "?") for ch in text), err.end


codecs.register_error("neurosim_ascii", _ascii_replace)


def _ascii_safe(stream) -> None:
    """On a stream whose encoding cannot show the tables' symbols (µ, ×, β, ...), print
    ASCII stand-ins instead of failing with UnicodeEncodeError."""
    try:
        "µ×−β".encode(stream.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="neurosim_ascii")


def entry() -> None:
    """The console script (``neurosim``) and ``python -m neurosim.cli``: ``main``'s exit code.

    An interrupted run exits with 130 through ``os._exit`` once its output is flushed: after
    ``main`` had caught the interrupt and printed its message, the interpreter could still end
    the process by SIGINT (status −2) on its way out; seen in CI and reproduced under load in
    2 of 16 runs with SIGINT at 0.2–0.35 s. Where in the interpreter's shutdown it happens was
    not pinned down. Nothing is left to clean up by then: files are written whole or not at
    all."""
    code = main()
    if code == 130:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(130)
    sys.exit(code)


if __name__ == "__main__":
    entry()
