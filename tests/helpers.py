"""Builders for test records and envelopes; the embedded job run on a file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from itertools import count
from pathlib import Path

from operators.envelope import Envelope, Origin, RawRecord
from schemas import INPUT_ADAPTER

ROOT = Path(__file__).resolve().parents[1]
STAR_DIR = ROOT.parent / "shared" / "data" / "star"
STAR_DIALOGUES = STAR_DIR / "dialogues.jsonl.gz"
T0 = datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc)
_lines = count(1)


def run_embedded(source: Path, out: Path, **env: str) -> tuple[dict[str, list[str]], list[str]]:
    """Run the embedded job on ``source`` (it must succeed): each output file's lines by name, and
    every line it wrote (outputs, lineage, stdout, stderr)."""
    environment = {**os.environ, "COACH_INPUT": str(source), "COACH_OUTPUT_DIR": str(out),
                   "COACH_PRINT_SUGGESTIONS": "true", "COACH_CONTEXT_WAIT_MS": "50", **env}
    environment.pop("COACH_BROKERS", None)
    done = subprocess.run([sys.executable, "-m", "bytewax.run", "flows.coaching:flow"], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    outputs = {f.name: f.read_text().splitlines() for f in out.glob("*.jsonl")}
    written = [line for rows in outputs.values() for line in rows]
    return outputs, written + done.stdout.splitlines() + done.stderr.splitlines()


def run_job(settings) -> None:
    """Run the coaching dataflow in this process, as a job does: its resources opened, then closed."""
    from bytewax.testing import run_main

    from coachflow.runtime import JobResources
    from flows.coaching import get_flow

    with JobResources(settings) as job:
        run_main(get_flow(settings, job))


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def event(kind: str = "turn", *, seq: int = 1, t: float = 0.0, conversation: str = "c-1",
          customer: str = "u-1", **fields) -> dict:
    """A valid conversation event as a dict; ``fields`` override or add."""
    record = {
        "schema_version": "1.0",
        "type": kind,
        "event_id": f"{conversation}-{seq}",
        "conversation_id": conversation,
        "customer_id": customer,
        "agent_id": "a-1",
        "channel": "chat",
        "event_time": at(t),
        "sequence": seq,
    }
    if kind == "turn":
        record.update(speaker="customer", text="I need my balance", is_final=True)
    elif kind == "conversation_start":
        record.update(tasks=["bank_balance"])
    elif kind == "task_selected":
        record.update(task="bank_balance")
    elif kind == "kb_result":
        record.update(api="bank_balance", total_items=-1, item={"BankBalance": 5703})
    record.update(fields)
    return record


def context(customer: str = "u-1", t: float = 0.0, **fields) -> dict:
    record = {
        "schema_version": "1.0",
        "type": "customer_context",
        "customer_id": customer,
        "tier": "gold",
        "marketing_opt_out": False,
        "recording_consent": True,
        "jurisdiction": "US-CA",
        "language": "en",
        "open_cases": 0,
        "updated_at": at(t),
    }
    record.update(fields)
    return record


def raw(record: dict | bytes, *, stream: str = "any", key: bytes | None = None) -> RawRecord:
    value = record if isinstance(record, bytes) else json.dumps(record).encode()
    return RawRecord(value=value, key=key, origin=Origin(file="test.jsonl", line=next(_lines)), stream=stream)


def envelope(record: dict, received_ns: int = 1) -> Envelope:
    return Envelope(
        record=INPUT_ADAPTER.validate_json(json.dumps(record)),
        origin=Origin(file="test.jsonl", line=next(_lines)),
        received_ns=received_ns,
    )


class Clock:
    """A settable wall clock (epoch seconds) for stateful logic."""

    def __init__(self, start: float = 1_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def registered_copy(tmp_path: Path, monkeypatch, artifact: Path) -> tuple[Path, Path]:
    """A copy of a registered model artifact and of the registry, under ``tmp_path/models``.

    The copy sits at the artifact's place relative to ``models/`` (where its
    registry entry points), with ``registry.MODELS_DIR`` patched to follow it.
    """
    from models import registry

    models_dir = tmp_path / "models"
    copy = models_dir / artifact.resolve().relative_to(registry.MODELS_DIR.resolve())
    copy.parent.mkdir(parents=True)
    shutil.copy(artifact, copy)
    reg = models_dir / "registry.json"
    shutil.copy(registry.REGISTRY, reg)
    monkeypatch.setattr(registry, "MODELS_DIR", models_dir)
    return copy, reg
