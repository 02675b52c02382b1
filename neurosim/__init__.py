"""neurosim: what a spike coding scheme really costs on neuromorphic hardware.

    import neurosim
    result = neurosim.run("digits_cnn", hw="loihi_like", codings=["sws", "rate:T=128"])

``run`` and ``compare`` return a ``Result`` (``to_json()``, ``to_markdown()``, ``plots(dir)``,
``write(dir)``); ``check`` is ``neurosim check`` (a ``CheckResult``). See ``neurosim.api``.
Bad input (a file, an option, an ONNX node) raises ``neurosim.UserError`` with the message
the command line prints.
"""

__version__ = "0.1.0"

__all__ = ["CheckResult", "Result", "UserError", "check", "compare", "run", "__version__"]


def __getattr__(name: str):
    """``run``, ``compare``, ``check`` and their result types come from ``neurosim.api`` on first use: importing
    the package stays cheap, so the command line is inside its Ctrl-C handling (exit 130, no
    traceback) a few tens of milliseconds after it starts, not after numpy, numba and the
    schemes have loaded."""
    if name in ("CheckResult", "Result", "check", "compare", "run"):
        from . import api

        return getattr(api, name)
    if name == "UserError":
        from .errors import UserError

        return UserError
    raise AttributeError(f"module 'neurosim' has no attribute {name!r}")
