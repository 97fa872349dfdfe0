"""The agent console end to end: the job, the console and headless Chromium on a real broker.

Two STAR conversations of two agents are replayed to the job; the console
(``python -m console``) checks tokens against a JWKS file with an issuer and an
audience, as in production. Each agent opens the page in their own browser
context with their token in the address's fragment and sees only their own
conversation; a supervisor sees both, read-only; forged, expired and
other-audience tokens are refused; feedback on the other agent's suggestion is
refused (403) and reaches no topic. One agent clicks Accept, and the test finds
the Feedback record on ``coaching.feedback`` and the job's Acceptance record
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
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from cryptography.hazmat.primitives.asymmetric import rsa

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
    futures = admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=-1)
                                   for n in names])
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


def read_all(brokers: str, topic: str) -> list[tuple[bytes | None, bytes]]:
    """Every record on ``topic`` up to its current end."""
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"check-{time.time_ns()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in meta.partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
        seen: list[tuple[bytes | None, bytes]] = []
        done = {p for p, end in ends.items() if end == 0}
        deadline = time.monotonic() + 30
        while len(done) < len(ends) and time.monotonic() < deadline:
            for msg in consumer.consume(100, 0.5):
                assert not msg.error(), msg.error()
                seen.append((msg.key(), msg.value()))
                if msg.offset() + 1 >= ends[msg.partition()]:
                    done.add(msg.partition())
        assert len(done) == len(ends), f"{topic} was not read to its end"
        return seen
    finally:
        consumer.close()


class IdentityProvider:
    """Signs tokens with an RSA key whose public half the console reads from a JWKS file."""

    issuer = "https://idp.e2e.test/"
    audience = "coachflow-console"

    def __init__(self, directory: Path) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = directory / "jwks.json"
        self.jwks.write_text(json.dumps({"keys": [{**public, "kid": "e2e-1", "alg": "RS256", "use": "sig"}]}))

    def token(self, agent: str, role: str = "agent", key=None, **claims) -> str:
        now = int(time.time())
        body = {"iss": self.issuer, "aud": self.audience, "sub": agent, "role": role,
                "iat": now, "exp": now + 900, **claims}
        return jwt.encode(body, key or self.key, algorithm="RS256", headers={"kid": "e2e-1"})


def start_console(job: KafkaJob, port: int, log: Path, topics: dict[str, str], idp: IdentityProvider,
                  teams: Path, **extra: str) -> subprocess.Popen:
    env = job.env(
        COACH_TOPIC_FEEDBACK=topics["feedback"], COACH_TOPIC_ACCEPTANCE=topics["acceptance"], **extra
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "console", "--brokers", job.brokers, "--port", str(port),
         "--jwks", str(idp.jwks), "--issuer", idp.issuer, "--audience", idp.audience, "--teams", str(teams)],
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


def snapshot(port: int, token: str) -> dict:
    """The first event of the console's stream for this token, read as any HTTP client would."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/events",
                                     headers={"Authorization": f"Bearer {token}"})
    lines = []
    with urllib.request.urlopen(request, timeout=10) as resp:
        for raw in resp:
            line = raw.decode().rstrip("\n")
            if not line and lines:
                break
            if line and not line.startswith(":"):
                lines.append(line)
    fields = dict(line.split(": ", 1) for line in lines)
    assert fields["event"] == "snapshot", fields
    return json.loads(fields["data"])


def open_console(browser, port: int, token: str, blocked: list[str]):
    """A fresh browser context (its own storage) on the console's address with ``token`` in the
    fragment; what the Content-Security-Policy blocks on the page is added to ``blocked``."""
    context = browser.new_context()
    page = context.new_page()

    def note(message) -> None:
        if "Content Security Policy" in message.text:
            blocked.append(message.text)

    page.on("console", note)
    page.goto(f"http://127.0.0.1:{port}/#token={token}")
    return context, page


def card_ids(page) -> list[str]:
    """The conversations shown on a page, top to bottom."""
    return page.eval_on_selector_all(".conversation", "cards => cards.map(c => c.dataset.conversationId)")


def test_two_agents_see_only_their_own_and_an_accept_click_is_counted(kafka_job: KafkaJob, browser, tmp_path):
    p = kafka_job.prefix
    topics = {"feedback": f"{p}coaching.feedback", "acceptance": f"{p}coaching.acceptance"}
    create_topics(kafka_job.brokers, list(topics.values()))

    # Two STAR conversations of two agents that have just happened (every event at or before now);
    # their ends are held back until the agent has clicked, as in a live conversation.
    stamped = list(replay.records(STAR_DIALOGUES, limit=2, concurrency=2, start=datetime.now(UTC)))
    length = stamped[-1][0] - stamped[0][0]
    items = [record for _, record in replay.records(
        STAR_DIALOGUES, limit=2, concurrency=2, start=datetime.now(UTC) - length - timedelta(seconds=5))]
    ending = [r for r in items if r["type"] == "conversation_end"]
    items = [r for r in items if r["type"] != "conversation_end"]
    starts = [r for r in items if r["type"] == "conversation_start"]
    (agent_a, conv_a), (agent_b, conv_b) = [(r["agent_id"], r["conversation_id"]) for r in starts]
    assert agent_a != agent_b, "the first two STAR dialogues should have two agents"

    idp = IdentityProvider(tmp_path)
    teams = tmp_path / "teams.yaml"
    teams.write_text(f"sup-e2e: [{agent_a}, {agent_b}]\n")
    job = kafka_job.start(tmp_path / "job.log", COACH_CONTEXT_WAIT_MS="500", COACH_METRICS_PORT="0",
                          COACH_TOPIC_FEEDBACK=topics["feedback"],
                          COACH_TOPIC_ACCEPTANCE=topics["acceptance"])
    port = free_port()
    console = start_console(kafka_job, port, tmp_path / "console.log", topics, idp, teams)
    token_a, token_b = idp.token(agent_a), idp.token(agent_b)
    contexts = []
    blocked: list[str] = []

    def logs() -> str:
        return ("\njob:\n" + (tmp_path / "job.log").read_text()[-3000:]
                + "\nconsole:\n" + (tmp_path / "console.log").read_text()[-3000:])

    try:
        context_a, page_a = open_console(browser, port, token_a, blocked)
        context_b, page_b = open_console(browser, port, token_b, blocked)
        context_s, page_s = open_console(browser, port, idp.token("sup-e2e", "supervisor"), blocked)
        contexts += [context_a, context_b, context_s]
        for page, who in ((page_a, agent_a), (page_b, agent_b), (page_s, "sup-e2e")):
            page.wait_for_selector("#status[data-state=live]", timeout=30_000)
            assert page.text_content("#agent") == who
            assert "token" not in page.url  # the page took the token out of the address and history

        kafka_job.produce(messages(items))

        # Each agent sees their own conversation's suggestions; the supervisor sees both.
        card_a = f'.conversation[data-conversation-id="{conv_a}"]'
        card_b = f'.conversation[data-conversation-id="{conv_b}"]'
        try:
            for page, card in ((page_a, card_a), (page_b, card_b), (page_s, card_a), (page_s, card_b)):
                page.wait_for_selector(f"{card} .suggestion", timeout=120_000)
        except Exception:
            raise AssertionError("a conversation's suggestions did not reach its page" + logs()) from None
        for page, mine, agent, token in ((page_a, conv_a, agent_a, token_a),
                                         (page_b, conv_b, agent_b, token_b)):
            assert card_ids(page) == [mine], agent
            agents = page.eval_on_selector_all(".suggestion", "items => items.map(i => i.dataset.agentId)")
            assert agents and set(agents) == {agent}
            assert page.locator("button.accept").count() == len(agents)
            # The server never sends the other agent's conversation (not only the page hiding it).
            shown = snapshot(port, token)
            assert [c["conversation_id"] for c in shown["conversations"]] == [mine], agent
        assert page_s.locator("button").count() == 0  # the supervisor's view is read-only

        # Forged, expired and other-audience tokens: refused, nothing shown.
        now = int(time.time())
        other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        bad = {"bad_signature": idp.token(agent_a, key=other_key),
               "expired": idp.token(agent_a, iat=now - 600, exp=now - 120),
               "wrong_audience": idp.token(agent_a, aud="another-app")}
        for reason, token in bad.items():
            context, page = open_console(browser, port, token, blocked)
            contexts.append(context)
            page.wait_for_selector("#status[data-state=refused]", timeout=30_000)
            assert reason in page.text_content("#status") and page.locator(".conversation").count() == 0
            assert page.evaluate("sessionStorage.length") == 0

        # Agent A posts a verdict on agent B's suggestion from A's page: refused, nothing produced.
        theirs = page_b.locator(f"{card_b} .suggestion").last.get_attribute("data-suggestion-id")
        refused = page_a.evaluate(
            """async ([token, id]) => {
                const r = await fetch("/api/feedback", {method: "POST", body: JSON.stringify(
                    {suggestion_id: id, event: "accepted"}),
                    headers: {"Content-Type": "application/json", Authorization: "Bearer " + token}});
                return [r.status, await r.json()];
            }""", [token_a, theirs])
        assert refused == [403, {"error": "forbidden", "reason": "not_your_suggestion",
                                 "message": "this suggestion is not one of yours on this console"}]

        # Agent A accepts their own earliest suggestion.
        item = page_a.locator(f"{card_a} .suggestion").last  # the earliest (newest are on top)
        suggestion_id = item.get_attribute("data-suggestion-id")
        assert suggestion_id and item.locator(".text").inner_text().strip()
        item.locator("button.accept").click()
        page_a.wait_for_selector(f'.suggestion[data-suggestion-id="{suggestion_id}"][data-verdict=accepted]',
                                 timeout=30_000)
        assert item.locator("button.dismiss").is_disabled()
        # The supervisor's page shows the verdict too.
        page_s.wait_for_selector(f'.suggestion[data-suggestion-id="{suggestion_id}"][data-verdict=accepted]',
                                 timeout=30_000)

        # The feedback topic: the accepted record, keyed by the conversation, valid against the
        # contract, and nothing for agent B's suggestion.
        def accepted_feedback(seen) -> list[Feedback]:
            out = []
            for key, value in seen:
                record = Feedback.model_validate_json(value)
                assert key == record.conversation_id.encode()
                if record.suggestion_id == suggestion_id and record.event == "accepted":
                    out.append(record)
            return out

        read_until(kafka_job.brokers, topics["feedback"], accepted_feedback, timeout=30)
        everything = [Feedback.model_validate_json(v)
                      for _, v in read_all(kafka_job.brokers, topics["feedback"])]
        assert [(f.suggestion_id, f.event) for f in everything] == [(suggestion_id, "accepted")], everything
        assert everything[0].conversation_id == conv_a and everything[0].agent_id == agent_a

        kafka_job.produce(messages(ending))

        # The suggestion the console showed is one the job published for agent A.
        shown = read_until(kafka_job.brokers, kafka_job.settings.topic_suggestions,
                           lambda s: any(Suggestion.model_validate_json(v).suggestion_id == suggestion_id
                                         for _, v in s), timeout=30)
        assert any(Suggestion.model_validate_json(v).suggestion_id == suggestion_id
                   and Suggestion.model_validate_json(v).agent_id == agent_a for _, v in shown)

        # The job counts the click: an Acceptance with mode "click" for that suggestion.
        def clicked(seen) -> list[Acceptance]:
            records = [Acceptance.model_validate_json(v) for _, v in seen]
            return [a for a in records if a.suggestion_id == suggestion_id and a.mode == "click"]

        seen = read_until(kafka_job.brokers, topics["acceptance"], clicked, timeout=90)
        verdicts = clicked(seen)
        assert verdicts, (
            f"no click Acceptance for {suggestion_id} on {topics['acceptance']} ({len(seen)} records there)"
            + logs()
        )
        assert all(a.accepted and a.outcome == "accepted" for a in verdicts), verdicts
        assert verdicts[0].conversation_id == conv_a and verdicts[0].agent_id == agent_a

        # ... and A's console shows it as counted; B's page still has only B's conversation.
        page_a.wait_for_selector(
            f'.suggestion[data-suggestion-id="{suggestion_id}"][data-counted-click=accepted]', timeout=30_000)
        assert page_b.locator(f'.suggestion[data-suggestion-id="{suggestion_id}"]').count() == 0
        assert card_ids(page_b) == [conv_b]
        page_a.screenshot(path=str(tmp_path / "console-a.png"), full_page=True)
        page_s.screenshot(path=str(tmp_path / "console-supervisor.png"), full_page=True)
        # The console logged the refusals without the agents' ids.
        console_log = (tmp_path / "console.log").read_text()
        assert "refused feedback" in console_log and "refused a token" in console_log
        assert agent_a not in console_log and agent_b not in console_log
        assert blocked == []  # the strict CSP blocked nothing the page needs
    finally:
        for context in contexts:
            context.close()
        stop(console)
        stop(job)
