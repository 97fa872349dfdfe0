"""The re-ranker's candidates and features: one path for training, evaluation and the job.

``candidates(index, turns)`` takes the conversation so far (``(speaker, text)``
pairs, oldest first, the customer's question last) and returns the passages
worth ranking and a row of ``FEATURES`` for each:

- **what the customer asks**: BM25 of the passage for the customer's last
  turn, all their turns and the turn before; of its heading; of its article
  and the article's title, with the article's rank;
- **where the conversation is grounded**: the agent answers from the
  knowledge base, so the passage that best matches the agent's last turn in
  each article marks where the conversation is; the distance of each
  candidate from it (the next answer is often there or just after), how
  well the passage before matches it, and whether an earlier agent turn
  was grounded in this passage;
- **the passage itself**: its place in the article and its length.

Candidates are every passage of the articles the whole conversation and the
customer's turns point to, and the best passages for the customer's last turn.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.knowledge.index import KnowledgeIndex
from models.knowledge.text import tokens

#: Bump when a feature changes meaning; the re-ranker records it.
FEATURE_SPEC = "knowledge-features-1"
#: Articles whose passages are all candidates: by the whole conversation, by the customer's turns.
TOP_ARTICLES_ALL, TOP_ARTICLES_CUSTOMER, TOP_ARTICLES_LAST = 5, 3, 3
#: Passages by the customer's last turn, wherever they are.
TOP_PASSAGES = 20
#: Earlier agent turns (before the last) whose grounding is looked up.
EARLIER_AGENT_TURNS = 2
#: Article ranks are capped here (an article outside the top is "far").
RANK_CAP = 20
_DELTAS = ((-99, -4), (-3, -3), (-2, -2), (-1, -1), (0, 0), (1, 1), (2, 2), (3, 3), (4, 6), (7, 999))

FEATURES: tuple[str, ...] = (
    "p_last", "p_all", "p_prev", "p_agent_last", "p_agent_all",
    "p_last_rel", "p_all_rel", "p_prev_rel", "p_agent_last_rel", "p_agent_all_rel",
    "heading_last", "heading_all",
    "article_history_rel", "article_history_rank", "article_customer_rel", "article_customer_rank",
    "article_last_rel", "article_last_rank", "article_agent_rel", "article_agent_rank",
    "title_last", "title_history",
    "position", "first_passage", "log_words", "customer_turns", "first_turn",
    "grounding_strength", *(f"delta_{lo}_{hi}" for lo, hi in _DELTAS),
    "before_agent_last_rel", "before_last_rel", "earlier_grounded", "coverage_last",
)


def _rel(values: np.ndarray, among: np.ndarray) -> np.ndarray:
    top = float(among.max()) if among.size else 0.0
    return values / top if top > 0 else np.zeros_like(values)


def _ranks(scores: np.ndarray) -> np.ndarray:
    """Each article's rank by ``scores`` (0 = best), capped at ``RANK_CAP``; 0-score articles get the cap."""
    order = np.argsort(-scores, kind="stable")
    ranks = np.full(scores.shape, RANK_CAP, dtype=np.float32)
    top = order[:RANK_CAP]
    ranks[top] = np.arange(len(top), dtype=np.float32)
    ranks[scores <= 0] = RANK_CAP
    return ranks


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    n = min(n, scores.size)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    top = np.argpartition(-scores, n - 1)[:n]
    return top[scores[top] > 0]


def _grounding(index: KnowledgeIndex, scores: np.ndarray, articles: np.ndarray) -> dict[int, int]:
    """Per article: the passage (index) that best matches ``scores`` there, if any matches."""
    out = {}
    for article in articles.tolist():
        first, end = int(index.article_first[article]), int(index.article_end[article])
        if end > first:
            best = first + int(np.argmax(scores[first:end]))
            if scores[best] > 0:
                out[article] = best
    return out


def candidates(index: KnowledgeIndex, turns: Sequence[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    """The passages to rank for the conversation ``turns`` and their ``FEATURES`` rows (float32)."""
    customer = [text for speaker, text in turns if speaker == "customer"]
    agent = [text for speaker, text in turns if speaker == "agent"]
    if not customer or not len(index):
        return np.zeros(0, dtype=np.int64), np.zeros((0, len(FEATURES)), dtype=np.float32)
    q_last = tokens(customer[-1])
    q_all = tokens(" ".join(customer))
    q_prev = tokens(customer[-2]) if len(customer) > 1 else ()
    q_agent = tokens(agent[-1]) if agent else ()
    q_agent_all = tokens(" ".join(agent))
    q_history = q_all + q_agent_all

    earlier_agent = [tokens(text) for text in agent[-1 - EARLIER_AGENT_TURNS:-1]]
    p_last, p_all, p_prev, p_agent, p_agent_all, *p_earlier = index.scores_many(
        "passages", [q_last, q_all, q_prev, q_agent, q_agent_all, *earlier_agent]
    )
    a_history, a_customer, a_last, a_agent = index.scores_many(
        "articles", [q_history, q_all, q_last, q_agent_all]
    )
    heading_last, heading_all = index.scores_many("headings", [q_last, q_all])
    titles_last, titles_history = index.scores_many("titles", [q_last, q_history])

    chosen = np.unique(
        np.concatenate(
            [
                _top(a_history, TOP_ARTICLES_ALL),
                _top(a_customer, TOP_ARTICLES_CUSTOMER),
                _top(a_last, TOP_ARTICLES_LAST),
            ]
        )
    )
    spans = [np.arange(index.article_first[a], index.article_end[a]) for a in chosen.tolist()]
    ids = np.unique(np.concatenate([*spans, _top(p_last, TOP_PASSAGES)]).astype(np.int64))
    if ids.size == 0:
        return ids, np.zeros((0, len(FEATURES)), dtype=np.float32)
    articles = index.passage_article[ids]
    in_articles = np.unique(articles)

    ground = _grounding(index, p_agent, in_articles) if agent else {}
    earlier: set[int] = set()
    for scores in p_earlier:
        earlier.update(_grounding(index, scores, in_articles).values())

    n = ids.size
    columns: dict[str, np.ndarray] = {}
    for name, vector in (("p_last", p_last), ("p_all", p_all), ("p_prev", p_prev),
                         ("p_agent_last", p_agent), ("p_agent_all", p_agent_all)):
        values = vector[ids]
        columns[name] = values
        columns[f"{name}_rel"] = _rel(values, values)
    columns["heading_last"], columns["heading_all"] = heading_last[ids], heading_all[ids]
    for name, vector in (
        ("history", a_history),
        ("customer", a_customer),
        ("last", a_last),
        ("agent", a_agent),
    ):
        columns[f"article_{name}_rel"] = _rel(vector[articles], vector)
        columns[f"article_{name}_rank"] = _ranks(vector)[articles]
    columns["title_last"], columns["title_history"] = titles_last[articles], titles_history[articles]
    ordinals = index.passage_ordinal[ids].astype(np.float32)
    sizes = (index.article_end[articles] - index.article_first[articles]).astype(np.float32)
    columns["position"] = ordinals / np.maximum(sizes, 1)
    columns["first_passage"] = (ordinals == 0).astype(np.float32)
    columns["log_words"] = np.log1p(index.passage_words[ids])
    columns["customer_turns"] = np.full(n, min(len(customer), 20), dtype=np.float32)
    columns["first_turn"] = np.full(n, float(not agent), dtype=np.float32)

    grounded = np.array([ground.get(int(a), -1) for a in articles.tolist()], dtype=np.int64)
    has_ground = grounded >= 0
    top_agent = float(p_agent.max()) if agent else 0.0
    columns["grounding_strength"] = np.where(
        has_ground, p_agent[np.maximum(grounded, 0)] / top_agent if top_agent > 0 else 0.0, 0.0
    )
    delta = ids - grounded
    for lo, hi in _DELTAS:
        columns[f"delta_{lo}_{hi}"] = (has_ground & (delta >= lo) & (delta <= hi)).astype(np.float32)
    before = ids - 1
    same_article = (ordinals > 0)
    before_safe = np.maximum(before, 0)
    columns["before_agent_last_rel"] = np.where(same_article, _rel(p_agent[before_safe], p_agent[ids]), 0.0)
    columns["before_last_rel"] = np.where(same_article, _rel(p_last[before_safe], p_last[ids]), 0.0)
    columns["earlier_grounded"] = np.array([float(i in earlier) for i in ids.tolist()], dtype=np.float32)
    wanted = set(q_last)
    columns["coverage_last"] = np.array(
        [len(wanted & index.passage_terms[i]) / len(wanted) if wanted else 0.0 for i in ids.tolist()],
        dtype=np.float32,
    )
    rows = np.stack([np.asarray(columns[name], dtype=np.float32) for name in FEATURES], axis=1)
    return ids, rows
