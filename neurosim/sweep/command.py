"""``neurosim sweep GRID.yaml [--out DIR] [--workers N] [--scheduler ADDRESS] [--dry-run]``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from ..errors import UserError

BUNDLED = Path(__file__).resolve().parents[1] / "sweeps"


def bundled_grids() -> list[str]:
    return sorted(p.stem for p in BUNDLED.glob("*.yaml"))


def resolve_grid(spec: str) -> Path:
    """A grid file, or the name of a bundled one (``codings_digits``)."""
    path = Path(spec)
    if path.exists() or "/" in spec or spec.endswith((".yaml", ".yml")):
        return path
    if spec in bundled_grids():
        return BUNDLED / f"{spec}.yaml"
    raise UserError(f"'{spec}' is neither a grid file nor a bundled grid; bundled grids: "
                    f"{', '.join(bundled_grids())}")


def _needs_extra() -> None:
    missing = [m for m in ("distributed", "pyarrow") if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"neurosim sweep needs {' and '.join(missing)}: "
                        f"pip install 'neurosim[sweep]'")


def main(args) -> int:
    from .execute import estimate, progress_bars, run_sweep
    from .grid import load_grid
    from .report import write_report

    path = resolve_grid(args.grid)
    grid = load_grid(path, shown=path.name if path.parent == BUNDLED else None)
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be a positive number of worker processes, found "
                        f"{args.workers}")
    if args.workers is not None and args.scheduler:
        raise UserError("--workers sizes a local cluster; with --scheduler the cluster's own "
                        "workers run the sweep (give one or the other)")
    if args.dry_run:
        estimate(grid)
        return 0
    _needs_extra()
    out = Path(args.out) if args.out else Path(grid.path.stem)
    outcome = run_sweep(grid, out, workers=args.workers, scheduler=args.scheduler,
                        serial=args.serial, progress=progress_bars(),
                        echo=lambda line: print(line, file=sys.stderr))
    files = outcome.files + write_report(outcome.table, out, grid.path.name)
    print(f"{len(outcome.points)} points: {outcome.computed} computed, {outcome.refused} "
          f"refused, {outcome.skipped} already in {out}")
    for f in files:
        print(f"  {f}")
    return 0
