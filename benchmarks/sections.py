"""Named sections of ``reports/benchmarks.md`` that another benchmark writes.

``bench_core.py`` writes the file; ``bench_sweep.py`` (a separate run) owns one section of it,
between ``<!-- begin sweep -->`` and ``<!-- end sweep -->``. Each benchmark replaces only what
it owns, so rerunning one keeps the other's numbers (each says which run they come from).
"""

from __future__ import annotations

import re
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "reports" / "benchmarks.md"


def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"<!-- begin {re.escape(name)} -->\n.*?<!-- end {re.escape(name)} -->\n",
                      re.S)


def block(name: str, lines: list[str]) -> str:
    return "\n".join([f"<!-- begin {name} -->", *lines, f"<!-- end {name} -->"]) + "\n"


def put(name: str, lines: list[str], path: Path = BENCHMARKS) -> None:
    """Replace section ``name`` of ``path`` with ``lines`` (appended if it is not there)."""
    text = path.read_text() if path.exists() else ""
    new = block(name, lines)
    if _pattern(name).search(text):
        text = _pattern(name).sub(lambda _: new, text)
    else:
        text = text.rstrip("\n") + "\n\n" + new
    path.write_text(text)


def kept(path: Path = BENCHMARKS) -> list[str]:
    """Every section block of the file as it stands (to carry over when rewriting it)."""
    if not path.exists():
        return []
    return [m.group(0) for m in re.finditer(r"<!-- begin (\S+) -->\n.*?<!-- end \1 -->\n",
                                            path.read_text(), re.S)]
