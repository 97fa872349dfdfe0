"""doc2dial's grounded user turns (CC BY 3.0, IBM) for training and evaluating retrieval.

Each line of ``turns.jsonl(.gz)`` is a user turn with the dialogue so far
(``history``: speaker and text, ending with that turn), the document the
agent answered from (``doc_id``) and the answer's character offset in it
(``answer_start``). A retrieved passage is a hit when it is in that document
and contains that offset.

The split is by dialogue, so no dialogue has turns on both sides: a dialogue
is in ``dev`` when ``blake2b("knowledge-split|<dialogue_id>")`` falls in the
lowest ``DEV_SHARE``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DEV_SHARE = 0.2
Split = Literal["all", "train", "dev"]


@dataclass(frozen=True)
class GroundedTurn:
    turn_id: str
    dialogue_id: str
    turns: tuple[tuple[str, str], ...]
    """(speaker, text), oldest first; the last is the customer's question."""
    doc_id: str
    answer_start: int


def split_of(dialogue_id: str) -> Literal["train", "dev"]:
    digest = hashlib.blake2b(f"knowledge-split|{dialogue_id}".encode(), digest_size=8).digest()
    return "dev" if int.from_bytes(digest, "big") / 2**64 < DEV_SHARE else "train"


def read_turns(path: Path | str, split: Split = "all", limit: int | None = None) -> Iterator[GroundedTurn]:
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    count = 0
    with opener(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            body = json.loads(line)
            if split != "all" and split_of(body["dialogue_id"]) != split:
                continue
            turns = tuple(
                ("customer" if h["speaker"] in ("customer", "user") else "agent", h["text"])
                for h in body["history"]
            )
            yield GroundedTurn(
                turn_id=str(body.get("id", f"{body['dialogue_id']}_{body.get('turn', count)}")),
                dialogue_id=body["dialogue_id"], turns=turns, doc_id=body["doc_id"],
                answer_start=int(body["answer_start"]),
            )
            count += 1
            if limit is not None and count >= limit:
                return
