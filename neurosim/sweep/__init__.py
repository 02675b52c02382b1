"""``neurosim sweep GRID.yaml``: a design-space sweep on Dask (grid, execution, store, report).

    from neurosim.sweep import load_grid, run_sweep
    outcome = run_sweep(load_grid("grid.yaml"), "out", workers=2)
    outcome.table                      # pyarrow Table, one row per point

``grid.py`` reads and checks the grid file, ``runner.py`` runs one point in image shards and
merges them exactly, ``execute.py`` schedules the points serially or on Dask, ``store.py``
keeps finished points as Parquet parts (resumable), ``report.py`` writes the Pareto report.
"""

from .execute import run_sweep
from .grid import Grid, Point, load_grid

__all__ = ["Grid", "Point", "load_grid", "run_sweep"]
