"""The agent console's server without a broker: the board, the feedback endpoint and the SSE stream."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from console.server import CONSOLE, Board, Console, ConsoleConfig, build_app, feedback_id
from schemas import Alert, Suggestion
from schemas.feedback import Acceptance, Feedback

NOW = datetime(2026, 4, 1, 9, 0, tzinfo=timezone.utc)


def suggestion(sid: str = "s-1", conversation: str = "c-1", agent: str = "a-1") -> Suggestion:
    return Suggestion(
        suggestion_id=sid, decision_id=f"d-{sid}", conversation_id=conversation, customer_id="u-1",
        agent_id=agent, channel="chat", event_id="e-1", action="ask_name", text="May I have your name?",
        confidence=0.9, model_version="coach-1.0.0", policy_version="1.0.0", created_at=NOW,
    )


def alert(aid: str = "al-1", agent: str = "a-1") -> Alert:
    return Alert(
        alert_id=aid, conversation_id="c-1", customer_id="u-1", agent_id=agent, event_id="e-2",
        kind="long_silence", severity="warning", audience=["agent"], message="The customer waited.",
        event_time=NOW, raised_at=NOW,
    )


def acceptance(sid: str = "s-1") -> Acceptance:
    return Acceptance(
        acceptance_id=f"acc-{sid}", suggestion_id=sid, decision_id=f"d-{sid}", conversation_id="c-1",
        agent_id="a-1", channel="chat", mode="click", outcome="accepted", accepted=True, action="ask_name",
        model_version="coach-1.0.0", policy_version="1.0.0", at=NOW,
    )


class FakeProducer:
    def __init__(self, error: str | None = None) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.pending = []
        self.error = error

    def produce(self, topic, key, value, on_delivery):
        self.sent.append((topic, key, value))
        self.pending.append(on_delivery)

    def poll(self, _timeout=0):
        while self.pending:
            self.pending.pop()(self.error, None)
        return 0

    def flush(self, _timeout=0):
        return self.poll()


def test_feedback_ids_are_deterministic_per_suggestion_and_verdict():
    assert feedback_id("s-1", "accepted") == feedback_id("s-1", "accepted")
    assert feedback_id("s-1", "accepted") != feedback_id("s-1", "dismissed")
    assert feedback_id("s-1", "accepted") != feedback_id("s-2", "accepted")


def test_board_keeps_one_agent_drops_duplicates_and_marks_what_was_counted():
    board = Board("a-1")
    queue: asyncio.Queue = asyncio.Queue()
    board.subscribers.add(("a-1", queue))
    board.add("suggestion", suggestion())
    board.add("suggestion", suggestion())  # at-least-once redelivery
    board.add("suggestion", suggestion("s-9", "c-9", agent="someone-else"))
    board.add("alert", alert())
    board.add("acceptance", acceptance())
    kinds = []
    while not queue.empty():
        kinds.append(queue.get_nowait()[0])
    assert kinds == ["suggestion", "alert", "acceptance"]
    board.verdicts["s-1"] = "accepted"
    (conv,) = board.snapshot("a-1")
    assert conv["conversation_id"] == "c-1" and [a["alert_id"] for a in conv["alerts"]] == ["al-1"]
    (item,) = conv["suggestions"]
    assert item["verdict"] == "accepted" and item["counted"]["click"]["outcome"] == "accepted"
    assert board.snapshot("someone-else") == []


def with_client(test, agent: str | None = "a-1", producer: FakeProducer | None = None):
    config = ConsoleConfig(brokers="unused:9092", agent=agent, topic_feedback="t.coaching.feedback")
    app = build_app(config)
    console: Console = app[CONSOLE]
    app.on_startup.clear()  # no Kafka: the test feeds the board itself
    app.on_shutdown.clear()
    console.producer = producer or FakeProducer()

    async def main():
        async with TestClient(TestServer(app)) as client:
            await test(client, console)

    asyncio.run(main())


def test_accept_produces_a_valid_feedback_record_keyed_by_conversation():
    async def test(client: TestClient, console: Console):
        console.board.add("suggestion", suggestion())
        resp = await client.post("/api/feedback", json={"suggestion_id": "s-1", "event": "accepted"})
        assert resp.status == 201, await resp.text()
        body = await resp.json()
        ((topic, key, value),) = console.producer.sent
        assert topic == "t.coaching.feedback" and key == b"c-1"
        record = Feedback.model_validate_json(value)
        assert record.model_dump(mode="json") == body
        assert (record.suggestion_id, record.event, record.agent_id) == ("s-1", "accepted", "a-1")
        assert record.feedback_id == feedback_id("s-1", "accepted")
        # The same verdict again is an idempotent repeat: nothing more is sent; the other one conflicts.
        again = await client.post("/api/feedback", json={"suggestion_id": "s-1", "event": "accepted"})
        assert again.status == 200 and (await again.json()) == body
        assert len(console.producer.sent) == 1
        other = await client.post("/api/feedback", json={"suggestion_id": "s-1", "event": "dismissed"})
        assert other.status == 409

    with_client(test)


def test_feedback_requests_that_are_refused():
    async def test(client: TestClient, console: Console):
        console.board.add("suggestion", suggestion())
        assert (await client.post("/api/feedback", json={"suggestion_id": "nope", "event": "accepted"})).status == 404
        assert (await client.post("/api/feedback", json={"suggestion_id": "s-1", "event": "shown"})).status == 400
        assert (await client.post("/api/feedback", data=b"not json")).status == 400
        resp = await client.post("/api/feedback?agent=a-2", json={"suggestion_id": "s-1", "event": "accepted"})
        assert resp.status == 403
        assert console.producer.sent == []

    with_client(test)


def test_a_broker_error_is_reported_and_no_verdict_kept():
    async def test(client: TestClient, console: Console):
        console.board.add("suggestion", suggestion())
        resp = await client.post("/api/feedback", json={"suggestion_id": "s-1", "event": "dismissed"})
        assert resp.status == 503 and "refused" in await resp.text()
        assert "s-1" not in console.board.verdicts

    with_client(test, producer=FakeProducer(error="broker down"))


def test_the_page_and_the_event_stream():
    async def test(client: TestClient, console: Console):
        page = await client.get("/")
        assert page.status == 200 and "/static/console.js" in await page.text()
        for name in ("console.js", "console.css"):
            assert (await client.get(f"/static/{name}")).status == 200
        assert (await client.get("/static/../server.py")).status == 404
        console.board.add("suggestion", suggestion())
        resp = await client.get("/events")
        assert resp.headers["Content-Type"].startswith("text/event-stream")

        async def next_event():
            lines = []
            while True:
                line = (await resp.content.readline()).decode().rstrip("\n")
                if not line and lines:
                    break
                if line and not line.startswith(":"):
                    lines.append(line)
            fields = dict(line.split(": ", 1) for line in lines)
            return fields["event"], json.loads(fields["data"])

        kind, snapshot = await asyncio.wait_for(next_event(), 5)
        assert kind == "snapshot" and snapshot["agent"] == "a-1"
        assert [s["suggestion_id"] for s in snapshot["conversations"][0]["suggestions"]] == ["s-1"]
        console.board.add("alert", alert())
        kind, data = await asyncio.wait_for(next_event(), 5)
        assert kind == "alert" and data["alert_id"] == "al-1"
        resp.close()
        health = await client.get("/healthz")
        assert health.status == 503  # no Kafka reader in this test

    with_client(test)


def test_without_an_agent_the_page_chooses_one():
    async def test(client: TestClient, console: Console):
        console.board.add("suggestion", suggestion(agent="a-7"))
        cfg = await (await client.get("/api/config?agent=a-7")).json()
        assert cfg["agent"] == "a-7"
        resp = await client.post("/api/feedback?agent=a-7", json={"suggestion_id": "s-1", "event": "accepted"})
        assert resp.status == 201

    with_client(test, agent=None)


def test_the_app_is_an_aiohttp_application():
    assert isinstance(build_app(ConsoleConfig(brokers="x:1", agent=None)), web.Application)
