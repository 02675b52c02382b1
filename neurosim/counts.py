"""Counted hardware actions: one integer per layer, per time step, per action.

The simulator (and, later, the numba core) fills ``Counts.data`` directly, so the layout below
is part of the contract and must not change silently:

``data``    numpy ``int64`` array, shape ``(n_layers, n_steps, n_actions)``, C order.
            ``data[l, t, a]`` is how many times action ``ACTIONS[a]`` happened in layer
            ``layers[l]`` during time step ``t + 1`` (steps are 1-based in DESIGN §2, the array
            index is 0-based), **summed over all ``images`` images of the batch**.
``by_image`` optional numpy ``int64`` array ``(images, n_layers, n_actions)``: the same counts
            summed over the steps, image by image (what a per-image figure, e.g. the overflows
            of one image, needs). Counts never hold images × layers × steps × actions: a
            1000-step run of a large network would not fit in memory.
``ACTIONS`` the action axis, in this fixed order (DESIGN §5). ``ACTION_INDEX[name]`` is the
            index of an action on that axis. New actions may only be appended.

``spike_out_pos`` and ``spike_out_neg`` are kept apart; a hardware profile prices both with its
one ``spike_out`` price (see ``PRICE_OF``). ``mac`` is a multiply-accumulate: the ANN baseline's,
and a spiking model's where it really multiplies (rate coding's analog input W·x, phase
coding's decision unit).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

ACTIONS: tuple[str, ...] = (
    "synop",
    "weight_read",
    "state_read",
    "state_write",
    "add",
    "shift",
    "compare",
    "spike_out_pos",
    "spike_out_neg",
    "fifo_write",
    "fifo_read",
    "bias_add",
    "overflow",
    "mac",
)
ACTION_INDEX: dict[str, int] = {name: i for i, name in enumerate(ACTIONS)}

# Which profile price applies to each counted action. Every counted action maps to exactly one
# price name; both spike signs share ``spike_out``.
PRICE_OF: dict[str, str] = {a: a for a in ACTIONS}
PRICE_OF["spike_out_pos"] = "spike_out"
PRICE_OF["spike_out_neg"] = "spike_out"

# The price names a hardware profile must give (energy_pj), in a stable order.
PRICED_ACTIONS: tuple[str, ...] = tuple(dict.fromkeys(PRICE_OF[a] for a in ACTIONS))


@dataclass(frozen=True, eq=False)
class Counts:
    """Action counts of one run (a batch of ``images`` images), per layer × step × action.

    Use ``Counts.zeros(...)`` to make an empty one and fill ``data`` in place (the dataclass is
    frozen, the array is not), or build it from an existing array.
    """

    layers: tuple[str, ...]
    data: np.ndarray
    images: int
    actions: tuple[str, ...] = ACTIONS
    by_image: np.ndarray | None = None

    def __post_init__(self):
        layers = tuple(str(x) for x in self.layers)
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "actions", tuple(self.actions))
        if len(set(layers)) != len(layers):
            raise ValueError(f"Counts: layer names must be unique, got {layers}")
        if self.actions != ACTIONS:
            raise ValueError("Counts: the action axis must be neurosim.counts.ACTIONS")
        data = np.asarray(self.data)
        if data.dtype != np.int64:
            if data.size and not np.all(np.equal(np.mod(data, 1), 0)):
                raise ValueError("Counts: data must hold integers")
            data = data.astype(np.int64)
        if data.ndim != 3 or data.shape[0] != len(layers) or data.shape[2] != len(ACTIONS):
            raise ValueError(
                f"Counts: data must have shape (n_layers={len(layers)}, n_steps, "
                f"n_actions={len(ACTIONS)}), got {data.shape}"
            )
        if data.size and int(data.min()) < 0:
            raise ValueError("Counts: counts cannot be negative")
        if int(self.images) < 0:
            raise ValueError(f"Counts: images must be >= 0, got {self.images}")
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "images", int(self.images))
        if self.by_image is not None:
            per = np.asarray(self.by_image, dtype=np.int64)
            if per.shape != (self.images, len(layers), len(ACTIONS)):
                raise ValueError(f"Counts: by_image must have shape (images={self.images}, "
                                 f"n_layers={len(layers)}, n_actions={len(ACTIONS)}), got {per.shape}")
            object.__setattr__(self, "by_image", per)

    # ----------------------------------------------------------------- construction
    @classmethod
    def zeros(cls, layers, steps: int, images: int) -> "Counts":
        layers = tuple(layers)
        return cls(layers=layers, data=np.zeros((len(layers), int(steps), len(ACTIONS)), np.int64),
                   images=images)

    @property
    def n_steps(self) -> int:
        return int(self.data.shape[1])

    def add(self, layer: str, step: int, action: str, n: int = 1) -> None:
        """Add ``n`` to one cell; ``step`` is 1-based as in DESIGN §2. (Convenience for tests
        and slow reference code; fast code writes ``data`` directly.)"""
        self.data[self.layers.index(layer), step - 1, ACTION_INDEX[action]] += n

    # ----------------------------------------------------------------- views
    def total(self) -> dict[str, int]:
        """Sum over layers, steps and images: {action: int}."""
        s = self.data.sum(axis=(0, 1))
        return {a: int(s[i]) for i, a in enumerate(ACTIONS)}

    def by_layer(self) -> dict[str, dict[str, int]]:
        """{layer: {action: int}}, summed over steps and images."""
        s = self.data.sum(axis=1)
        return {name: {a: int(s[l, i]) for i, a in enumerate(ACTIONS)}
                for l, name in enumerate(self.layers)}

    def by_step(self) -> np.ndarray:
        """int64 array (n_steps, n_actions), summed over layers; row t is step t+1."""
        return self.data.sum(axis=0)

    def per_inference(self) -> dict[str, float]:
        """Mean count per image for each action (floats); all zeros for an empty batch."""
        tot = self.total()
        if self.images == 0:
            return {a: 0.0 for a in ACTIONS}
        return {a: tot[a] / self.images for a in ACTIONS}

    def per_inference_by_layer(self) -> dict[str, dict[str, float]]:
        n = self.images or 1
        return {l: {a: v / n if self.images else 0.0 for a, v in d.items()}
                for l, d in self.by_layer().items()}

    # ----------------------------------------------------------------- merging batches
    def __add__(self, other: "Counts") -> "Counts":
        """Merge two batches of the same network: counts and images add. Runs of different
        lengths are padded with zero steps (a shorter run did nothing in the later steps)."""
        if not isinstance(other, Counts):
            return NotImplemented
        if other.layers != self.layers:
            raise ValueError(f"Counts: cannot merge different layers {self.layers} and {other.layers}")
        steps = max(self.n_steps, other.n_steps)
        data = np.zeros((len(self.layers), steps, len(ACTIONS)), np.int64)
        data[:, : self.n_steps] += self.data
        data[:, : other.n_steps] += other.data
        per = None
        if self.by_image is not None and other.by_image is not None:
            per = np.concatenate([self.by_image, other.by_image])
        return Counts(self.layers, data, self.images + other.images, by_image=per)

    def __eq__(self, other) -> bool:
        return (isinstance(other, Counts) and self.layers == other.layers
                and self.images == other.images and self.data.shape == other.data.shape
                and bool(np.array_equal(self.data, other.data)))

    __hash__ = None

    # ----------------------------------------------------------------- serialisation
    def to_dict(self, per_step: bool = False) -> dict:
        """JSON-ready dict: totals, per-inference means and per-layer totals (and, on request,
        the full per-step array as nested lists in the documented layout)."""
        d = {
            "images": self.images,
            "steps": self.n_steps,
            "layers": list(self.layers),
            "actions": list(ACTIONS),
            "total": self.total(),
            "per_inference": self.per_inference(),
            "by_layer": self.by_layer(),
        }
        if per_step:
            d["data"] = self.data.tolist()
        return d

    def to_json(self, per_step: bool = False) -> str:
        return json.dumps(self.to_dict(per_step=per_step))

    @classmethod
    def from_dict(cls, d: dict) -> "Counts":
        if "data" not in d:
            raise ValueError("Counts.from_dict needs the per-step 'data' (to_dict(per_step=True))")
        if list(d.get("actions", ACTIONS)) != list(ACTIONS):
            raise ValueError("Counts.from_dict: action axis differs from neurosim.counts.ACTIONS")
        data = np.asarray(d["data"], dtype=np.int64).reshape(len(d["layers"]), -1, len(ACTIONS))
        return cls(tuple(d["layers"]), data, int(d["images"]))
