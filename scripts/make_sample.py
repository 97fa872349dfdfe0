"""Rebuild data/sample/conversations.jsonl: STAR dev-split dialogues plus a few bad records.

    .venv/bin/python scripts/make_sample.py [--star ../shared/data/star]

The dialogues come from the dev split (never trained on), replayed with
`coach replay`'s mapping at a fixed start time; six bad records at the end show
the dead-letter output at work.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

from coachflow import replay
from models import star

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "sample" / "conversations.jsonl"


def bad_records(valid: list[dict]) -> list[str]:
    """Hand-made refusals, each showing one dead-letter reason."""
    turn = next(r for r in valid if r["type"] == "turn" and r["speaker"] == "customer")
    ended = next(r for r in reversed(valid) if r["type"] == "conversation_end")
    straggler = {**turn, "conversation_id": ended["conversation_id"],
                 "customer_id": ended["customer_id"], "agent_id": ended["agent_id"],
                 "channel": ended["channel"],
                 "event_id": ended["event_id"] + "-late", "sequence": ended["sequence"] + 1,
                 "event_time": ended["event_time"], "text": "Hello? Are you still there?"}
    compact = lambda r: json.dumps(r, separators=(",", ":"))  # noqa: E731
    return [
        '{"schema_version":"1.0","type":"turn","event_id":"broken-1",',  # malformed_json
        compact({**turn, "event_id": "bad-2", "sentiment": "angry"}),  # unknown_field
        compact({**turn, "event_id": "bad-3", "channel": "fax"}),  # unknown_enum_value
        compact({k: v for k, v in {**turn, "event_id": "bad-4"}.items() if k != "text"}),  # missing_field
        compact({**turn, "event_id": "bad-5", "text": "refund\u0000please\u202e"}),  # invalid_text
        compact(straggler),  # conversation_ended
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--star", type=Path, default=star.DEFAULT_STAR_DIR)
    args = parser.parse_args()
    items = replay.records(
        args.star / "dialogues.jsonl.gz", split="dev", limit=16, concurrency=6,
        start=datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
    )
    valid = [record for _, record in items]
    lines = [json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in valid]
    OUT.write_text("\n".join([*lines, *bad_records(valid)]) + "\n", encoding="utf-8")
    print(f"wrote {OUT}: {len(valid)} records and 6 bad ones")


if __name__ == "__main__":
    main()
