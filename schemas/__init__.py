"""Topic contracts (pydantic v2), exported to JSON Schema under ``schemas/json``.

``schemas.topics`` is the catalog of topics; ``CONTRACTS`` names each topic
contract's JSON Schema file; ``export_all`` writes them, and a test proves
the committed files match the models.
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
from schemas.topics import CATALOG, INPUTS, KNOWLEDGE_TOPICS, OUTPUT_KIND, OUTPUTS, TOPICS, TopicSpec, topic

JSON_DIR = Path(__file__).parent / "json"

#: file stem -> (the topic it describes, its model or adapter): one per catalog entry (``schemas.topics``);
#: a contract two topics share (dead letters) names the coaching job's.
CONTRACTS: dict[str, tuple[str, type[BaseModel] | TypeAdapter]] = {
    spec.contract: (spec.default, spec.schema) for spec in (*KNOWLEDGE_TOPICS, *TOPICS)
}


def json_schema(stem: str) -> dict:
    """The JSON Schema of one contract, with its topic and version in the header."""
    topic_name, model = CONTRACTS[stem]
    schema = (
        model.json_schema() if isinstance(model, TypeAdapter) else model.model_json_schema()
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://coachflow.dev/schemas/{stem}.schema.json",
        "title": schema.get("title", stem),
        "x-topic": topic_name,
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
    "CATALOG",
    "KNOWLEDGE_TOPICS",
    "Article",
    "CardFeedback",
    "Citation",
    "KnowledgeCard",
    "KnowledgeDecision",
    "KnowledgePolicyDocument",
    "Section",
    "INPUTS",
    "OUTPUTS",
    "OUTPUT_KIND",
    "TOPICS",
    "TopicSpec",
    "topic",
    "CONTEXT_ADAPTER",
    "CONTRACTS",
    "Acceptance",
    "PolicyDocument",
    "Feedback",
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
