"""What every coding scheme provides, and the typed parameters of a ``--coding`` spec.

A scheme is one module in ``neurosim/schemes/`` that defines ``SCHEME``, an instance of a
:class:`Scheme` subclass. It declares its parameters (names, types, defaults, checks) and plugs
into every stage with three methods:

* ``build(graph, calib_x, params)``  -> the scheme's SNN (plain data: calibration, conversion
  and any data-based tuning of the conversion happen here);
* ``simulate(snn, x)``               -> :class:`SimResult` (float reference simulation);
* ``timing(snn)``                    -> (latency in steps, steps per frame);
* ``quantize(snn, arithmetic)``      -> the integer network of its bit-accurate core, and
  ``simulate_fixed(fixed, x)``       -> :class:`SimResult` with every counted action
  (a scheme without a fixed-point model inherits a clear "not available" error).

Nothing outside ``neurosim/schemes/`` needs to change to add a scheme.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..calibrate import calibrate, check_percentile
from ..errors import UserError, did_you_mean
from ..results import SimResult  # noqa: F401  (re-exported: schemes return it)

BOOL_WORDS = {"on": True, "true": True, "yes": True, "1": True,
              "off": False, "false": False, "no": False, "0": False}


def _whole_number(word: str) -> int | None:
    """``word`` as an int if it spells a finite whole number (``16.0``, ``1e3``), else None."""
    try:
        value = float(word)
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value.is_integer() else None


@dataclass(frozen=True)
class Param:
    """One key of a coding spec. ``kind`` is int | float | bool | enum.

    ``check(value)`` returns None if the value is acceptable, else a short phrase saying what
    was expected (e.g. "a positive integer"), which becomes part of the UserError.
    """

    name: str
    kind: str
    default: Any
    doc: str
    choices: tuple[str, ...] = ()
    check: Callable[[Any], str | None] | None = None

    def parse(self, text: str, scheme: str) -> Any:
        """The typed value of ``text``; a UserError naming the key if it is not one."""
        where = f"coding '{scheme}': key '{self.name}'"
        word = text.strip()
        if self.kind == "int":
            try:
                value = int(word)
            except ValueError:
                value = _whole_number(word)  # 16.0 (a float from Python or YAML) is 16
                if value is None:
                    raise UserError(f"{where} expects an integer, found '{text}'") from None
        elif self.kind == "float":
            try:
                value = float(word)
            except ValueError:
                raise UserError(f"{where} expects a number, found '{text}'") from None
            if not math.isfinite(value):
                raise UserError(f"{where} expects a finite number, found '{text}'")
        elif self.kind == "bool":
            if word.lower() not in BOOL_WORDS:
                raise UserError(f"{where} expects on|off (or true|false), found '{text}'")
            value = BOOL_WORDS[word.lower()]
        elif self.kind == "enum":
            if word not in self.choices:
                raise UserError(f"{where} expects one of {'|'.join(self.choices)}, found "
                                f"'{text}'{did_you_mean(word, self.choices)}")
            value = word
        else:  # a scheme declared a kind this module does not know: a bug, not a user error
            raise AssertionError(f"unknown parameter kind {self.kind!r}")
        self.validate(value, scheme, text)
        return value

    def validate(self, value: Any, scheme: str, text: str | None = None) -> None:
        problem = self.check(value) if self.check else None
        if problem:
            found = text if text is not None else value
            raise UserError(f"coding '{scheme}': key '{self.name}' must be {problem}, "
                            f"found '{found}'")


class Scheme:
    """Base class of a coding scheme plug-in (see the module docstring).

    A scheme whose module provides plain functions names them as class attributes and
    inherits the methods that call them: ``float_simulator(snn, x, trace=..., progress=...)``,
    ``quantizer(snn, arithmetic)`` and ``fixed_simulator(fixed, x, trace=..., progress=...)``.
    Its SNN's ``latency_steps`` and ``steps_per_frame`` are the default timing, and every
    parameter is validated by the default ``check``.
    """

    name: str = ""
    summary: str = ""
    params: tuple[Param, ...] = ()
    float_simulator: Callable | None = None
    quantizer: Callable | None = None
    fixed_simulator: Callable | None = None
    converter: Callable | None = None  # convert(graph, scales, params[, calib_x]) -> the SNN
    converter_uses_data: bool = False  # the converter tunes itself on calib_x too
    # what a user can try when the float SNN falls far below the ANN (the conversion-loss
    # warning); a scheme whose loss more steps do not cure says so
    loss_advice: str = "more steps, or another setting of the coding; 'neurosim codings' lists them"

    def drops_negative_inputs(self, params: dict[str, Any]) -> str | None:
        """Why this coding's encoder sends a negative input as 0 (e.g. "a first spike carries
        no sign"), or None if it keeps the sign: ``build`` warns when the calibration
        inputs hold negative values (normalised data does) and the reason is not None."""
        return None

    def check(self, params: dict[str, Any]) -> None:
        """Every parameter's own check (also for values set in code rather than parsed); a
        scheme adds checks that involve more than one key. Raise UserError."""
        for p in self.params:
            p.validate(params[p.name], self.name)

    def build(self, graph, calib_x: np.ndarray, params: dict[str, Any], scales=None):
        """Check the parameters, calibrate at the spec's ``percentile`` (unless ``scales``
        are given) and convert with the scheme's ``converter``."""
        self.check(params)
        if scales is None:
            scales = calibrate(graph, calib_x, check_percentile(params["percentile"]))
        if self.converter_uses_data:
            snn = type(self).converter(graph, scales, params, calib_x)
        else:
            snn = type(self).converter(graph, scales, params)
        reason = self.drops_negative_inputs(params)
        if reason and calib_x is not None and np.min(calib_x) < 0:
            share = float(np.mean(np.asarray(calib_x) < 0))
            snn.warnings.append(
                f"coding '{self.name}': the inputs of {graph.name} hold negative values "
                f"({share:.0%} of the calibration inputs); {reason}, so its encoder sends them "
                f"as 0 and the SNN computes another network than the ANN (sws, tsc and "
                f"rate:input=current keep the sign)")
        return snn

    def simulate(self, snn, x: np.ndarray, trace: bool = False, progress=None) -> SimResult:
        """Float reference run; ``progress(done, total)`` after each batch of images."""
        return type(self).float_simulator(snn, x, trace=trace, progress=progress)

    def timing(self, snn) -> tuple[int, int]:
        return snn.latency_steps, snn.steps_per_frame

    # -- fixed point (bit-accurate hardware model); a scheme without one says so
    def quantize(self, snn, arithmetic):
        """The SNN in integers for a profile's ``arithmetic`` (the core's network)."""
        if self.quantizer is None:
            raise UserError(f"coding '{self.name}' has no bit-accurate fixed-point model yet; "
                            f"run the float simulation alone (neurosim run or compare with "
                            f"--precision float)")
        return type(self).quantizer(snn, arithmetic)

    def simulate_fixed(self, fixed, x: np.ndarray, trace: bool = False, progress=None) -> SimResult:
        """Bit-accurate run with every counted action (``SimResult.counts``)."""
        if self.fixed_simulator is None:
            raise UserError(f"coding '{self.name}' has no bit-accurate fixed-point model yet")
        return type(self).fixed_simulator(fixed, x, trace=trace, progress=progress)

    # -- shared helpers
    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def param(self, key: str) -> Param:
        return {p.name: p for p in self.params}[key]


def in_batches(run_batch: Callable, x: np.ndarray, batch: int, progress=None) -> list:
    """``run_batch(x[s:s + batch], s)`` for each batch of the images ``x`` (at least one, empty
    if ``x`` is), in order; ``progress(done, total)`` after each. The float simulators' loop:
    ``s`` is the batch's first image in the whole run (seeded draws depend on it)."""
    parts = []
    if progress:  # the bar starts now: its 2 s delay counts from the start, not the 1st batch
        progress(0, len(x))
    for s in range(0, len(x), batch):
        parts.append(run_batch(x[s:s + batch], s))
        if progress:
            progress(min(s + batch, len(x)), len(x))
    return parts or [run_batch(x[:0], 0)]
