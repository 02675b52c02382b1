"""The JSON Schema of the result document (report.schema.json) and a small validator for it.

The validator covers the JSON Schema keywords the shipped schema uses (type, required,
properties, additionalProperties, items, enum, minimum, maximum, minItems, minLength and local
``$ref``); a keyword outside that set is an error, so the schema cannot grow a rule that is
silently not checked. The tests check the same documents with the ``jsonschema`` library too.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

SCHEMA_PATH = Path(__file__).resolve().parent / "report.schema.json"
ANNOTATIONS = {"$schema", "$id", "title", "description", "$defs"}
CHECKED = {"type", "required", "properties", "additionalProperties", "items", "enum", "minimum",
           "maximum", "minItems", "minLength", "$ref"}


@lru_cache(maxsize=None)
def report_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def _is_type(value, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool) or (
            isinstance(value, float) and value.is_integer())
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if name == "string":
        return isinstance(value, str)
    if name == "array":
        return isinstance(value, list)
    if name == "object":
        return isinstance(value, dict)
    raise ValueError(f"report.schema.json: unknown type '{name}'")


def _resolve(ref: str, root: dict) -> dict:
    if not ref.startswith("#/"):
        raise ValueError(f"report.schema.json: only local $ref are supported, found {ref}")
    node = root
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _check(value, schema: dict, root: dict, where: str, errors: list[str]) -> None:
    unknown = set(schema) - CHECKED - ANNOTATIONS
    if unknown:
        raise ValueError(f"report.schema.json: keyword(s) {sorted(unknown)} at {where} are not "
                         f"supported by neurosim's validator")
    if "$ref" in schema:
        _check(value, _resolve(schema["$ref"], root), root, where, errors)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, t) for t in types):
            errors.append(f"{where}: expected {' or '.join(types)}, found "
                          f"{type(value).__name__} {value!r:.60}")
            return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: expected one of {schema['enum']}, found {value!r:.60}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            errors.append(f"{where}: {value} is not a JSON number")
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where}: {value} is below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where}: {value} is above the maximum {schema['maximum']}")
    if isinstance(value, str) and len(value) < schema.get("minLength", 0):
        errors.append(f"{where}: shorter than {schema['minLength']} characters")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{where}: fewer than {schema['minItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                _check(item, schema["items"], root, f"{where}[{i}]", errors)
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{where}: missing required key '{key}'")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                _check(item, props[key], root, f"{where}.{key}", errors)
            elif extra is False:
                errors.append(f"{where}: unexpected key '{key}'")
            elif isinstance(extra, dict):
                _check(item, extra, root, f"{where}.{key}", errors)


def validate_report(doc, schema: dict | None = None) -> list[str]:
    """Every way ``doc`` breaks the schema (empty when it is valid), each naming its key path."""
    schema = report_schema() if schema is None else schema
    errors: list[str] = []
    _check(doc, schema, schema, "report", errors)
    return errors


def validate_check(doc) -> list[str]:
    """The same for ``neurosim check``'s document, ``$defs/check_document`` of that schema."""
    errors: list[str] = []
    _check(doc, {"$ref": "#/$defs/check_document"}, report_schema(), "check", errors)
    return errors
