"""Does a network fit a chip? Layer-to-core mapping check and terminal tables.

Each layer gets its own cores (no two layers share a core). A layer needs

    cores = max( ceil(neurons / neurons_per_core),
                 ceil(synapses * bits_per_synapse / synapse_memory_bits) )

where ``synapses`` is the number of stored weights the layer's cores must hold (fan-in ×
neurons for dense storage) and ``bits_per_synapse`` is ``cores.bits_per_synapse`` of the
profile, or its ``arithmetic.weight_bits`` when not given. The network fits when the sum over
layers is at most ``cores.count``. A non-fitting network is a result, never an exception.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from neurosim.errors import UserError
from neurosim.hw.profile import Profile, bundled_profiles, load_profile

MAX_WIDTH = 100


@dataclass(frozen=True)
class LayerSize:
    name: str
    neurons: int
    synapses: int


@dataclass(frozen=True)
class LayerMapping:
    name: str
    neurons: int
    synapses: int
    synapse_bits: int
    cores_for_neurons: int
    cores_for_synapses: int
    cores: int

    @property
    def limited_by(self) -> str:
        return "synapses" if self.cores_for_synapses > self.cores_for_neurons else "neurons"


@dataclass(frozen=True)
class Mapping:
    profile_name: str
    layers: tuple[LayerMapping, ...]
    total_cores: int
    available_cores: int
    neurons_per_core: int
    synapse_memory_bits: int
    bits_per_synapse: int

    @property
    def fits(self) -> bool:
        return self.total_cores <= self.available_cores

    def problems(self) -> list[str]:
        """Plain sentences saying why the network does not fit (empty when it fits)."""
        if self.fits:
            return []
        over = self.total_cores - self.available_cores
        msgs = [f"the network needs {self.total_cores} cores but {self.profile_name} has "
                f"{self.available_cores} ({over} too many)"]
        for lm in sorted(self.layers, key=lambda l: -l.cores)[:5]:
            if lm.cores == 0:
                continue
            if lm.limited_by == "synapses":
                msgs.append(
                    f"layer {lm.name}: {lm.synapses} synapses x {self.bits_per_synapse} bits = "
                    f"{lm.synapse_bits} bits need {lm.cores} cores of "
                    f"{self.synapse_memory_bits} bits synapse memory")
            else:
                msgs.append(f"layer {lm.name}: {lm.neurons} neurons need {lm.cores} "
                            f"core{'' if lm.cores == 1 else 's'} of {self.neurons_per_core} "
                            f"neurons")
        return msgs


def _layer_sizes(layers) -> list[LayerSize]:
    out = []
    for i, l in enumerate(layers):
        if isinstance(l, LayerSize):
            name, n, s = l.name, l.neurons, l.synapses
        elif isinstance(l, dict):
            name, n, s = l.get("name"), l.get("neurons"), l.get("synapses")
        else:
            name, n, s = l
        for what, v in (("neurons", n), ("synapses", s)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise UserError(f"layer {name!r} (#{i}): {what}: expected a whole number >= 0, "
                                f"found {v!r}")
        out.append(LayerSize(str(name), int(n), int(s)))
    return out


def map_layers(layers, profile: Profile) -> Mapping:
    """Cores per layer, total cores and whether the network fits ``profile``'s chip.

    ``layers``: ``LayerSize`` items (or ``(name, neurons, synapses)`` tuples or dicts).
    """
    c = profile.cores
    bps = profile.bits_per_synapse
    out = []
    for l in _layer_sizes(layers):
        bits = l.synapses * bps
        cn = math.ceil(l.neurons / c.neurons_per_core)
        cs = math.ceil(bits / c.synapse_memory_bits)
        out.append(LayerMapping(l.name, l.neurons, l.synapses, bits, cn, cs, max(cn, cs)))
    return Mapping(profile.name, tuple(out), sum(l.cores for l in out), c.count,
                   c.neurons_per_core, c.synapse_memory_bits, bps)


def mapping_to_dict(m: Mapping) -> dict:
    return {
        "profile": m.profile_name,
        "fits": m.fits,
        "total_cores": m.total_cores,
        "available_cores": m.available_cores,
        "neurons_per_core": m.neurons_per_core,
        "synapse_memory_bits": m.synapse_memory_bits,
        "bits_per_synapse": m.bits_per_synapse,
        "layers": [{"name": l.name, "neurons": l.neurons, "synapses": l.synapses,
                    "synapse_bits": l.synapse_bits, "cores": l.cores,
                    "limited_by": l.limited_by} for l in m.layers],
        "problems": m.problems(),
    }


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def format_mapping(m: Mapping) -> str:
    """A terminal table (≤ 100 columns) of cores per layer, then a fit / no-fit verdict."""
    rows = [[_clip(l.name, 24), l.neurons, l.synapses, l.cores_for_neurons, l.cores_for_synapses,
             l.cores, l.limited_by] for l in m.layers]
    rows.append(["total", sum(l.neurons for l in m.layers), sum(l.synapses for l in m.layers),
                 "", "", m.total_cores, ""])
    table = tabulate(rows, headers=["layer", "neurons", "synapses", "cores(n)", "cores(syn)",
                                    "cores", "limited by"], tablefmt="simple")
    head = (f"Mapping onto {m.profile_name}: {m.available_cores} cores, {m.neurons_per_core} "
            f"neurons and {m.synapse_memory_bits} synapse bits per core, "
            f"{m.bits_per_synapse} bits per synapse")
    lines = [_wrap(head)] + [table]
    if m.fits:
        lines.append(f"fits: {m.total_cores} of {m.available_cores} cores used")
    else:
        lines.append("DOES NOT FIT:")
        lines += [_wrap("  - " + p, indent="    ") for p in m.problems()]
    return "\n".join(lines)


def _wrap(text: str, indent: str = "") -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, MAX_WIDTH, subsequent_indent=indent)) or text


def profile_to_dict(profile: Profile) -> dict:
    """JSON-ready ``hw`` block for a loaded profile (name, path, bits, prices, ...)."""
    return profile.to_dict()


def profiles_to_dict(paths=None) -> list[dict]:
    """JSON-ready summaries of the given (default: bundled) profiles."""
    out = []
    for p in (paths if paths is not None else bundled_profiles()):
        pr = load_profile(p)
        out.append({"name": pr.name, "path": str(pr.path),
                    "weight_bits": pr.arithmetic.weight_bits,
                    "state_bits": pr.arithmetic.state_bits, "cores": pr.cores.count,
                    "sources": [s.id for s in pr.sources]})
    return out


def format_profiles_table(paths=None) -> str:
    """Terminal table (≤ 100 columns) for ``neurosim profiles``: name, file, bits, cores,
    sources. Bad files raise ``UserError`` from the loader."""
    rows = []
    for d in profiles_to_dict(paths):
        p = Path(d["path"])
        try:
            shown = str(p.resolve().relative_to(Path.cwd().resolve()))
        except ValueError:
            shown = p.name if p.parent == bundled_dir_safe() else str(p)
        srcs = ", ".join(s for s in d["sources"] if s != "neurosim_assumption")
        rows.append([d["name"], _clip(shown, 26), d["weight_bits"], d["state_bits"], d["cores"],
                     _clip(srcs, 26)])
    return tabulate(rows, headers=["name", "file", "w bits", "s bits", "cores", "sources"],
                    tablefmt="simple")


def bundled_dir_safe() -> Path:
    from neurosim.hw.profile import bundled_dir

    return bundled_dir()
