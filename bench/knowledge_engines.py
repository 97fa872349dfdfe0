"""Why the knowledge index is bm25s and not SQLite FTS5: the re-ranker's BM25 queries through each.

    .venv/bin/python bench/knowledge_engines.py [--limit N]

Per doc2dial dev turn, the feature pass (``models/knowledge/features.py``)
scores a dozen query texts (the customer's last, previous and all turns, the
agent's last and all turns, the two earlier agent turns; headings, articles
and titles) against four fields. This runs the same queries, with the same
tokens, through SQLite FTS5 (the standard library's ``sqlite3``, one FTS5
table per field, ``bm25()`` of every matching row) and through the bm25s
index the job uses (``KnowledgeIndex.scores_many``), and prints one JSON
object: per turn p50 / p99 milliseconds for each.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from pathlib import Path

import numpy as np

from models.knowledge import articles as kb
from models.knowledge import doc2dial
from models.knowledge.features import EARLIER_AGENT_TURNS
from models.knowledge.index import KnowledgeIndex
from models.knowledge.text import tokens

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "doc2dial"


def queries(turns) -> dict[str, list[tuple[str, ...]]]:
    customer = [text for speaker, text in turns if speaker == "customer"]
    agent = [text for speaker, text in turns if speaker == "agent"]
    last, every = tokens(customer[-1]), tokens(" ".join(customer))
    agents = tokens(" ".join(agent))
    passages = [
        last,
        every,
        tokens(customer[-2]) if len(customer) > 1 else (),
        tokens(agent[-1]) if agent else (),
        agents,
        *(tokens(text) for text in agent[-1 - EARLIER_AGENT_TURNS : -1]),
    ]
    return {"passages": passages, "articles": [every + agents, every, last, agents],
            "headings": [last, every], "titles": [last, every + agents]}


def fts5(index: KnowledgeIndex) -> sqlite3.Connection:
    con = sqlite3.connect(":memory:")
    texts = {
        "passages": [" ".join(tokens(index.text(p))) for p in index.passages],
        "headings": [" ".join(tokens(p.heading)) for p in index.passages],
        "articles": [" ".join(tokens(f"{a.title}\n{a.body}")) for a in index.articles],
        "titles": [" ".join(tokens(a.title)) for a in index.articles],
    }
    for name, rows in texts.items():
        con.execute(f"CREATE VIRTUAL TABLE {name} USING fts5(body, tokenize='unicode61')")
        con.executemany(f"INSERT INTO {name}(body) VALUES (?)", [(row,) for row in rows])
    return con


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    index = KnowledgeIndex.build(kb.import_doc2dial(args.data / "documents.jsonl.gz"))
    con = fts5(index)
    turns = list(doc2dial.read_turns(args.data / "turns.jsonl.gz", split="dev", limit=args.limit))
    sqlite_ms, bm25s_ms = [], []
    for turn in turns:
        wanted = queries(turn.turns)
        start = time.perf_counter()
        for name, texts in wanted.items():
            for terms in texts:
                if terms:
                    match = " OR ".join(f'"{term}"' for term in dict.fromkeys(terms))
                    con.execute(
                        f"SELECT rowid, bm25({name}) FROM {name} WHERE {name} MATCH ?", (match,)
                    ).fetchall()
        sqlite_ms.append(1000 * (time.perf_counter() - start))
        start = time.perf_counter()
        for name, texts in wanted.items():
            index.scores_many(name, texts)
        bm25s_ms.append(1000 * (time.perf_counter() - start))
    figures = {
        engine: {
            "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2),
        }
        for engine, ms in (("sqlite_fts5", sqlite_ms), ("bm25s", bm25s_ms))
    }
    print(
        json.dumps({"turns": len(turns), "passages": len(index), "sqlite": sqlite3.sqlite_version, **figures})
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
