"""Plain result types shared by the schemes and the engine (they sit below both).

``SimResult`` is what a simulation of a batch hands back, float reference or bit-accurate;
``neurosim.counts.Counts`` (the counted actions) is its ``counts``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .counts import Counts


@dataclass
class SimResult:
    """What a simulation of a batch hands back (float reference or bit-accurate core).

    ``outputs``   (N, n_classes) readout values in ANN units (argmax = prediction)
    ``counts``    counted actions per layer × step summed over the images, and per image × layer
                  (``Counts.by_image``); a float simulation counts spikes only
    ``decoded``   {population: (N, *shape)} value each population's spike train decodes to, in
                  ANN units (readout: its membrane in ANN units)
    ``extra``     scheme-specific records (e.g. SWS residual membrane potentials)
    """

    outputs: np.ndarray
    counts: Counts
    latency_steps: int
    steps_per_frame: int
    decoded: dict[str, np.ndarray]
    extra: dict[str, Any] = field(default_factory=dict)

    def predictions(self) -> np.ndarray:
        return self.outputs.reshape(len(self.outputs), -1).argmax(axis=1)

    def accuracy(self, y: np.ndarray) -> float:
        return float(np.mean(self.predictions() == y)) if len(y) else float("nan")
