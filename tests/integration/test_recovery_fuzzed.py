"""A fuzzed corpus on the real broker, with recovery on and one SIGKILL mid-stream: every input accounted for.

Hypothesis draws the hostile records (``tests.fuzz.strategies.payloads`` and
``kafka_keys``: arbitrary bytes, generated JSON, deep nesting, contract
records and mutations of the valid records, with keys of every shape) with a
fixed seed; they are woven at seeded random places into valid STAR
conversations and published to the job's input topics at a steady pace. The
job runs from a recovery directory, is killed once with SIGKILL while input
is still arriving and after it has written output, and is restarted on the
same directory to the end of its input. Then every input position has
exactly one kind of output (decisions or dead letters, never both) under one
id, no id stands for two inputs, no step raised (no ``internal_error``), and
no planted personal data is in clear in any output. Which records the hostile
ones shadow (a mutated duplicate of a valid event, say) is not predicted, so
valid records are held to the same accounting rather than to a decision each;
``test_recovery.py`` checks decisions against an uninterrupted reference.
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from coachflow.bench import bench_records
from tests.fuzz.harness import leaked
from tests.fuzz.strategies import kafka_keys, payloads
from tests.integration.conftest import KafkaJob
from tests.integration.test_recovery import (
    SEED,
    Traffic,
    kill,
    position,
    read_outputs,
    run_to_end,
    streaming,
    tail_of,
)

pytestmark = pytest.mark.kafka

HOSTILE = 400
DIALOGUES = 40


def fuzzed(seeds: list[dict], count: int) -> list[tuple[str, bytes | None, bytes]]:
    """``count`` hostile messages (stream, key, value), drawn by Hypothesis with a fixed seed."""
    drawn: list[tuple[str, bytes | None, bytes]] = []

    @settings(max_examples=count, derandomize=True, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(stream=st.sampled_from(["events", "context"]), key=kafka_keys(None), value=payloads(seeds))
    def draw(stream: str, key: bytes | None, value: bytes) -> None:
        # The context topic is compacted: the broker itself refuses a record without a key there.
        drawn.append(("events" if key is None else stream, key, value))

    draw()
    return drawn


def make_traffic(rng: random.Random) -> tuple[Traffic, list[bytes]]:
    """Valid STAR conversations with the fuzzed messages at random places, and the fuzzed values."""
    valid = bench_records(DIALOGUES, 8)
    messages: list[tuple[str, bytes | None, bytes]] = []
    for record in valid:
        stream = "context" if record["type"] == "customer_context" else "events"
        key = record["customer_id"] if stream == "context" else record["conversation_id"]
        messages.append((stream, key.encode(), json.dumps(record).encode()))
    hostile = fuzzed(valid, HOSTILE)
    for message in hostile:
        messages.insert(rng.randrange(len(messages) + 1), message)
    return Traffic(messages, [None] * len(messages), valid), [value for _, _, value in hostile]


def test_a_fuzzed_stream_with_a_sigkill_is_accounted_for(kafka_job: KafkaJob, tmp_path):
    rng = random.Random(SEED)
    traffic, hostile = make_traffic(rng)
    assert len(set(hostile)) > HOSTILE // 2, "Hypothesis drew too few distinct records"
    with streaming(kafka_job, traffic, tmp_path, duration_s=25) as run:
        process = run.start(tmp_path / "run-0.log")
        assert run.counter.wait_for(lambda: run.counter.count > 50, 90), tail_of(tmp_path / "run-0.log")
        time.sleep(rng.uniform(0.5, 2.0))
        assert process.poll() is None, f"the job stopped by itself: {tail_of(tmp_path / 'run-0.log')}"
        kill(process)
        killed_at = (run.publisher.sent, run.counter.count)
        positions = run.publisher.finish()
        run_to_end(kafka_job, tmp_path / "run-1.log", run.recovery)
    assert killed_at[0] < len(traffic.messages), f"the kill came after all input was published: {killed_at}"

    out = read_outputs(kafka_job.brokers, run.outputs)
    decisions: dict[tuple, set[str]] = defaultdict(set)
    letters: dict[tuple, set[str]] = defaultdict(set)
    for d in out["decisions"]:
        decisions[position(d.input.source)].add(d.decision_id)
    for d in out["dlq"]:
        letters[position(d.source)].add(d.dead_letter_id)
    inputs = set(positions)
    assert len(inputs) == len(traffic.messages)
    assert set(decisions) | set(letters) == inputs, "inputs with neither a decision nor a dead letter"
    assert not set(decisions) & set(letters), "inputs with both a decision and a dead letter"
    assert all(len(ids) == 1 for ids in decisions.values()), "one input, two decision ids"
    assert all(len(ids) == 1 for ids in letters.values()), "one input, two dead-letter ids"
    owners: dict[str, set[tuple]] = defaultdict(set)
    for pos, ids in (*decisions.items(), *letters.items()):
        owners[next(iter(ids))].add(pos)
    assert all(len(p) == 1 for p in owners.values()), "one id for two inputs"
    internal = [f"{d.step}: {d.detail}" for d in out["dlq"] if d.reason == "internal_error"]
    assert not internal, internal[:3]
    written = [r.model_dump_json() for kind in out for r in out[kind]]
    assert not leaked([value for _, _, value in traffic.messages], written)
    duplicates = len(out["decisions"]) + len(out["dlq"]) - len(inputs)
    print(
        f"\ninputs {len(inputs)} ({HOSTILE} fuzzed), decisions {len(out['decisions'])}, dead letters "
        f"{len(out['dlq'])}, replayed after the kill {duplicates}, killed at (published, outputs) {killed_at}"
    )
