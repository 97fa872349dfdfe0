"""``coach knowledge``: build, search, evaluate and train knowledge retrieval; publish articles.

coach knowledge import PATH --out FILE               doc2dial, ABCD guidelines, Markdown -> article JSONL
coach knowledge index --articles PATH --out DIR      build the passage index
coach knowledge search "text" [--index DIR]          the best passages for a question (or a conversation)
coach knowledge eval --turns PATH --documents PATH   recall at 1/3/5/10, MRR, latency per query
coach knowledge train                                train the re-ranker on doc2dial, register it
coach knowledge publish --articles PATH --brokers B  articles to the compacted knowledge.articles topic
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC
from pathlib import Path

#: How much of a passage ``coach knowledge search`` prints.
_SHOWN_CHARS = 300

def _load_articles(paths: list[Path]):
    from models.knowledge import articles as kb

    found = []
    for path in paths:
        found += kb.load(path)
    return kb.unique(found, ", ".join(map(str, paths)))


def _import(args: argparse.Namespace) -> int:
    from models.knowledge import articles as kb

    articles = _load_articles(args.paths)
    if args.only:
        wanted = set(args.only)
        articles = [a for a in articles if a.article_id in wanted]
    count = kb.write_jsonl(articles, args.out)
    print(json.dumps({"articles": count, "kb_version": kb.kb_version(articles), "out": str(args.out)}))
    return 0


def _index(args: argparse.Namespace) -> int:
    from models.knowledge.index import KnowledgeIndex

    index = KnowledgeIndex.build(_load_articles(args.articles), args.max_words)
    index.save(args.out)
    print(json.dumps({"out": str(args.out), "kb_version": index.kb_version, "index_version": index.version,
                      "articles": len(index.articles), "passages": len(index)}))
    return 0


def _retriever(args: argparse.Namespace):
    from models.knowledge.index import KnowledgeIndex
    from models.knowledge.ranker import Retriever, load_reranker

    if args.index is not None:
        index = KnowledgeIndex.load(args.index)
    else:
        index = KnowledgeIndex.build(_load_articles(args.articles or [_default_articles()]), args.max_words)
    return Retriever(index, load_reranker(args.ranker))


def _default_articles() -> Path:
    from coachflow.knowledge_config import SAMPLE_ARTICLES

    return SAMPLE_ARTICLES


def _search(args: argparse.Namespace) -> int:
    retriever = _retriever(args)
    turns: list[tuple[str, str]] = [tuple(turn) for turn in json.loads(args.history)] if args.history else []
    turns.append(("customer", args.text))
    index, (hits,), (ms,) = retriever.search_batch([turns], k=args.k)
    results = []
    for hit in hits:
        passage = index.passages[hit.passage]
        article = index.articles[passage.article]
        results.append({
            "score": round(hit.score, 4), "article_id": article.article_id, "title": article.title,
            "heading": passage.heading, "start": passage.start, "end": passage.end,
            "article_version": article.version, "passage": index.text(passage).strip(),
        })
    if args.json:
        print(json.dumps({"kb_version": index.kb_version, "ms": round(ms, 2), "hits": results}))
        return 0
    print(f"{len(results)} passages from {index.kb_version} in {ms:.1f} ms", file=sys.stderr)
    for rank, result in enumerate(results, 1):
        text = " ".join(result["passage"].split())
        print(f"{rank}. {result['score']:.3f}  {result['title']} > {result['heading']}  "
              f"[{result['article_id']} v{result['article_version']} {result['start']}-{result['end']}]\n   "
              f"{text[:_SHOWN_CHARS]}{'…' if len(text) > _SHOWN_CHARS else ''}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from models.knowledge import doc2dial
    from models.knowledge.evaluate import PlainBM25, evaluate
    from models.knowledge.index import KnowledgeIndex
    from models.knowledge.ranker import Retriever, load_reranker

    index = KnowledgeIndex.build(_load_articles([args.documents]), args.max_words)
    if args.engine == "bm25":
        retriever, ranker = PlainBM25(index), "none (plain BM25)"
    else:
        reranker = load_reranker(args.ranker)
        retriever, ranker = Retriever(index, reranker), reranker.version
    if args.record and (args.engine != "ranker" or args.split != "dev" or args.limit is not None):
        raise SystemExit("coach knowledge eval --record: needs the ranker, --split dev and no --limit")
    result, cpu = evaluate(retriever, doc2dial.read_turns(args.turns, args.split, args.limit))
    if args.record:
        _record(reranker, args, {**result, **cpu})
    if args.compact:
        print(json.dumps(result, separators=(",", ":")))
    else:
        print(json.dumps({"ranker": ranker, "kb_version": index.kb_version, "passages": len(index),
                          "turns": str(args.turns), "split": args.split, **result, **cpu,
                          "load_average": [round(x, 2) for x in os.getloadavg()]}, indent=2))
    return 0


def _record(reranker, args: argparse.Namespace, dev: dict) -> None:
    """Store this run's dev figures in the re-ranker's registry entry and rewrite its model card."""
    from datetime import datetime

    from models import registry
    from models.dataset import file_sha256
    from models.knowledge.card import write_card

    entry = reranker.registry_entry
    if file_sha256(args.turns) != entry["training_data"]["turns"]["sha256"]:
        raise SystemExit(
            "coach knowledge eval --record: --turns is not the file this re-ranker was trained on"
        )
    entry = {**entry, "metrics": {**entry["metrics"], "dev": dev}, "metrics_measured": {
        "by": "coach knowledge eval --split dev --record",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }}
    registry.register(entry)
    write_card(entry, Path(args.ranker).parent / "MODEL_CARD.md")
    print(f"recorded dev figures for {entry['name']} {entry['version']}", file=sys.stderr)


def _train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from models import registry
    from models.knowledge.card import write_card
    from models.knowledge.train import OUT_DIR, RankerConfig, train

    config = RankerConfig()
    overrides = {k: v for k, v in {"version": args.version, "members": args.members, "limit": args.limit,
                                   "max_words": args.max_words}.items() if v is not None}
    config = replace(config, **overrides)
    out = args.out or OUT_DIR
    entry = train(args.data / "documents.jsonl.gz", args.data / "turns.jsonl.gz", config, out,
                  log=lambda message: print(message, file=sys.stderr, flush=True))
    if args.out is None:
        registry.register(entry)
        write_card(entry, out / "MODEL_CARD.md")
        print(f"registered {entry['name']} {entry['version']} sha256 {entry['sha256']}", file=sys.stderr)
    else:
        (out / "entry.json").write_text(json.dumps(entry, indent=2, sort_keys=True) + "\n")
        print(f"wrote {out} (not registered: --out given)", file=sys.stderr)
    print(json.dumps(entry["metrics"]["dev"]))
    return 0


def _publish(args: argparse.Namespace) -> int:
    from coachflow.knowledge import publish_articles

    articles = _load_articles(args.articles)
    count = publish_articles(articles, args.brokers, args.topic, partitions=args.partitions)
    print(json.dumps({"published": count, "topic": args.topic}))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``coach knowledge`` subcommands."""
    from models.knowledge.passages import DEFAULT_MAX_WORDS
    from models.registry import MODELS_DIR

    # The defaults of models.knowledge.ranker and .train, without importing them for every `coach` command.
    DEFAULT_RANKER = MODELS_DIR / "knowledge" / "ranker.onnx"  # noqa: N806
    DEFAULT_DATA = MODELS_DIR.resolve().parents[1] / "shared" / "data" / "doc2dial"  # noqa: N806

    actions = parser.add_subparsers(dest="action", required=True)

    imp = actions.add_parser(
        "import", help="articles from doc2dial, ABCD, Markdown or JSONL -> one article JSONL"
    )
    imp.add_argument(
        "paths",
        type=Path,
        nargs="+",
        help="doc2dial documents.jsonl(.gz), ABCD guidelines.json, a folder of Markdown, article JSONL",
    )
    imp.add_argument("--out", type=Path, required=True)
    imp.add_argument("--only", nargs="*", help="keep only these article ids")
    imp.set_defaults(func=_import)

    def sources(p: argparse.ArgumentParser, required: bool) -> None:
        p.add_argument(
            "--articles",
            type=Path,
            action="append",
            required=required,
            help="articles (repeatable): JSONL, a Markdown folder, doc2dial documents, ABCD guidelines",
        )
        p.add_argument("--max-words", type=int, default=DEFAULT_MAX_WORDS, help="passage length limit")

    index = actions.add_parser("index", help="build the passage index of a knowledge base")
    sources(index, True)
    index.add_argument("--out", type=Path, required=True, help="the index directory (replaced whole)")
    index.set_defaults(func=_index)

    search = actions.add_parser("search", help="the best passages for a customer's question")
    search.add_argument("text", help="what the customer asks")
    search.add_argument("--history", help='earlier turns as JSON: [["customer", "..."], ["agent", "..."]]')
    search.add_argument("--index", type=Path, help="an index directory (default: built from --articles)")
    sources(search, False)
    search.add_argument("--ranker", type=Path, default=DEFAULT_RANKER)
    search.add_argument("-k", type=int, default=5)
    search.add_argument("--json", action="store_true", help="print one JSON object")
    search.set_defaults(func=_search)

    ev = actions.add_parser("eval", help="passage recall at 1/3/5/10, MRR and latency on grounded turns")
    ev.add_argument("--turns", type=Path, required=True, help="doc2dial-format turns.jsonl(.gz)")
    ev.add_argument(
        "--documents", type=Path, required=True, help="their documents (doc2dial format, or articles)"
    )
    ev.add_argument("--split", choices=("all", "train", "dev"), default="all",
                    help="which turns (default all; dev: our held-out dialogues of shared/data/doc2dial)")
    ev.add_argument("--limit", type=int)
    ev.add_argument("--ranker", type=Path, default=DEFAULT_RANKER)
    ev.add_argument("--max-words", type=int, default=DEFAULT_MAX_WORDS, help="passage length limit")
    ev.add_argument(
        "--engine",
        choices=("ranker", "bm25"),
        default="ranker",
        help="ranker: candidates and the learned re-ranker (default); bm25: the plain BM25 baseline",
    )
    ev.add_argument("--compact", action="store_true", help="one JSON object on one line")
    ev.add_argument("--record", action="store_true",
                    help="store the dev figures in the re-ranker's registry entry and model card")
    ev.set_defaults(func=_eval)

    fit = actions.add_parser("train", help="train the re-ranker on doc2dial's train split and register it")
    fit.add_argument("--data", type=Path, default=DEFAULT_DATA, help="doc2dial folder (documents, turns)")
    fit.add_argument("--out", type=Path, help="write here and do not register")
    fit.add_argument("--version")
    fit.add_argument("--members", type=int)
    fit.add_argument("--limit", type=int, help="train on at most this many turns (smoke tests)")
    fit.add_argument("--max-words", type=int, help="passage length limit (default 100)")
    fit.set_defaults(func=_train)

    pub = actions.add_parser("publish", help="publish articles to the compacted articles topic, keyed by id")
    pub.add_argument("--articles", type=Path, action="append", required=True)
    pub.add_argument("--brokers", required=True)
    pub.add_argument("--topic", default="knowledge.articles")
    pub.add_argument("--partitions", type=int, default=1, help="partitions if the topic is created")
    pub.set_defaults(func=_publish)


def main_knowledge(args: argparse.Namespace) -> int:
    return args.func(args)
