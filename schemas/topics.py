"""The catalog of topics: every topic the jobs read or write, in one table.

Each entry names the topic's kind (how the code refers to it), its record
types and contract, its default name (renamed by its ``COACH_*`` setting),
its key, and whether it is compacted. The settings, the sinks, the metrics,
the lineage datasets, the report, the console and the CLI all read this
table; none of them lists topics itself.

    >>> topic("suggestions").default
    'coaching.suggestions'
    >>> [spec.kind for spec in OUTPUTS]
    ['suggestions', 'alerts', 'decisions', 'dlq', 'summaries', 'acceptance']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, TypeAdapter

from schemas.events import (
    EVENT_ADAPTER,
    ConversationEnd,
    ConversationStart,
    CustomerContext,
    KbResult,
    TaskSelected,
    Turn,
)
from schemas.feedback import Acceptance, Feedback
from schemas.knowledge import Article, CardFeedback, KnowledgeCard, KnowledgeDecision, KnowledgePolicyDocument
from schemas.outputs import Alert, ConversationSummary, DeadLetter, Decision, Suggestion
from schemas.policy import PolicyDocument

Role = Literal["input", "output", "control"]


@dataclass(frozen=True)
class TopicSpec:
    """One topic of the job."""

    kind: str
    """How code and embedded files name it (``suggestions``: ``suggestions.jsonl`` in embedded mode)."""
    role: Role
    """``input`` (conversation traffic), ``output`` (what the job publishes) or ``control`` (artifacts)."""
    records: tuple[type[BaseModel], ...]
    """The record types it carries."""
    schema: type[BaseModel] | TypeAdapter
    """What validates one of its records and exports the contract's JSON Schema."""
    contract: str
    """The contract's JSON Schema file stem under ``schemas/json``."""
    default: str
    """The default topic name."""
    setting: str
    """The ``Settings`` field that renames it (its variable is ``COACH_`` + the name in capitals)."""
    key: str
    """The record field its Kafka key holds."""
    description: str
    compacted: bool = False
    """Only the latest record per key matters (``cleanup.policy=compact``)."""
    optional: bool = False
    """Read only when its setting names it (the setting is unset by default)."""
    job: Literal["coaching", "knowledge"] = "coaching"
    """The job it belongs to: ``coaching`` topics are ``Settings`` fields (``COACH_*``), ``knowledge``
    topics ``KnowledgeSettings`` fields (``COACH_KNOWLEDGE_*``)."""

    @property
    def version(self) -> str:
        """The contract's major version, as its file stem carries it (``v1``)."""
        return self.contract.rsplit(".", 1)[1]


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        "events",
        "input",
        (ConversationStart, Turn, TaskSelected, KbResult, ConversationEnd),
        EVENT_ADAPTER,
        "conversation_event.v1",
        "conversation.events",
        "topic_events",
        "conversation_id",
        "Input: conversation events, keyed by conversation id (customer id: INPUT_KEY).",
    ),
    TopicSpec(
        "context",
        "input",
        (CustomerContext,),
        CustomerContext,
        "customer_context.v1",
        "customer.context",
        "topic_context",
        "customer_id",
        "Input: customer context, keyed by customer id (compacted).",
        compacted=True,
    ),
    TopicSpec(
        "feedback",
        "input",
        (Feedback,),
        Feedback,
        "feedback.v1",
        "coaching.feedback",
        "topic_feedback",
        "conversation_id",
        "Input: agent UIs' feedback on suggestions, keyed by conversation id (customer id: INPUT_KEY).",
    ),
    TopicSpec(
        "suggestions",
        "output",
        (Suggestion,),
        Suggestion,
        "suggestion.v1",
        "coaching.suggestions",
        "topic_suggestions",
        "conversation_id",
        "Output: suggestions for agent UIs.",
    ),
    TopicSpec(
        "alerts",
        "output",
        (Alert,),
        Alert,
        "alert.v1",
        "coaching.alerts",
        "topic_alerts",
        "conversation_id",
        "Output: alerts for agents and supervisors.",
    ),
    TopicSpec(
        "decisions",
        "output",
        (Decision,),
        Decision,
        "decision.v1",
        "coaching.decisions",
        "topic_decisions",
        "conversation_id",
        "Output: one audit record per accepted input.",
    ),
    TopicSpec(
        "dlq",
        "output",
        (DeadLetter,),
        DeadLetter,
        "dead_letter.v1",
        "coaching.dlq",
        "topic_dlq",
        "conversation_id",
        "Output: refused inputs with their bytes and reason.",
    ),
    TopicSpec(
        "summaries",
        "output",
        (ConversationSummary,),
        ConversationSummary,
        "conversation_summary.v1",
        "coaching.summaries",
        "topic_summaries",
        "conversation_id",
        "Output: one summary per finished conversation.",
    ),
    TopicSpec(
        "acceptance",
        "output",
        (Acceptance,),
        Acceptance,
        "acceptance.v1",
        "coaching.acceptance",
        "topic_acceptance",
        "conversation_id",
        "Output: one acceptance verdict per judged suggestion and mode.",
    ),
    TopicSpec(
        "policies",
        "control",
        (PolicyDocument,),
        PolicyDocument,
        "policy.v1",
        "coaching.policies",
        "policy_topic",
        "name",
        "Kafka mode: also take policy documents from this topic (latest wins).",
        compacted=True,
        optional=True,
    ),
)

#: The knowledge job's topics (``flows/knowledge.py``): it reads ``events`` and ``context`` above too.
KNOWLEDGE_TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        "knowledge",
        "output",
        (KnowledgeCard,),
        KnowledgeCard,
        "knowledge_card.v1",
        "coaching.knowledge",
        "topic_cards",
        "conversation_id",
        "Output: knowledge cards, keyed by conversation id.",
        job="knowledge",
    ),
    TopicSpec(
        "knowledge_decisions",
        "output",
        (KnowledgeDecision,),
        KnowledgeDecision,
        "knowledge_decision.v1",
        "coaching.knowledge.decisions",
        "topic_decisions",
        "conversation_id",
        "Output: one knowledge decision per input.",
        job="knowledge",
    ),
    TopicSpec(
        "knowledge_dlq",
        "output",
        (DeadLetter,),
        DeadLetter,
        "dead_letter.v1",
        "coaching.knowledge.dlq",
        "topic_dlq",
        "conversation_id",
        "Output: inputs the knowledge job refused.",
        job="knowledge",
    ),
    TopicSpec(
        "knowledge_feedback",
        "input",
        (CardFeedback,),
        CardFeedback,
        "card_feedback.v1",
        "coaching.knowledge.feedback",
        "topic_feedback",
        "conversation_id",
        "Agent UIs' feedback on cards, keyed by conversation id (read by coach report).",
        job="knowledge",
    ),
    TopicSpec(
        "articles",
        "control",
        (Article,),
        Article,
        "article.v1",
        "knowledge.articles",
        "articles_topic",
        "article_id",
        "Kafka mode: index the articles of this compacted topic instead (latest per key wins).",
        compacted=True,
        optional=True,
        job="knowledge",
    ),
    TopicSpec(
        "knowledge_policies",
        "control",
        (KnowledgePolicyDocument,),
        KnowledgePolicyDocument,
        "knowledge_policy.v1",
        "coaching.knowledge.policies",
        "policy_topic",
        "name",
        "Kafka mode: also take knowledge policies from this topic (latest wins).",
        compacted=True,
        optional=True,
        job="knowledge",
    ),
)
#: Every topic of both jobs.
CATALOG: tuple[TopicSpec, ...] = (*TOPICS, *KNOWLEDGE_TOPICS)

_BY_KIND = {spec.kind: spec for spec in CATALOG}
INPUTS: tuple[TopicSpec, ...] = tuple(spec for spec in TOPICS if spec.role == "input")
OUTPUTS: tuple[TopicSpec, ...] = tuple(spec for spec in TOPICS if spec.role == "output")
KNOWLEDGE_OUTPUTS: tuple[TopicSpec, ...] = tuple(spec for spec in KNOWLEDGE_TOPICS if spec.role == "output")
#: Output kind of each published record type (the coaching job's; the knowledge job's own record types).
OUTPUT_KIND: dict[type[BaseModel], str] = {
    record: spec.kind for spec in (*KNOWLEDGE_OUTPUTS, *OUTPUTS) for record in spec.records
}


def topic(kind: str) -> TopicSpec:
    """The catalog entry of ``kind``; a ``KeyError`` names the kinds there are."""
    try:
        return _BY_KIND[kind]
    except KeyError:
        raise KeyError(f"no topic kind {kind!r}; the catalog has {sorted(_BY_KIND)}") from None
