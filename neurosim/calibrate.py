"""Calibration: the activation scale λ of every population, from the float ANN (DESIGN §3).

``λ_l`` is the q-th percentile of what population l carries over the calibration images:

* input:   |pixel| (default q = 100, i.e. the largest input, so no pixel saturates the encoder);
* hidden and maxpool: the ReLU / MaxPool output (zeros included, as in Rueckauer et al. 2017);
* readout: |pre-activation| of the final linear output (a readout neuron never fires, so its
  scale only fixes the units of its membrane; the absolute value keeps it positive).

The result is plain data, ``{population name: λ}``, so a coding scheme can reuse it for any
number of conversions. A population whose q-th percentile is 0 but which is not silent (fewer
than 100 − q % of its values are non-zero: a sparse layer) takes the q-th percentile of its
non-zero values instead: 0 would leave it no scale, and any fixed stand-in could be far below
what it carries (a layer active at 15–45 on a few images, given λ = 1, saturates and the SNN
falls to the majority class). A population that is zero on every calibration image gets
λ = 1.0: its spike amplitude is then arbitrary, and a positive value keeps the weight scaling
finite.
"""

from __future__ import annotations

import numpy as np

from . import ann
from .errors import UserError
from .graph import Graph, populations

DEFAULT_PERCENTILE = 99.99  # SWS / CSS (DESIGN §3); other schemes use 99.9
INPUT_PERCENTILE = 100.0
SILENT_POPULATION_SCALE = 1.0


def check_percentile(q: float, key: str = "percentile") -> float:
    q = float(q)
    if not (0.0 < q <= 100.0):
        raise UserError(f"{key} must be in (0, 100], found {q:g}")
    return q


def population_values(graph: Graph, x: np.ndarray) -> dict[str, np.ndarray]:
    """The value each population carries on images ``x`` (N, ...): what the SNN must encode."""
    pops = populations(graph)
    wanted = {p.name for p in pops} | {p.pre for p in pops if p.kind == "readout"}
    _, acts = ann.run(graph, x, keep=wanted)
    return {p.name: acts[p.pre] if p.kind == "readout" else acts[p.name] for p in pops}


class Scales(dict):
    """{population name: λ}, and ``silent``: the populations that are 0 on every calibration
    image, whose λ is the stand-in SILENT_POPULATION_SCALE (a dead layer, or calibration
    images unlike the data: worth a word wherever a result depends on it)."""

    silent: tuple[str, ...] = ()


def calibrate(graph: Graph, x: np.ndarray, percentile: float = DEFAULT_PERCENTILE,
              input_percentile: float = INPUT_PERCENTILE) -> Scales:
    """{population name: λ} over the calibration images ``x`` (a ``Scales``)."""
    percentile = check_percentile(percentile)
    input_percentile = check_percentile(input_percentile, "input_percentile")
    if len(x) == 0:
        raise UserError("calibration data holds no images")
    kinds = {p.name: p.kind for p in populations(graph)}
    if not np.any(x):
        raise UserError("the calibration images are all zero: no activation scale can be "
                        "measured on them; pass --calib with images like the test data")
    scales, silent = Scales(), []
    for name, values in population_values(graph, x).items():
        q = input_percentile if kinds[name] == "input" else percentile
        magnitude = np.abs(values)
        lam = float(np.percentile(magnitude, q))
        if lam == 0.0 and magnitude.any():  # sparse, not silent
            lam = float(np.percentile(magnitude[magnitude > 0], q))
        if lam == 0.0:
            silent.append(name)
        scales[name] = lam if lam > 0.0 else SILENT_POPULATION_SCALE
    scales.silent = tuple(silent)
    return scales
