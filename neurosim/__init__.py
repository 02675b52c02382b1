"""neurosim: what a spike coding scheme really costs on neuromorphic hardware.

    import neurosim
    result = neurosim.run("digits_cnn", hw="loihi_like", codings=["sws", "rate:T=128"])

``run`` and ``compare`` return a ``Result`` (``to_json()``, ``to_markdown()``, ``plots(dir)``,
``write(dir)``); ``neurosim.api.check`` is ``neurosim check``. See ``neurosim.api``.
"""

__version__ = "0.1.0"

from .api import Result, compare, run  # noqa: E402  (after __version__, which report.py reads)

__all__ = ["Result", "compare", "run", "__version__"]
