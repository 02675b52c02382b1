"""Hardware profiles: schema, loader and validator (DESIGN §4, §5, §6).

A profile is a YAML file. Every number in it is a *sourced number*: a mapping
``{value: <number>, source: <id or list of ids>, note: <optional text>}`` whose source ids must
be declared under ``sources``. The loader rejects anything else with a ``UserError`` naming the
file, the key path (``energy_pj.synop``), what was expected and what was found. The accepted
keys and their units are documented in ``docs_profiles_section.md`` (README, "Hardware
profiles") and mirrored in ``SCHEMA`` below.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from neurosim.counts import PRICE_OF, PRICED_ACTIONS
from neurosim.errors import UserError, did_you_mean, yaml_syntax_error

# Bundled profiles live in hw_configs/ at the repository top; the package reaches them through
# neurosim/hw_configs, a link in the source tree that a wheel (a non-editable install) holds as
# a copy (package data), so both installs find them.
_BUNDLED_DIR = Path(__file__).resolve().parents[1] / "hw_configs"

WEIGHT_SCALES = ("per_layer_pow2", "per_projection_pow2", "per_layer")
OVERFLOWS = ("saturate", "wrap")
ROUNDS = ("floor", "nearest")
TIMING_UNITS = ("ns", "cycles")
SYNCS = ("barrier", "dataflow")

# Price names an SNN run needs a time for (the ANN `mac` may be timed but need not be).
TIMED_ACTIONS = tuple(a for a in PRICED_ACTIONS if a != "mac")

# key -> (required?, kind). kinds: "str", "sourced", "enum:<a|b>", "section", "sources"
SCHEMA = {
    "": {
        "name": (True, "str"),
        "description": (False, "str"),
        "sources": (True, "sources"),
        "arithmetic": (True, "section"),
        "energy_pj": (True, "section"),
        "static_power_w": (True, "sourced"),
        "timing": (True, "section"),
        "cores": (True, "section"),
        "ann_baseline": (False, "section"),
    },
    "arithmetic": {
        "weight_bits": (True, "sourced"),
        "state_bits": (True, "sourced"),
        "frac_bits": (True, "sourced"),
        "weight_scale": (True, "enum"),
        "overflow": (True, "enum"),
        "round": (True, "enum"),
        "max_beta_terms": (True, "sourced"),
        "note": (False, "str"),
    },
    "timing": {
        "unit": (True, "enum"),
        "clock_hz": (False, "sourced"),
        "per_action": (True, "section"),
        "sync": (True, "enum"),
        "barrier_ns": (False, "sourced"),
        "min_step_ns": (False, "sourced"),
        "note": (False, "str"),
    },
    "cores": {
        "count": (True, "sourced"),
        "neurons_per_core": (True, "sourced"),
        "synapse_memory_bits": (True, "sourced"),
        "bits_per_synapse": (False, "sourced"),
        "hop_energy_pj": (True, "sourced"),
        "hop_latency_ns": (True, "sourced"),
        "mesh_rows": (False, "sourced"),
        "mesh_cols": (False, "sourced"),
        "cores_per_router": (False, "sourced"),
        "gateable_static_fraction": (False, "sourced"),
        "note": (False, "str"),
    },
    # the ANN priced on the profile's memory model (issue 11, item 5): how many MACs share one
    # fetched weight and one read activation
    "ann_baseline": {
        "weight_reuse": (True, "sourced"),
        "activation_reuse": (True, "sourced"),
        "note": (False, "str"),
    },
}
ENUMS = {
    "arithmetic.weight_scale": WEIGHT_SCALES,
    "arithmetic.overflow": OVERFLOWS,
    "arithmetic.round": ROUNDS,
    "timing.unit": TIMING_UNITS,
    "timing.sync": SYNCS,
}
SOURCED_KEYS = ("value", "source", "note")
SOURCE_KEYS = ("id", "reference", "url", "note")


# --------------------------------------------------------------------------- data types
@dataclass(frozen=True)
class Source:
    id: str
    reference: str
    url: str = ""
    note: str = ""


@dataclass(frozen=True)
class Sourced:
    """A number with the ids of the sources it comes from and an optional derivation note."""

    value: float
    source: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True)
class Arithmetic:
    weight_bits: int
    state_bits: int
    frac_bits: int
    weight_scale: str
    overflow: str
    round: str
    max_beta_terms: int
    note: str = ""
    # not a profile key: set by --allow-overflow. A scheme whose register range does not fit
    # state_bits then runs with a loud warning instead of stopping with an error.
    allow_overflow: bool = False


@dataclass(frozen=True)
class Timing:
    unit: str                       # as written in the file: "ns" or "cycles"
    clock_hz: float | None
    per_action_ns: dict             # price name -> ns (converted from cycles when unit=cycles)
    sync: str                       # "barrier" or "dataflow"
    barrier_ns: float               # 0.0 for dataflow
    min_step_ns: float              # 0.0 when not given

    def ns(self, price_name: str) -> float:
        return float(self.per_action_ns.get(price_name, 0.0))


@dataclass(frozen=True)
class Cores:
    count: int
    neurons_per_core: int
    synapse_memory_bits: int
    bits_per_synapse: int | None    # None: a stored synapse takes arithmetic.weight_bits bits
    hop_energy_pj: float
    hop_latency_ns: float
    # (mesh_rows, mesh_cols, cores_per_router), or None when the profile gives no mesh (then no
    # placement and no hops)
    mesh: tuple[int, int, int] | None = None
    # share of static_power_w that an unused core can power-gate away (None: no gating)
    gateable_static_fraction: float | None = None


@dataclass(frozen=True)
class AnnBaseline:
    """MACs served by one weight fetch and by one activation read (>= 1)."""

    weight_reuse: float
    activation_reuse: float


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    description: str
    sources: tuple[Source, ...]
    arithmetic: Arithmetic
    energy_pj: dict                 # price name -> pJ (keys: PRICED_ACTIONS)
    static_power_w: float
    timing: Timing
    cores: Cores
    provenance: dict = field(default_factory=dict, compare=False)  # key path -> Sourced
    ann_baseline: AnnBaseline | None = None

    def price(self, action: str) -> float:
        """pJ for one counted action (``spike_out_pos``/``_neg`` map to ``spike_out``)."""
        return float(self.energy_pj[PRICE_OF.get(action, action)])

    def action_ns(self, action: str) -> float:
        return self.timing.ns(PRICE_OF.get(action, action))

    @property
    def bits_per_synapse(self) -> int:
        return self.cores.bits_per_synapse or self.arithmetic.weight_bits

    def to_dict(self) -> dict:
        """JSON-ready ``hw`` block (DESIGN §8 requires at least ``name`` and ``path``)."""
        a, t, c = self.arithmetic, self.timing, self.cores
        return {
            "name": self.name,
            "path": str(self.path),
            "arithmetic": {
                "weight_bits": a.weight_bits, "state_bits": a.state_bits,
                "frac_bits": a.frac_bits, "weight_scale": a.weight_scale,
                "overflow": a.overflow, "round": a.round, "max_beta_terms": a.max_beta_terms,
            },
            "energy_pj": dict(self.energy_pj),
            "static_power_w": self.static_power_w,
            "timing": {"per_action_ns": dict(t.per_action_ns), "sync": t.sync,
                       "barrier_ns": t.barrier_ns, "min_step_ns": t.min_step_ns,
                       "clock_hz": t.clock_hz},
            "cores": {"count": c.count, "neurons_per_core": c.neurons_per_core,
                      "synapse_memory_bits": c.synapse_memory_bits,
                      "bits_per_synapse": self.bits_per_synapse,
                      "hop_energy_pj": c.hop_energy_pj, "hop_latency_ns": c.hop_latency_ns,
                      "mesh": list(c.mesh) if c.mesh else None,
                      "gateable_static_fraction": c.gateable_static_fraction},
            "ann_baseline": None if self.ann_baseline is None else {
                "weight_reuse": self.ann_baseline.weight_reuse,
                "activation_reuse": self.ann_baseline.activation_reuse},
            "sources": [{"id": s.id, "reference": s.reference} for s in self.sources],
        }


# --------------------------------------------------------------------------- locating files
def bundled_dir() -> Path:
    """Where bundled profiles live: ``hw_configs/`` at the repository top."""
    return _BUNDLED_DIR


def bundled_profiles() -> list[Path]:
    """The bundled profile files, sorted by name."""
    d = bundled_dir()
    return sorted(d.glob("*.yaml")) if d.is_dir() else []


def resolve_profile_path(path_or_name) -> Path:
    """A path as given, or a bare name (``loihi_like``) -> ``hw_configs/loihi_like.yaml``."""
    s = str(path_or_name)
    if not s.strip():
        raise UserError("--hw: an empty profile name; expected a YAML file path or one of the "
                        f"bundled names {', '.join(q.stem for q in bundled_profiles())}")
    looks_like_path = isinstance(path_or_name, Path) or "/" in s or "\\" in s or s.endswith(
        (".yaml", ".yml"))
    if looks_like_path:
        p = Path(s)
        if not p.exists():
            raise UserError(f"{p}: hardware profile file not found")
        if p.is_dir():
            raise UserError(f"{p}: expected a hardware profile YAML file, found a directory")
        return p
    p = bundled_dir() / f"{s}.yaml"
    if p.exists():
        return p
    names = [q.stem for q in bundled_profiles()]
    if Path(s).exists():  # a file in the working directory without a .yaml suffix
        return Path(s)
    raise UserError(
        f"{s}: no such hardware profile: expected a YAML file path or one of the bundled "
        f"names {', '.join(names) or '(none)'}{did_you_mean(s, names)}"
    )


# --------------------------------------------------------------------------- validation
class _Said(str):
    """Text already worded for the 'found' part of a message."""


def _describe(v) -> str:
    if isinstance(v, _Yaml11Number):
        return f"{v.written}, which YAML reads as {v.reading}"
    if v is None:
        return "nothing (null)"
    if isinstance(v, bool):
        return f"the boolean {str(v).lower()}"
    if isinstance(v, (int, float)):
        return f"the number {v!r}"
    if isinstance(v, str):
        return f"the string {v!r}"
    if isinstance(v, list):
        return f"a list of {len(v)} item(s)"
    if isinstance(v, dict):
        return f"a mapping with keys {', '.join(map(str, v)) or '(none)'}"
    return f"a {type(v).__name__}"


class _Checker:
    def __init__(self, path: Path):
        self.path = path
        self.source_ids: dict[str, None] = {}  # ordered for messages, O(1) lookups
        self.provenance: dict[str, Sourced] = {}

    def fail(self, key: str, expected: str, found) -> None:
        """``found`` is a value (described for the user) or an already-worded ``_Said``."""
        found_txt = str(found) if isinstance(found, _Said) else _describe(found)
        raise UserError(f"{self.path}: {key or '(top level)'}: expected {expected}, found {found_txt}")

    def mapping(self, key: str, v, what: str = "a mapping") -> dict:
        if not isinstance(v, dict):
            self.fail(key, what, v)
        for k in v:
            if not isinstance(k, str):
                self.fail(key, "text keys", _Said(f"the key {k!r}"))
        return v

    def keys(self, key: str, v: dict, allowed, required) -> None:
        for k in v:
            if k not in allowed:
                raise UserError(
                    f"{self.path}: {_join(key, k)}: unknown key{did_you_mean(k, allowed)}; "
                    f"expected one of {', '.join(allowed)}")
        for k in required:
            if k not in v:
                self.fail(_join(key, k), "this key to be present", _Said("no such key"))

    def text(self, key: str, v) -> str:
        if not isinstance(v, str) or not v.strip():
            self.fail(key, "a non-empty string", v)
        return v

    def enum(self, key: str, v, choices) -> str:
        if not isinstance(v, str) or v not in choices:
            hint = did_you_mean(v, choices) if isinstance(v, str) else ""
            self.fail(key, f"one of {', '.join(choices)}", _Said(f"{_describe(v)}{hint}"))
        return v

    def number(self, key: str, v) -> float:
        if isinstance(v, _Yaml11Number):
            self.fail(key, "a number", _Said(f"{_describe(v)}; {v.advice}"))
        sci_advice = _sci_text_advice(v) if isinstance(v, str) else ""
        if sci_advice:
            self.fail(key, "a number", _Said(f"the string {v!r} ({sci_advice})"))
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.fail(key, "a number", v)
        try:
            finite = math.isfinite(v)
        except OverflowError:  # YAML ints are unbounded; one of hundreds of digits has no float
            self.fail(key, "a finite number", _Said("an integer too large for a float "
                                                    "(over 308 digits)"))
        if not finite:
            self.fail(key, "a finite number", v)
        if v < 0:
            self.fail(key, "a number >= 0", v)
        low = _sane_limit(key, SANE_LOWER_LIMITS)
        if low is not None and v < low[0]:
            self.fail(key, f"at least {low[0]:g} {low[1]}", v)
        limit = _sane_limit(key, SANE_LIMITS)
        if limit is not None and v > limit[0]:
            self.fail(key, f"at most {limit[0]:g} {limit[1]}", v)
        return v

    def sourced(self, key: str, v) -> Sourced:
        expected = "a sourced number {value: <number>, source: <source id>, note: <optional text>}"
        if not isinstance(v, dict):
            self.fail(key, expected, v)
        self.keys(key, v, SOURCED_KEYS, ("value", "source"))
        value = self.number(_join(key, "value"), v["value"])
        src = v["source"]
        ids = [src] if isinstance(src, str) else src
        if not isinstance(ids, list) or not ids or not all(isinstance(s, str) and s for s in ids):
            self.fail(_join(key, "source"), "a source id or a non-empty list of source ids", src)
        for s in ids:
            if s not in self.source_ids:
                self.fail(_join(key, "source"),
                          f"a source id declared under sources ({', '.join(self.source_ids)})",
                          _Said(f"the unknown id {s!r}{did_you_mean(s, self.source_ids)}"))
        note = v.get("note", "")
        if note is None or not isinstance(note, str):
            self.fail(_join(key, "note"), "a string", note)
        out = Sourced(float(value), tuple(ids), note)
        self.provenance[key] = out
        return out

    def integer(self, key: str, s: Sourced, lo: int, hi: int | None = None) -> int:
        v = s.value
        if v != int(v):
            self.fail(_join(key, "value"), "a whole number", v)
        v = int(v)
        if v < lo or (hi is not None and v > hi):
            rng = f"a whole number from {lo} to {hi}" if hi is not None else f"a whole number >= {lo}"
            self.fail(_join(key, "value"), rng, v)
        return v


# The bit widths the engine can model exactly: it computes in 64-bit integers, and a register
# plus one step's input plus a bias (or a register shifted left by one) must not wrap there,
# so a register holds at most 62 bits; weights are stored in at most 32.
BIT_RANGES = {"weight_bits": (2, 32), "state_bits": (2, 62)}
STATE_BITS_WHY = ("the engine computes in 64-bit integers, and a register plus one step's "
                  "input and a bias must not wrap there")


def bit_width_problems(weight_bits: int, state_bits: int, frac_bits: int) -> list[tuple[str, str]]:
    """(key, what was expected) for each arithmetic width outside what the engine models
    exactly; empty when all fit. Shared by profiles and sweep grids (their overrides)."""
    out = []
    lo, hi = BIT_RANGES["weight_bits"]
    if not lo <= weight_bits <= hi:
        out.append(("weight_bits", f"a whole number from {lo} to {hi}"))
    lo, hi = BIT_RANGES["state_bits"]
    if not max(lo, weight_bits) <= state_bits <= hi:
        out.append(("state_bits", f"a whole number from weight_bits ({weight_bits}) to {hi} "
                                  f"({STATE_BITS_WHY})"))
    if not 0 <= frac_bits < state_bits:
        out.append(("frac_bits", f"a whole number >= 0 and < state_bits ({state_bits})"))
    return out


# Upper bounds no real chip comes near, per key prefix, with the unit of the message: a value
# beyond them is a typo or a unit mix-up (J for pJ, Hz for GHz) that would otherwise print
# inf / nan energies. Bit widths and counts have their own checks.
SANE_LIMITS = (
    ("energy_pj.", 1e6, "pJ per action (1 µJ)"),
    ("static_power_w.", 1e4, "W"),
    ("timing.per_action.", 1e9, "ns or cycles per action (1 s at 1 GHz)"),
    ("timing.clock_hz.", 1e12, "Hz"),
    ("timing.barrier_ns.", 1e9, "ns"),
    ("timing.min_step_ns.", 1e10, "ns"),
    ("cores.count.", 1e7, "cores"),
    ("cores.neurons_per_core.", 1e9, "neurons"),
    ("cores.synapse_memory_bits.", 1e15, "bits"),
    ("cores.bits_per_synapse.", 1e3, "bits"),
    ("cores.hop_energy_pj.", 1e6, "pJ"),
    ("cores.hop_latency_ns.", 1e9, "ns"),
    ("cores.mesh_rows.", 1e5, "rows"),
    ("cores.mesh_cols.", 1e5, "columns"),
    ("cores.cores_per_router.", 1e4, "cores"),
    ("cores.gateable_static_fraction.", 1, "(a fraction of the static power)"),
    ("ann_baseline.weight_reuse.", 1e9, "MACs per weight fetch"),
    ("ann_baseline.activation_reuse.", 1e9, "MACs per activation read"),
)


# Lower bounds, only where a smaller value has no physical reading: no synchronous chip runs
# below 1 kHz, so such a clock is a unit mix-up ('1' meaning 1 GHz) that would turn every
# per-action time into seconds, or into inf / nan ns for a clock near 0.
SANE_LOWER_LIMITS = (
    ("timing.clock_hz.", 1e3, "Hz (a slower clock is likely MHz or GHz written as Hz)"),
)


def _sane_limit(key: str, limits) -> tuple[float, str] | None:
    """(bound, unit) of the first entry of ``limits`` whose prefix matches ``key``."""
    for prefix, limit, unit in limits:
        if key.startswith(prefix) or key == prefix.rstrip("."):
            return limit, unit
    return None


@dataclass(frozen=True, repr=False)
class _Yaml11Number:
    """A number spelling that YAML 1.1 (PyYAML) reads as something else than it looks:
    ``0100`` is octal 64, ``7:45`` is base-60 465. The loader keeps it as this marker instead
    of the changed value, so the checker refuses it under its key path."""

    written: str    # as in the file
    reading: str    # what YAML makes of it: "octal 64"
    advice: str     # how to write what was meant

    def __repr__(self) -> str:
        return self.written


# Scientific notation that YAML 1.1 reads as text: it needs a '.' in the mantissa and a sign
# in the exponent (1.0e+5), so 1e-3 and 1.0e5 are strings.
_SCI_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _sci_text_advice(text: str) -> str:
    """'YAML reads 1.0e5 as text: write 1.0e+5 or 100000.0' for scientific notation that YAML
    1.1 left as a string, else '' (also for a quoted, well-formed '1.0e+5')."""
    if not _SCI_TEXT.fullmatch(text):
        return ""
    mantissa, exponent = re.split("[eE]", text)
    as_yaml = (mantissa if "." in mantissa else mantissa + ".0") + "e" + (
        exponent if exponent[0] in "+-" else "+" + exponent)
    if as_yaml == text:
        return ""
    plain = repr(float(text))
    return f"YAML reads {text} as text: write {as_yaml}" + ("" if "e" in plain else f" or {plain}")


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice in one mapping is an error (plain YAML lets
    the last one win, silently), a complex key (? [a, b]) is an error, merge keys (<<: *a)
    work as in plain YAML, and octal / base-60 number spellings are kept as ``_Yaml11Number``
    markers for the checker to refuse."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            # a merge key (<<: *anchor) may repeat keys: the mapping's own keys override the
            # merged ones (YAML's rule); SafeLoader's flatten_mapping does that merge below
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):  # a complex key: ? [a, b]
                kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
                raise UserError(f"{{path}}: the key at line {line}: expected a text key, found "
                                f"a {kind} (a YAML complex key)")
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise UserError(f"{{path}}: key {key!r} is given twice, at line {seen[key]} and "
                                f"at line {line}; keep one")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node):
        value = super().construct_yaml_int(node)
        digits = node.value.replace("_", "").lstrip("+-")
        if ":" in digits:
            return _Yaml11Number(node.value, f"the base-60 number {value}",
                                 f"write {value} if that is meant")
        if len(digits) > 1 and digits[0] == "0" and digits[1] not in "xb":
            return _Yaml11Number(node.value, f"octal {value}",
                                 f"write {int(node.value.replace('_', ''), 10)} "
                                 f"(or {value} if octal is meant)")
        return value

    def construct_yaml_float(self, node):
        value = super().construct_yaml_float(node)
        if ":" in node.value:
            return _Yaml11Number(node.value, f"the base-60 number {value!r}",
                                 f"write {value!r} if that is meant")
        return value


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _UniqueKeyLoader.construct_yaml_int)
_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:float", _UniqueKeyLoader.construct_yaml_float)


def _join(a: str, b: str) -> str:
    return f"{a}.{b}" if a else b


def _section_keys(section: str):
    spec = SCHEMA[section]
    return tuple(spec), tuple(k for k, (req, _) in spec.items() if req)


def load_profile(path_or_name) -> Profile:
    """Load and validate a profile: a YAML path, or a bundled name like ``loihi_like``.

    Raises ``UserError`` (never anything else for a bad file) naming the file and key path.
    """
    path = resolve_profile_path(path_or_name)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read the hardware profile: {e}") from None
    if not text.strip():
        raise UserError(f"{path}: (top level): expected a hardware profile mapping, found an empty file")
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)
    except UserError as e:
        raise UserError(str(e).replace("{path}", str(path))) from None
    except yaml.YAMLError as e:
        raise UserError(f"{path}: (top level): expected valid YAML, found "
                        f"{yaml_syntax_error(e)}") from None
    return _validate(path, doc)


MAX_NAME_CHARS = 32  # a profile's name heads table columns that must fit 100 columns


def _validate(path: Path, doc) -> Profile:
    c = _Checker(path)
    if doc is None:
        raise UserError(f"{path}: (top level): expected a hardware profile mapping, found an empty document")
    c.mapping("", doc, "a mapping of profile keys (name, sources, arithmetic, ...)")
    allowed, required = _section_keys("")
    c.keys("", doc, allowed, required)
    name = c.text("name", doc["name"])
    if len(name) > MAX_NAME_CHARS or not name.isprintable() or name != name.strip():
        c.fail("name", f"a one-line name of at most {MAX_NAME_CHARS} printable characters "
               "without outer spaces (it labels the tables' rows and columns; the "
               "description holds the rest)", name)
    description = c.text("description", doc["description"]) if "description" in doc else ""

    # sources first: every sourced number is checked against these ids
    srcs = doc["sources"]
    if not isinstance(srcs, list) or not srcs:
        c.fail("sources", "a non-empty list of {id, reference} entries", srcs)
    sources = []
    for i, s in enumerate(srcs):
        key = f"sources[{i}]"
        c.mapping(key, s, "a mapping {id, reference, url (optional), note (optional)}")
        c.keys(key, s, SOURCE_KEYS, ("id", "reference"))
        sid = c.text(f"{key}.id", s["id"])
        if sid in c.source_ids:
            c.fail(f"{key}.id", "a unique source id", _Said(f"the id {sid!r} a second time"))
        ref = c.text(f"{key}.reference", s["reference"])
        url = c.text(f"{key}.url", s["url"]) if "url" in s else ""
        note = c.text(f"{key}.note", s["note"]) if "note" in s else ""
        c.source_ids[sid] = None
        sources.append(Source(sid, ref, url, note))

    # arithmetic (DESIGN §4)
    ar = c.mapping("arithmetic", doc["arithmetic"])
    c.keys("arithmetic", ar, *_section_keys("arithmetic"))
    wb = c.integer("arithmetic.weight_bits", c.sourced("arithmetic.weight_bits", ar["weight_bits"]),
                   *BIT_RANGES["weight_bits"])
    sb_s = c.sourced("arithmetic.state_bits", ar["state_bits"])
    sb = c.integer("arithmetic.state_bits", sb_s, 2)
    fb_s = c.sourced("arithmetic.frac_bits", ar["frac_bits"])
    fb = c.integer("arithmetic.frac_bits", fb_s, 0)
    for key, expected in bit_width_problems(wb, sb, fb):
        c.fail(f"arithmetic.{key}.value", expected, {"weight_bits": wb, "state_bits": sb,
                                                      "frac_bits": fb}[key])
    mbt = c.integer("arithmetic.max_beta_terms",
                    c.sourced("arithmetic.max_beta_terms", ar["max_beta_terms"]), 1, 16)
    arith = Arithmetic(
        weight_bits=wb, state_bits=sb, frac_bits=fb,
        weight_scale=c.enum("arithmetic.weight_scale", ar["weight_scale"], WEIGHT_SCALES),
        overflow=c.enum("arithmetic.overflow", ar["overflow"], OVERFLOWS),
        round=c.enum("arithmetic.round", ar["round"], ROUNDS),
        max_beta_terms=mbt,
        note=c.text("arithmetic.note", ar["note"]) if "note" in ar else "",
    )

    # energy per action (DESIGN §5): exactly the price names, every one present
    en = c.mapping("energy_pj", doc["energy_pj"], "a mapping {action: sourced number in pJ}")
    for k in en:
        if k not in PRICED_ACTIONS:
            raise UserError(f"{path}: energy_pj.{k}: unknown action{_unknown_action_hint(k)}; "
                            f"expected one of {', '.join(PRICED_ACTIONS)}")
    for a in PRICED_ACTIONS:
        if a not in en:
            raise UserError(f"{path}: energy_pj.{a}: expected a price in pJ for the counted action "
                            f"'{a}', found no such key (every counted action must be priced)")
    energy = {a: c.sourced(f"energy_pj.{a}", en[a]).value for a in PRICED_ACTIONS}

    static = c.sourced("static_power_w", doc["static_power_w"]).value

    # timing
    tm = c.mapping("timing", doc["timing"])
    c.keys("timing", tm, *_section_keys("timing"))
    unit = c.enum("timing.unit", tm["unit"], TIMING_UNITS)
    clock = None
    if unit == "cycles":
        if "clock_hz" not in tm:
            c.fail("timing.clock_hz", "a clock frequency (timing.unit is cycles)", _Said("no such key"))
        clock = c.sourced("timing.clock_hz", tm["clock_hz"]).value  # >= 1 kHz: SANE_LOWER_LIMITS
    elif "clock_hz" in tm:
        c.fail("timing.clock_hz", "no clock_hz when timing.unit is ns", tm["clock_hz"])
    pa = c.mapping("timing.per_action", tm["per_action"], f"a mapping {{action: sourced number in {unit}}}")
    for k in pa:
        if k not in PRICED_ACTIONS:
            raise UserError(f"{path}: timing.per_action.{k}: unknown action"
                            f"{_unknown_action_hint(k)}; expected one of "
                            f"{', '.join(PRICED_ACTIONS)}")
    for a in TIMED_ACTIONS:
        if a not in pa:
            raise UserError(f"{path}: timing.per_action.{a}: expected a time in {unit} for the "
                            f"counted action '{a}', found no such key")
    scale = 1.0 if unit == "ns" else 1e9 / clock
    per_ns = {a: c.sourced(f"timing.per_action.{a}", pa[a]).value * scale for a in pa}
    # The clock and per-action bounds keep these finite; should they ever not, an inf or nan
    # time must stop here, or the pipeline would count it as no work at all.
    for a, ns in per_ns.items():
        if not math.isfinite(ns):
            c.fail(f"timing.per_action.{a}.value", f"a time that is finite in ns at "
                   f"timing.clock_hz {clock:g} Hz", _Said(f"{pa[a]['value']} {unit} = {ns} ns"))
    sync = c.enum("timing.sync", tm["sync"], SYNCS)
    barrier = 0.0
    if sync == "barrier":
        if "barrier_ns" not in tm:
            c.fail("timing.barrier_ns", "the barrier cost in ns (timing.sync is barrier)", _Said("no such key"))
        barrier = c.sourced("timing.barrier_ns", tm["barrier_ns"]).value
    elif "barrier_ns" in tm:
        c.fail("timing.barrier_ns", "no barrier_ns when timing.sync is dataflow", tm["barrier_ns"])
    min_step = c.sourced("timing.min_step_ns", tm["min_step_ns"]).value if "min_step_ns" in tm else 0.0
    if "note" in tm:
        c.text("timing.note", tm["note"])
    timing = Timing(unit, clock, per_ns, sync, barrier, min_step)

    # cores
    co = c.mapping("cores", doc["cores"])
    c.keys("cores", co, *_section_keys("cores"))
    bps = None
    if "bits_per_synapse" in co:
        bps = c.integer("cores.bits_per_synapse", c.sourced("cores.bits_per_synapse", co["bits_per_synapse"]), 1, 64)
    if "note" in co:
        c.text("cores.note", co["note"])
    cores = Cores(
        count=c.integer("cores.count", c.sourced("cores.count", co["count"]), 1),
        neurons_per_core=c.integer("cores.neurons_per_core",
                                   c.sourced("cores.neurons_per_core", co["neurons_per_core"]), 1),
        synapse_memory_bits=c.integer("cores.synapse_memory_bits",
                                      c.sourced("cores.synapse_memory_bits", co["synapse_memory_bits"]), 1),
        bits_per_synapse=bps,
        hop_energy_pj=c.sourced("cores.hop_energy_pj", co["hop_energy_pj"]).value,
        hop_latency_ns=c.sourced("cores.hop_latency_ns", co["hop_latency_ns"]).value,
        mesh=_mesh(c, co),
        gateable_static_fraction=(c.sourced("cores.gateable_static_fraction",
                                            co["gateable_static_fraction"]).value
                                  if "gateable_static_fraction" in co else None),
    )
    if cores.mesh is not None:
        rows, cols, per = cores.mesh
        if rows * cols * per != cores.count:
            c.fail("cores.mesh_rows", f"mesh_rows x mesh_cols x cores_per_router = cores.count "
                   f"({cores.count})", _Said(f"{rows} x {cols} x {per} = {rows * cols * per}"))
    ann = None
    if "ann_baseline" in doc:
        ab = c.mapping("ann_baseline", doc["ann_baseline"])
        c.keys("ann_baseline", ab, *_section_keys("ann_baseline"))
        if "note" in ab:
            c.text("ann_baseline.note", ab["note"])
        reuse = {}
        for k in ("weight_reuse", "activation_reuse"):
            v = c.sourced(f"ann_baseline.{k}", ab[k]).value
            if v < 1:
                c.fail(f"ann_baseline.{k}.value", "a number >= 1 (MACs served per memory access)", v)
            reuse[k] = v
        ann = AnnBaseline(**reuse)
    return Profile(name=name, path=path, description=description, sources=tuple(sources),
                   arithmetic=arith, energy_pj=energy, static_power_w=static, timing=timing,
                   cores=cores, provenance=dict(c.provenance), ann_baseline=ann)


def _unknown_action_hint(action: str) -> str:
    """Why a key under energy_pj / timing.per_action is not a price name, or a close name."""
    if action in ("spike_out_pos", "spike_out_neg"):
        return " (both spike signs are priced by one 'spike_out')"
    if action == "hop":
        return (" (hop energy and latency live under cores.hop_energy_pj and "
                "cores.hop_latency_ns)")
    return did_you_mean(action, PRICED_ACTIONS)


def _mesh(c: "_Checker", co: dict) -> tuple[int, int, int] | None:
    """(rows, cols, cores per router) of the core mesh; rows and cols come together."""
    have = [k for k in ("mesh_rows", "mesh_cols") if k in co]
    if not have:
        if "cores_per_router" in co:
            c.fail("cores.mesh_rows", "mesh_rows and mesh_cols with cores_per_router",
                   _Said("no such key"))
        return None
    if len(have) == 1:
        missing = "mesh_cols" if have == ["mesh_rows"] else "mesh_rows"
        c.fail(f"cores.{missing}", f"this key to be present (cores.{have[0]} is given)",
               _Said("no such key"))
    rows = c.integer("cores.mesh_rows", c.sourced("cores.mesh_rows", co["mesh_rows"]), 1)
    cols = c.integer("cores.mesh_cols", c.sourced("cores.mesh_cols", co["mesh_cols"]), 1)
    per = 1
    if "cores_per_router" in co:
        per = c.integer("cores.cores_per_router",
                        c.sourced("cores.cores_per_router", co["cores_per_router"]), 1)
    return rows, cols, per
