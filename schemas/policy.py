"""The guardrail policy contract: what compliance teams write in policies/*.yaml.

A policy is a versioned document. Every rule has an ``id``, a ``severity``
and an ``action`` (``block``: the suggestion is not shown; ``rewrite``: the
text is changed, as PII masking does; ``alert``: an alert is raised). The
job loads it, checks it against this schema, and records its version and
content hash in every decision.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, StringConstraints

from schemas._base import Contract, Label

Severity = Literal["info", "warning", "critical"]
Audience = Literal["agent", "supervisor"]
RuleId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)+$", max_length=80)]
Jurisdiction = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")]
FastPiiKind = Literal[
    "email",
    "card_number",
    "ssn",
    "phone",
    "pin",
    "account_number",
    "date_of_birth",
    "iban",
    "credential",
    "national_id",
    "passport",
    "driving_licence",
    "tax_id",
    "bank_code",
    "licence_plate",
    "cvv",
    "card_expiry",
    "ip_address",
]
"""Kinds that cost a few microseconds on a turn: ``operators.pii.FAST`` masks them all at parse."""
StrictOnlyPiiKind = Literal["age", "address", "person"]
"""Kinds that cost most at parse: masked where text leaves the job (``operators.privacy``)."""
PiiKind = Literal[FastPiiKind, StrictOnlyPiiKind]
"""What ``operators.pii`` can mask at parse. Where text leaves the job every kind is masked
(``operators.privacy``), whatever the policy lists; ``address`` and ``person`` cost most at parse."""
FAST_PII_KINDS: tuple[FastPiiKind, ...] = get_args(FastPiiKind)
PII_KINDS: tuple[PiiKind, ...] = get_args(PiiKind)
"""Every kind, the fast ones first: the one list ``operators.pii`` and the benchmarks read."""


class _Rule(Contract):
    id: RuleId
    severity: Severity = "warning"
    description: str = ""


class PiiRule(_Rule):
    """Mask personal data in turn text before anything else reads it."""

    action: Literal["rewrite"] = "rewrite"
    kinds: list[PiiKind] = Field(
        default_factory=lambda: list[PiiKind](
            ("email", "card_number", "ssn", "phone", "pin", "account_number")
        )
    )
    min_digits: int = Field(default=4, ge=3, le=12, description="Longer digit runs are masked.")


class ConfidenceRule(_Rule):
    action: Literal["block"] = "block"
    min_confidence: float = Field(ge=0.0, le=1.0)


class TopKRule(_Rule):
    action: Literal["rewrite"] = "rewrite"
    k: int = Field(ge=1, le=10, description="The suggestion plus at most k - 1 alternatives.")


class ChannelFormRule(_Rule):
    action: Literal["block"] = "block"
    max_chars: dict[Literal["voice", "chat"], int] = Field(description="Longest suggestion per channel.")


class ConsentRule(_Rule):
    """Customers who opted out of marketing get no marketing or upsell suggestions."""

    action: Literal["block"] = "block"
    marketing_actions: list[Label] = Field(default_factory=list)
    missing_context_means_opted_out: bool = True


class JurisdictionRule(_Rule):
    """Actions not to suggest to customers in some jurisdictions."""

    action: Literal["block"] = "block"
    jurisdictions: list[Jurisdiction]
    blocked_actions: list[Label]


class VerifiedBy(Contract):
    """What counts as a successful identity check in this conversation."""

    actions: list[Label] = Field(default_factory=list, description="The agent took one of these actions.")
    kb_apis: list[Label] = Field(default_factory=list, description="A result from one of these APIs ...")
    kb_fields_any: list[str] = Field(
        default_factory=list, description="... that has one of these fields (not an error message)."
    )


class VerifyBeforeDisclosureRule(_Rule):
    """Never suggest disclosing account details before identity was verified."""

    action: Literal["block"] = "block"
    disclosures: list[Label]
    verified_by: VerifiedBy


class RequiredStepRule(_Rule):
    """Alert when a required step (a disclosure, say) has not happened by a deadline."""

    action: Literal["alert"] = "alert"
    channels: list[Literal["voice", "chat"]] = Field(
        default_factory=lambda: list[Literal["voice", "chat"]](("voice", "chat"))
    )
    jurisdictions: list[Jurisdiction] = Field(default_factory=list, description="Empty: everywhere.")
    agent_phrases: list[str] = Field(default_factory=list, description="The agent said one of these ...")
    agent_actions: list[Label] = Field(default_factory=list, description="... or took one of these actions.")
    deadline_s: float = Field(gt=0, description="Event-time seconds after the conversation started.")
    audience: list[Audience] = Field(default_factory=lambda: list[Audience](("agent", "supervisor")))


class ConductRule(_Rule):
    """An agent turn containing a prohibited phrase alerts the agent and a supervisor."""

    action: Literal["alert"] = "alert"
    phrases: list[Annotated[str, StringConstraints(min_length=2, max_length=80)]]
    audience: list[Audience] = Field(default_factory=lambda: list[Audience](("agent", "supervisor")))


class RateRule(_Rule):
    action: Literal["block"] = "block"
    min_interval_s: float = Field(
        ge=0, description="Event-time seconds between suggestions in a conversation."
    )


class RepetitionRule(_Rule):
    action: Literal["block"] = "block"
    enabled: bool = Field(
        default=True, description="false: the same suggestion may be shown again (evaluation policies only)."
    )


class EscalationRule(_Rule):
    action: Literal["alert"] = "alert"
    threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Risk that raises an alert; null: the model's recommendation.",
    )
    cooldown_s: float = Field(default=120, ge=0)


class TemplateRule(_Rule):
    """Suggestion text only from approved templates with validated slot values."""

    action: Literal["block"] = "block"
    max_slot_chars: int = Field(default=80, ge=1, le=500)


class Rules(Contract):
    pii: PiiRule
    confidence: ConfidenceRule
    top_k: TopKRule
    channel_form: ChannelFormRule
    templates_only: TemplateRule
    consent: ConsentRule
    jurisdiction: list[JurisdictionRule] = Field(default_factory=list)
    verify_before_disclosure: list[VerifyBeforeDisclosureRule] = Field(default_factory=list)
    required_steps: list[RequiredStepRule] = Field(default_factory=list)
    conduct: ConductRule
    rate: RateRule
    repetition: RepetitionRule
    escalation: EscalationRule


class PolicyDocument(Contract):
    """A versioned guardrail policy (policies/*.yaml)."""

    schema_version: Literal["1.0"]
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=80)]
    version: Annotated[str, StringConstraints(pattern=r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")]
    description: str = ""
    rules: Rules
