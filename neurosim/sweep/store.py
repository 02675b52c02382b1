"""The results of a sweep on disk: one Parquet part per finished point, and the whole table.

``OUT/points/<point key>.parquet`` is written (to a temporary name, then renamed) the moment a
point's last shard is merged, so an interrupt or a lost machine loses at most the points still
running; a re-run skips every point whose part exists (the key is a hash of what the point
computes, not of its position, so editing the grid keeps the points it still holds).
``OUT/sweep.parquet`` and ``OUT/sweep.csv`` are the table of the grid's points in grid order,
rewritten at the end of each run from the parts.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import UserError

PARTS = "points"
TABLE = "sweep.parquet"
CSV = "sweep.csv"


class Store:
    def __init__(self, out: Path):
        self.out = Path(out)
        self.parts = self.out / PARTS

    def open(self) -> None:
        """Create the folder (its parent must exist) and check it can be written."""
        parent = self.out.resolve().parent
        if not parent.is_dir():
            raise UserError(f"--out {self.out}: the parent folder {parent} does not exist")
        if self.out.exists() and not self.out.is_dir():
            raise UserError(f"--out {self.out}: exists and is not a folder")
        try:
            self.parts.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"--out {self.out}: cannot create it ({exc.strerror})") from None
        if not os.access(self.parts, os.W_OK):
            raise UserError(f"--out {self.out}: not writable")

    def done(self) -> set[str]:
        """Keys of the points already written."""
        if not self.parts.is_dir():
            return set()
        return {p.stem for p in self.parts.glob("*.parquet")}

    def write_point(self, row: dict) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist([row])
        _atomic(self.parts / f"{row['point']}.parquet",
                lambda tmp: pq.write_table(table, tmp))

    def table(self, keys: list[str]):
        """The rows of ``keys`` (those written), in that order, as one pyarrow Table."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        have = self.done()
        parts = [pq.read_table(self.parts / f"{k}.parquet") for k in keys if k in have]
        if not parts:
            return None
        # permissive: a column that is empty (null) in one part takes the others' type
        return pa.concat_tables(parts, promote_options="permissive")

    def write_table(self, table) -> list[Path]:
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        paths = [self.out / TABLE, self.out / CSV]
        _atomic(paths[0], lambda tmp: pq.write_table(table, tmp))
        _atomic(paths[1], lambda tmp: pacsv.write_csv(table, tmp))
        return paths


def _atomic(path: Path, write) -> None:
    """Write to a temporary file beside ``path`` and rename it: whole or not at all."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
