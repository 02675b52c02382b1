"""The grid file of ``neurosim sweep``: what it may hold, its checks, and its points.

A grid is a YAML mapping:

    models: [digits_cnn]                 # bundled names or ONNX paths (relative to the grid file)
    data: digits                         # optional: digits, digits:calibration, PATH.npz
    calibration: digits:calibration      # optional: the calibration images (--calib)
    codings:                             # scheme -> {key: value or [values]}, a product per scheme
      sws: {Tc: [4, 8], beta: [2, 1.5]}
      rate: {T: [32, 64]}
      ttfs: {}                           # the scheme's defaults
    profiles: [loihi_like, asic_45nm]    # optional (default loihi_like)
    arithmetic: {weight_bits: [8, 16]}   # optional overrides of the profiles' arithmetic
    limit: 360                           # optional: the first N images
    seed: 0                              # optional: every coding's seed key
    shard_size: 64                       # optional: images per shard (fixes the merge order)
    precision: both                      # optional: both | fixed
    allow_overflow: false                # optional: run codings whose registers do not fit

Every axis is expanded as a product: models × profiles × arithmetic × each scheme's parameter
product. Unknown keys, bad values and empty axes are a UserError naming the file and the key
(``grid.yaml: codings.sws.Tc: ...``), checked before any model is read.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError, did_you_mean, yaml_syntax_error

TOP_KEYS = ("models", "data", "calibration", "codings", "profiles", "arithmetic", "limit", "seed",
            "shard_size", "precision", "allow_overflow")
REQUIRED = ("models", "codings")
ARITHMETIC_KEYS = {"weight_bits": "int", "state_bits": "int", "frac_bits": "int",
                   "overflow": ("saturate", "wrap"), "round": ("floor", "nearest")}
PRECISIONS = ("both", "fixed")  # a sweep prices energy, so it always runs the fixed core
DEFAULT_SHARD_SIZE = 64


@dataclass(frozen=True)
class Point:
    """One row of the sweep: a model, a profile with its arithmetic, a coding."""

    index: int                      # position in the grid's expansion order
    model: str                      # as written in the grid (bundled name or path)
    profile: str
    arithmetic: tuple               # ((key, value), ...) overrides, in ARITHMETIC_KEYS order
    scheme: str
    params: tuple                   # ((key, value), ...) every parameter of the scheme
    setting: tuple = ()             # the grid keys every point shares that change its numbers
    contents: tuple = ()            # ((what, sha256 prefix), ...) of the user files it reads

    @property
    def key(self) -> str:
        """A stable id of what the point computes (not of its position in the grid, nor of
        the shard size, which changes no number). It covers the bytes of every user file the
        point reads, so a retrained model or an edited profile or data file under the same
        name is a new point, never a stale row."""
        read = [c for c in self.contents if c[1] is not None]  # bundled files: by name only
        text = json.dumps([self.model, self.profile, list(self.arithmetic), self.scheme,
                           list(self.params), list(self.setting)] + ([read] if read else []),
                          sort_keys=False, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    @property
    def coding(self) -> str:
        from ..schemes import format_spec

        return format_spec(self.scheme, dict(self.params), only_changed=True)


@dataclass
class Grid:
    path: Path
    models: list[str]
    codings: list[tuple[str, list[dict[str, Any]]]]   # scheme -> its parameter sets
    profiles: list[str] = field(default_factory=lambda: ["loihi_like"])
    arithmetic: list[tuple] = field(default_factory=lambda: [()])
    data: str | None = None
    calibration: str | None = None
    limit: int | None = None
    seed: int | None = None
    shard_size: int = DEFAULT_SHARD_SIZE
    precision: str = "both"
    allow_overflow: bool = False

    def points(self) -> list[Point]:
        setting = (("data", self.data), ("calibration", self.calibration),
                   ("limit", self.limit), ("precision", self.precision),
                   ("allow_overflow", self.allow_overflow))
        shared = (("data", _content_id(self.data_path(self.data))),
                  ("calibration", _content_id(self.data_path(self.calibration))))
        out = []
        for model, profile, arith in itertools.product(self.models, self.profiles,
                                                       self.arithmetic):
            contents = (("model", _content_id(self.model_path(model))),
                        ("profile", _content_id(self.profile_path(profile)))) + shared
            for scheme, param_sets in self.codings:
                for params in param_sets:
                    out.append(Point(len(out), model, profile, arith, scheme,
                                     tuple(params.items()), setting, contents))
        return out

    def model_path(self, model: str) -> str:
        """A bundled name as is; a file path relative to the grid file's folder."""
        from ..api import models_manifest

        if model in models_manifest() or Path(model).is_absolute():
            return model
        return str(self.path.parent / model)

    def data_path(self, spec: str | None) -> str | None:
        """The bundled digits splits as they are; a file relative to the grid file's folder."""
        if spec is None or spec == "digits" or spec.startswith("digits:") or \
                Path(spec).is_absolute():
            return spec
        return str(self.path.parent / spec)

    def profile_path(self, spec: str) -> str:
        """A bundled profile's name as is; a YAML file relative to the grid file's folder."""
        if "/" not in spec and not spec.endswith((".yaml", ".yml")) or Path(spec).is_absolute():
            return spec
        return str(self.path.parent / spec)


class _UniqueKeys(yaml.SafeLoader):
    """A key given twice is an error, not a silent override."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise UserError(f"key '{key}' given twice (lines {seen[key] + 1} and "
                                f"{key_node.start_mark.line + 1})")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def load_grid(path, shown: str | None = None) -> Grid:
    """Read and check a grid file; every problem is a UserError naming the file (as
    ``shown``, e.g. a bundled grid's name, when given) and the key."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory; expected a grid YAML file")
    if not path.is_file():
        raise UserError(f"{path}: grid file not found")
    try:
        doc = yaml.load(path.read_text(), Loader=_UniqueKeys)
    except UserError as exc:
        raise UserError(f"{shown or path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{shown or path}: not a readable YAML file: "
                        f"{yaml_syntax_error(exc)}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{shown or path}: not a readable YAML file ({exc})") from None
    return parse_grid(doc, path, shown)


def _content_id(spec: str | None) -> str | None:
    """The first 16 hex digits of a user file's sha256; None for a bundled name (or a file
    that is not there: loading it fails later, with its own message)."""
    if spec is None:
        return None
    path = Path(spec)
    if not path.is_file():
        return None
    stat = path.stat()
    return _digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of the file (cached while its size and modification time stay the same)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _fail(path: Path, key: str, expected: str, found) -> None:
    shown = "nothing" if found is None else repr(found)
    raise UserError(f"{path}: {key}: expected {expected}, found {shown}")


def _values(path, key, v, expected) -> list:
    """A value or a list of values, as a non-empty list."""
    values = v if isinstance(v, list) else [v]
    if not values:
        _fail(path, key, f"{expected} (an empty list leaves nothing to sweep)", v)
    for item in values:
        if isinstance(item, (list, dict)) or item is None:
            _fail(path, key, expected, item)
    return values


def _names(path, key, v) -> list[str]:
    values = _values(path, key, v, "a name or a list of names")
    for item in values:
        if not isinstance(item, str) or not item.strip():
            _fail(path, key, "a name or a list of names", item)
    if len(set(values)) != len(values):
        _fail(path, key, "each name once", v)
    return values


def _count(path, key, v, lo) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        _fail(path, key, f"an integer ≥ {lo}", v)
    return v


def parse_grid(doc, path: Path, shown: str | None = None) -> Grid:
    from ..schemes import get_scheme, parse_coding, schemes, spec_word

    real = Path(path)
    path = Path(shown) if shown else real  # how messages name the file
    if not isinstance(doc, dict):
        _fail(path, "the file", "a mapping with keys models, codings, ...", doc)
    for key in doc:
        if key not in TOP_KEYS:
            raise UserError(f"{path}: unknown key '{key}'; valid keys: {', '.join(TOP_KEYS)}"
                            f"{did_you_mean(str(key), TOP_KEYS)}")
    for key in REQUIRED:
        if key not in doc:
            raise UserError(f"{path}: missing key '{key}'; a grid needs {' and '.join(REQUIRED)}")
    grid = Grid(real, _names(path, "models", doc["models"]), [])
    if "profiles" in doc:
        grid.profiles = _names(path, "profiles", doc["profiles"])
    for key in ("data", "calibration"):
        if key in doc:
            if not isinstance(doc[key], str) or not doc[key].strip():
                _fail(path, key, "one data name or .npz path", doc[key])
            setattr(grid, key, doc[key])
    if doc.get("limit") is not None:
        grid.limit = _count(path, "limit", doc["limit"], 1)
    if doc.get("seed") is not None:
        grid.seed = _count(path, "seed", doc["seed"], 0)
    if "shard_size" in doc:
        grid.shard_size = _count(path, "shard_size", doc["shard_size"], 1)
    if "precision" in doc:
        if doc["precision"] not in PRECISIONS:
            _fail(path, "precision", " or ".join(PRECISIONS), doc["precision"])
        grid.precision = doc["precision"]
    if "allow_overflow" in doc:
        if not isinstance(doc["allow_overflow"], bool):
            _fail(path, "allow_overflow", "true or false", doc["allow_overflow"])
        grid.allow_overflow = doc["allow_overflow"]

    arith = doc.get("arithmetic") or {}
    if not isinstance(arith, dict):
        _fail(path, "arithmetic", f"a mapping of {', '.join(ARITHMETIC_KEYS)}", arith)
    axes = []
    for key, v in arith.items():
        where = f"arithmetic.{key}"
        if key not in ARITHMETIC_KEYS:
            raise UserError(f"{path}: unknown key '{where}'; valid keys: "
                            f"{', '.join(ARITHMETIC_KEYS)}{did_you_mean(str(key), ARITHMETIC_KEYS)}")
        kind = ARITHMETIC_KEYS[key]
        values = _values(path, where, v, "a value or a list of values")
        for item in values:
            if kind == "int":
                _count(path, where, item, 1)
            elif item not in kind:
                _fail(path, where, " or ".join(kind), item)
        axes.append([(key, item) for item in values])
    order = list(ARITHMETIC_KEYS)
    grid.arithmetic = [tuple(sorted(combo, key=lambda kv: order.index(kv[0])))
                       for combo in itertools.product(*axes)]

    codings = doc["codings"]
    if not isinstance(codings, dict) or not codings:
        _fail(path, "codings", "a mapping of scheme -> {key: value or [values]}, e.g. "
              "{sws: {Tc: [4, 8]}}", codings)
    for scheme_name, keys in codings.items():
        where = f"codings.{scheme_name}"
        if scheme_name not in schemes():
            raise UserError(f"{path}: unknown coding '{where}'; available: "
                            f"{', '.join(schemes())}{did_you_mean(str(scheme_name), schemes())}")
        keys = keys or {}
        if not isinstance(keys, dict):
            _fail(path, where, "a mapping of key -> value or [values] (or {} for the defaults)",
                  keys)
        kinds = {p.name: p.kind for p in get_scheme(scheme_name).params}
        valid = list(kinds)
        axes = []
        for key, v in keys.items():
            if key not in valid:
                raise UserError(f"{path}: unknown key '{where}.{key}'; valid keys: "
                                f"{', '.join(valid)}{did_you_mean(str(key), valid)}")
            values = _values(path, f"{where}.{key}", v, "a value or a list of values")
            for item in values:  # YAML's true/false, where the key takes no on/off
                if isinstance(item, bool) and kinds[key] != "bool":
                    _fail(path, f"{where}.{key}", {"int": "a whole number", "float": "a number"}
                          .get(kinds[key], "one of its words"), item)
            axes.append([(key, item) for item in values])
        param_sets = []
        for combo in itertools.product(*axes):
            spec = scheme_name + "".join(
                (":" if i == 0 else ",") + f"{k}={spec_word(val)}" for i, (k, val) in enumerate(combo))
            try:
                _, params = parse_coding(spec)
            except UserError as exc:
                raise UserError(f"{path}: {where}: {exc}") from None
            if grid.seed is not None and "seed" in params and "seed" not in keys:
                params["seed"] = grid.seed  # a coding's own seed wins, as over --seed
            if params not in param_sets:
                param_sets.append(params)
        grid.codings.append((scheme_name, param_sets))
    return grid

