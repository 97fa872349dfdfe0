"""Rebuild data/knowledge/: the knowledge job's bundled sample (knowledge base and conversations).

    .venv/bin/python scripts/make_knowledge_sample.py [--data ../shared/data]

- ``articles.jsonl``: the doc2dial documents of the sample's dialogues plus
  others of their domains (CC BY 3.0, IBM), and ABCD's FAQ and policy
  guidelines (MIT, ASAPP), as ``article.v1`` records.
- ``conversations.jsonl``: doc2dial dialogues of our dev split (never trained
  on) as contract events, agents answering in turn, with synthetic customer
  context (half the customers in New York, half in California: the DMV's
  articles are New York's, so the jurisdiction rule holds some of their cards),
  and two bad records at the end for the dead-letter output.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from models.knowledge import articles as kb
from models.knowledge.doc2dial import split_of

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "knowledge"
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
DIALOGUES = 10
EXTRA_DOCUMENTS = 14
ABCD_FLOWS = ("Storewide Query", "Single-Item Query", "Shipping Issue")


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _hex(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def dialogues(turns_path: Path) -> list[dict]:
    """The longest grounded turn of each dev dialogue (its history the whole dialogue), domain by domain."""
    longest: dict[str, dict] = {}
    with gzip.open(turns_path, "rt", encoding="utf-8") as lines:
        for line in lines:
            turn = json.loads(line)
            if split_of(turn["dialogue_id"]) != "dev":
                continue
            kept = longest.get(turn["dialogue_id"])
            if kept is None or len(turn["history"]) > len(kept["history"]):
                longest[turn["dialogue_id"]] = turn
    by_domain: dict[str, list[dict]] = {}
    for turn in sorted(longest.values(), key=lambda t: _hex(t["dialogue_id"])):
        if len(turn["history"]) <= 11:  # noqa: PLR2004 - a dialogue short enough to read in the console
            by_domain.setdefault(turn["domain"], []).append(turn)
    chosen: list[dict] = []
    while len(chosen) < DIALOGUES and any(by_domain.values()):
        for domain in sorted(by_domain):
            if by_domain[domain] and len(chosen) < DIALOGUES:
                chosen.append(by_domain[domain].pop(0))
    return chosen


def events(chosen: list[dict]) -> list[str]:
    rows: list[tuple[datetime, dict]] = []
    for n, dialogue in enumerate(chosen):
        conversation = f"d2d-{_hex(dialogue['dialogue_id'])}"
        customer, agent = f"cust-{_hex(conversation)}", f"agent-{n % 3 + 1:02d}"
        at = START + timedelta(seconds=45 * n)
        base = {"schema_version": "1.0", "conversation_id": conversation, "customer_id": customer,
                "agent_id": agent, "channel": "chat" if n % 2 == 0 else "voice"}
        rows.append((at - timedelta(seconds=1), {
            "schema_version": "1.0", "type": "customer_context", "customer_id": customer,
            "tier": ("basic", "silver", "gold")[n % 3], "marketing_opt_out": n % 4 == 0,
            "recording_consent": True, "jurisdiction": "US-NY" if n % 2 == 0 else "US-CA", "language": "en",
            "open_cases": n % 3, "updated_at": _iso(at - timedelta(days=2)),
        }))
        sequence = 0
        rows.append(
            (
                at,
                {
                    **base,
                    "event_id": f"{conversation}-000",
                    "sequence": 0,
                    "type": "conversation_start",
                    "tasks": [],
                    "event_time": _iso(at),
                },
            )
        )
        for speaker, text in ((h["speaker"], h["text"]) for h in dialogue["history"]):
            sequence += 1
            at += timedelta(seconds=20 if speaker == "agent" else 12)
            rows.append(
                (
                    at,
                    {
                        **base,
                        "event_id": f"{conversation}-{sequence:03d}",
                        "sequence": sequence,
                        "type": "turn",
                        "speaker": "customer" if speaker in ("customer", "user") else "agent",
                        "text": text,
                        "is_final": True,
                        "event_time": _iso(at),
                    },
                )
            )
        sequence += 1
        at += timedelta(seconds=10)
        rows.append((at, {**base, "event_id": f"{conversation}-{sequence:03d}", "sequence": sequence,
                          "type": "conversation_end", "reason": "completed", "event_time": _iso(at)}))
    rows.sort(key=lambda row: row[0])
    lines = [json.dumps(record, separators=(",", ":")) for _, record in rows]
    turn = next(record for _, record in rows if record.get("type") == "turn")
    lines += [
        '{"schema_version":"1.0","type":"turn","event_id":"broken-1",',  # malformed_json
        json.dumps({**turn, "event_id": "bad-2", "text": None}, separators=(",", ":")),  # schema_violation
    ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    chosen = dialogues(args.data / "doc2dial" / "turns.jsonl.gz")
    documents = list(kb.doc2dial_documents(args.data / "doc2dial" / "documents.jsonl.gz"))
    wanted = {dialogue["doc_id"] for dialogue in chosen}
    domains = {d["domain"] for d in documents if d["doc_id"] in wanted}
    others = sorted((d for d in documents if d["domain"] in domains and d["doc_id"] not in wanted),
                    key=lambda d: _hex(d["doc_id"]))[:EXTRA_DOCUMENTS]
    articles = [kb.doc2dial_article(d) for d in documents if d["doc_id"] in wanted]
    articles += [kb.doc2dial_article(d) for d in others]
    articles += [a for a in kb.import_abcd(args.data / "abcd" / "guidelines.json")
                 if a.title.split(":")[0] in ABCD_FLOWS]
    OUT.mkdir(parents=True, exist_ok=True)
    kb.write_jsonl(sorted(articles, key=lambda a: a.article_id), OUT / "articles.jsonl")
    (OUT / "conversations.jsonl").write_text("\n".join(events(chosen)) + "\n")
    print(f"{len(articles)} articles ({kb.kb_version(articles)}), {len(chosen)} dialogues -> {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
