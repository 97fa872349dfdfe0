"""The knowledge base in force is swapped for a new version without a restart, and a broken one refused."""

from __future__ import annotations

import os

from coachflow.config import Settings
from coachflow.knowledge import IndexStore
from coachflow.knowledge_config import KnowledgeSettings
from models.knowledge import articles as kb
from models.knowledge.index import KnowledgeIndex
from models.knowledge.ranker import load_reranker
from tests.knowledge_helpers import small_kb


def bump(path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))


def test_an_articles_file_is_reindexed_when_it_changes_and_a_broken_one_refused(tmp_path):
    path = tmp_path / "kb.jsonl"
    kb.write_jsonl(small_kb()[:2], path)
    store = IndexStore(KnowledgeSettings(articles=path), Settings(), load_reranker())
    swapped = []
    store.on_swap.append(lambda index: swapped.append(index.kb_version))
    first = store.index.kb_version
    assert not store.check()  # nothing changed
    kb.write_jsonl(small_kb(), path)
    bump(path)
    assert store.check() and store.index.kb_version == kb.kb_version(small_kb()) != first
    assert store.retriever.index is store.index and swapped == [store.index.kb_version]
    path.write_text(path.read_text() + '{"article_id": "broken"}\n')
    bump(path)
    assert not store.check() and store.index.kb_version == swapped[-1]
    assert "rejected" in store.rejections[-1] and "kb.jsonl:4" in store.rejections[-1]


def test_an_index_directory_is_reloaded_when_its_manifest_names_a_new_version(tmp_path):
    KnowledgeIndex.build(small_kb()[:1]).save(tmp_path / "ix")
    store = IndexStore(KnowledgeSettings(index=tmp_path / "ix"), Settings(), load_reranker())
    assert len(store.index.articles) == 1 and not store.check()
    KnowledgeIndex.build(small_kb()).save(tmp_path / "ix")
    assert store.check() and len(store.index.articles) == 3
