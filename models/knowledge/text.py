"""The one tokeniser of knowledge retrieval: passages, titles, headings and queries alike.

Lower-case word runs of letters and digits, a short list of English function
words dropped, every word stemmed with Snowball's English stemmer
(PyStemmer), so "benefits", "beneficial" and "benefit" meet.
"""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer

#: Bump when ``tokens`` changes: an index records the tokeniser it was built with.
TOKENIZER = "words-snowball-en-1"

_WORD = re.compile(r"[a-z0-9]+")
#: Function words and conversational fillers: they match every passage and answer nothing.
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "he",
        "her",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "just",
        "me",
        "my",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "to",
        "us",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yes",
        "ok",
        "okay",
        "hi",
        "hello",
        "thanks",
        "thank",
        "please",
    ]
)

_stemmer = Stemmer.Stemmer("english")


@lru_cache(maxsize=65_536)
def tokens(text: str) -> tuple[str, ...]:
    """The index terms of ``text`` (cached: a conversation's turns are tokenised once)."""
    words = [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]
    return tuple(_stemmer.stemWords(words))
