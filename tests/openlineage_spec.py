"""Checks that emitted events follow the OpenLineage 2-0-2 RunEvent specification.

Two independent checks: a JSON Schema for the RunEvent structure the spec
requires (written here from the spec's definitions: event types, required
fields, formats, facets carrying ``_producer`` and ``_schemaURL``), and a
round trip through openlineage-python's classes generated from the spec,
whose validators check the event time, producer and run id.
"""

from __future__ import annotations

from jsonschema import Draft202012Validator, FormatChecker
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState

_FACET = {
    "type": "object",
    "required": ["_producer", "_schemaURL"],
    "properties": {"_producer": {"type": "string", "format": "uri"}, "_schemaURL": {"type": "string", "format": "uri"}},
}
_FACETS = {"type": "object", "additionalProperties": _FACET}
_DATASET = {
    "type": "object",
    "required": ["namespace", "name"],
    "properties": {"namespace": {"type": "string"}, "name": {"type": "string"}, "facets": _FACETS,
                   "inputFacets": _FACETS, "outputFacets": _FACETS},
}
RUN_EVENT = {
    "type": "object",
    "required": ["eventTime", "producer", "schemaURL", "run", "job"],
    "properties": {
        "eventType": {"enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
        "eventTime": {"type": "string", "format": "date-time"},
        "producer": {"type": "string", "format": "uri"},
        "schemaURL": {"type": "string", "format": "uri"},
        "run": {"type": "object", "required": ["runId"],
                "properties": {"runId": {"type": "string", "format": "uuid"}, "facets": _FACETS}},
        "job": {"type": "object", "required": ["namespace", "name"],
                "properties": {"namespace": {"type": "string"}, "name": {"type": "string"}, "facets": _FACETS}},
        "inputs": {"type": "array", "items": _DATASET},
        "outputs": {"type": "array", "items": _DATASET},
    },
}
_VALIDATOR = Draft202012Validator(RUN_EVENT, format_checker=FormatChecker())


def problems(event: dict) -> list[str]:
    """What is wrong with ``event`` (empty when it is a valid RunEvent)."""
    found = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in _VALIDATOR.iter_errors(event)]
    try:
        RunEvent(
            eventType=RunState(event["eventType"]),
            eventTime=event["eventTime"],
            run=Run(runId=event["run"]["runId"]),
            job=Job(namespace=event["job"]["namespace"], name=event["job"]["name"]),
            producer=event["producer"],
            inputs=[InputDataset(namespace=d["namespace"], name=d["name"]) for d in event.get("inputs", [])],
            outputs=[OutputDataset(namespace=d["namespace"], name=d["name"]) for d in event.get("outputs", [])],
        )
    except Exception as exc:  # noqa: BLE001 - any validator failure is a finding
        found.append(f"openlineage-python: {exc}")
    return found
