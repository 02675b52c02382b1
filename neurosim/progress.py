"""Progress bars on stderr for a person watching a terminal (tqdm).

A bar appears only once its work has taken ``DELAY_S`` seconds (short runs print nothing) and
never when stderr is not a terminal (a log file or a pipe gets no control characters).
"""

from __future__ import annotations

import sys

DELAY_S = 2.0


class ProgressBars:
    """A ``progress(label, done, total)`` callback drawing one bar per label in turn."""

    def __init__(self, enabled: bool | None = None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar = None
        self._label = None

    def __call__(self, label: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._bar is None or label != self._label or done < self._bar.n:
            from tqdm import tqdm

            self.close()
            self._bar = tqdm(total=total, desc=label, unit="img", delay=DELAY_S,
                             file=sys.stderr, leave=False, dynamic_ncols=True)
            self._label = label
        self._bar.update(done - self._bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            self._label = None
