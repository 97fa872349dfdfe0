"""Output contracts: suggestions, alerts, decisions, dead letters, summaries.

``coaching.suggestions`` and ``coaching.alerts`` are what agent UIs render;
``coaching.decisions`` is the audit log with one record per accepted input;
``coaching.dlq`` holds every input that was refused, with its original bytes;
``coaching.summaries`` has one record per finished conversation.
All are keyed by ``conversation_id`` (dead letters and context decisions by
whatever key the input had), so one conversation stays in order.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas._base import Contract, Identifier, Label, UtcDatetime
from schemas.events import Channel


class SourceRef(Contract):
    """Where an input record came from: a Kafka offset or a file line."""

    kind: Literal["kafka", "file"]
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    timestamp_ms: int | None = Field(
        default=None, ge=0,
        description="Kafka: the record's timestamp in ms since the epoch (the producer's CreateTime, "
        "or the broker's append time on a topic with message.timestamp.type=LogAppendTime).",
    )
    file: str | None = None
    line: int | None = Field(default=None, ge=1, description="1-based line number in the file.")


class Candidate(Contract):
    """One scored next action."""

    action: Label
    confidence: float = Field(ge=0.0, le=1.0)


class Suggestion(Contract):
    """A response suggestion an agent UI shows next to the conversation."""

    schema_version: Literal["1.0"] = "1.0"
    suggestion_id: str
    decision_id: str
    conversation_id: Identifier
    customer_id: Identifier
    agent_id: Identifier
    channel: Channel
    event_id: Identifier = Field(description="The input event after which this was suggested.")
    action: Label = Field(description="The suggested next agent action.")
    text: str = Field(description="The reply, rendered from the action's approved template.")
    confidence: float = Field(ge=0.0, le=1.0)
    alternatives: list[Candidate] = Field(default_factory=list, description="Runners-up, best first.")
    model_version: str
    policy_version: str
    run_id: str | None = Field(default=None, description="The OpenLineage run that made this suggestion.")
    created_at: UtcDatetime


AlertKind = Literal[
    "repeated_complaint",
    "long_silence",
    "agent_talk_dominance",
    "escalation_risk",
    "agent_conduct",
    "missing_required_step",
]


class Alert(Contract):
    """Something in the conversation an agent or supervisor should act on."""

    schema_version: Literal["1.0"] = "1.0"
    alert_id: str
    conversation_id: Identifier
    customer_id: Identifier
    agent_id: Identifier
    event_id: Identifier = Field(description="The input event that raised the alert.")
    kind: AlertKind
    severity: Literal["info", "warning", "critical"]
    audience: list[Literal["agent", "supervisor"]]
    message: str
    evidence: dict[str, float | int | str] = Field(default_factory=dict)
    event_time: UtcDatetime
    raised_at: UtcDatetime


class RuleResult(Contract):
    """One guardrail rule's verdict in a decision."""

    rule_id: str
    outcome: Literal["pass", "block", "rewrite", "alert"]
    detail: str | None = None


class StageLatency(Contract):
    """Milliseconds spent per stage, from the input being parsed to the decision."""

    join_wait_ms: float = Field(description="Held waiting for customer context.")
    conversation_ms: float = Field(description="Join output to conversation features.")
    score_ms: float = Field(description="Features to scored candidates (batched).")
    guard_ms: float = Field(description="Scored candidates to decision.")
    total_ms: float


class DecisionInput(Contract):
    """The input record a decision is about."""

    kind: Literal[
        "conversation_start", "turn", "task_selected", "kb_result", "conversation_end",
        "customer_context", "feedback",
    ]
    event_id: str = Field(description="Event id, or customer_id@updated_at for context records.")
    source: SourceRef
    is_final: bool | None = Field(default=None, description="For turns: final or interim.")
    speaker: Literal["customer", "agent"] | None = None
    history_event_ids: list[str] = Field(
        default_factory=list, description="Earlier events of the conversation the scorer saw."
    )


class QualityResult(Contract):
    """What the data-quality gate found for the input."""

    suite: str = Field(description="The expectation suite and its version, e.g. conversation_events@1.0.0.")
    warnings: list[str] = Field(default_factory=list, description="Warning expectations the input failed.")


class SuggestedResponse(Contract):
    action: Label
    text: str


class Decision(Contract):
    """The audit record of what the job did with one input record.

    ``shown``: a suggestion went to the agent. ``suppressed``: a prediction
    point produced no suggestion, for the ``reasons`` given. ``recorded``: the
    input updated state but is not a prediction point (context updates,
    conversation start and end, interim turns).
    """

    schema_version: Literal["1.0"] = "1.0"
    decision_id: str = Field(
        description="Deterministic: from the input's id, the model version, the policy version and hash."
    )
    decided_at: UtcDatetime
    conversation_id: Identifier | None
    customer_id: Identifier
    agent_id: Identifier | None = None
    input: DecisionInput
    outcome: Literal["shown", "suppressed", "recorded"]
    reasons: list[str] = Field(default_factory=list, description="Machine-readable reason codes.")
    suggestion_id: str | None = None
    suggestion: SuggestedResponse | None = None
    candidates: list[Candidate] = Field(default_factory=list)
    context_status: Literal["present", "missing", "not_applicable"]
    context_version: str | None = None
    model_version: str | None = None
    policy_name: str
    policy_version: str
    policy_hash: str = Field(description="SHA-256 of the policy document's canonical JSON.")
    rules: list[RuleResult] = Field(default_factory=list, description="Each rule's verdict, in order.")
    masked: list[str] = Field(
        default_factory=list, description="What PII masking changed in the input, as field:kind."
    )
    latency_ms: StageLatency | None = None
    quality: QualityResult | None = None
    run_id: str | None = Field(default=None, description="The OpenLineage run that made this decision.")
    risk: float | None = Field(
        default=None, ge=0.0, le=1.0, description="The model's escalation risk at this point, if scored."
    )
    arm: Literal["control", "candidate"] | None = Field(
        default=None, description="The experiment arm of the conversation (by a hash of its id), if one runs."
    )
    experiment: str | None = Field(default=None, description="The experiment's name, if one runs.")


DeadLetterReason = Literal[
    "malformed_json",
    "invalid_encoding",
    "payload_too_large",
    "empty_payload",
    "missing_field",
    "unknown_field",
    "unknown_enum_value",
    "unsupported_schema_version",
    "schema_violation",
    "invalid_text",
    "text_too_long",
    "wrong_topic",
    "missing_key",
    "key_mismatch",
    "duplicate_event",
    "late_event",
    "conversation_ended",
    "stale_context",
    "duplicate_context",
    "quality_check_failed",
    "source_error",
    "unknown_suggestion",
    "too_deeply_nested",
    "too_many_keys",
    "too_many_items",
    "string_too_long",
    "internal_error",
]


class FieldError(Contract):
    """One validation error: where, what kind, and a human message."""

    loc: str
    type: str
    msg: str


class DeadLetter(Contract):
    """An input the job refused, with its original bytes and why.

    Version 1.1 adds the ``too_*``, ``string_too_long`` and ``internal_error`` reasons
    and the ``step`` and ``error_type`` of an internal error; 1.0 records still validate.
    """

    schema_version: Literal["1.0", "1.1"] = "1.1"
    dead_letter_id: str = Field(description="Deterministic: from the input's source position.")
    received_at: UtcDatetime
    source: SourceRef
    reason: DeadLetterReason
    detail: str
    errors: list[FieldError] = Field(default_factory=list)
    key: str | None = Field(default=None, description="The record's key, if any (UTF-8, lossy).")
    payload_b64: str = Field(
        description="The input's bytes, base64, with personal data masked; cut at the payload limit."
    )
    payload_form: Literal["original", "canonical", "withheld"] = Field(
        description="original: the bytes as received (masked); canonical: the parsed record re-serialised "
        "(inputs refused after parsing); withheld: could not be shown without risking personal data."
    )
    payload_masked: list[str] = Field(default_factory=list, description="Kinds of personal data masked.")
    payload_bytes: int = Field(ge=0, description="Size of the original payload.")
    payload_sha256: str = Field(
        description="SHA-256 of the payload as the job received it (for an over-long file "
        "line, of the head the reader kept)."
    )
    payload_truncated: bool
    event_id: str | None = None
    conversation_id: str | None = None
    customer_id: str | None = None
    step: str | None = Field(
        default=None, description="internal_error: the step that failed on this record (parse, join, ...)."
    )
    error_type: str | None = Field(default=None, description="internal_error: the exception's type.")


class SpeakerFigures(Contract):
    customer: float
    agent: float


class ConversationSummary(Contract):
    """One record per finished conversation."""

    schema_version: Literal["1.0"] = "1.0"
    conversation_id: Identifier
    customer_id: Identifier
    agent_id: Identifier
    channel: Channel
    started_at: UtcDatetime
    ended_at: UtcDatetime
    end_reason: Literal["completed", "abandoned", "transferred", "idle", "input_exhausted"]
    duration_s: float
    turns: SpeakerFigures
    words: SpeakerFigures
    talk_share: SpeakerFigures
    max_silence_s: float
    complaints: int
    tasks: list[str]
    agent_actions: list[str] = Field(description="The agent's actions in order (at most 200).")
    alerts: int
    context_status: Literal["present", "missing"]
