"""Coding-scheme registry and the ``--coding NAME[:key=value,...]`` parser (DESIGN §8).

Every module of this package (except ``base`` and private ``_*`` modules) that defines
``SCHEME`` is a scheme; it is found by scanning the package, so adding a scheme means adding
one module here and nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from ..errors import UserError, did_you_mean
from .base import Param, Scheme, SimResult

__all__ = ["Param", "Scheme", "SimResult", "schemes", "get_scheme", "parse_coding",
           "expand_codings", "format_spec"]

ALL = "all"
_registry: dict[str, Scheme] | None = None


def schemes() -> dict[str, Scheme]:
    """{name: scheme}, discovered once from the modules of this package."""
    global _registry
    if _registry is None:
        found = {}
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
            if info.name == "base" or info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{__name__}.{info.name}")
            scheme = getattr(module, "SCHEME", None)
            if isinstance(scheme, Scheme):
                found[scheme.name] = scheme
        _registry = found
    return _registry


def get_scheme(name: str) -> Scheme:
    known = schemes()
    if name not in known:
        raise UserError(f"unknown coding '{name}'; available: {', '.join(known)}, {ALL}"
                        f"{did_you_mean(name, list(known) + [ALL])}")
    return known[name]


def parse_coding(spec: str) -> tuple[str, dict[str, Any]]:
    """``NAME[:k=v,...]`` -> (name, every parameter of the scheme with its typed value).

    Keys not given take the scheme's defaults. Unknown names or keys, repeated keys, malformed
    pairs and invalid values raise a UserError that names the key and the valid choices.
    """
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    if not name:
        raise UserError(f"coding spec '{spec}' has no scheme name; expected NAME[:key=value,...]")
    if name == ALL and rest.strip():
        keys = given_keys(spec)
        takers = [n for n, sch in schemes().items() if keys <= {p.name for p in sch.params}]
        example = (f"e.g. --coding {takers[0]}:{rest.strip()}" if takers
                   else "see 'neurosim codings' for each scheme's keys")
        raise UserError(f"coding '{ALL}' takes no keys (it runs every scheme with its defaults), "
                        f"found '{spec}'; give keys to one scheme, {example}")
    scheme = get_scheme(name)
    by_key = {p.name: p for p in scheme.params}
    params = scheme.defaults()
    seen: set[str] = set()
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise UserError(f"coding '{name}': '{item}' is not key=value; expected "
                            f"{name}:key=value,... with keys {', '.join(by_key)}")
        if key not in by_key:
            raise UserError(f"coding '{name}': unknown key '{key}'; valid keys: "
                            f"{', '.join(by_key)}{_suggest(key, by_key)}")
        if key in seen:
            raise UserError(f"coding '{name}': key '{key}' given twice")
        seen.add(key)
        params[key] = by_key[key].parse(text, name)
    scheme.check(params)
    return name, params


def given_keys(spec: str) -> set[str]:
    """The keys a spec sets itself (``rate:T=64,seed=7`` -> {'T', 'seed'}), not its defaults."""
    rest = spec.strip().partition(":")[2]
    return {item.partition("=")[0].strip() for item in rest.split(",") if item.strip()}


def _suggest(word: str, choices) -> str:
    """did_you_mean, but a key that differs only in case (tc -> Tc) is always suggested."""
    same = [c for c in choices if c.lower() == word.lower()]
    return f" (did you mean '{same[0]}'?)" if same else did_you_mean(word, choices)


def expand_codings(specs: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """Parse every spec; ``all`` stands for every scheme with its defaults. A coding given
    twice (``sws`` and ``sws:Tc=8``, Tc=8 being its default; or ``all`` and ``rate``) is run
    once, where it first appears: the two runs would be identical rows of one label."""
    out = []
    for spec in specs:
        if spec.strip() == ALL:
            parsed = [(n, s.defaults()) for n, s in schemes().items()]
        else:
            parsed = [parse_coding(spec)]
        out.extend(c for c in parsed if c not in out)
    return out


def spec_word(v) -> str:
    """A parameter value as spec text that parse_coding reads back: on/off for a bool,
    every digit of a float (numpy scalars too)."""
    import numpy as np

    if isinstance(v, (bool, np.bool_)):
        return "on" if v else "off"
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return str(int(v)) if isinstance(v, np.integer) else str(v)


def format_spec(name: str, params: dict[str, Any], only_changed: bool = False) -> str:
    """The spec string of (name, params), e.g. ``sws:Tc=8,Ts=2``, as a label: floats in
    their short form (``%g``); parse_coding reads it back."""
    defaults = get_scheme(name).defaults()

    def word(v):
        return f"{v:g}" if isinstance(v, float) else spec_word(v)

    items = [f"{k}={word(v)}" for k, v in params.items()
             if not (only_changed and defaults.get(k) == v)]
    return name + (":" + ",".join(items) if items else "")
