"""Labelled prediction points from STAR, through the serving code path.

Each dialogue is mapped to contract events exactly as ``coach replay`` does,
parsed with the topic contracts, masked for PII by the default policy's
redactor and applied to the same ``ConversationTracker`` the dataflow runs; the
``Features`` at every labelled prediction point are a
training or evaluation example.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from models import star
from operators.conversation import ConversationConfig, ConversationTracker
from operators.features import Features
from operators.parse import mask_record
from operators.pii import Redactor
from operators.policy import DEFAULT_POLICY, load_policy
from schemas import INPUT_ADAPTER, CustomerContext

_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Example:
    features: Features
    label: str
    dialogue_id: int
    domains: tuple[str, ...]
    happy: bool
    multi_task: bool
    aggressive: bool
    event_id: str


def examples(
    dialogues: Iterable[dict], config: ConversationConfig | None = None, redactor: Redactor | None = None
) -> Iterator[Example]:
    """Every labelled prediction point of ``dialogues``, in order."""
    config = config or ConversationConfig()
    redactor = redactor or load_policy(DEFAULT_POLICY).redactor
    for dialogue in dialogues:
        mapped = star.map_dialogue(dialogue)
        tracker = ConversationTracker(config)
        for offset, body in mapped.records:
            record = INPUT_ADAPTER.validate_python(
                star.stamp(body, _EPOCH + timedelta(seconds=offset))
            )
            if isinstance(record, CustomerContext):
                continue
            record, _ = mask_record(record, redactor)  # as the stream's parse step does
            applied = tracker.apply(record)
            label = mapped.labels.get(record.event_id)
            if applied.features is not None and label is not None:
                yield Example(
                    features=applied.features,
                    label=label,
                    dialogue_id=mapped.dialogue_id,
                    domains=mapped.domains,
                    happy=mapped.happy,
                    multi_task=mapped.multi_task,
                    aggressive=mapped.aggressive,
                    event_id=record.event_id,
                )


def file_sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
