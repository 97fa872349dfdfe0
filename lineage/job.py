"""The coaching job's lineage: its datasets, their schemas and column lineage."""

from __future__ import annotations

from pathlib import Path

from openlineage.client.facet_v2 import column_lineage_dataset as cl

from lineage import CoachflowRunFacet, DatasetSpec, Lineage, LineageConfig, file_namespace, kafka_namespace
from operators.quality import CONTEXT_SUITE, EVENTS_SUITE
from schemas.topics import INPUTS, OUTPUTS, topic

#: Input kind -> the data-quality suite that judges it.
SUITES = {"events": EVENTS_SUITE, "context": CONTEXT_SUITE}

# Output contract -> field -> (input contract, input fields, transformation type, subtype, description)
COLUMNS: dict[str, dict[str, list[tuple[str, list[str], str, str, str]]]] = {
    "suggestion.v1": {
        "conversation_id": [("events", ["conversation_id"], "DIRECT", "IDENTITY", "")],
        "customer_id": [("events", ["customer_id"], "DIRECT", "IDENTITY", "")],
        "agent_id": [("events", ["agent_id"], "DIRECT", "IDENTITY", "")],
        "channel": [("events", ["channel"], "DIRECT", "IDENTITY", "")],
        "event_id": [("events", ["event_id"], "DIRECT", "IDENTITY", "")],
        "action": [
            (
                "events",
                ["text", "speaker", "action", "type", "task", "tasks", "api", "item"],
                "DIRECT",
                "TRANSFORMATION",
                "the model ranks next actions from the conversation so far",
            ),
            ("context", ["marketing_opt_out", "jurisdiction"], "INDIRECT", "FILTER", "guardrail rules"),
        ],
        "text": [
            (
                "events",
                ["item", "task", "tasks"],
                "DIRECT",
                "TRANSFORMATION",
                "the action's approved template, slots filled from the knowledge-base item",
            ),
        ],
        "confidence": [
            ("events", ["text", "speaker", "action", "type"], "DIRECT", "TRANSFORMATION", "the model")
        ],
    },
    "decision.v1": {
        "conversation_id": [("events", ["conversation_id"], "DIRECT", "IDENTITY", "")],
        "customer_id": [
            ("events", ["customer_id"], "DIRECT", "IDENTITY", ""),
            ("context", ["customer_id"], "DIRECT", "IDENTITY", ""),
        ],
        "outcome": [
            (
                "events",
                ["text", "speaker", "action", "type", "event_time"],
                "INDIRECT",
                "CONDITIONAL",
                "the rules",
            ),
            (
                "context",
                ["marketing_opt_out", "jurisdiction"],
                "INDIRECT",
                "CONDITIONAL",
                "consent and jurisdiction",
            ),
        ],
        "context_version": [("context", ["updated_at"], "DIRECT", "IDENTITY", "")],
        "masked": [("events", ["text", "item"], "DIRECT", "TRANSFORMATION", "PII masking")],
        "input": [("events", ["event_id", "type", "is_final", "speaker"], "DIRECT", "IDENTITY", "")],
    },
}


def _column_lineage(namespaces: dict[str, tuple[str, str]]) -> dict[str, cl.ColumnLineageDatasetFacet]:
    facets = {}
    for contract, fields in COLUMNS.items():
        facets[contract] = cl.ColumnLineageDatasetFacet(
            fields={
                field: cl.Fields(
                    inputFields=[
                        cl.InputField(
                            namespace=namespaces[source][0],
                            name=namespaces[source][1],
                            field=column,
                            transformations=[
                                cl.Transformation(
                                    type=kind,
                                    subtype=subtype,
                                    description=description or None,
                                    masking=field == "masked",
                                )
                            ],
                        )
                        for source, columns, kind, subtype, description in sources
                        for column in columns
                    ]
                )
                for field, sources in fields.items()
            }
        )
    return facets


def job_lineage(settings, config: LineageConfig, *, model: dict, policy: dict, suites: list[str]) -> Lineage:
    """The ``Lineage`` of one coaching job process, for ``settings``."""
    if settings.kafka_mode:
        namespace = kafka_namespace(settings.brokers)
        inputs = [DatasetSpec(namespace, settings.topic(spec.kind), spec.contract, SUITES.get(spec.kind))
                  for spec in INPUTS]
        outputs = [DatasetSpec(namespace, settings.topic(spec.kind), spec.contract) for spec in OUTPUTS]
        names = {spec.kind: (namespace, settings.topic(spec.kind)) for spec in INPUTS}
    else:
        # Embedded mode: one file interleaves events and context (and feedback, when it holds any).
        namespace = file_namespace()
        source = str(Path(settings.input).resolve())
        events = topic("events")
        inputs = [DatasetSpec(namespace, source, events.contract, SUITES["events"])]
        out = Path(settings.output_dir).resolve()
        outputs = [DatasetSpec(namespace, str(out / f"{spec.kind}.jsonl"), spec.contract) for spec in OUTPUTS]
        names = {spec.kind: (namespace, source) for spec in INPUTS}
    return Lineage(
        config,
        inputs,
        outputs,
        CoachflowRunFacet(model=model, policy=policy, qualitySuites=suites),
        _column_lineage(names),
        description="Real-time agent coaching: suggestions, alerts and an audit log from conversation turns.",
    )
