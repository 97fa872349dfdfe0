"""The re-ranker: its ONNX graph, its registry check, retrieval and `coach knowledge eval`."""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import onnx
import pytest

from coachflow.cli import main
from models.knowledge.features import FEATURES, candidates
from models.knowledge.index import KnowledgeIndex
from models.knowledge.ranker import (
    DEFAULT_RANKER,
    Reranker,
    Retriever,
    build_graph,
    load_reranker,
    reference_scores,
)
from models.registry import ModelIntegrityError
from tests.helpers import ROOT
from tests.knowledge_helpers import small_kb

DOC2DIAL = ROOT.parent / "shared" / "data" / "doc2dial"


@pytest.fixture(scope="module")
def retriever():
    return Retriever(KnowledgeIndex.build(small_kb()), load_reranker())


def test_the_graph_computes_the_ensemble(tmp_path):
    rng = np.random.default_rng(0)
    f = len(FEATURES)
    members = [[(rng.normal(size=(f, 8)).astype(np.float32), rng.normal(size=(1, 8)).astype(np.float32)),
                (rng.normal(size=(8, 1)).astype(np.float32), rng.normal(size=(1, 1)).astype(np.float32))]
               for _ in range(2)]
    mean, scale = rng.normal(size=f).astype(np.float32), rng.uniform(0.5, 2, size=f).astype(np.float32)
    model = build_graph(mean, scale, members, {"coachflow.version": "t", "coachflow.feature_spec": "x",
                                               "coachflow.features": list(FEATURES)})
    path = tmp_path / "r.onnx"
    onnx.save(model, path)
    import onnxruntime as ort

    X = rng.normal(size=(50, f)).astype(np.float32)
    got = ort.InferenceSession(str(path)).run(None, {"features": X})[0]
    assert np.allclose(got, reference_scores(mean, scale, members, X), atol=1e-5)


def test_the_registry_refuses_an_altered_ranker(tmp_path):
    copy = tmp_path / "ranker.onnx"
    shutil.copy(DEFAULT_RANKER, copy)
    with pytest.raises(ModelIntegrityError, match="not in the model registry"):
        load_reranker(copy)
    assert load_reranker().registry_entry["kind"] == "onnx-knowledge-ranker"


def test_a_ranker_trained_on_other_features_is_refused(tmp_path, monkeypatch):
    from models.knowledge import ranker

    monkeypatch.setattr(ranker, "FEATURE_SPEC", "knowledge-features-0")
    with pytest.raises(ModelIntegrityError, match="trained with features"):
        Reranker(DEFAULT_RANKER)


def test_the_answering_passage_ranks_first(retriever):
    index, (hits,), (ms,) = retriever.search_batch(
        [[("customer", "How much does a replacement set of plates cost?")]]
    )
    best = index.passages[hits[0].passage]
    assert index.articles[best.article].article_id == "plates" and best.heading == "Fees"
    assert 0 < hits[0].score <= 1 and ms > 0
    # The conversation's grounding: after the agent answered from "Stolen plates", "and then?" stays there.
    turns = [("customer", "my plates were stolen what do I do"),
             ("agent", "Report the theft to the police first and bring the police report."),
             ("customer", "where do I bring the police report to replace them")]
    index, (hits,), _ = retriever.search_batch([turns])
    assert index.articles[index.passages[hits[0].passage].article].article_id == "plates"


def test_candidates_are_empty_without_a_customer_turn(retriever):
    ids, X = candidates(retriever.index, [("agent", "hello")])
    assert len(ids) == 0 and X.shape == (0, len(FEATURES))
    index, (hits,), _ = retriever.search_batch([[("customer", "zzzz qqqq")]])
    assert hits == []


def test_eval_counts_a_hit_only_when_the_passage_holds_the_answer_offset(tmp_path, capsys):
    documents = tmp_path / "documents.jsonl"
    text = "Fees\nA replacement set of plates costs 25 dollars.\n"
    documents.write_text(json.dumps({"doc_id": "d1", "domain": "dmv", "title": "Plates", "text": text,
                                     "spans": {"1": "Fees\n", "2": text[5:]}}) + "\n")
    turns = tmp_path / "turns.jsonl.gz"
    with gzip.open(turns, "wt") as out:
        for n, start in enumerate((5, 10**6)):  # the second answer's offset is in no passage
            out.write(
                json.dumps(
                    {
                        "id": f"t{n}",
                        "dialogue_id": f"g{n}",
                        "turn": 1,
                        "domain": "dmv",
                        "history": [{"speaker": "customer", "text": "how much are replacement plates"}],
                        "doc_id": "d1",
                        "answer": "x",
                        "answer_start": start,
                    }
                )
                + "\n"
            )
    assert main(["knowledge", "eval", "--turns", str(turns), "--documents", str(documents), "--compact"]) == 0
    result = json.loads(capsys.readouterr().out.strip())
    assert list(result) == [
        "n",
        "recall_at_1",
        "recall_at_3",
        "recall_at_5",
        "recall_at_10",
        "mrr",
        "p50_ms",
        "p99_ms",
    ]
    assert (
        result["n"] == 2
        and result["recall_at_1"] == 0.5
        and result["recall_at_10"] == 0.5
        and result["mrr"] == 0.5
    )


def test_eval_on_doc2dial_dev_turns_through_the_cli(capsys):
    assert main(["knowledge", "eval", "--turns", str(DOC2DIAL / "turns.jsonl.gz"),
                 "--documents", str(DOC2DIAL / "documents.jsonl.gz"), "--split", "dev", "--limit", "60"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 60 and result["split"] == "dev"
    assert (
        0
        <= result["recall_at_1"]
        <= result["recall_at_3"]
        <= result["recall_at_5"]
        <= result["recall_at_10"]
        <= 1
    )
    assert (
        result["recall_at_5"] > 0.5
    )  # far above chance over 3,567 passages; the figures are `coach knowledge eval`'s


def test_search_prints_citations(capsys):
    assert main(["knowledge", "search", "how do I apply for student aid", "--json", "-k", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["hits"]) == 3 and result["kb_version"].startswith("kb-")
    hit = result["hits"][0]
    assert {"article_id", "article_version", "start", "end", "passage", "score"} <= set(hit)


def test_import_index_and_search_commands(tmp_path, capsys):
    kb_file, index_dir = tmp_path / "kb.jsonl", tmp_path / "index"
    assert (
        main(
            [
                "knowledge",
                "import",
                str(DOC2DIAL / "documents.jsonl.gz"),
                str(ROOT.parent / "shared" / "data" / "abcd" / "guidelines.json"),
                "--out",
                str(kb_file),
            ]
        )
        == 0
    )
    imported = json.loads(capsys.readouterr().out)
    assert imported["articles"] == 273 + 55
    assert main(["knowledge", "index", "--articles", str(kb_file), "--out", str(index_dir)]) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["kb_version"] == imported["kb_version"] and built["articles"] == 328
    history = json.dumps([["customer", "I lost my job"], ["agent", "You may be eligible for unemployment."]])
    assert (
        main(
            [
                "knowledge",
                "search",
                "how do I return a shirt that does not fit",
                "--index",
                str(index_dir),
                "--history",
                history,
                "--json",
            ]
        )
        == 0
    )
    found = json.loads(capsys.readouterr().out)
    assert found["kb_version"] == built["kb_version"] and found["hits"]


def test_train_writes_an_onnx_ranker_and_its_entry(tmp_path, capsys):
    out = tmp_path / "ranker"
    assert main(["knowledge", "train", "--limit", "150", "--members", "1", "--out", str(out)]) == 0
    entry = json.loads((out / "entry.json").read_text())
    assert entry["kind"] == "onnx-knowledge-ranker" and entry["training_data"]["turns_used"] == 150
    assert entry["features"] == list(FEATURES) and (out / "ranker.onnx").stat().st_size > 1000
    dev = entry["metrics"]["dev"]
    assert dev["n"] == 743 and 0 < dev["recall_at_1"] <= dev["recall_at_10"] <= 1
    ranker = Reranker(out / "ranker.onnx")
    assert ranker.version == entry["version"]
