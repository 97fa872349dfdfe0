"""The features a prediction point carries: one code path for training and serving.

``Features`` is built only by ``ConversationTracker`` (operators/conversation.py)
from the windowed conversation state. Training replays STAR dialogues through
that same tracker, so a model never sees inputs the stream cannot produce.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Agent action recorded for an agent turn typed as free text.
FREE_TEXT_ACTION = "custom"
#: Agent action implied by a knowledge-base result.
QUERY_ACTION = "query"

Trigger = str  # "customer_turn" | "kb_result" | "task_selected"

_COMPLAINT = re.compile(
    r"\b(?:not (?:working|happy|helpful|what i (?:asked|wanted))|doesn'?t work|still (?:not|no|waiting)"
    r"|again|ridiculous|unacceptable|terrible|awful|horrible|worst|useless|frustrat\w*|annoy\w*"
    r"|angry|upset|complain\w*|waste of (?:my )?time|speak to (?:a |your )?(?:manager|supervisor|human)"
    r"|(?:manager|supervisor)|cancel (?:my|the) (?:account|subscription)|you(?:'re| are) (?:wrong|stupid)"
    r"|stupid|idiot|hate)\b",
    re.IGNORECASE,
)


def is_complaint(text: str) -> bool:
    """A customer turn that expresses a complaint or frustration (lexicon match)."""
    return _COMPLAINT.search(text) is not None


def word_count(text: str) -> int:
    return len(text.split())


@dataclass(frozen=True, slots=True)
class Features:
    """What the scorer and the guardrails know at one prediction point."""

    conversation_id: str
    channel: str
    trigger: Trigger
    task: str | None
    tasks: tuple[str, ...]
    prev_actions: tuple[str, ...]
    """The agent's recent actions, oldest first (at most 3)."""
    kb_api: str | None
    kb_total_items: int | None
    kb_item: tuple[tuple[str, object], ...]
    """The latest knowledge-base item as sorted (field, value) pairs."""
    last_customer_text: str
    history: tuple[tuple[str, str], ...]
    """Recent turns as (speaker, text), oldest first."""
    turns_60s_customer: int
    turns_60s_agent: int
    agent_talk_share_60s: float
    silence_s: float
    complaints: int
    n_turns: int

    @property
    def prev_action(self) -> str | None:
        return self.prev_actions[-1] if self.prev_actions else None

    @property
    def kb_state(self) -> str:
        """``none`` before any lookup, else ``found``, ``empty`` or ``message``."""
        if self.kb_api is None:
            return "none"
        if self.kb_total_items is None or self.kb_total_items < 0:
            return "message"
        return "found" if self.kb_total_items > 0 else "empty"
