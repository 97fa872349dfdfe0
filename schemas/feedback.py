"""Acceptance contracts: what agent UIs report, and what the job makes of it.

``coaching.feedback`` (key: conversation id) is written by agent UIs: a
suggestion was shown, accepted, edited (with the edit distance, never the
text) or dismissed. ``coaching.acceptance`` (key: conversation id) is
written by the job: one record per judged suggestion, either from a click
(``mode="click"``) or inferred from the agent's next turn on voice and
replays (``mode="inferred"``), carrying what it is counted by (arm, model and
policy versions, action, the rules that changed the suggestion).

Accounting: each feedback record becomes exactly one of an ``Acceptance``
(``mode="click"``: the first verdict on a suggestion), a ``recorded``
``Decision`` (``input.kind="feedback"``: a ``shown`` report, or a later
verdict on a suggestion already judged) or a dead letter (``duplicate_event``
for a repeated ``feedback_id``, ``unknown_suggestion`` when no suggestion
with that id was shown in the conversation within ``COACH_FEEDBACK_WAIT_S``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas._base import Contract, Identifier, Label, UtcDatetime
from schemas.events import Channel

FeedbackEvent = Literal["shown", "accepted", "edited", "dismissed"]
Arm = Literal["control", "candidate"]
#: How a verdict was reached: a UI click, the agent's next action label (the
#: ground truth in replays; a knowledge-base result means the agent queried),
#: or the similarity of the agent's next unlabelled reply to the suggestion.
Basis = Literal["click", "action", "similarity"]


class Feedback(Contract):
    """What an agent did with a suggestion, as the agent UI reports it."""

    schema_version: Literal["1.0"] = "1.0"
    type: Literal["feedback"] = "feedback"
    feedback_id: Identifier = Field(description="Unique per report; a repeated id is a duplicate.")
    suggestion_id: str = Field(min_length=1, max_length=128)
    conversation_id: Identifier
    agent_id: Identifier
    event: FeedbackEvent
    edit_distance: int | None = Field(
        default=None, ge=0, le=100_000,
        description="Edited: characters changed between the suggestion and what the agent sent (no text).",
    )
    at: UtcDatetime


class Acceptance(Contract):
    """The verdict on one shown suggestion: accepted or not, by click or inferred."""

    schema_version: Literal["1.0"] = "1.0"
    acceptance_id: str = Field(description="Deterministic: from the suggestion id and the mode.")
    suggestion_id: str
    decision_id: str
    conversation_id: Identifier
    agent_id: Identifier
    channel: Channel
    mode: Literal["click", "inferred"]
    basis: Basis = Field(default="click", description="click, the agent's action label, or text similarity.")
    feedback_id: str | None = Field(default=None, description="Click: the feedback record judged.")
    event_id: str | None = Field(
        default=None, description="Inferred: the agent's turn (or KB result) judged."
    )
    outcome: Literal["accepted", "edited", "dismissed", "ignored"] = Field(
        description=(
            "click: the UI's verdict; inferred: accepted when the agent's next turn matched, else ignored."
        )
    )
    accepted: bool = Field(description="accepted or edited.")
    action: Label = Field(description="The suggested action.")
    agent_action: Label | None = Field(
        default=None, description="Inferred: the agent's next action, if labelled."
    )
    similarity: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Inferred from live text: similarity of the reply to the suggestion.",
    )
    edit_distance: int | None = None
    arm: Arm | None = Field(default=None, description="The experiment arm of the conversation, if one runs.")
    experiment: str | None = None
    model_version: str
    policy_version: str
    rules: list[str] = Field(
        default_factory=list, description="Rules that rewrote or blocked earlier candidates."
    )
    latency_s: float | None = Field(default=None, ge=0.0, description="From the suggestion to the verdict.")
    at: UtcDatetime
