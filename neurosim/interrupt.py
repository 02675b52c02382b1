"""Ctrl-C at safe points only.

A KeyboardInterrupt raised while numba's threads run (or while numba compiles) can leave the
process in a state that crashes on the way out. Inside ``deferred()`` a Ctrl-C is only noted;
when the block ends (the numba call has returned and its threads have finished) the interrupt
is raised as usual, so the command line exits with 130 and writes no partial file.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


@contextmanager
def deferred():
    """Hold SIGINT for the duration of the block, then raise it (if one came)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread; nothing to defer elsewhere
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt
