"""Input contracts: ``conversation.events`` and ``customer.context``.

``conversation.events`` is keyed by ``conversation_id`` and carries a
discriminated union on ``type``: a conversation starts, has turns (customer or
agent, interim or final), may select a task flow or receive a knowledge-base
result, and ends. ``customer.context`` is keyed by ``customer_id``; the record
with the latest ``updated_at`` wins.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, TypeAdapter

from schemas._base import Contract, Identifier, Label, Text, UtcDatetime, utc_iso

Channel = Literal["voice", "chat"]
Speaker = Literal["customer", "agent"]


class _ConversationEventBase(Contract):
    schema_version: Literal["1.0"] = Field(description="Contract version of this record.")
    event_id: Identifier = Field(description="Producer-assigned unique id of this event.")
    conversation_id: Identifier
    customer_id: Identifier
    agent_id: Identifier
    channel: Channel
    event_time: UtcDatetime = Field(description="When it happened (ISO-8601 with offset).")
    sequence: int = Field(ge=0, description="Position in the conversation, from 0, increasing.")


class ConversationStart(_ConversationEventBase):
    """A conversation was routed to an agent."""

    type: Literal["conversation_start"]
    tasks: list[Label] = Field(
        default_factory=list,
        max_length=16,
        description="Task flows the agent can serve in this conversation (the queue's skills).",
    )


class Turn(_ConversationEventBase):
    """One transcript segment (voice) or message (chat)."""

    type: Literal["turn"]
    speaker: Speaker
    text: Text
    is_final: bool = Field(description="False for interim speech-recognition hypotheses.")
    action: Label | None = Field(
        default=None,
        description="For agent turns sent from a suggestion or template: its action label.",
    )


class TaskSelected(_ConversationEventBase):
    """The agent opened a task flow (for example ``bank_balance``)."""

    type: Literal["task_selected"]
    task: Label


KbScalar = (
    Annotated[str, StringConstraints(max_length=512)]
    | int
    | float
    | bool
    | None
    | Annotated[list[Annotated[str, StringConstraints(max_length=128)]], Field(max_length=32)]
)


class KbResult(_ConversationEventBase):
    """The agent's knowledge-base query returned."""

    type: Literal["kb_result"]
    api: Label = Field(description="The knowledge-base API that was queried.")
    total_items: int = Field(ge=-1, description="Items found; -1 when the API returns a message.")
    item: dict[Annotated[str, StringConstraints(max_length=64)], KbScalar] = Field(
        default_factory=dict, max_length=64, description="The first item returned."
    )


class ConversationEnd(_ConversationEventBase):
    """The conversation ended."""

    type: Literal["conversation_end"]
    reason: Literal["completed", "abandoned", "transferred"] = "completed"


ConversationEvent = Annotated[
    ConversationStart | Turn | TaskSelected | KbResult | ConversationEnd,
    Field(discriminator="type"),
]


class CustomerContext(Contract):
    """The customer's profile and consents, as of ``updated_at``."""

    schema_version: Literal["1.0"]
    type: Literal["customer_context"]
    customer_id: Identifier
    tier: Literal["basic", "silver", "gold", "platinum"]
    marketing_opt_out: bool = Field(description="The customer refused marketing and upsell offers.")
    recording_consent: bool = Field(description="The customer agreed to the call being recorded.")
    jurisdiction: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")] = Field(
        description="ISO 3166 country or subdivision code, for example US-CA or DE."
    )
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")]
    open_cases: int = Field(ge=0, le=10_000)
    updated_at: UtcDatetime

    @property
    def version(self) -> str:
        """The context version recorded in decisions: its ``updated_at`` in UTC, to the microsecond."""
        return utc_iso(self.updated_at)


InputRecord = Annotated[
    ConversationStart | Turn | TaskSelected | KbResult | ConversationEnd | CustomerContext,
    Field(discriminator="type"),
]
"""Either input, as interleaved in an embedded-mode JSONL file."""

# Built once at import, used on the hot path.
EVENT_ADAPTER: TypeAdapter = TypeAdapter(ConversationEvent)
CONTEXT_ADAPTER: TypeAdapter = TypeAdapter(CustomerContext)
INPUT_ADAPTER: TypeAdapter = TypeAdapter(InputRecord)

AnyEvent = ConversationStart | Turn | TaskSelected | KbResult | ConversationEnd
