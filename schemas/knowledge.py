"""Knowledge-assist contracts: articles, knowledge cards, their decisions and feedback.

``knowledge.articles`` (key: article id, compacted) holds the knowledge base:
one ``Article`` per key, the latest wins, a tombstone removes it. The
knowledge job (``flows/knowledge.py``) reads conversation events and
publishes, per input, one ``KnowledgeDecision`` on ``coaching.knowledge.decisions``
(``shown``, ``suppressed``, ``not_needed``, ``shed`` or ``recorded``) and, when
one is shown, a ``KnowledgeCard`` on ``coaching.knowledge`` (key: conversation
id): the passage that answers what the customer just asked, masked of
personal data, with a citation to the article version and character offsets.
Agent UIs report what agents did with a card on ``coaching.knowledge.feedback``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from schemas._base import Contract, Identifier, Label, UtcDatetime, clean_text
from schemas.events import Channel
from schemas.outputs import DecisionInput, RuleResult
from schemas.policy import PiiKind, RuleId, Severity

KNOWLEDGE_VERSION = "1.0"
#: Longest article body; the longest doc2dial document has 44,837 characters.
MAX_BODY_CHARS = 200_000
#: Most sections (spans) per article; doc2dial's documents have up to about 700.
MAX_SECTIONS = 5_000

ArticleId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$"),
]
"""An article's id: 1-256 printable characters (doc2dial's ids hold spaces, ``#`` and ``:``)."""

ArticleText = Annotated[str, StringConstraints(max_length=MAX_BODY_CHARS), AfterValidator(clean_text)]
Title = Annotated[str, StringConstraints(min_length=1, max_length=512), AfterValidator(clean_text)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.:-]*$")]
"""``domain:va``, ``jurisdiction:us-ny``, ``kind:policy`` ..."""
Version = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:+-]*$")
]


class Section(Contract):
    """A span of an article's body: a heading or a piece of text, by character offsets."""

    section_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    start: int = Field(ge=0, description="First character, an offset into the body.")
    end: int = Field(gt=0, description="One past the last character.")
    heading: bool = Field(default=False, description="A heading: it starts a new passage.")


class Article(Contract):
    """One knowledge-base article (a policy, a procedure, a product or benefit page)."""

    schema_version: Literal["1.0"] = "1.0"
    type: Literal["article"] = "article"
    article_id: ArticleId
    title: Title
    body: ArticleText
    sections: list[Section] = Field(
        default_factory=list, max_length=MAX_SECTIONS,
        description="Spans of the body in order, covering it without overlaps; empty: split at blank lines.",
    )
    tags: list[Tag] = Field(default_factory=list, max_length=32)
    source: Label = Field(
        description="Where it comes from (doc2dial_va, abcd_guidelines ...): policies rule per source."
    )
    version: Version = Field(description="The article's own version; a citation names it.")
    source_url: Annotated[str, StringConstraints(max_length=2048, pattern=r"^https?://[^\s]+$")] | None = (
        Field(default=None, description="Where the article is published (an http or https address).")
    )
    updated_at: UtcDatetime | None = None

    @model_validator(mode="after")
    def _sections_cover_the_body(self) -> Article:
        position = 0
        for section in self.sections:
            if section.start != position or section.end <= section.start or section.end > len(self.body):
                raise ValueError(
                    f"section {section.section_id!r} ({section.start}-{section.end})"
                    f" must start at {position} "
                    f"and end within the body ({len(self.body)} characters)"
                )
            position = section.end
        if self.sections and position != len(self.body):
            raise ValueError(f"sections end at {position}, the body has {len(self.body)} characters")
        return self


class Citation(Contract):
    """Where a card's passage is: the article version and the character offsets in its body."""

    article_id: ArticleId
    article_version: Version
    kb_version: str = Field(
        description="The knowledge base's version (a hash of every article's id and version)."
    )
    start: int = Field(ge=0)
    end: int = Field(gt=0)
    heading: str | None = Field(default=None, description="The heading of the section the passage is in.")
    source: Label
    source_url: str | None = None


class CardAlternative(Contract):
    """A runner-up passage, for the agent to open instead."""

    article_id: ArticleId
    title: str
    citation: Citation
    score: float = Field(ge=0.0, le=1.0)


class KnowledgeCard(Contract):
    """The passage of the knowledge base that answers what the customer just asked."""

    schema_version: Literal["1.0"] = "1.0"
    card_id: str = Field(description="Deterministic: from the decision id.")
    decision_id: str
    conversation_id: Identifier
    customer_id: Identifier
    agent_id: Identifier
    channel: Channel
    event_id: Identifier = Field(description="The customer turn that asked.")
    article_id: ArticleId
    title: str
    passage: str = Field(description="The passage text, personal data masked.")
    score: float = Field(ge=0.0, le=1.0, description="The re-ranker's probability that the passage answers.")
    citation: Citation
    alternatives: list[CardAlternative] = Field(default_factory=list, description="Runners-up, best first.")
    latency_ms: float = Field(ge=0.0, description="From the turn being read to the card.")
    kb_version: str
    ranker_version: str
    policy_version: str
    run_id: str | None = None
    created_at: UtcDatetime


class PassageScore(Contract):
    """One ranked passage in a knowledge decision."""

    article_id: ArticleId
    start: int = Field(ge=0)
    end: int = Field(gt=0)
    score: float = Field(ge=0.0, le=1.0)


class KnowledgeLatency(Contract):
    """Milliseconds per stage, from the input being parsed to its knowledge decision."""

    join_wait_ms: float = Field(description="Held waiting for customer context.")
    queue_ms: float = Field(description="From the join to retrieval (the stage's queue).")
    retrieve_ms: float = Field(description="Retrieval and ranking, this input's share of its batch.")
    guard_ms: float = Field(description="Ranked passages to the decision.")
    total_ms: float


KnowledgeOutcome = Literal["shown", "suppressed", "not_needed", "shed", "recorded"]


class KnowledgeDecision(Contract):
    """The audit record of what the knowledge job did with one input.

    ``shown``: a card went to the agent; ``suppressed``: passages were ranked
    but a rule held them (``reasons``); ``not_needed``: a customer turn that
    seeks no knowledge; ``shed``: the stage was overloaded and skipped it
    (``reasons``: ``shed.queue_full``, ``shed.stale``, ``shed.circuit_open``);
    ``recorded``: any other input (agent turns, conversation start and end,
    context), which updates state only.
    """

    schema_version: Literal["1.0"] = "1.0"
    decision_id: str = Field(
        description="Deterministic: from the input's id, the KB, ranker and policy versions."
    )
    decided_at: UtcDatetime
    conversation_id: Identifier | None
    customer_id: Identifier | None = Field(description="None for inputs that name no customer (UI feedback).")
    agent_id: Identifier | None = None
    input: DecisionInput
    outcome: KnowledgeOutcome
    reasons: list[str] = Field(default_factory=list, description="Machine-readable reason codes.")
    card_id: str | None = None
    passages: list[PassageScore] = Field(default_factory=list, description="The ranked passages, best first.")
    context_status: Literal["present", "missing", "not_applicable"]
    context_version: str | None = None
    kb_version: str
    ranker_version: str
    policy_name: str
    policy_version: str
    policy_hash: str
    rules: list[RuleResult] = Field(default_factory=list)
    masked: list[str] = Field(default_factory=list, description="What PII masking changed, as field:kind.")
    latency_ms: KnowledgeLatency
    run_id: str | None = None


class CardFeedback(Contract):
    """What an agent did with a knowledge card, as the agent UI reports it."""

    schema_version: Literal["1.0"] = "1.0"
    type: Literal["card_feedback"] = "card_feedback"
    feedback_id: Identifier = Field(description="Unique per report; a repeated id is a duplicate.")
    card_id: str = Field(min_length=1, max_length=128)
    conversation_id: Identifier
    agent_id: Identifier
    event: Literal["shown", "accepted", "dismissed"]
    at: UtcDatetime


# -- the knowledge policy (policies/knowledge.yaml) ---------------------------------


class _KnowledgeRule(Contract):
    id: RuleId
    severity: Severity = "warning"
    description: str = ""


class PassageMaskRule(_KnowledgeRule):
    """Mask personal data in a passage before it leaves the job (the KB is not trusted to hold none)."""

    action: Literal["rewrite"] = "rewrite"
    kinds: list[PiiKind] = Field(
        default_factory=lambda: list[PiiKind](
            ("email", "credential", "iban", "card_number", "ssn", "phone", "pin")
        )
    )
    min_digits: int = Field(
        default=12, ge=3, le=64, description="Longer digit runs are masked as account numbers."
    )


class CardConsentRule(_KnowledgeRule):
    """No marketing articles (tagged so) to customers who opted out, or whose consent is unknown."""

    action: Literal["block"] = "block"
    marketing_tags: list[Tag] = Field(default_factory=lambda: ["kind:offer"])
    missing_context_means_opted_out: bool = True


class CardJurisdictionRule(_KnowledgeRule):
    """An article tagged ``jurisdiction:<code>`` applies only there (``us`` covers ``us-ny``)."""

    action: Literal["block"] = "block"
    unknown_customer: Literal["allow", "block"] = Field(
        default="allow",
        description="A customer of unknown jurisdiction (no context) sees jurisdiction-tagged articles?",
    )


class SourceRule(Contract):
    """What one source may show."""

    source: Label
    enabled: bool = True
    min_score: float = Field(default=0.0, ge=0.0, le=1.0)
    channels: list[Channel] = Field(default_factory=lambda: list[Channel](("voice", "chat")))


class CardSourceRule(_KnowledgeRule):
    """A rule per source: enabled, on which channels, from which score; unlisted sources take ``default``."""

    action: Literal["block"] = "block"
    sources: list[SourceRule] = Field(default_factory=list)
    default: SourceRule = Field(default_factory=lambda: SourceRule(source="default"))


class CardScoreRule(_KnowledgeRule):
    action: Literal["block"] = "block"
    min_score: float = Field(ge=0.0, le=1.0, description="No card below this re-ranker probability.")


class CardRateRule(_KnowledgeRule):
    action: Literal["block"] = "block"
    min_interval_s: float = Field(ge=0, description="Event-time seconds between cards in a conversation.")


class CardRepetitionRule(_KnowledgeRule):
    action: Literal["block"] = "block"
    enabled: bool = True


class CardTopKRule(_KnowledgeRule):
    action: Literal["rewrite"] = "rewrite"
    k: int = Field(ge=1, le=10, description="The card plus at most k - 1 alternatives.")


class KnowledgeRules(Contract):
    pii: PassageMaskRule
    consent: CardConsentRule
    jurisdiction: CardJurisdictionRule
    sources: CardSourceRule
    score: CardScoreRule
    rate: CardRateRule
    repetition: CardRepetitionRule
    top_k: CardTopKRule


class KnowledgePolicyDocument(Contract):
    """A versioned policy for knowledge cards (policies/knowledge.yaml)."""

    schema_version: Literal["1.0"]
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=80)]
    version: Annotated[str, StringConstraints(pattern=r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")]
    description: str = ""
    rules: KnowledgeRules
