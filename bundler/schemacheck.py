"""A small JSON Schema checker for our own data files, reporting every error by JSON path.

It understands the subset manifests/schema.json uses: ``type``, ``properties``,
``required``, ``additionalProperties`` (false or a schema), ``items``,
``enum``, ``pattern``, ``minLength``, ``minItems``, ``uniqueItems`` and
``oneOf``. An unknown keyword is a programming error, not silently ignored,
so the schema cannot promise a check this code does not make.
"""

from __future__ import annotations

import json
import re
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "boolean": (bool,),
    "number": (int, float),
}
_ANNOTATIONS = {"$schema", "$id", "title", "description"}
_KNOWN = _ANNOTATIONS | {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "pattern",
    "minLength",
    "minItems",
    "uniqueItems",
    "oneOf",
}


def validate(instance: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Every way ``instance`` breaks ``schema``, as ``"$.a.b[2]: reason"`` lines."""
    unknown = set(schema) - _KNOWN
    if unknown:
        raise ValueError(f"schema keyword(s) not supported: {', '.join(sorted(unknown))}")
    if "type" in schema:
        expected = _TYPES[schema["type"]]
        is_bool = isinstance(instance, bool)
        if not isinstance(instance, expected) or (is_bool and schema["type"] != "boolean"):
            return [f"{path}: expected {schema['type']}, got {_json_type(instance)}"]
    errors: list[str] = []
    if "enum" in schema and not any(_same(instance, v) for v in schema["enum"]):
        choices = ", ".join(json.dumps(v) for v in schema["enum"])
        errors.append(f"{path}: {json.dumps(instance)} is not one of {choices}")
    if isinstance(instance, str):
        if "pattern" in schema and not re.search(schema["pattern"], instance):
            errors.append(f"{path}: {instance!r} does not match {schema['pattern']}")
        if len(instance) < schema.get("minLength", 0):
            errors.append(f"{path}: shorter than {schema['minLength']} characters")
    if isinstance(instance, list):
        errors += _check_array(instance, schema, path)
    if isinstance(instance, dict):
        errors += _check_object(instance, schema, path)
    if "oneOf" in schema:
        matches = sum(not validate(instance, sub, path) for sub in schema["oneOf"])
        if matches != 1:
            options = " | ".join(json.dumps(sub) for sub in schema["oneOf"])
            errors.append(f"{path}: must match exactly one of {options}; matches {matches}")
    return errors


def _check_array(instance: list[Any], schema: dict[str, Any], path: str) -> list[str]:
    errors = []
    if len(instance) < schema.get("minItems", 0):
        errors.append(f"{path}: needs at least {schema['minItems']} item(s)")
    if schema.get("uniqueItems"):
        seen = [json.dumps(item, sort_keys=True) for item in instance]
        if len(set(seen)) != len(seen):
            errors.append(f"{path}: items must be unique")
    if "items" in schema:
        for i, item in enumerate(instance):
            errors += validate(item, schema["items"], f"{path}[{i}]")
    return errors


def _check_object(instance: dict[str, Any], schema: dict[str, Any], path: str) -> list[str]:
    errors = [f"{path}.{key}: missing" for key in schema.get("required", ()) if key not in instance]
    properties: dict[str, Any] = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, value in instance.items():
        if key in properties:
            errors += validate(value, properties[key], f"{path}.{key}")
        elif extra is False:
            known = ", ".join(sorted(properties))
            errors.append(f"{path}.{key}: unknown field (known: {known})")
        elif isinstance(extra, dict):
            errors += validate(value, extra, f"{path}.{key}")
    return errors


def _same(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1, 1.0 is 1."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _json_type(value: Any) -> str:
    for name, kinds in _TYPES.items():
        if isinstance(value, kinds) and not isinstance(value, bool):
            return name
    return "boolean" if isinstance(value, bool) else "null"
