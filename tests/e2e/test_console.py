"""The agent console end to end: the job, the console and headless Chromium on a real broker.

One STAR conversation is replayed to the job; the console (``python -m
console``) serves its agent; Chromium opens the page, waits for the
conversation's suggestions, clicks Accept on one, and the test finds the
Feedback record on ``coaching.feedback`` and the job's Acceptance record
(``mode="click"``) for that suggestion on ``coaching.acceptance``.

Debian's Chromium (``/usr/bin/chromium``, installed by ``scripts/chromium.sh``)
is driven with Playwright; no browser is downloaded. With COACH_TEST_BROKERS
set, a missing browser fails the test rather than skipping it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from coachflow import replay
from schemas import Suggestion
from schemas.feedback import Acceptance, Feedback
from tests.helpers import ROOT, STAR_DIALOGUES
from tests.integration.conftest import KafkaJob, stop

pytestmark = [pytest.mark.kafka, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_topics(brokers: str, names: list[str], partitions: int = 4) -> None:
    admin = AdminClient({"bootstrap.servers": brokers})
    futures = admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=-1) for n in names])
    for name, future in futures.items():
        try:
            future.result(30)
        except Exception as exc:  # noqa: BLE001 - the job may have made it first
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise AssertionError(f"creating {name}: {exc}") from exc


def read_until(brokers: str, topic: str, found, timeout: float) -> list:
    """Read ``topic`` from the start until ``found(records)`` is true; return the (key, value) pairs."""
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"check-{time.time_ns()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
    seen: list[tuple[bytes | None, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not found(seen):
            for msg in consumer.consume(100, 0.5):
                assert not msg.error(), msg.error()
                seen.append((msg.key(), msg.value()))
    finally:
        consumer.close()
    return seen


@pytest.fixture
def browser() -> Iterator:
    # Fail, never skip: the Kafka tests run here, so the browser must be here too.
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/chromium.sh (scripts/test.sh does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.fail(f"Playwright is not installed ({exc}): scripts/bootstrap.sh dev")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def messages(records: list[dict]) -> list[tuple[str, bytes, bytes]]:
    return [
        ("context", r["customer_id"].encode(), json.dumps(r).encode()) if r["type"] == "customer_context"
        else ("events", r["conversation_id"].encode(), json.dumps(r).encode())
        for r in records
    ]


def start_console(job: KafkaJob, agent: str, port: int, log: Path, topics: dict[str, str]) -> subprocess.Popen:
    env = job.env(COACH_TOPIC_FEEDBACK=topics["feedback"], COACH_TOPIC_ACCEPTANCE=topics["acceptance"])
    process = subprocess.Popen(
        [sys.executable, "-m", "console", "--brokers", job.brokers, "--agent", agent, "--port", str(port)],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                if json.load(resp)["ready"]:
                    return process
        except OSError:
            pass
        time.sleep(0.5)
    stop(process)
    raise AssertionError("the console did not become ready:\n" + log.read_text()[-3000:])


def test_accept_in_the_console_writes_feedback_and_is_counted(kafka_job: KafkaJob, browser, tmp_path):
    p = kafka_job.prefix
    topics = {"feedback": f"{p}coaching.feedback", "acceptance": f"{p}coaching.acceptance"}
    create_topics(kafka_job.brokers, list(topics.values()))

    # One STAR conversation that has just happened (every event at or before now); its end is
    # held back until the agent has clicked, as in a live conversation.
    stamped = list(replay.records(STAR_DIALOGUES, limit=1, concurrency=1, start=datetime.now(timezone.utc)))
    length = stamped[-1][0] - stamped[0][0]
    items = [record for _, record in replay.records(
        STAR_DIALOGUES, limit=1, concurrency=1, start=datetime.now(timezone.utc) - length - timedelta(seconds=5))]
    ending = [r for r in items if r["type"] == "conversation_end"]
    items = [r for r in items if r["type"] != "conversation_end"]
    conversation = next(r for r in items if r["type"] == "conversation_start")
    agent, conversation_id = conversation["agent_id"], conversation["conversation_id"]

    # The job reads the feedback topic and writes acceptances (the COACH_TOPIC_* names are
    # ignored by a job that does not know them yet).
    job = kafka_job.start(tmp_path / "job.log", COACH_CONTEXT_WAIT_MS="500", COACH_METRICS_PORT="0",
                          COACH_TOPIC_FEEDBACK=topics["feedback"], COACH_TOPIC_ACCEPTANCE=topics["acceptance"])
    port = free_port()
    console = start_console(kafka_job, agent, port, tmp_path / "console.log", topics)
    page = browser.new_page()
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#status[data-state=live]", timeout=30_000)
        assert page.text_content("#agent") == agent

        kafka_job.produce(messages(items))

        # Its suggestions appear on the page, under the conversation.
        card = f'.conversation[data-conversation-id="{conversation_id}"]'
        try:
            page.wait_for_selector(f"{card} .suggestion", timeout=120_000)
        except Exception:
            raise AssertionError(
                "no suggestion on the page\njob:\n" + (tmp_path / "job.log").read_text()[-3000:]
                + "\nconsole:\n" + (tmp_path / "console.log").read_text()[-3000:]
            ) from None
        item = page.locator(f"{card} .suggestion").last  # the earliest (newest are on top)
        suggestion_id = item.get_attribute("data-suggestion-id")
        assert suggestion_id and item.locator(".text").inner_text().strip()

        item.locator("button.accept").click()
        page.wait_for_selector(f'.suggestion[data-suggestion-id="{suggestion_id}"][data-verdict=accepted]',
                               timeout=30_000)
        assert item.locator("button.dismiss").is_disabled()

        # The feedback record: on the topic, keyed by the conversation, valid against the contract.
        def accepted_feedback(seen) -> list[Feedback]:
            out = []
            for key, value in seen:
                record = Feedback.model_validate_json(value)
                assert key == record.conversation_id.encode()
                if record.suggestion_id == suggestion_id and record.event == "accepted":
                    out.append(record)
            return out

        seen = read_until(kafka_job.brokers, topics["feedback"], accepted_feedback, timeout=30)
        feedback = accepted_feedback(seen)
        assert len(feedback) == 1, seen
        assert feedback[0].conversation_id == conversation_id and feedback[0].agent_id == agent

        kafka_job.produce(messages(ending))

        # The suggestion the console showed is one the job published for this agent.
        shown = read_until(kafka_job.brokers, kafka_job.settings.topic_suggestions,
                           lambda s: any(Suggestion.model_validate_json(v).suggestion_id == suggestion_id
                                         for _, v in s), timeout=30)
        assert any(Suggestion.model_validate_json(v).agent_id == agent for _, v in shown)

        # The job counts the click: an Acceptance with mode "click" for that suggestion.
        # (Needs the job to read COACH_TOPIC_FEEDBACK and write COACH_TOPIC_ACCEPTANCE.)
        def clicked(seen) -> list[Acceptance]:
            records = [Acceptance.model_validate_json(v) for _, v in seen]
            return [a for a in records if a.suggestion_id == suggestion_id and a.mode == "click"]

        seen = read_until(kafka_job.brokers, topics["acceptance"], clicked, timeout=90)
        verdicts = clicked(seen)
        assert verdicts, (
            f"no click Acceptance for {suggestion_id} on {topics['acceptance']} ({len(seen)} records there)"
            "\njob:\n" + (tmp_path / "job.log").read_text()[-3000:]
        )
        assert all(a.accepted and a.outcome == "accepted" for a in verdicts), verdicts
        assert verdicts[0].conversation_id == conversation_id and verdicts[0].agent_id == agent

        # ... and the console shows it as counted.
        page.wait_for_selector(
            f'.suggestion[data-suggestion-id="{suggestion_id}"][data-counted-click=accepted]', timeout=30_000)
        page.screenshot(path=str(tmp_path / "console.png"), full_page=True)
    finally:
        page.close()
        stop(console)
        stop(job)
