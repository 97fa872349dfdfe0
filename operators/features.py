"""The features a prediction point carries: one code path for training and serving.

``Features`` is built only by ``ConversationTracker`` (operators/conversation.py)
from the windowed conversation state. Training replays STAR dialogues through
that same tracker, so a model never sees inputs the stream cannot produce.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain, pairwise
from typing import Any, NamedTuple

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
_COMPLAINT_STEMS = ("frustrat", "annoy", "complain")  # spelled out in is_complaint's first test
_COMPLAINT_ANCHORS = frozenset(("not", "doesn't", "doesnt", "still", "waste", "cancel", "you're", "you"))
_COMPLAINT_PHRASES = re.compile(
    r"\b(?:not (?:working|happy|helpful|what i (?:asked|wanted))|doesn'?t work|still (?:not|no|waiting)"
    r"|waste of (?:my )?time|cancel (?:my|the) (?:account|subscription)|you(?:'re| are) (?:wrong|stupid))\b"
)


@lru_cache(maxsize=65_536)
def is_complaint(text: str) -> bool:
    """A customer turn that expresses a complaint or frustration (lexicon match).

    Cached: the conversation tracker tests each customer turn, and the
    escalation inputs test it again.
    """
    words = tokens(text)
    if not _COMPLAINT_WORDS.isdisjoint(words):
        return True
    lowered = text.lower()
    # A stem can only start a word if it occurs in the text at all: one scan of
    # the text instead of a test per word.
    if ("frustrat" in lowered or "annoy" in lowered or "complain" in lowered) and any(
        w.startswith(_COMPLAINT_STEMS) for w in words
    ):
        return True
    return not _COMPLAINT_ANCHORS.isdisjoint(words) and _COMPLAINT_PHRASES.search(lowered) is not None


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
    """Every distinct action the agent took in this conversation, in first-use order (each once)."""
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


# ASCII text is tokenised by one byte translation (upper to lower case, every
# byte outside [a-z0-9'] to a space) and a split: the same tokens as
# ``_TOKEN.findall(text.lower())`` at a lower cost. Other text takes the regex.
_TOKEN_BYTES = bytes(
    # 0x27 is the apostrophe.
    (c | 0x20) if chr(c).isalpha() else c if chr(c).isdigit() or c == 0x27 else 0x20 for c in range(128)  # noqa: PLR2004
) + b" " * 128
_ASCII_LETTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ASCII_UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@lru_cache(maxsize=65_536)
def tokens(text: str) -> tuple[str, ...]:
    """Lower-case word tokens (cached: a turn is tokenised once, not per prediction)."""
    if text.isascii():
        return tuple(text.encode().translate(_TOKEN_BYTES).decode().split())
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


def flow_path(graph: dict[str, str], limit: int = 40) -> tuple[str | None, ...]:
    """The actions along a task's flow graph, walked from ``hello`` (None for a yes/no branch node).

    Steps named ``query*`` (lookups) count as ``query``, and a branch on the
    customer's yes or no follows ``yes``. The walk does not depend on what
    the agent did, so the next step is the first action on it not taken yet
    (``FlowGraphs.next_step``).
    """
    path: list[str | None] = []
    node = _FLOW_START
    for _ in range(limit):
        is_query = node.startswith("query")
        path.append(None if node in ("yes", "no") else QUERY_ACTION if is_query else node)
        nxt = graph.get(node) or graph.get("query_success" if is_query else "yes")
        if nxt is None or nxt == node:
            break
        node = nxt
    return tuple(path)




TextPart = tuple[str, tuple[str, ...]]
"""``(prefix, texts)``: the inputs ``prefix=word``, one per distinct word of
the texts, or ``bigram=a_b`` per word pair when the prefix is ``bigram``.
Parts carry texts, not their words, so a vectoriser maps each text once and
then looks its indices up by the text."""


#: The prefixes of text parts whose keys are the text's distinct words.
WORD_PREFIXES = ("w", "earlier_w", "said", "first_w", "recent_w")


def text_keys(prefix: str, text: str) -> tuple[str, ...]:
    """The keys a text names under a prefix (its distinct words, or its word pairs)."""
    return _bigrams(text) if prefix == "bigram" else unique_tokens(text)


def text_part_names(part: TextPart) -> list[str]:
    prefix, texts = part
    return list(dict.fromkeys(f"{prefix}={k}" for text in texts for k in text_keys(prefix, text)))


@lru_cache(maxsize=65_536)
def unique_tokens(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(tokens(text)))


@lru_cache(maxsize=65_536)
def _bigrams(text: str) -> tuple[str, ...]:
    words = tokens(text)
    return tuple([a + "_" + b for a, b in pairwise(words)])


@lru_cache(maxsize=65_536)
def _text_cues(text: str) -> tuple[int, bool, bool, bool]:
    """(word count up to 12, capitalised, time of day, has a digit) of a text."""
    lowered = text.lower()
    has_digit = _DIGIT.search(text) is not None
    # _TIME needs a digit, "clock" or "noon": skip the search when none is there.
    has_time = (has_digit or "clock" in lowered or "noon" in lowered) and _TIME.search(text) is not None
    return (
        min(len(tokens(text)), 12),
        _CAPITALISED.search(text) is not None,
        has_time,
        has_digit or ("[" in text and _MASKED_NUMBER.search(text) is not None),
    )


@lru_cache(maxsize=4_096)
def _cue_inputs(words: int, capitalised: bool, has_time: bool, has_digit: bool, prev: str) -> tuple[str, ...]:
    """Cues of the customer's latest text, some with the agent's previous action.

    Cached by the cues, not the text: every text with the same cues after the
    same action shares one tuple (and a vectoriser its indices).
    """
    names = [f"words={words}"]
    if capitalised:
        names.append("capitalised")
    if has_time:
        names += ["time_of_day", f"prev_time={prev}"]
    if has_digit:
        names += ["has_digit", f"prev_digit={prev}"]
    return tuple(names)


class FlowGraphs:
    """The tasks' flow graphs (action -> next action), with cached walks."""

    def __init__(self, graphs: dict[str, dict[str, str]]) -> None:
        self.graphs = graphs
        self._paths = {task: flow_path(graph) for task, graph in graphs.items()}

    def successor(self, task: str, action: str) -> str:
        return self.graphs.get(task, {}).get(action, "-")

    def next_step(self, task: str, done: frozenset[str]) -> str:
        """The first step of the task's flow the agent has not taken yet (``-``: none), along its walk."""
        path = self._paths.get(task)
        if path is None:
            path = self._paths[task] = flow_path({})
        for action in path:
            if action is not None and action not in done:
                return action
        return "-"


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


# Inputs are cached by the fewest arguments they depend on, so that parts of a
# new state (a new path through a task, a new knowledge-base item) are still
# mostly cache hits.


@lru_cache(maxsize=65_536)
def _flow_inputs(
    flows: FlowGraphs, task: str, tasks: tuple[str, ...], actions: tuple[str, ...], trigger: str, kb: str
) -> tuple[str, ...]:
    """How far the agent got: the first step of each task's flow not taken yet.

    Paths through a task are many, their next steps few: the inputs come
    from ``_next_step_inputs``, so equal next steps share one tuple.
    """
    done = frozenset(actions)
    others = tuple([flows.next_step(name, done) for name in tasks if name != task])
    return _next_step_inputs(flows.next_step(task, done), others, trigger, kb)


@lru_cache(maxsize=16_384)
def _next_step_inputs(next_step: str, others: tuple[str, ...], trigger: str, kb: str) -> tuple[str, ...]:
    names = [f"flow_next={next_step}", f"flow_next_trigger={next_step}|{trigger}|{kb}"]
    names += [f"other_flow_next={step}" for step in others]
    return tuple(dict.fromkeys(names))


@lru_cache(maxsize=4_096)
def _available_inputs(tasks: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([f"available={name}" for name in tasks]))


@lru_cache(maxsize=16_384)
def _done_inputs(action: str, task: str) -> tuple[str, ...]:
    """An action the agent took, alone and with the task."""
    return (f"done={action}", f"done={action}|{task}")


def _short(value: object) -> str | None:
    """A short knowledge-base value as an input key, else None."""
    if isinstance(value, bool) or (isinstance(value, str) and len(value) <= _SHORT_VALUE):
        return str(value).lower()
    return None


@lru_cache(maxsize=16_384)
def _kb_inputs(api: str, total: int | None, item: tuple) -> tuple[str, ...]:
    """The knowledge-base result: its API, size, fields, short values and the words of long ones."""
    names = [f"kb_api={api}", f"kb_items={'message' if total is None or total < 0 else min(total, 5)}"]
    for key, value in item:
        names.append(f"kb_field={key}")
        shown = _short(value)
        if shown is not None:
            names.append(f"kb_value={key}={shown}")
        elif isinstance(value, str):
            names += [f"kb_word={w}" for w in unique_tokens(value)]
    return tuple(dict.fromkeys(names))


@lru_cache(maxsize=16_384)
def _kb_prev_inputs(item: tuple, prev: str) -> tuple[str, ...]:
    """The knowledge-base item's short values with the agent's previous action."""
    return tuple([
        f"prev_kb_value={prev}|{key}={shown}" for key, value in item if (shown := _short(value)) is not None
    ])


_NO_WORDS = ("words=0",)


class NameParts(NamedTuple):
    """The cached functions behind ``action_name_parts`` and ``action_done_parts``, and the wordless part.

    ``NAMES`` gives name tuples. A vectoriser may pass its own: functions of
    the same arguments that give the indices of the same names, cached by
    those arguments (see ``models.scorer.Vectorizer``).
    """

    state: Callable[..., Any]
    counts: Callable[..., Any]
    agent: Callable[..., Any]
    flow: Callable[..., Any]
    available: Callable[..., Any]
    cues: Callable[..., Any]
    kb: Callable[..., Any]
    kb_prev: Callable[..., Any]
    done: Callable[..., Any]
    no_words: Any


#: The name tuples of the next-action inputs.
NAMES = NameParts(
    _state_inputs, _count_inputs, _agent_inputs, _flow_inputs, _available_inputs, _cue_inputs,
    _kb_inputs, _kb_prev_inputs, _done_inputs, _NO_WORDS,
)


def action_input_parts(features: Features, flows: FlowGraphs) -> tuple[list[tuple[str, ...]], list[TextPart]]:
    """The next-action model's named inputs (each valued 1.0): name tuples and text parts.

    The task and its flow graph (the successor of the agent's previous action
    and the first step not yet taken), the agent's recent and earlier actions,
    what triggered the prediction, the knowledge-base result (its fields and
    short values), the customer's words and word pairs since the agent last
    spoke (and cues with the previous action) and what the customer said before.

    No name appears twice among the name tuples, nor in more than one part:
    a vectoriser concatenates the parts' indices without checking (only the
    words of several texts in one text part may repeat).
    """
    last, texts = action_text_parts(features)
    names = action_name_parts(features, flows, last)
    return names + action_done_parts(features.actions_so_far, features.task), texts


def action_done_parts(actions: tuple[str, ...], task: str | None, parts: NameParts | None = None) -> list:
    """The actions the agent took, alone and with the task: a part per action.

    A conversation's actions only grow, so a vectoriser may keep the parts of
    its earlier actions and add those of new ones.
    """
    done = (parts or NAMES).done
    task = task or "-"
    return [done(action, task) for action in actions]


def action_text_parts(features: Features) -> tuple[str | None, list[TextPart]]:
    """What the next-action inputs take from the turns, and nothing else.

    Returns the customer's latest text since the agent last spoke (None if
    the agent spoke last) and the text parts. They depend on ``history`` and
    ``first_customer_text`` alone, so a vectoriser may remember them by those
    (a knowledge-base result or a task choice adds a point, not a turn).
    """
    run = _customer_run(features)
    texts: list[TextPart] = []
    last = None
    if run:
        last = run[-1]
        texts += [("w", (last,)), ("bigram", (last,))]
        if len(run) > 1:
            texts.append(("earlier_w", tuple(run[:-1])))
    earlier = features.history[: len(features.history) - len(run)]
    said = tuple([text for speaker, text in earlier if speaker == "customer"])
    if said:
        texts.append(("said", said))
    if features.first_customer_text:
        texts.append(("first_w", (features.first_customer_text,)))
    return last, texts


def action_name_parts(
    features: Features, flows: FlowGraphs, last: str | None, parts: NameParts | None = None
) -> list:
    """The next-action inputs from the conversation's state but its actions (``action_done_parts``).

    ``last`` is the text ``action_text_parts`` gives. ``parts`` defaults to
    ``NAMES`` (name tuples).
    """
    state, counts, agent, flow, available, cues, kb_part, kb_prev, _, no_words = parts or NAMES
    prev_actions = features.prev_actions
    prev = prev_actions[-1] if prev_actions else "-"
    task = features.task or "-"
    kb = features.kb_state
    trigger = features.trigger
    n_turns, queries = features.n_turns, features.queries  # capped below as min() would, without its call
    names = [
        state(flows, task, prev, prev_actions[-2] if len(prev_actions) > 1 else "-", trigger, kb),
        # The caps of the counts features.
        counts(20 if n_turns > 20 else n_turns, 6 if queries > 6 else queries, features.channel),  # noqa: PLR2004
        agent(features.agent_id, prev, trigger, kb),
        flow(flows, task, features.tasks, features.actions_so_far, trigger, kb),
        available(features.tasks),
        no_words if last is None else cues(*_text_cues(last), prev),
    ]
    if features.kb_api is not None:
        names.append(kb_part(features.kb_api, features.kb_total_items, features.kb_item))
        names.append(kb_prev(features.kb_item, prev))
    return names


def action_inputs(features: Features, flows: FlowGraphs) -> dict[str, float]:
    """The next-action model's named inputs, all valued 1.0 (see ``action_input_parts``)."""
    names, texts = action_input_parts(features, flows)
    return dict.fromkeys(
        chain(chain.from_iterable(names), chain.from_iterable(map(text_part_names, texts))), 1.0
    )


class Memo(dict):
    """A dict of recent entries, for caches on the hot path.

    Look up with ``get`` (the plain dict method, as fast as a dict); on a
    miss, ``recall`` finds the entry in the previous generation and brings it
    back. ``keep`` adds an entry; once ``size`` entries are held they become
    the previous generation and the one before is dropped, so what a live
    conversation still uses survives and memory stays bounded.
    """

    __slots__ = ("size", "previous")

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.previous: dict = {}

    def recall(self, key):
        value = self.previous.get(key)
        if value is not None:
            self.keep(key, value)
        return value

    def keep(self, key, value):
        if len(self) >= self.size:
            self.previous = dict(self)
            self.clear()
        self[key] = value
        return value


#: The sentiment figures of one turn, in the order ``Lexicon.values`` gives them.
FIGURES = ("negative_words", "most_negative", "valence_sum", "caps", "exclaims", "questions", "complaint_now")
#: The figures over the customer's recent turns, in the order ``Lexicon.recent_values`` gives them.
RECENT_FIGURES = (
    "recent_most_negative", "recent_negative_turns", "recent_caps", "recent_exclaiming_turns",
    "recent_complaint_turns",
)


class Lexicon:
    """Word valences (VADER's list) and the per-text sentiment figures they give, cached.

    Figures come as tuples in a fixed order (``FIGURES``, ``RECENT_FIGURES``):
    a vectoriser knows each one's input index, so serving builds no dicts.
    """

    def __init__(self, valences: dict[str, float], cache_size: int = 65_536) -> None:
        self.valences = valences
        self._cache = Memo(cache_size)  # text -> (figures, what recent_values aggregates)
        self._recent = Memo(cache_size)  # texts -> their aggregate

    def figures(self, text: str) -> dict[str, float]:
        """Sentiment, shouting and complaint figures of one turn, each in [-1, 1]."""
        return dict(zip(FIGURES, self.values(text), strict=True))

    def values(self, text: str) -> tuple[float, ...]:
        """``figures`` as a tuple in ``FIGURES`` order."""
        return self._entry(text)[0]

    def _entry(self, text: str) -> tuple[tuple[float, ...], tuple[float, float, bool, bool, bool]]:
        """A text's figures and what ``recent_values`` aggregates of them, cached."""
        return self._cache.get(text) or self._cache.recall(text) or self._compute(text)

    def _compute(self, text: str) -> tuple[tuple[float, ...], tuple[float, float, bool, bool, bool]]:
        known = self.valences
        valences = [known[w] for w in tokens(text) if w in known]
        negative = [v for v in valences if v < 0] if valences else valences
        if text.isascii():  # count by deleting bytes: exact for ASCII, a tenth of the cost
            raw = text.encode()
            letters = len(raw) - len(raw.translate(None, _ASCII_LETTERS))
            # Caps are judged from 4 letters on.
            upper = len(raw) - len(raw.translate(None, _ASCII_UPPER)) if letters >= 4 else 0  # noqa: PLR2004
        else:
            letters = sum(map(str.isalpha, text))
            # Caps are judged from 4 letters on.
            upper = sum(map(str.isupper, text)) if letters >= 4 else 0  # noqa: PLR2004
        most_negative = -min(negative, default=0.0) / 4
        valence_sum = max(-1.0, min(1.0, sum(valences) / 8))
        caps = upper / letters if letters >= 4 else 0.0  # noqa: PLR2004 - caps are judged from 4 letters on
        exclaims = min(text.count("!"), 5) / 5
        complaint = is_complaint(text)
        out = (
            min(len(negative), 5) / 5,
            most_negative,
            valence_sum,
            caps,
            exclaims,
            min(text.count("?"), 5) / 5,
            1.0 if complaint else 0.0,
        )
        # What ``recent_values`` aggregates.
        brief = (most_negative, caps, valence_sum < 0, exclaims > 0, complaint)
        return self._cache.keep(text, (out, brief))

    def recent_figures(self, texts: tuple[str, ...]) -> dict[str, float]:
        """The figures aggregated over several turns."""
        return dict(zip(RECENT_FIGURES, self.recent_values(texts), strict=True))

    def recent_values(self, texts: tuple[str, ...]) -> tuple[float, ...]:
        """``recent_figures`` as a tuple in ``RECENT_FIGURES`` order (cached by the turns)."""
        return (
            self._recent.get(texts)
            or self._recent.recall(texts)
            or self._recent.keep(texts, self._aggregate(texts))
        )

    def _aggregate(self, texts: tuple[str, ...]) -> tuple[float, ...]:
        briefs = [self._entry(text)[1] for text in texts]
        most_negative, caps, negative, exclaiming, complaining = (
            zip(*briefs, strict=True) if briefs else ((),) * 5
        )
        return (
            max(0.0, *most_negative),
            min(sum(negative), 5) / 5,
            max(0.0, *caps),
            min(sum(exclaiming), 5) / 5,
            min(sum(complaining), 5) / 5,
        )


def risk_input_parts(features: Features, lexicon: Lexicon) -> tuple[dict[str, float], list[TextPart]]:
    """The escalation model's inputs: valued figures, and words (valued 1.0).

    Sentiment of the customer's latest turn from a valence lexicon (VADER's
    word list), shouting, complaints so far, the agent's out-of-scope answers,
    repetition, the conversation's length and silence, and the words; and the
    same signals over the customer's recent turns, since frustration builds up.
    """
    values, texts = risk_text_inputs(features, lexicon)
    return {**risk_state_inputs(features), **values}, texts


#: The valued escalation inputs from the conversation's state, in ``risk_state_values`` order.
RISK_STATE_NAMES = ("bias", "complaints", "out_of_scope", "turns", "silence")


def risk_state_values(features: Features) -> tuple[float, ...]:
    """The escalation inputs from the conversation's state, in ``RISK_STATE_NAMES`` order.

    The state also gives the input ``trigger=<trigger>``, valued 1.0.
    """
    # Each capped as min(value, cap) would, without its call (this runs per point).
    complaints, out_of_scope, n_turns, silence = (
        features.complaints, features.out_of_scope, features.n_turns, features.silence_s
    )
    return (
        1.0,
        (5 if complaints > 5 else complaints) / 5,  # noqa: PLR2004 - the caps of the risk state inputs
        (5 if out_of_scope > 5 else out_of_scope) / 5,  # noqa: PLR2004 - the caps of the risk state inputs
        (40 if n_turns > 40 else n_turns) / 40,  # noqa: PLR2004 - the caps of the risk state inputs
        (120 if silence > 120 else silence) / 120,  # noqa: PLR2004 - the caps of the risk state inputs
    )


def risk_state_inputs(features: Features) -> dict[str, float]:
    """The escalation inputs from the conversation's state, named."""
    return {**dict(zip(RISK_STATE_NAMES, risk_state_values(features), strict=True)),
            f"trigger={features.trigger}": 1.0}


#: The valued escalation inputs from the turns, in ``risk_text_values`` order.
RISK_TEXT_NAMES = ("repeated", *RECENT_FIGURES, *FIGURES)


def risk_text_values(features: Features, lexicon: Lexicon) -> tuple[tuple[float, ...], list[TextPart]]:
    """The escalation inputs from the turns, in ``RISK_TEXT_NAMES`` order, and the text parts.

    They depend on ``history`` and ``last_customer_text`` alone.
    """
    run = _customer_run(features)
    text = run[-1] if run else features.last_customer_text
    customer_texts = tuple([t for s, t in features.history if s == "customer"])
    # A repeat needs two customer turns.
    repeated = 1.0 if len(customer_texts) >= 2 and customer_texts[-1] in customer_texts[:-1] else 0.0  # noqa: PLR2004
    values = (repeated, *lexicon.recent_values(customer_texts), *lexicon.values(text))
    return values, [("w", (text,)), ("recent_w", customer_texts)]


def risk_text_inputs(features: Features, lexicon: Lexicon) -> tuple[dict[str, float], list[TextPart]]:
    """``risk_text_values``, named."""
    values, texts = risk_text_values(features, lexicon)
    return dict(zip(RISK_TEXT_NAMES, values, strict=True)), texts


def risk_inputs(features: Features, lexicon: Lexicon) -> dict[str, float]:
    """The escalation model's named inputs (see ``risk_input_parts``)."""
    values, texts = risk_input_parts(features, lexicon)
    out = dict(values)
    for part in texts:
        out.update(dict.fromkeys(text_part_names(part), 1.0))
    return out
