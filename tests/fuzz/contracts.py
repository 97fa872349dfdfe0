"""The input contracts as the fuzzers see them, derived from the contracts themselves.

``CONTRACTS`` lists every input contract (the catalog's input topics and the
policy topic, ``schemas.topics``) with its record types and its JSON Schema
(``schemas.json_schema``); ``fields(record_type)`` gives each field's JSON
types, read from the JSON Schema and checked against the model's
``model_fields``, so a field added to a contract is fuzzed without any edit
here. ``valid(schema)`` is a Hypothesis strategy of documents the JSON Schema
accepts, interpreting the subset pydantic emits (``$ref``, ``oneOf`` /
``anyOf``, ``const``, ``enum``, ``pattern``, lengths, bounds, ``date-time``,
arrays and maps). It is our own because hypothesis-jsonschema's last release
(0.23.1) fails on current Hypothesis (see docs/robustness.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from typing import Any

from hypothesis import strategies as st
from pydantic import BaseModel

from schemas import json_schema
from schemas.topics import INPUTS, topic

JSON_TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")


@dataclass(frozen=True)
class Contract:
    """One input contract: the stream ``parse_record`` reads it as, its record types and JSON Schema."""

    kind: str
    stream: str | None
    """``parse_record``'s stream for it (None: the policy topic, read by ``PolicyStore``)."""
    records: tuple[type[BaseModel], ...]
    schema: dict


@cache
def contracts() -> tuple[Contract, ...]:
    """Every input contract: events, context, feedback and policy documents."""
    out = [Contract(spec.kind, spec.kind, spec.records, json_schema(spec.contract)) for spec in INPUTS]
    policies = topic("policies")
    out.append(Contract(policies.kind, None, policies.records, json_schema(policies.contract)))
    return tuple(out)


def contract(kind: str) -> Contract:
    return next(c for c in contracts() if c.kind == kind)


def _resolve(schema: dict, root: dict) -> dict:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = root["$defs"][name]
    return schema


def record_schema(contract: Contract, record: type[BaseModel]) -> dict:
    """The JSON Schema of one record type of ``contract`` (a branch of its union, or the whole)."""
    root = contract.schema
    for branch in root.get("oneOf", []):
        resolved = _resolve(branch, root)
        if resolved.get("title") == record.__name__:
            return resolved
    return root


def _types(schema: dict, root: dict) -> set[str]:
    schema = _resolve(schema, root)
    if "anyOf" in schema or "oneOf" in schema:
        return set().union(*(_types(s, root) for s in schema.get("anyOf", schema.get("oneOf", []))))
    if "type" in schema:
        kind = schema["type"]
        kinds = set(kind if isinstance(kind, list) else [kind])
        return kinds | ({"integer"} if "number" in kinds else set())
    if "const" in schema or "enum" in schema:
        values = [schema["const"]] if "const" in schema else schema["enum"]
        return {_json_type(v) for v in values}
    return set(JSON_TYPES)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def fields(contract: Contract, record: type[BaseModel]) -> dict[str, set[str]]:
    """Field -> the JSON types its schema allows, for one record type (the same names as ``model_fields``)."""
    schema = record_schema(contract, record)
    types = {name: _types(prop, contract.schema) for name, prop in schema["properties"].items()}
    assert set(types) == set(record.model_fields), (record.__name__, set(types) ^ set(record.model_fields))
    return types


# -- documents the schema accepts ---------------------------------------------------------------------
@st.composite
def _date_time(draw) -> str:
    moment = draw(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
    offset = draw(st.sampled_from([0, 0, 60, -300, 330, 840, -840]))
    zone = timezone(timedelta(minutes=offset))
    text = moment.replace(tzinfo=zone).isoformat()
    return text.replace("+00:00", "Z") if draw(st.booleans()) else text


def _string(schema: dict) -> st.SearchStrategy[str]:
    if schema.get("format") == "date-time":
        return _date_time()
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    if "pattern" in schema:
        strategy = st.from_regex(re.compile(schema["pattern"]), fullmatch=True)
    else:
        strategy = st.text(max_size=min(high or 200, 200))
    return strategy.filter(lambda s: low <= len(s) <= (high if high is not None else len(s)))


def _number(schema: dict, integer: bool) -> st.SearchStrategy:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if integer:
        low = None if low is None else int(low) + ("exclusiveMinimum" in schema)
        high = None if high is None else int(high) - ("exclusiveMaximum" in schema)
        return st.integers(min_value=low, max_value=high)
    return st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False,
                     exclude_min="exclusiveMinimum" in schema, exclude_max="exclusiveMaximum" in schema)


def _object(schema: dict, root: dict, depth: int) -> st.SearchStrategy[dict]:
    if "properties" in schema:
        required = set(schema.get("required", []))
        parts = {
            name: valid(prop, root, depth + 1) if name in required
            else st.one_of(st.just(_ABSENT), valid(prop, root, depth + 1))
            for name, prop in schema["properties"].items()
        }
        return st.fixed_dictionaries(parts).map(lambda d: {k: v for k, v in d.items() if v is not _ABSENT})
    names = schema.get("propertyNames", {})
    keys = st.sampled_from(names["enum"]) if "enum" in names else _string({"maxLength": 64, **names})
    extra = schema.get("additionalProperties")
    values = valid(extra, root, depth + 1) if isinstance(extra, dict) else st.integers()
    return st.dictionaries(keys, values, max_size=min(schema.get("maxProperties", 4), 4))


def _array(schema: dict, root: dict, depth: int) -> st.SearchStrategy[list]:
    items = valid(schema["items"], root, depth + 1) if schema.get("items") else st.nothing()
    return st.lists(items, min_size=schema.get("minItems", 0), max_size=min(schema.get("maxItems", 4), 4))


_BY_TYPE = {
    "string": lambda schema, root, depth: _string(schema),
    "integer": lambda schema, root, depth: _number(schema, integer=True),
    "number": lambda schema, root, depth: _number(schema, integer=False),
    "boolean": lambda schema, root, depth: st.booleans(),
    "null": lambda schema, root, depth: st.none(),
    "array": _array,
    "object": _object,
}
_ANY = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20))


def valid(schema: dict, root: dict | None = None, depth: int = 0) -> st.SearchStrategy:
    """Documents ``schema`` accepts (the subset of JSON Schema pydantic writes)."""
    root = root or schema
    schema = _resolve(schema, root)
    if "oneOf" in schema or "anyOf" in schema:
        return st.one_of([valid(s, root, depth) for s in schema.get("oneOf", schema.get("anyOf", []))])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    build = _BY_TYPE.get(schema.get("type"))  # type: ignore[arg-type]
    return build(schema, root, depth) if build is not None else _ANY


_ABSENT = object()


@cache
def valid_records(kind: str) -> st.SearchStrategy[dict]:
    """Documents one input contract's JSON Schema accepts."""
    schema = contract(kind).schema
    return valid(schema, schema)
