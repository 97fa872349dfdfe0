"""The passage index: BM25 over passages, their headings, and whole articles (bm25s).

``KnowledgeIndex.build`` cuts articles into passages (``passages.cut``) and
indexes four fields with bm25s (sparse BM25 matrices in numpy): passage text,
passage headings, articles (title and body) and titles. A query scores every
passage (or article) of a field in one sparse sum, which is what the
re-ranker's features need: the scores of hundreds of candidates under a
dozen query texts per customer turn (``docs/knowledge.md`` compares it with
SQLite FTS5).

``save`` writes a directory: ``manifest.json`` (format, KB and index
versions, passage unit, tokeniser, counts, the SHA-256 of every other file),
``articles.jsonl`` and the bm25s matrices; ``load`` refuses a directory
whose files do not match their manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import bm25s
import numpy as np

from models.knowledge import articles as kb
from models.knowledge.passages import DEFAULT_MAX_WORDS, Passage, cut
from models.knowledge.text import TOKENIZER, tokens
from schemas import Article

log = logging.getLogger("coachflow.knowledge")

FORMAT = "coachflow-knowledge-index-1"
FIELDS = ("passages", "headings", "articles", "titles")
#: BM25 parameters of every field (bm25s's Lucene variant).
K1, B = 1.2, 0.75


class IndexIntegrityError(RuntimeError):
    """An index directory that cannot be used: missing, altered, or built by other code."""


def _bm25(corpus: list[tuple[str, ...]]) -> bm25s.BM25:
    model = bm25s.BM25(k1=K1, b=B)
    # bm25s needs one token per document at least: an empty field indexes a placeholder.
    model.index([list(terms) or ["\x00"] for terms in corpus], show_progress=False)
    return model


@dataclass
class KnowledgeIndex:
    """Articles, their passages and a BM25 index of each field; read-only once built."""

    articles: list[Article]
    passages: list[Passage]
    kb_version: str
    max_words: int
    fields: dict[str, bm25s.BM25]
    built_at: str
    #: Per passage: its article's index (``passage_article``), and per article its passages'
    #: index range (``article_first`` .. ``article_end``).
    passage_article: np.ndarray = field(init=False)
    passage_ordinal: np.ndarray = field(init=False)
    article_first: np.ndarray = field(init=False)
    article_end: np.ndarray = field(init=False)
    passage_words: np.ndarray = field(init=False)
    passage_terms: list[frozenset[str]] = field(init=False)

    def __post_init__(self) -> None:
        self.passage_article = np.array([p.article for p in self.passages], dtype=np.int32)
        self.passage_ordinal = np.array([p.ordinal for p in self.passages], dtype=np.int32)
        first = np.full(len(self.articles), len(self.passages), dtype=np.int32)
        end = np.zeros(len(self.articles), dtype=np.int32)
        for i, passage in enumerate(self.passages):
            first[passage.article] = min(first[passage.article], i)
            end[passage.article] = i + 1
        self.article_first, self.article_end = first, np.maximum(end, first)
        self.passage_terms = [frozenset(tokens(self.text(p))) for p in self.passages]
        self.passage_words = np.array([len(self.text(p).split()) for p in self.passages], dtype=np.float32)

    # -- building ----------------------------------------------------------------
    @classmethod
    def build(cls, articles: list[Article], max_words: int = DEFAULT_MAX_WORDS) -> KnowledgeIndex:
        articles = sorted(kb.unique(articles, "the knowledge base"), key=lambda a: a.article_id)
        passages = [p for i, article in enumerate(articles) for p in cut(article, i, max_words)]
        corpora = {
            "passages": [tokens(articles[p.article].body[p.start:p.end]) for p in passages],
            "headings": [tokens(p.heading) for p in passages],
            "articles": [tokens(f"{a.title}\n{a.body}") for a in articles],
            "titles": [tokens(a.title) for a in articles],
        }
        return cls(
            articles=articles, passages=passages, kb_version=kb.kb_version(articles), max_words=max_words,
            fields={name: _bm25(corpus) for name, corpus in corpora.items()},
            built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )

    # -- queries -----------------------------------------------------------------
    @property
    def version(self) -> str:
        """The index's version: its KB version, passage unit and tokeniser."""
        digest = hashlib.sha256(
            f"{self.kb_version}|{self.max_words}|{TOKENIZER}|{K1}|{B}".encode()
        ).hexdigest()
        return "idx-" + digest[:16]

    def scores(self, field_name: str, terms: tuple[str, ...]) -> np.ndarray:
        """BM25 of every passage (or article, for ``articles`` and ``titles``) for ``terms``."""
        model = self.fields[field_name]
        size = len(self.articles) if field_name in ("articles", "titles") else len(self.passages)
        if not terms:
            return np.zeros(size, dtype=np.float32)
        ids = model.get_tokens_ids(list(terms))
        if not ids:
            return np.zeros(size, dtype=np.float32)
        return model.get_scores_from_ids(ids)

    def scores_many(self, field_name: str, queries: list[tuple[str, ...]]) -> np.ndarray:
        """``scores`` of several queries at once, one row each (the same sums as bm25s's ``get_scores``).

        Each query's terms gather their postings from bm25s's weight arrays (a term
        ``n`` times in the query counts ``n`` times), and one ``bincount`` adds them up
        for every query: bm25s's own ``get_scores`` adds term by term with ``np.add.at``,
        several times slower for the dozen queries a customer turn takes.
        """
        model = self.fields[field_name]
        arrays, vocabulary = model.scores, model.vocab_dict
        data, indices, indptr, size = arrays["data"], arrays["indices"], arrays["indptr"], arrays["num_docs"]
        weights, positions = [], []
        for row, terms in enumerate(queries):
            counts: dict[int, int] = {}
            for term in terms:
                column = vocabulary.get(term)
                if column is not None:
                    counts[column] = counts.get(column, 0) + 1
            for column, count in counts.items():
                start, end = indptr[column], indptr[column + 1]
                positions.append(indices[start:end] + row * size)
                weights.append(data[start:end] * count if count > 1 else data[start:end])
        if not positions:
            return np.zeros((len(queries), size), dtype=np.float32)
        total = np.bincount(np.concatenate(positions), np.concatenate(weights), minlength=len(queries) * size)
        return total.reshape(len(queries), size).astype(np.float32)

    def text(self, passage: Passage) -> str:
        return self.articles[passage.article].body[passage.start:passage.end]

    def __len__(self) -> int:
        return len(self.passages)

    # -- files -------------------------------------------------------------------
    def save(self, directory: Path | str) -> Path:
        """Write the index to ``directory`` (replaced as a whole: a reader never sees half of it)."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        try:
            kb.write_jsonl(self.articles, staging / "articles.jsonl")
            for name, model in self.fields.items():
                model.save(staging / name, show_progress=False)
            files = sorted(p for p in staging.rglob("*") if p.is_file())
            manifest = {
                "format": FORMAT, "kb_version": self.kb_version, "index_version": self.version,
                "max_words": self.max_words, "tokenizer": TOKENIZER, "bm25": {"k1": K1, "b": B},
                "articles": len(self.articles), "passages": len(self.passages), "built_at": self.built_at,
                "files": {p.relative_to(staging).as_posix(): _sha256(p) for p in files},
            }
            (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            if directory.exists():
                old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
                directory.rename(old)
                staging.rename(directory)
                shutil.rmtree(old, ignore_errors=True)
            else:
                staging.rename(directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return directory

    @classmethod
    def load(cls, directory: Path | str) -> KnowledgeIndex:
        """An index saved by ``save``; ``IndexIntegrityError`` if a file differs from its manifest."""
        directory = Path(directory)
        manifest = read_manifest(directory)
        for name, digest in manifest["files"].items():
            path = directory / name
            if not path.is_file() or _sha256(path) != digest:
                raise IndexIntegrityError(
                    f"{path}: missing or not the file its manifest names; rebuild the index"
                )
        articles = kb.load_jsonl(directory / "articles.jsonl")
        if kb.kb_version(articles) != manifest["kb_version"]:
            raise IndexIntegrityError(
                f"{directory}: articles do not make KB version {manifest['kb_version']}"
            )
        if manifest["tokenizer"] != TOKENIZER:
            raise IndexIntegrityError(
                f"{directory}: built with tokeniser {manifest['tokenizer']}, this code has {TOKENIZER};"
                " rebuild it"
            )
        articles = sorted(articles, key=lambda a: a.article_id)
        passages = [p for i, article in enumerate(articles) for p in cut(article, i, manifest["max_words"])]
        if len(passages) != manifest["passages"]:
            raise IndexIntegrityError(
                f"{directory}: {len(passages)} passages, its manifest says {manifest['passages']}"
            )
        fields = {name: bm25s.BM25.load(directory / name, mmap=False, show_progress=False) for name in FIELDS}
        return cls(articles=articles, passages=passages, kb_version=manifest["kb_version"],
                   max_words=manifest["max_words"], fields=fields, built_at=manifest["built_at"])


def read_manifest(directory: Path | str) -> dict:
    path = Path(directory) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise IndexIntegrityError(f"{path}: not an index manifest ({error})") from None
    if manifest.get("format") != FORMAT:
        raise IndexIntegrityError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT}")
    return manifest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
