"""Load a knowledge base: articles from JSONL, a folder of Markdown, or importers.

Every loader returns validated ``schemas.Article`` records. A file that holds
an invalid article refuses to load, naming each bad line or file (a knowledge
base is built offline: better no new version than a half one). Importers turn
two public sets into articles: doc2dial's documents (``import_doc2dial``; CC BY
3.0, IBM) and ABCD's agent guidelines (``import_abcd``; MIT, ASAPP).

``kb_version`` names a set of articles: a hash of every article's id, version
and content, so any change to any article makes a new version, and the same
articles make the same version wherever they are loaded.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import yaml
from pydantic import TypeAdapter, ValidationError

from schemas import Article, Section

ARTICLE_ADAPTER: TypeAdapter = TypeAdapter(Article)
_SLUG = re.compile(r"[^a-z0-9]+")


class KnowledgeBaseError(ValueError):
    """Articles that cannot be loaded, with where and why."""


def slug(text: str) -> str:
    return _SLUG.sub("_", text.lower()).strip("_") or "x"


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def _problems(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or '$'}: {e['msg']}"
        for e in error.errors(include_url=False, include_input=False)[:5]
    )


def load_jsonl(path: Path | str) -> list[Article]:
    """Articles, one JSON object a line (``article.v1``); ``.gz`` is read as gzip."""
    path = Path(path)
    articles, problems = [], []
    with _open(path) as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                articles.append(ARTICLE_ADAPTER.validate_json(line))
            except ValidationError as error:
                problems.append(f"{path}:{number}: {_problems(error)}")
    if problems:
        raise KnowledgeBaseError("\n".join(problems[:20]))
    return unique(articles, str(path))


def unique(articles: Iterable[Article], where: str) -> list[Article]:
    """The articles, refusing two with one id (which one would a citation mean?)."""
    seen: dict[str, Article] = {}
    for article in articles:
        if article.article_id in seen:
            raise KnowledgeBaseError(f"{where}: article id {article.article_id!r} appears twice")
        seen[article.article_id] = article
    return list(seen.values())


_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def markdown_article(text: str, article_id: str, defaults: dict | None = None) -> Article:
    """One Markdown document as an article: front matter (YAML between ``---`` lines) gives
    ``title``, ``tags``, ``source``, ``version``, ``source_url`` and ``updated_at``; headings
    become heading sections and blank-line separated blocks text sections."""
    meta: dict = dict(defaults or {})
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end > 0:
            front = yaml.safe_load(text[4:end]) or {}
            if not isinstance(front, dict):
                raise KnowledgeBaseError(f"{article_id}: front matter must be a mapping")
            meta.update(front)
            text = text[text.index("\n", end + 1) + 1:] if "\n" in text[end + 1:] else ""
    body = text.strip("\n") + "\n" if text.strip() else ""
    # Sections: each heading line, and each run of text lines up to a blank line or a heading.
    bounds: list[tuple[int, int, bool]] = []
    position, block_start = 0, None
    title = meta.get("title")
    for line in body.splitlines(keepends=True):
        heading = _HEADING.match(line.strip())
        if heading is not None or not line.strip():
            if block_start is not None:
                bounds.append((block_start, position, False))
                block_start = None
            if heading is not None:
                bounds.append((position, position + len(line), True))
                title = title or heading.group(2)
            elif bounds:  # a blank line belongs to the section before it
                bounds[-1] = (bounds[-1][0], position + len(line), bounds[-1][2])
            else:
                block_start = position
        elif block_start is None:
            block_start = position
        position += len(line)
    if block_start is not None:
        bounds.append((block_start, position, False))
    sections = [
        Section(section_id=str(n), start=a, end=b, heading=h) for n, (a, b, h) in enumerate(bounds, 1)
    ]
    version = meta.get("version") or hashlib.sha256(body.encode()).hexdigest()[:12]
    try:
        return Article(
            article_id=str(meta.get("id", article_id)), title=str(title or article_id), body=body,
            sections=sections, tags=list(meta.get("tags", [])), source=str(meta.get("source", "markdown")),
            version=str(version), source_url=meta.get("source_url"), updated_at=meta.get("updated_at"),
        )
    except ValidationError as error:
        raise KnowledgeBaseError(f"{article_id}: {_problems(error)}") from None


def load_markdown(directory: Path | str) -> list[Article]:
    """Every ``*.md`` under ``directory`` (its path without ``.md`` is the default id)."""
    directory = Path(directory)
    articles, problems = [], []
    for path in sorted(directory.rglob("*.md")):
        try:
            articles.append(markdown_article(path.read_text(encoding="utf-8"),
                                             path.relative_to(directory).with_suffix("").as_posix()))
        except (KnowledgeBaseError, UnicodeDecodeError) as error:
            problems.append(f"{path}: {error}")
    if problems:
        raise KnowledgeBaseError("\n".join(problems[:20]))
    return unique(articles, str(directory))


#: doc2dial's documents are pages of New York State's DMV and of federal agencies.
DOC2DIAL_JURISDICTIONS = {"dmv": "us-ny", "ssa": "us", "va": "us", "studentaid": "us"}
DOC2DIAL_VERSION = "1.0.1"


def doc2dial_documents(path: Path | str) -> Iterator[dict]:
    with _open(Path(path)) as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def doc2dial_article(document: dict) -> Article:
    """A doc2dial document as an article: its spans become sections, its titles heading sections."""
    sections, position = [], 0
    spans = document.get("spans") or {}
    for span_id, text in spans.items():
        sections.append(Section(section_id=str(span_id), start=position, end=position + len(text),
                                heading=text.startswith("\n")))
        position += len(text)
    domain = document.get("domain", "unknown")
    tags = [f"domain:{slug(domain)}"]
    if domain in DOC2DIAL_JURISDICTIONS:
        tags.append(f"jurisdiction:{DOC2DIAL_JURISDICTIONS[domain]}")
    return Article(
        article_id=document["doc_id"], title=document["title"].strip() or document["doc_id"],
        body=document["text"], sections=sections if position == len(document["text"]) else [],
        tags=tags, source=f"doc2dial_{slug(domain)}", version=DOC2DIAL_VERSION,
    )


def import_doc2dial(path: Path | str, only: Iterable[str] | None = None) -> list[Article]:
    """doc2dial's ``documents.jsonl(.gz)`` as articles (``only``: these doc ids)."""
    wanted = None if only is None else set(only)
    articles, problems = [], []
    for document in doc2dial_documents(path):
        if wanted is not None and document["doc_id"] not in wanted:
            continue
        try:
            articles.append(doc2dial_article(document))
        except (ValidationError, KeyError) as error:
            detail = _problems(error) if isinstance(error, ValidationError) else f"missing {error}"
            problems.append(f"{path}: {document.get('doc_id')!r}: {detail}")
    if problems:
        raise KnowledgeBaseError("\n".join(problems[:20]))
    return unique(articles, str(path))


ABCD_VERSION = "1.1"


def import_abcd(path: Path | str) -> list[Article]:
    """ABCD's ``guidelines.json``: one article per subflow, one section per step of its action flow."""
    flows = json.loads(Path(path).read_text(encoding="utf-8"))
    articles = []
    for flow, spec in flows.items():
        for subflow, body in spec.get("subflows", {}).items():
            parts: list[tuple[str, bool]] = [(f"{flow}: {subflow}\n\n", True)]
            if spec.get("description"):
                parts.append((f"{spec['description'].strip().capitalize()}.\n\n", False))
            for line in body.get("instructions", []):
                parts.append((f"{line.strip()}\n\n", False))
            for step, action in enumerate(body.get("actions", []), 1):
                lines = [f"{step}. {action.get('text', '').strip()}"]
                lines += [f"   - {sub.strip()}" for sub in action.get("subtext", []) if sub.strip()]
                parts.append(("\n".join(lines) + "\n\n", False))
            text, sections = "", list[Section]()
            for part, heading in parts:
                sections.append(Section(section_id=str(len(sections) + 1), start=len(text),
                                        end=len(text) + len(part), heading=heading))
                text += part
            articles.append(Article(
                article_id=f"abcd:{slug(flow)}/{slug(subflow)}", title=f"{flow}: {subflow}", body=text,
                sections=sections, tags=["kind:procedure", f"flow:{slug(flow)}"], source="abcd_guidelines",
                version=ABCD_VERSION,
            ))
    return unique(articles, str(path))


def load(path: Path | str) -> list[Article]:
    """Articles from ``path``: a folder of Markdown, a JSONL file of articles, doc2dial's
    ``documents.jsonl(.gz)`` or ABCD's ``guidelines.json`` (told apart by their content)."""
    path = Path(path)
    if path.is_dir():
        return load_markdown(path)
    if path.name == "guidelines.json":
        return import_abcd(path)
    with _open(path) as lines:
        first = next((line for line in lines if line.strip()), b"{}")
    head = json.loads(first)
    if isinstance(head, dict) and "doc_id" in head and "spans" in head:
        return import_doc2dial(path)
    return load_jsonl(path)


def kb_version(articles: Iterable[Article]) -> str:
    """The knowledge base's version: ``kb-`` and 16 hex digits of a hash over every article."""
    digest = hashlib.sha256()
    for article in sorted(articles, key=lambda a: a.article_id):
        content = hashlib.sha256(article.model_dump_json().encode()).hexdigest()
        digest.update(f"{article.article_id}\x00{article.version}\x00{content}\n".encode())
    return "kb-" + digest.hexdigest()[:16]


def write_jsonl(articles: Iterable[Article], path: Path | str) -> int:
    """Write articles as JSONL (the canonical form ``load_jsonl`` reads); returns how many."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as out:
        for article in articles:
            out.write(article.model_dump_json(exclude_none=True) + "\n")
            count += 1
    return count
