"""Naming, checking and loading what a run needs: the model, the hardware profiles, the
codings, the test and calibration data, limit and seed (``load_inputs``), for the library
entry points in ``neurosim.api`` and so for the command line.

Every argument is checked for type and range before any file is read, and a bad one is a
``UserError`` naming the argument (the command line's messages name its options). A bundled
model or profile is named by its name, a user file by its path; what a report shows of them
is the name, or the path as given (``Inputs.model_path``, ``Inputs.profile_paths``), never a
path of this machine.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError, did_you_mean

DEFAULT_MODEL = "digits_cnn"
DEFAULT_HW = "loihi_like"
DEFAULT_CODINGS = ("sws",)
MODELS_DIR = Path(__file__).resolve().parent / "models"


# ------------------------------------------------------------------------ naming inputs
def models_manifest() -> dict:
    path = MODELS_DIR / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {}


def resolve_model(spec: str | Path | None) -> Path:
    """A bare bundled name, or a path to an ONNX file."""
    spec = str(spec or DEFAULT_MODEL)
    manifest = models_manifest()
    if spec in manifest:
        return MODELS_DIR / manifest[spec]["file"]
    p = Path(spec)
    if p.exists() or p.suffix == ".onnx" or "/" in spec:
        if p.is_dir():
            raise UserError(f"{p}: is a directory; expected an ONNX model file")
        if not p.is_file():
            raise UserError(f"{p}: model file not found; expected an existing .onnx file or a "
                            f"bundled model name ({', '.join(manifest)})"
                            f"{did_you_mean(p.stem, manifest)}")
        return p
    raise UserError(f"'{spec}' is neither an ONNX file nor a bundled model; bundled models: "
                    f"{', '.join(manifest)}{did_you_mean(spec, manifest)}")


def _shown_model_path(spec) -> str | None:
    """None for a bundled model (shown by name), else the path as the user gave it."""
    spec = str(spec or DEFAULT_MODEL)
    return None if spec in models_manifest() else spec


def _shown_profile_path(spec, profile) -> str | None:
    """None for a bundled profile (shown by name), else the path as the user gave it."""
    from .hw.profile import bundled_dir

    try:
        bundled = Path(profile.path).resolve().parent == bundled_dir().resolve() and \
            "/" not in str(spec) and not str(spec).endswith((".yaml", ".yml"))
    except OSError:
        bundled = False
    return None if bundled else str(spec)


def _with_overflow_policy(profile, allow_overflow: bool):
    if not allow_overflow:
        return profile
    return dataclasses.replace(profile, arithmetic=dataclasses.replace(profile.arithmetic,
                                                                       allow_overflow=True))


def shown_value(value) -> str:
    """``16.0 (float)``: a value for a message, short, with its type; never a long text."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _whole_number(name: str, value, least: int, what: str) -> int | None:
    """``limit``/``seed``: None, or a whole number ≥ ``least`` (ints, numpy integers, whole
    floats); strings, bools and fractions are refused, not guessed at."""
    if value is None:
        return None
    whole = (isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
             or isinstance(value, (float, np.floating)) and float(value).is_integer())
    if not whole or int(value) < least:
        raise UserError(f"{name}: expected {what} (an int ≥ {least}), found "
                        f"{shown_value(value)}")
    return int(value)


def _check_flag(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise UserError(f"{name}: expected True or False, found {shown_value(value)}")
    return bool(value)


def check_progress(progress):
    if progress is None or isinstance(progress, (bool, np.bool_)) or callable(progress):
        return progress if progress is None or callable(progress) else bool(progress)
    raise UserError(f"progress: expected None, True, False or a callable, found "
                    f"{shown_value(progress)}")


def _coding_value(name: str, key: str, value) -> str:
    """One parameter of the mapping form of ``codings``, as its spec text."""
    from .schemes import spec_word

    if isinstance(value, str) and (any(c in value for c in ",=:") or not value.strip()):
        raise UserError(f"codings['{name}']['{key}']: expected a number or a word, found "
                        f"{shown_value(value)}")
    if not isinstance(value, (str, bool, int, float, np.bool_, np.integer, np.floating)):
        raise UserError(f"codings['{name}']['{key}']: expected a number, True/False or a word, "
                        f"found {shown_value(value)}")
    return spec_word(value)


CODINGS_EXPECTED = ("a spec string like 'rate:T=16', a list or tuple of them, or a mapping "
                    "{'rate': {'T': 16}, 'sws': None}")


def codings_specs(codings, default) -> list[str]:
    """``codings`` as spec strings: one spec, a list or tuple of specs, or a mapping
    ``{name: {key: value}}`` (None or ``{}`` = the scheme's defaults). Nothing else: an entry
    that is not a string would otherwise be read as something it is not."""
    from collections.abc import Mapping

    if codings is None:
        return list(default)
    if isinstance(codings, str):
        specs = [codings]
    elif isinstance(codings, Mapping):
        specs = []
        for name, params in codings.items():
            if not isinstance(name, str):
                raise UserError(f"codings: a mapping's keys must be coding names (str), found "
                                f"{shown_value(name)}; expected {CODINGS_EXPECTED}")
            if params is None:
                params = {}
            if not isinstance(params, Mapping):
                raise UserError(f"codings['{name}']: expected a mapping of parameters such as "
                                f"{{'T': 16}} (or None for the defaults), found "
                                f"{shown_value(params)}")
            items = []
            for key, value in params.items():
                if not isinstance(key, str) or not key.strip() or any(c in key for c in ",=:"):
                    raise UserError(f"codings['{name}']: expected parameter names (str), found "
                                    f"{shown_value(key)}")
                items.append(f"{key}={_coding_value(name, key, value)}")
            specs.append(name + (":" + ",".join(items) if items else ""))
    elif isinstance(codings, (list, tuple)):
        specs = list(codings)
        for i, spec in enumerate(specs):
            if not isinstance(spec, str):
                raise UserError(f"codings[{i}]: expected a spec string like 'rate:T=16', found "
                                f"{shown_value(spec)}; codings takes {CODINGS_EXPECTED}")
    else:
        raise UserError(f"codings: expected {CODINGS_EXPECTED}, found {shown_value(codings)}")
    if not specs:
        raise UserError(f"codings: no coding given (found an empty {type(codings).__name__}); "
                        f"expected {CODINGS_EXPECTED}, or 'all' for every scheme")
    return specs


def _is_profile(h) -> bool:
    from .hw.profile import Profile

    return isinstance(h, Profile)


def hw_list(hw, default) -> list:
    """``hw`` as a list of names, paths and loaded Profiles."""
    import os

    if hw is None:
        return list(default)
    items = list(hw) if isinstance(hw, (list, tuple)) else [hw]
    if not items:
        raise UserError(f"hw: expected at least one profile, found an empty "
                        f"{type(hw).__name__}; expected a bundled name such as '{DEFAULT_HW}', "
                        f"a YAML path, a loaded Profile, or a list of them")
    out = []
    for i, h in enumerate(items):
        if isinstance(h, os.PathLike) and not isinstance(h, Path):
            h = Path(os.fspath(h))
        if not (isinstance(h, (str, Path)) or _is_profile(h)):
            where = f"hw[{i}]" if isinstance(hw, (list, tuple)) else "hw"
            raise UserError(f"{where}: expected a bundled profile name such as '{DEFAULT_HW}', "
                            f"a YAML path or a loaded neurosim.hw.profile.Profile (or a list "
                            f"of them), found {shown_value(h)}")
        out.append(h)
    return out


def _profile_label(h) -> str:
    """How a ``hw`` item is named in messages."""
    return f"Profile '{h.name}'" if _is_profile(h) else str(h)


def _shown_loaded_profile(profile) -> str | None:
    """A Profile object given as ``hw``: shown as the file it was loaded from (None when
    bundled), or as in-memory when it differs from that file."""
    from .hw.profile import bundled_dir, load_profile

    try:
        same = load_profile(profile.path) == dataclasses.replace(
            profile, arithmetic=dataclasses.replace(profile.arithmetic, allow_overflow=False))
    except (UserError, OSError, TypeError, ValueError):
        same = False
    if not same:
        return f"(in-memory Profile '{profile.name}')"
    try:
        bundled = Path(profile.path).resolve().parent == bundled_dir().resolve()
    except OSError:
        bundled = False
    return None if bundled else str(profile.path)


MODEL_EXPECTED = (f"a bundled model name such as '{DEFAULT_MODEL}', a path to an .onnx file, "
                  f"an onnx.ModelProto, or None for {DEFAULT_MODEL}")
IN_MEMORY_MODEL = "(in-memory onnx.ModelProto)"


def _check_model(model):
    """``model`` as None, a str or an onnx.ModelProto; a type error up front."""
    import os

    if model is None:
        return None
    if isinstance(model, os.PathLike):
        return os.fsdecode(model)
    if isinstance(model, str):
        if not model.strip():
            raise UserError(f"model: found an empty string; expected {MODEL_EXPECTED}")
        return model
    if type(model).__name__ == "ModelProto" and type(model).__module__.startswith("onnx"):
        return model
    raise UserError(f"model: expected {MODEL_EXPECTED}, found a value of type "
                    f"{type(model).__name__}")


def _load_model(model):
    """(graph, file shown in messages, model_path for the report) of a checked ``model``."""
    from .onnx_import import convert_model, load_onnx

    if isinstance(model, str) or model is None:
        model_file = resolve_model(model)
        return load_onnx(model_file, model_file.stem), model_file, _shown_model_path(model)
    name = model.graph.name if model.HasField("graph") else ""
    if not name or len(name) > 64 or "/" in name or "\\" in name:
        name = "model"
    shown = f"model {IN_MEMORY_MODEL}"
    return convert_model(model, shown, name), shown, IN_MEMORY_MODEL


@dataclass
class _Arrays:
    """In-memory ``data``/``calib`` checked up front; the images are checked against the
    model's input shape once it is read."""

    name: str
    x: np.ndarray
    y: np.ndarray | None


def _array(arg: str, key: str, value) -> np.ndarray:
    try:
        a = np.asarray(value)
    except Exception as exc:  # ragged nested lists and the like
        raise UserError(f"{arg}: {key} cannot be made an array of numbers "
                        f"({type(exc).__name__}; nested lists of different lengths?); expected "
                        f"a numpy array") from None
    if a.dtype.kind not in "fiub":
        raise UserError(f"{arg}: {key} has dtype {a.dtype}; expected numbers")
    return a


def _data_arg(arg: str, value, labels: bool):
    """``data``/``calib``: None or a str (named or a path: read later by neurosim.data), or
    arrays in memory: (x, y), {'x': x, 'y': y}, a neurosim.data.Dataset, or (calib only) x."""
    import os
    from collections.abc import Mapping

    from .data import Dataset, check_label_array

    if value is None:
        return None
    if isinstance(value, os.PathLike):
        return os.fsdecode(os.fspath(value))
    if isinstance(value, str):
        return value
    pair = "(x, y)" if labels else "x, (x, y)"
    expected = (f"'digits', 'digits:SPLIT', a path to an .npz file, or arrays: {pair}, "
                f"{{'x': x, 'y': y}} or a neurosim.data.Dataset")
    if isinstance(value, Dataset):
        x, y, name = value.x, value.y, value.name if isinstance(value.name, str) else ""
    elif isinstance(value, tuple):
        if len(value) != 2:
            raise UserError(f"{arg}: a tuple must be (x, y), found {len(value)} items; expected "
                            f"{expected}")
        (x, y), name = value, ""
    elif isinstance(value, Mapping):
        missing = [k for k in (("x", "y") if labels else ("x",)) if k not in value]
        if missing:
            raise UserError(f"{arg}: a dict needs key(s) {missing} (found "
                            f"{[str(k)[:20] for k in value][:8]}); expected {expected}")
        x, y, name = value["x"], value.get("y"), ""
    elif isinstance(value, np.ndarray) or hasattr(value, "__array__"):
        if labels:
            raise UserError(f"{arg}: found an array of images without labels (shape "
                            f"{tuple(np.shape(value))}); accuracy needs them: expected (x, y) "
                            f"with y the (N,) integer class labels, or {{'x': x, 'y': y}}")
        x, y, name = value, None, ""
    else:
        raise UserError(f"{arg}: expected {expected}, found a value of type "
                        f"{type(value).__name__}")
    x = _array(arg, "x", x)
    if x.ndim == 0:
        raise UserError(f"{arg}: x is a single number; expected images of shape "
                        f"(N, *input shape)")
    if labels:
        if y is None:
            raise UserError(f"{arg}: no labels (y is None); accuracy needs them: expected "
                            f"(x, y) with y the (N,) integer class labels")
        y = check_label_array(_array(arg, "y", y), len(x), arg)
    else:
        y = None  # calibration needs no labels; like an .npz's y, given ones are not used
    return _Arrays(name or "arrays", x, y)


def _dataset(arg: str, arrays: _Arrays, input_shape, labels: bool):
    """A Dataset of checked in-memory arrays, by neurosim.data's checks; its path is what
    messages name."""
    from .data import Dataset, calibration_set, check_images

    where = f"{arg} (in-memory arrays)"
    if not labels:
        return calibration_set(arrays.name, where, arrays.x, input_shape)
    return Dataset(arrays.name, where, check_images(where, arrays.x, input_shape), arrays.y)


def _shown_as(ds, path: str):
    from .data import Dataset

    return Dataset(ds.name, path, ds.x, ds.y)


@dataclass
class Args:
    """The arguments of run/compare/check, checked for type and range before any file is
    read: limit, seed, allow_overflow, codings, model, hw, data, calib."""

    model: Any
    hws: list
    specs: list[str]
    data: Any
    calib: Any
    limit: int | None
    seed: int | None
    allow_overflow: bool


def check_args(model=None, hw=None, codings=None, data=None, calib=None, limit=None,
               seed=None, allow_overflow=False, default_codings=DEFAULT_CODINGS) -> Args:
    from .schemes import expand_codings

    limit = _whole_number("limit", limit, 1, "a positive number of images")
    seed = _whole_number("seed", seed, 0, "a non-negative whole number")
    allow_overflow = _check_flag("allow_overflow", allow_overflow)
    specs = codings_specs(codings, default_codings)
    expand_codings(specs)  # a bad --coding fails here, before the model is read
    model = _check_model(model)
    hws = hw_list(hw, [DEFAULT_HW])
    data = _data_arg("data", data, labels=True)
    calib = _data_arg("calib", calib, labels=False)
    return Args(model, hws, specs, data, calib, limit, seed, allow_overflow)


@dataclass
class Inputs:
    """A model, its test and calibration data and the profiles, checked and loaded."""

    graph: Any
    model_path: str | None      # as the user gave it; None when bundled
    profiles: list              # loaded Profiles
    profile_paths: list         # as given; None when bundled
    data: Any
    calib: Any
    codings: list[str]
    seed: int | None = None     # as a Python int


def load_inputs(model=None, hw=None, codings=None, data=None, calib=None, limit=None,
                seed=None, allow_overflow=False, default_codings=DEFAULT_CODINGS) -> Inputs:
    """Check and load everything a run needs, cheapest checks first: a bad argument type,
    coding, limit or seed fails before the model is read."""
    from .data import check_labels, check_scale, load_calibration, load_data
    from .hw.profile import load_profile

    a = check_args(model, hw, codings, data, calib, limit, seed, allow_overflow,
                   default_codings)
    graph, model_file, model_path = _load_model(a.model)
    out = tuple(graph.output_shape)
    if len(out) != 1 or out[0] < 2:
        raise UserError(f"{model_file}: the output '{graph.output}' has shape {out} per image; "
                        f"neurosim classifies, so it expects (classes,) with at least 2 classes "
                        f"(add a Flatten/Gemm head, or export the classifier's logits)")
    if not any(n.op in ("conv", "dense") for n in graph.nodes.values()):
        raise UserError(f"{model_file}: no layer to convert: the output '{graph.output}' is "
                        f"computed from the input without any Conv, Gemm or MatMul; expected a "
                        f"network with at least one weighted layer")
    hws = a.hws
    profiles = [_with_overflow_policy(h if _is_profile(h) else load_profile(h),
                                      a.allow_overflow) for h in hws]
    seen: dict[str, str] = {}
    for h, p in zip(hws, profiles):  # tables, report sections and CSV rows go by the name
        if p.name in seen:
            raise UserError(f"--hw {seen[p.name]} and --hw {_profile_label(h)} are both "
                            f"profiles named '{p.name}'; expected distinct names (edit the "
                            f"'name:' of a copy)")
        seen[p.name] = _profile_label(h)
    in_memory = isinstance(a.data, _Arrays), isinstance(a.calib, _Arrays)
    if in_memory[0]:
        test = _dataset("data", a.data, graph.input_shape, labels=True).head(a.limit)
    else:
        test = load_data(a.data, graph.input_shape).head(a.limit)
    check_labels(test, out[0])
    if in_memory[1]:
        calibration = _dataset("calib", a.calib, graph.input_shape, labels=False)
    else:
        calibration = load_calibration(a.calib, graph.input_shape)
    if any(in_memory):  # messages name the arguments, not options of the command line
        check_scale(*(_shown_as(ds, "(in-memory arrays)") if mem else ds
                      for ds, mem in zip((test, calibration), in_memory)), "data", "calib")
    else:
        check_scale(test, calibration)
    shown = [_shown_loaded_profile(p) if _is_profile(h) else _shown_profile_path(h, p)
             for h, p in zip(hws, profiles)]
    return Inputs(graph, model_path, profiles, shown, test, calibration, a.specs, a.seed)
