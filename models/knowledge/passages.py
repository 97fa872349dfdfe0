"""Cut articles into passages: the unit a card shows and retrieval ranks.

A passage is a run of consecutive sections of one article, at most
``max_words`` words long, that never crosses a heading: a heading section
starts a new passage, which carries it as its ``heading``. A single section
longer than ``max_words`` is cut into windows of ``max_words`` words. With
doc2dial's spans (sentence pieces and titles) and ``max_words=100`` this gives
passages of 63 words on average, each within one section of its page.
An article without sections is cut at blank lines first.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from schemas import Article

DEFAULT_MAX_WORDS = 100
_WORD = re.compile(r"\S+")
_GAP = re.compile(r"\n\s*\n")


@dataclass(frozen=True, slots=True)
class Passage:
    """Characters ``start`` to ``end`` of article ``article``'s body (its index in the knowledge base)."""

    article: int
    ordinal: int
    """Its position among the article's passages, from 0."""
    start: int
    end: int
    heading: str
    """The heading in force (the article's title before the first heading)."""


def _pieces(article: Article) -> Iterator[tuple[int, int, bool]]:
    """(start, end, is heading) of each section, or of each blank-line block without sections."""
    if article.sections:
        for section in article.sections:
            yield section.start, section.end, section.heading
        return
    position = 0
    for gap in _GAP.finditer(article.body):
        if gap.end() > position:
            yield position, gap.end(), False
            position = gap.end()
    if position < len(article.body):
        yield position, len(article.body), False


def _windows(body: str, start: int, end: int, max_words: int) -> Iterator[tuple[int, int]]:
    words = [m.span() for m in _WORD.finditer(body, start, end)]
    if len(words) <= max_words:
        yield start, end
        return
    for first in range(0, len(words), max_words):
        piece_start = start if first == 0 else words[first][0]
        last = first + max_words
        yield piece_start, words[last][0] if last < len(words) else end


def cut(article: Article, index: int, max_words: int = DEFAULT_MAX_WORDS) -> list[Passage]:
    """The passages of ``article`` (the ``index``-th of its knowledge base), in body order."""
    body = article.body
    spans: list[tuple[int, int, str]] = []
    heading = article.title
    current: list[int] | None = None  # [start, end, words]
    current_heading = heading
    for start, end, is_heading in _pieces(article):
        if is_heading and body[start:end].strip():
            heading = " ".join(body[start:end].split()).lstrip("#").strip()
        for piece_start, piece_end in _windows(body, start, end, max_words):
            words = len(_WORD.findall(body, piece_start, piece_end))
            if current is not None and (is_heading or current[2] + words > max_words):
                spans.append((current[0], current[1], current_heading))
                current = None
            if current is None:
                current, current_heading = [piece_start, piece_end, words], heading
            else:
                current[1], current[2] = piece_end, current[2] + words
    if current is not None:
        spans.append((current[0], current[1], current_heading))
    kept = [(start, end, head) for start, end, head in spans if body[start:end].strip()]
    return [
        Passage(article=index, ordinal=ordinal, start=start, end=end, heading=head)
        for ordinal, (start, end, head) in enumerate(kept)
    ]
