"""Topic contracts (pydantic v2), exported to JSON Schema under ``schemas/json``.

``CONTRACTS`` names each contract's JSON Schema file; ``export_all`` writes
them, and a test proves the committed files match the models.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, TypeAdapter

from schemas.events import (
    CONTEXT_ADAPTER,
    EVENT_ADAPTER,
    INPUT_ADAPTER,
    AnyEvent,
    ConversationEnd,
    ConversationEvent,
    ConversationStart,
    CustomerContext,
    KbResult,
    TaskSelected,
    Turn,
)
from schemas.feedback import Acceptance, Feedback
from schemas.knowledge import (
    Article,
    CardFeedback,
    Citation,
    KnowledgeCard,
    KnowledgeDecision,
    KnowledgePolicyDocument,
    Section,
)
from schemas.outputs import (
    Alert,
    Candidate,
    ConversationSummary,
    DeadLetter,
    Decision,
    DecisionInput,
    FieldError,
    QualityResult,
    RuleResult,
    SourceRef,
    SpeakerFigures,
    StageLatency,
    SuggestedResponse,
    Suggestion,
)
from schemas.policy import PolicyDocument

JSON_DIR = Path(__file__).parent / "json"

#: file stem -> (topic it describes, model or adapter)
CONTRACTS: dict[str, tuple[str, type[BaseModel] | TypeAdapter]] = {
    "conversation_event.v1": ("conversation.events", EVENT_ADAPTER),
    "customer_context.v1": ("customer.context", CustomerContext),
    "suggestion.v1": ("coaching.suggestions", Suggestion),
    "alert.v1": ("coaching.alerts", Alert),
    "decision.v1": ("coaching.decisions", Decision),
    "dead_letter.v1": ("coaching.dlq", DeadLetter),
    "conversation_summary.v1": ("coaching.summaries", ConversationSummary),
    "policy.v1": ("coaching.policies", PolicyDocument),
    "feedback.v1": ("coaching.feedback", Feedback),
    "acceptance.v1": ("coaching.acceptance", Acceptance),
    "article.v1": ("knowledge.articles", Article),
    "knowledge_card.v1": ("coaching.knowledge", KnowledgeCard),
    "knowledge_decision.v1": ("coaching.knowledge.decisions", KnowledgeDecision),
    "card_feedback.v1": ("coaching.knowledge.feedback", CardFeedback),
    "knowledge_policy.v1": ("coaching.knowledge.policies", KnowledgePolicyDocument),
}


def json_schema(stem: str) -> dict:
    """The JSON Schema of one contract, with its topic and version in the header."""
    topic, model = CONTRACTS[stem]
    schema = (
        model.json_schema() if isinstance(model, TypeAdapter) else model.model_json_schema()
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://coachflow.dev/schemas/{stem}.schema.json",
        "title": schema.get("title", stem),
        "x-topic": topic,
        **{k: v for k, v in schema.items() if k != "title"},
    }


def render(stem: str) -> str:
    return json.dumps(json_schema(stem), indent=2, sort_keys=True) + "\n"


def export_all(directory: Path = JSON_DIR) -> list[Path]:
    """Write every contract's JSON Schema into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for stem in CONTRACTS:
        path = directory / f"{stem}.schema.json"
        path.write_text(render(stem))
        written.append(path)
    return written


__all__ = [
    "CONTEXT_ADAPTER",
    "CONTRACTS",
    "Acceptance",
    "Article",
    "CardFeedback",
    "Citation",
    "Feedback",
    "KnowledgeCard",
    "KnowledgeDecision",
    "KnowledgePolicyDocument",
    "Section",
    "EVENT_ADAPTER",
    "INPUT_ADAPTER",
    "Alert",
    "AnyEvent",
    "Candidate",
    "ConversationEnd",
    "ConversationEvent",
    "ConversationStart",
    "ConversationSummary",
    "CustomerContext",
    "DeadLetter",
    "Decision",
    "DecisionInput",
    "FieldError",
    "QualityResult",
    "KbResult",
    "RuleResult",
    "SourceRef",
    "SpeakerFigures",
    "StageLatency",
    "SuggestedResponse",
    "Suggestion",
    "TaskSelected",
    "Turn",
    "export_all",
    "json_schema",
    "render",
]
