"""The features a prediction point carries: one code path for training and serving.

``Features`` is built only by ``ConversationTracker`` (operators/conversation.py)
from the windowed conversation state. Training replays STAR dialogues through
that same tracker, so a model never sees inputs the stream cannot produce.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain, pairwise
from typing import NamedTuple, Union

#: Agent action recorded for an agent turn typed as free text.
FREE_TEXT_ACTION = "custom"
#: Agent action implied by a knowledge-base result.
QUERY_ACTION = "query"

Trigger = str  # "customer_turn" | "kb_result" | "task_selected"

# A complaint lexicon: single words (or word stems), and phrases anchored on a word.
_COMPLAINT_WORDS = frozenset((
    "again", "ridiculous", "unacceptable", "terrible", "awful", "horrible", "worst", "useless",
    "angry", "upset", "manager", "supervisor", "stupid", "idiot", "hate",
))
_COMPLAINT_STEMS = ("frustrat", "annoy", "complain")
_COMPLAINT_ANCHORS = frozenset(("not", "doesn't", "doesnt", "still", "waste", "cancel", "you're", "you"))
_COMPLAINT_PHRASES = re.compile(
    r"\b(?:not (?:working|happy|helpful|what i (?:asked|wanted))|doesn'?t work|still (?:not|no|waiting)"
    r"|waste of (?:my )?time|cancel (?:my|the) (?:account|subscription)|you(?:'re| are) (?:wrong|stupid))\b"
)


def is_complaint(text: str) -> bool:
    """A customer turn that expresses a complaint or frustration (lexicon match)."""
    words = tokens(text)
    if not _COMPLAINT_WORDS.isdisjoint(words):
        return True
    if any(w.startswith(_COMPLAINT_STEMS) for w in words):
        return True
    return not _COMPLAINT_ANCHORS.isdisjoint(words) and _COMPLAINT_PHRASES.search(text.lower()) is not None


def word_count(text: str) -> int:
    return len(text.split())


@dataclass(frozen=True, slots=True)
class Features:
    """What the scorer and the guardrails know at one prediction point."""

    conversation_id: str
    event_id: str
    """The event this prediction point follows."""
    agent_id: str
    """The agent handling the conversation (agents have their own habits)."""
    channel: str
    trigger: Trigger
    task: str | None
    tasks: tuple[str, ...]
    prev_actions: tuple[str, ...]
    """The agent's recent actions, oldest first (at most 3)."""
    actions_so_far: tuple[str, ...]
    """Every distinct action the agent took in this conversation, in first-use order."""
    kb_api: str | None
    kb_total_items: int | None
    kb_item: tuple[tuple[str, object], ...]
    """The latest knowledge-base item as sorted (field, value) pairs."""
    last_customer_text: str
    first_customer_text: str
    """The customer's first turn (it usually states what they want)."""
    history: tuple[tuple[str, str], ...]
    """Recent turns as (speaker, text), oldest first."""
    turns_60s_customer: int
    turns_60s_agent: int
    agent_talk_share_60s: float
    silence_s: float
    complaints: int
    n_turns: int
    queries: int = 0
    """Knowledge-base results so far."""
    out_of_scope: int = 0
    """Times the agent answered out_of_scope so far."""

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


# -- model inputs -------------------------------------------------------------
# Sparse, named inputs of the scoring models, built from ``Features`` alone.
# Training (models/train.py) and serving (operators/scoring.py) both call these.

_TOKEN = re.compile(r"[a-z0-9']+")
_DIGIT = re.compile(r"\d")
_MASKED_NUMBER = re.compile(r"\[(?:ACCOUNT_NUMBER|PIN|PHONE|CARD_NUMBER|SSN)\]")  # masked digits still count
_CAPITALISED = re.compile(r"\s[A-Z]")  # a capitalised word after the first: a name, a place
_TIME = re.compile(r"\b\d{1,2}(?::\d{2})?\s*(?:am|pm|a\.m\.|p\.m\.)|\bo'?clock\b|\bnoon\b", re.IGNORECASE)
_SHORT_VALUE = 24


@lru_cache(maxsize=65_536)
def tokens(text: str) -> tuple[str, ...]:
    """Lower-case word tokens (cached: a turn is tokenised once, not per prediction)."""
    return tuple(_TOKEN.findall(text.lower()))


def _customer_run(features: Features) -> list[str]:
    """The customer's turns since the agent last spoke, oldest first."""
    run: list[str] = []
    for speaker, text in reversed(features.history):
        if speaker != "customer":
            break
        run.append(text)
    return run[::-1]


_FLOW_START = "hello"


def flow_next(graph: dict[str, str], done: frozenset[str] | set[str], limit: int = 40) -> str:
    """The first step of a task's flow graph the agent has not taken yet.

    Walks the graph from ``hello``; steps named ``query*`` (lookups) count as
    ``query``, and a branch on the customer's yes or no follows ``yes``.
    """
    node = _FLOW_START
    for _ in range(limit):
        if node.startswith("query"):
            node_action = QUERY_ACTION
        else:
            node_action = node
        if node_action not in done and node not in ("yes", "no"):
            return node_action
        nxt = graph.get(node) or graph.get("query_success" if node.startswith("query") else "yes")
        if nxt is None or nxt == node:
            return "-"
        node = nxt
    return "-"


class Words(NamedTuple):
    """Inputs named ``prefix=key``, one per key, each valued 1.0.

    Kept as (prefix, keys) so a vectoriser maps the keys straight to indices
    without building the names; ``names()`` spells them out.
    """

    prefix: str
    keys: tuple[str, ...]

    def names(self) -> list[str]:
        return [f"{self.prefix}={k}" for k in self.keys]


Part = Union[tuple[str, ...], Words]
"""A tuple of input names, or a ``Words``."""


@lru_cache(maxsize=65_536)
def unique_tokens(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(tokens(text)))


@lru_cache(maxsize=65_536)
def _bigrams(text: str) -> tuple[str, ...]:
    return tuple(f"{a}_{b}" for a, b in pairwise(tokens(text)))


@lru_cache(maxsize=65_536)
def _text_flags(text: str, prev: str) -> tuple[str, ...]:
    names = [f"words={min(len(tokens(text)), 12)}"]
    if _CAPITALISED.search(text):
        names.append("capitalised")
    if _TIME.search(text):
        names += ["time_of_day", f"prev_time={prev}"]
    if _DIGIT.search(text) or _MASKED_NUMBER.search(text):
        names += ["has_digit", f"prev_digit={prev}"]
    return tuple(names)


def _text_inputs(text: str, prev: str) -> list[Part]:
    """Inputs from the customer's latest turn: its words, word pairs and cues."""
    return [Words("w", unique_tokens(text)), Words("bigram", _bigrams(text)), _text_flags(text, prev)]


class FlowGraphs:
    """The tasks' flow graphs (action -> next action), with cached walks."""

    def __init__(self, graphs: dict[str, dict[str, str]]) -> None:
        self.graphs = graphs

    def successor(self, task: str, action: str) -> str:
        return self.graphs.get(task, {}).get(action, "-")

    @lru_cache(maxsize=65_536)  # noqa: B019 - instances live as long as their model
    def next_step(self, task: str, done: frozenset[str]) -> str:
        return flow_next(self.graphs.get(task, {}), done)


@lru_cache(maxsize=65_536)
def _state_inputs(
    flows: FlowGraphs,
    task: str,
    prev: str,
    prev2: str,
    trigger: str,
    kb: str,
) -> tuple[str, ...]:
    """Inputs from the conversation's state (cached: such states recur across conversations)."""
    return (
        "bias",
        f"trigger={trigger}",
        f"task={task}",
        f"prev={prev}",
        f"prev2={prev2}|{prev}",
        f"task_prev={task}|{prev}",
        f"prev_trigger_kb={prev}|{trigger}|{kb}",
        f"kb={kb}",
        f"successor={flows.successor(task, prev)}",
    )


@lru_cache(maxsize=65_536)
def _agent_inputs(agent: str, prev: str, trigger: str, kb: str) -> tuple[str, ...]:
    """The agent's habits: which actions this agent tends to take, and after what."""
    return (f"agent={agent}", f"agent_prev={agent}|{prev}", f"agent_trigger={agent}|{trigger}|{kb}")


@lru_cache(maxsize=4_096)
def _count_inputs(turns: int, queries: int, channel: str) -> tuple[str, ...]:
    return (f"turns={turns}", f"queries={queries}", f"channel={channel}")


@lru_cache(maxsize=65_536)
def _progress_inputs(
    flows: FlowGraphs, task: str, tasks: tuple[str, ...], actions: tuple[str, ...], trigger: str, kb: str
) -> tuple[str, ...]:
    """Inputs from how far the agent got: actions taken, the flows' next steps."""
    done = frozenset(actions)
    next_step = flows.next_step(task, done)
    names = [f"flow_next={next_step}", f"flow_next_trigger={next_step}|{trigger}|{kb}"]
    for name in tasks:
        names.append(f"available={name}")
        if name != task:
            names.append(f"other_flow_next={flows.next_step(name, done)}")
    names += [f"done={a}" for a in actions]
    names += [f"done={a}|{task}" for a in actions]
    return tuple(names)


@lru_cache(maxsize=16_384)
def _kb_inputs(api: str, total: int | None, item: tuple, prev: str) -> tuple[str, ...]:
    names = [f"kb_api={api}", f"kb_items={'message' if total is None or total < 0 else min(total, 5)}"]
    for key, value in item:
        names.append(f"kb_field={key}")
        if isinstance(value, bool) or (isinstance(value, str) and len(value) <= _SHORT_VALUE):
            shown = str(value).lower()
            names += [f"kb_value={key}={shown}", f"prev_kb_value={prev}|{key}={shown}"]
        elif isinstance(value, str):
            names += [f"kb_word={w}" for w in unique_tokens(value)]
    return tuple(names)


_NO_WORDS = ("words=0",)


def action_input_parts(features: Features, flows: FlowGraphs) -> list[Part]:
    """The next-action model's named inputs, in parts (each valued 1.0).

    The task and its flow graph (the successor of the agent's previous action
    and the first step not yet taken), the agent's recent and earlier actions,
    what triggered the prediction, the knowledge-base result (its fields and
    short values), the customer's words since the agent last spoke (alone and
    with the previous action) and what the customer said before.

    Name tuples are cached and returned as the same objects for the same
    arguments, so a vectoriser can remember their indices. A name may appear
    in more than one part; it counts once.
    """
    prev_actions = features.prev_actions
    prev = prev_actions[-1] if prev_actions else "-"
    task = features.task or "-"
    kb = features.kb_state
    parts = [
        _state_inputs(
            flows, task, prev, prev_actions[-2] if len(prev_actions) > 1 else "-", features.trigger, kb
        ),
        _count_inputs(min(features.n_turns, 20), min(features.queries, 6), features.channel),
        _agent_inputs(features.agent_id, prev, features.trigger, kb),
        _progress_inputs(flows, task, features.tasks, features.actions_so_far, features.trigger, kb),
    ]
    run = _customer_run(features)
    if run:
        parts += _text_inputs(run[-1], prev)
        parts += [Words("earlier_w", unique_tokens(text)) for text in run[:-1]]
    else:
        parts.append(_NO_WORDS)
    earlier = features.history[: len(features.history) - len(run)]
    parts += [Words("said", unique_tokens(text)) for speaker, text in earlier if speaker == "customer"]
    if features.first_customer_text:
        parts.append(Words("first_w", unique_tokens(features.first_customer_text)))
    if features.kb_api is not None:
        parts.append(_kb_inputs(features.kb_api, features.kb_total_items, features.kb_item, prev))
    return parts


def part_names(part: Part) -> list[str] | tuple[str, ...]:
    return part.names() if isinstance(part, Words) else part


def action_inputs(features: Features, flows: FlowGraphs) -> dict[str, float]:
    """The next-action model's named inputs, all valued 1.0 (see ``action_input_parts``)."""
    return dict.fromkeys(chain.from_iterable(map(part_names, action_input_parts(features, flows))), 1.0)


class Lexicon:
    """Word valences (VADER's list) and the per-text sentiment figures they give, cached."""

    def __init__(self, valences: dict[str, float], cache_size: int = 65_536) -> None:
        self.valences = valences
        self._cache: dict[str, dict[str, float]] = {}
        self._recent: dict[tuple[str, ...], dict[str, float]] = {}
        self._cache_size = cache_size

    def figures(self, text: str) -> dict[str, float]:
        """Sentiment, shouting and complaint figures of one turn, each in [-1, 1]."""
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        words = tokens(text)
        valences = [self.valences[w] for w in words if w in self.valences]
        negative = [v for v in valences if v < 0]
        letters = sum(map(str.isalpha, text))
        out = {
            "negative_words": min(len(negative), 5) / 5,
            "most_negative": -min(negative, default=0.0) / 4,
            "valence_sum": max(-1.0, min(1.0, sum(valences) / 8)),
            "caps": sum(map(str.isupper, text)) / letters if letters >= 4 else 0.0,
            "exclaims": min(text.count("!"), 5) / 5,
            "questions": min(text.count("?"), 5) / 5,
            "complaint_now": 1.0 if is_complaint(text) else 0.0,
        }
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[text] = out
        return out

    def recent_figures(self, texts: tuple[str, ...]) -> dict[str, float]:
        """The figures aggregated over several turns (cached by the turns)."""
        cached = self._recent.get(texts)
        if cached is None:
            if len(self._recent) >= self._cache_size:
                self._recent.clear()
            cached = self._recent[texts] = _recent(self, texts)
        return cached


def _recent(lexicon: Lexicon, texts: tuple[str, ...]) -> dict[str, float]:
    recent = [lexicon.figures(t) for t in texts]
    return {
        "recent_most_negative": max((r["most_negative"] for r in recent), default=0.0),
        "recent_negative_turns": min(sum(r["valence_sum"] < 0 for r in recent), 5) / 5,
        "recent_caps": max((r["caps"] for r in recent), default=0.0),
        "recent_exclaiming_turns": min(sum(r["exclaims"] > 0 for r in recent), 5) / 5,
        "recent_complaint_turns": min(sum(r["complaint_now"] > 0 for r in recent), 5) / 5,
    }


def risk_input_parts(features: Features, lexicon: Lexicon) -> tuple[dict[str, float], list[Words]]:
    """The escalation model's inputs: valued figures, and words (valued 1.0).

    Sentiment of the customer's latest turn from a valence lexicon (VADER's
    word list), shouting, complaints so far, the agent's out-of-scope answers,
    repetition, the conversation's length and silence, and the words; and the
    same signals over the customer's recent turns, since frustration builds up.
    """
    run = _customer_run(features)
    text = run[-1] if run else features.last_customer_text
    customer_texts = tuple(t for s, t in features.history if s == "customer")
    values = {
        "bias": 1.0,
        "complaints": min(features.complaints, 5) / 5,
        "out_of_scope": min(features.out_of_scope, 5) / 5,
        "repeated": 1.0 if len(customer_texts) >= 2 and customer_texts[-1] in customer_texts[:-1] else 0.0,
        "turns": min(features.n_turns, 40) / 40,
        "silence": min(features.silence_s, 120) / 120,
        f"trigger={features.trigger}": 1.0,
        **lexicon.recent_figures(customer_texts),
        **lexicon.figures(text),
    }
    words = [Words("w", unique_tokens(text))]
    words += [Words("recent_w", unique_tokens(t)) for t in customer_texts]
    return values, words


def risk_inputs(features: Features, lexicon: Lexicon) -> dict[str, float]:
    """The escalation model's named inputs (see ``risk_input_parts``)."""
    values, words = risk_input_parts(features, lexicon)
    out = dict(values)
    for part in words:
        out.update(dict.fromkeys(part.names(), 1.0))
    return out
