"""Loading a knowledge base, cutting it into passages, and its index on disk."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from pydantic import ValidationError

from models.knowledge import articles as kb
from models.knowledge.index import IndexIntegrityError, KnowledgeIndex
from models.knowledge.passages import cut
from models.knowledge.text import tokens
from schemas import Article
from tests.helpers import ROOT
from tests.knowledge_helpers import PLATES, small_kb

DOC2DIAL = ROOT.parent / "shared" / "data" / "doc2dial" / "documents.jsonl.gz"
ABCD = ROOT.parent / "shared" / "data" / "abcd" / "guidelines.json"


def test_markdown_front_matter_and_sections():
    article = kb.markdown_article(PLATES, "plates")
    assert article.article_id == "plates" and article.title == "Replace your license plates"
    assert article.tags == ["domain:dmv", "jurisdiction:us-ny"] and article.version == "3"
    assert article.source == "dmv" and article.source_url == "https://dmv.example/plates"
    headings = [article.body[s.start:s.end].strip() for s in article.sections if s.heading]
    assert headings == ["# Replace your license plates", "## Fees", "## Stolen plates"]
    assert "".join(article.body[s.start:s.end] for s in article.sections) == article.body


def test_a_markdown_folder_loads_every_file_and_names_bad_ones(tmp_path):
    (tmp_path / "a.md").write_text(PLATES)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("# B\n\ntext\n")
    loaded = kb.load(tmp_path)
    assert sorted(a.article_id for a in loaded) == ["a", "sub/b"]
    (tmp_path / "bad.md").write_text("---\ntags: [NOT A TAG]\n---\ntext\n")
    with pytest.raises(kb.KnowledgeBaseError, match="bad.md"):
        kb.load(tmp_path)


def test_jsonl_round_trip_and_line_numbers_of_bad_articles(tmp_path):
    path = tmp_path / "kb.jsonl"
    kb.write_jsonl(small_kb(), path)
    assert kb.load(path) == small_kb()
    lines = path.read_text().splitlines()
    broken = json.loads(lines[1])
    broken["sections"][0]["start"] = 5  # sections must cover the body from 0
    path.write_text("\n".join([lines[0], json.dumps(broken), '{"article_id": "x"}']) + "\n")
    with pytest.raises(kb.KnowledgeBaseError) as error:
        kb.load_jsonl(path)
    assert f"{path}:2" in str(error.value) and f"{path}:3" in str(error.value)


def test_an_article_is_strict():
    article = small_kb()[0]
    with pytest.raises(ValidationError, match="extra"):
        Article.model_validate({**article.model_dump(), "author": "x"})
    with pytest.raises(ValidationError):
        Article.model_validate({**article.model_dump(), "body": "bad\u202etext"})
    with pytest.raises(ValidationError, match="must start at 0 and end within the body"):
        Article.model_validate(
            {**article.model_dump(), "sections": [{"section_id": "1", "start": 0, "end": 10**6}]}
        )
    with pytest.raises(kb.KnowledgeBaseError, match="twice"):
        kb.unique([article, article], "here")


def test_the_kb_version_names_the_content():
    articles = small_kb()
    assert kb.kb_version(articles) == kb.kb_version(list(reversed(articles)))
    changed = [articles[0].model_copy(update={"body": articles[0].body.replace("25", "30")}), *articles[1:]]
    assert kb.kb_version(changed) != kb.kb_version(articles)


def test_doc2dial_and_abcd_importers():
    documents = kb.import_doc2dial(DOC2DIAL)
    assert len(documents) == 273
    first = documents[0]
    assert first.source.startswith("doc2dial_") and any(t.startswith("jurisdiction:") for t in first.tags)
    assert "".join(first.body[s.start:s.end] for s in first.sections) == first.body
    guidelines = kb.import_abcd(ABCD)
    assert len(guidelines) == 55 and all(a.source == "abcd_guidelines" for a in guidelines)
    assert kb.load(ABCD) == guidelines and kb.load(DOC2DIAL) == documents


def test_passages_stay_within_a_heading_and_the_word_limit():
    article = kb.markdown_article(PLATES, "plates")
    passages = cut(article, 0, max_words=100)
    assert [p.heading for p in passages] == ["Replace your license plates", "Fees", "Stolen plates"]
    assert [p.ordinal for p in passages] == [0, 1, 2]
    for passage in cut(article, 0, max_words=8):
        assert len(article.body[passage.start:passage.end].split()) <= 8
    long = Article(article_id="l", title="L", body=" ".join(["word"] * 250) + "\n", source="x", version="1")
    pieces = cut(long, 0, max_words=100)
    assert [len(long.body[p.start:p.end].split()) for p in pieces] == [100, 100, 50]


def test_doc2dial_passages_average_under_the_baselines_window():
    index = KnowledgeIndex.build(kb.import_doc2dial(DOC2DIAL))
    words = index.passage_words
    assert words.max() <= 100 and 55 <= words.mean() <= 70  # the 100-word windows of the baseline average 94


def test_index_round_trip_and_integrity(tmp_path):
    index = KnowledgeIndex.build(small_kb())
    index.save(tmp_path / "ix")
    loaded = KnowledgeIndex.load(tmp_path / "ix")
    assert loaded.kb_version == index.kb_version and loaded.version == index.version
    query = tokens("my plates were stolen")
    assert np.allclose(loaded.scores("passages", query), index.scores("passages", query))
    index.save(tmp_path / "ix")  # replaced whole
    shutil.copy(tmp_path / "ix" / "articles.jsonl", tmp_path / "copy")
    (tmp_path / "ix" / "articles.jsonl").write_text((tmp_path / "copy").read_text().replace("25", "2"))
    with pytest.raises(IndexIntegrityError, match="articles.jsonl"):
        KnowledgeIndex.load(tmp_path / "ix")


def test_batched_scores_are_bm25s_scores():
    index = KnowledgeIndex.build(kb.import_doc2dial(DOC2DIAL))
    queries = [
        tokens("how do I apply for disability benefits benefits"),
        tokens("plates stolen"),
        (),
        ("zzzz",),
    ]
    batched = index.scores_many("passages", queries)
    for query, row in zip(queries, batched, strict=True):
        assert np.allclose(row, index.scores("passages", query), atol=1e-5)
