"""The agent console's server without a broker: the board, who sees and judges what, the feedback
endpoint, the SSE stream and the security headers; real tokens from a development key."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import jwt
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import ed25519

from console.auth import DEV_ALGORITHM, DEV_ISSUER, AuthConfig, dev_private_key, mint
from console.server import (
    CONSOLE,
    SECURITY_HEADERS,
    Board,
    Console,
    ConsoleConfig,
    Subscriber,
    build_app,
    feedback_id,
)
from schemas import Alert, Suggestion
from schemas.feedback import Acceptance, Feedback

NOW = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)


def suggestion(sid: str = "s-1", conversation: str = "c-1", agent: str = "a-1") -> Suggestion:
    return Suggestion(
        suggestion_id=sid, decision_id=f"d-{sid}", conversation_id=conversation,
        customer_id=f"u-{conversation}", agent_id=agent, channel="chat", event_id="e-1", action="ask_name",
        text="May I have your name?",
        confidence=0.9, model_version="coach-1.0.0", policy_version="1.0.0", created_at=NOW,
    )


def alert(aid: str = "al-1", agent: str = "a-1", conversation: str = "c-1") -> Alert:
    return Alert(
        alert_id=aid, conversation_id=conversation, customer_id=f"u-{conversation}", agent_id=agent,
        event_id="e-2",
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


def test_board_hands_each_record_to_the_streams_that_see_its_agent_and_drops_duplicates():
    board = Board()
    mine, theirs = Subscriber(frozenset({"a-1"})), Subscriber(frozenset({"a-2"}))
    board.subscribers |= {mine, theirs}
    board.add("suggestion", suggestion())
    board.add("suggestion", suggestion())  # at-least-once redelivery
    board.add("suggestion", suggestion("s-9", "c-9", agent="a-2"))
    board.add("alert", alert())
    board.add("acceptance", acceptance())

    def drained(subscriber: Subscriber) -> list[str]:
        kinds = []
        while not subscriber.queue.empty():
            kinds.append(subscriber.queue.get_nowait()[0])
        return kinds

    assert drained(mine) == ["suggestion", "alert", "acceptance"] and drained(theirs) == ["suggestion"]
    board.verdicts["s-1"] = "accepted"
    (conv,) = board.snapshot(frozenset({"a-1"}))
    assert conv["conversation_id"] == "c-1" and [a["alert_id"] for a in conv["alerts"]] == ["al-1"]
    (item,) = conv["suggestions"]
    assert item["verdict"] == "accepted" and item["counted"]["click"]["outcome"] == "accepted"
    assert [c["conversation_id"] for c in board.snapshot(frozenset({"a-2"}))] == ["c-9"]
    assert board.snapshot(frozenset({"a-3"})) == []


def test_a_conversation_handed_to_another_agent_shows_each_their_own_part():
    board = Board()
    board.add("suggestion", suggestion("s-1", "c-1", agent="a-1"))
    board.add("suggestion", suggestion("s-2", "c-1", agent="a-2"))
    board.add("alert", alert("al-2", agent="a-2"))
    ((first,), (second,)) = board.snapshot(frozenset({"a-1"})), board.snapshot(frozenset({"a-2"}))
    assert [s["suggestion_id"] for s in first["suggestions"]] == ["s-1"] and first["alerts"] == []
    assert [s["suggestion_id"] for s in second["suggestions"]] == ["s-2"]
    assert [a["alert_id"] for a in second["alerts"]] == ["al-2"]


def test_a_page_that_does_not_read_is_cut_off_not_buffered_forever():
    board = Board()
    stuck = Subscriber(frozenset({"a-1"}))
    board.subscribers.add(stuck)
    for n in range(stuck.queue.maxsize + 5):
        board.add("suggestion", suggestion(f"s-{n}", f"c-{n}"))
    assert stuck.queue.qsize() == 1 and stuck.queue.get_nowait() is None


def test_the_board_is_bounded():
    board = Board(max_conversations=3)
    for n in range(5):
        board.add("suggestion", suggestion(f"s-{n}", f"c-{n}"))
    assert list(board.conversations) == ["c-2", "c-3", "c-4"]
    assert set(board.suggestions) == {"s-2", "s-3", "s-4"}


class Keys:
    """Development tokens for the test's console, and helpers to call it as someone."""

    def __init__(self, path: Path) -> None:
        self.key = dev_private_key(path)

    def token(self, agent: str = "a-1", role: str = "agent", ttl_s: float = 600) -> str:
        return mint(self.key, agent, role, ttl_s)

    def auth(self, agent: str = "a-1", role: str = "agent", ttl_s: float = 600) -> dict[str, str]:
        return {"Authorization": "Bearer " + self.token(agent, role, ttl_s)}


def with_client(test, tmp_path: Path, producer: FakeProducer | None = None):
    teams = tmp_path / "teams.yaml"
    teams.write_text("sup-1: [a-1, a-2]\n")
    config = ConsoleConfig(brokers="unused:9092", topic_feedback="t.coaching.feedback",
                           auth=AuthConfig(dev_key=tmp_path / "dev.pem", teams=teams))
    app = build_app(config)
    console: Console = app[CONSOLE]
    app.on_startup.clear()  # no Kafka: the test feeds the board itself
    app.on_shutdown.clear()
    console.producer = producer or FakeProducer()
    keys = Keys(tmp_path / "dev.pem")

    async def main():
        async with TestClient(TestServer(app)) as client:
            await test(client, console, keys)

    asyncio.run(main())


async def next_event(resp) -> tuple[str, dict]:
    lines = []
    while True:
        line = (await resp.content.readline()).decode()
        if not line:
            raise EOFError("the stream ended")
        line = line.rstrip("\n")
        if not line and lines:
            break
        if line and not line.startswith(":"):
            lines.append(line)
    fields = dict(line.split(": ", 1) for line in lines)
    return fields["event"], json.loads(fields["data"])


def test_accept_produces_a_valid_feedback_record_keyed_by_conversation(tmp_path):
    async def test(client: TestClient, console: Console, keys: Keys):
        console.board.add("suggestion", suggestion())
        me = keys.auth("a-1")

        async def judge(event: str):
            body = {"suggestion_id": "s-1", "event": event}
            return await client.post("/api/feedback", json=body, headers=me)

        resp = await judge("accepted")
        assert resp.status == 201, await resp.text()
        body = await resp.json()
        ((topic, key, value),) = console.producer.sent
        assert topic == "t.coaching.feedback" and key == b"c-1"
        record = Feedback.model_validate_json(value)
        assert record.model_dump(mode="json") == body
        assert (record.suggestion_id, record.event, record.agent_id) == ("s-1", "accepted", "a-1")
        assert record.feedback_id == feedback_id("s-1", "accepted")
        # The same verdict again is an idempotent repeat: nothing more is sent; the other one conflicts.
        again = await judge("accepted")
        assert again.status == 200 and (await again.json()) == body
        assert len(console.producer.sent) == 1
        other = await judge("dismissed")
        assert other.status == 409

    with_client(test, tmp_path)


def test_feedback_requests_that_are_malformed(tmp_path):
    async def test(client: TestClient, console: Console, keys: Keys):
        console.board.add("suggestion", suggestion())
        me = keys.auth("a-1")
        for body in ({"suggestion_id": "s-1", "event": "shown"}, {"suggestion_id": 7, "event": "accepted"},
                     {"suggestion_id": "s" * 200, "event": "accepted"}, {"event": "accepted"}):
            assert (await client.post("/api/feedback", json=body, headers=me)).status == 400, body
        assert (await client.post("/api/feedback", data=b"not json", headers=me)).status == 400
        assert console.producer.sent == []

    with_client(test, tmp_path)


def test_feedback_on_a_suggestion_that_is_not_the_callers_is_refused_and_logged(tmp_path, caplog):
    async def test(client: TestClient, console: Console, keys: Keys):
        console.board.add("suggestion", suggestion("s-1", "c-1", agent="a-1"))
        console.board.add("suggestion", suggestion("s-2", "c-2", agent="a-2"))
        caplog.set_level(logging.WARNING, logger="coachflow.console")
        cases = [("a-2", "agent", "s-1", "not_your_suggestion"),   # another agent's
                 ("a-1", "agent", "u-c-2-secret", "not_your_suggestion"),  # unknown to the console
                 ("sup-1", "supervisor", "s-1", "read_only")]      # a supervisor of the agent's team
        for caller, role, sid, reason in cases:
            resp = await client.post("/api/feedback", json={"suggestion_id": sid, "event": "accepted"},
                                     headers=keys.auth(caller, role))
            assert resp.status == 403 and (await resp.json())["reason"] == reason, (caller, sid)
        assert console.producer.sent == [] and console.board.verdicts == {}
        refusals = [r.getMessage() for r in caplog.records if "refused feedback" in r.getMessage()]
        assert len(refusals) == 3
        logged = "\n".join(refusals)
        # Pseudonymous callers, the job's own suggestion ids; no agent id, customer id or text.
        for secret in ("a-1", "a-2", "sup-1", "u-c-1", "u-c-2-secret", "May I have"):
            assert secret not in logged, secret
        assert "suggestion s-1 of another agent" in refusals[0] and "unknown suggestion" in refusals[1]

    with_client(test, tmp_path)


def test_a_broker_error_is_reported_and_no_verdict_kept(tmp_path):
    async def test(client: TestClient, console: Console, keys: Keys):
        console.board.add("suggestion", suggestion())
        resp = await client.post("/api/feedback", json={"suggestion_id": "s-1", "event": "dismissed"},
                                 headers=keys.auth("a-1"))
        assert resp.status == 503 and "refused" in await resp.text()
        assert "s-1" not in console.board.verdicts

    with_client(test, tmp_path, producer=FakeProducer(error="broker down"))


def test_every_api_needs_a_good_bearer_token(tmp_path):
    async def test(client: TestClient, console: Console, keys: Keys):
        forged = mint(ed25519.Ed25519PrivateKey.generate(), "a-1")
        expired = mint(keys.key, "a-1", now=time.time() - 3600, ttl_s=60)
        now = int(time.time())
        other_audience = jwt.encode({"iss": DEV_ISSUER, "aud": "another-app", "sub": "a-1", "role": "agent",
                                     "iat": now, "exp": now + 60}, keys.key, algorithm=DEV_ALGORITHM)
        good = keys.token("a-1")
        refusals = {
            "missing_token": [{}, {"Authorization": "Basic YTpi"}, {"Authorization": "Bearer "}],
            "bad_signature": [{"Authorization": f"Bearer {forged}"}],
            "expired": [{"Authorization": f"Bearer {expired}"}],
            "wrong_audience": [{"Authorization": f"Bearer {other_audience}"}],
            "malformed": [{"Authorization": "Bearer not.a.token"}],
        }
        for method, path in (("GET", "/api/config"), ("GET", "/events"), ("POST", "/api/feedback"),
                             ("GET", "/api/anything")):
            for reason, variants in refusals.items():
                for headers in variants:
                    resp = await client.request(method, path, headers=headers, json={})
                    assert resp.status == 401, (method, path, reason)
                    assert (await resp.json())["reason"] == reason
                    challenge = resp.headers["WWW-Authenticate"]
                    assert challenge.startswith("Bearer ")
                    assert ("error=" in challenge) == (reason != "missing_token")
            # The token is taken from the Authorization header only: not a query parameter or a cookie.
            for where in ({"params": {"token": good, "access_token": good, "agent": "a-1"}},
                          {"cookies": {"token": good}}):
                resp = await client.request(method, path, **where)
                assert resp.status == 401 and (await resp.json())["reason"] == "missing_token"
        # The page, its files and the health check are public (they hold nothing personal).
        for path in ("/", "/static/console.js", "/static/console.css"):
            assert (await client.get(path)).status == 200
        assert (await client.get("/favicon.ico")).status == 204  # no icon, and no refusal logged
        health = await client.get("/healthz")
        assert health.status == 503 and await health.json() == {"ready": False}  # no Kafka reader here

    with_client(test, tmp_path)


def test_who_the_caller_is_and_what_they_may_do(tmp_path):
    async def test(client: TestClient, console: Console, keys: Keys):
        me = await (await client.get("/api/config", headers=keys.auth("a-1"))).json()
        assert (me["agent"], me["role"], me["agents"], me["may_judge"]) == ("a-1", "agent", ["a-1"], True)
        # ?agent= chooses nobody else any more.
        other = await (await client.get("/api/config?agent=a-2", headers=keys.auth("a-1"))).json()
        assert other["agents"] == ["a-1"]
        boss = await (await client.get("/api/config", headers=keys.auth("sup-1", "supervisor"))).json()
        assert (boss["role"], boss["agents"], boss["may_judge"]) == ("supervisor", ["a-1", "a-2"], False)
        lonely = await client.get("/events", headers=keys.auth("sup-9", "supervisor"))
        assert lonely.status == 403 and (await lonely.json())["reason"] == "no_team"

    with_client(test, tmp_path)


def test_the_event_stream_shows_each_caller_only_whom_they_see(tmp_path):
    async def test(client: TestClient, console: Console, keys: Keys):
        board = console.board
        board.add("suggestion", suggestion("s-1", "c-1", agent="a-1"))
        board.add("suggestion", suggestion("s-2", "c-2", agent="a-2"))
        board.add("suggestion", suggestion("s-3", "c-3", agent="a-3"))
        streams = {}
        for name, headers in (("a-1", keys.auth("a-1")), ("a-2", keys.auth("a-2")),
                              ("sup-1", keys.auth("sup-1", "supervisor"))):
            streams[name] = resp = await client.get("/events", headers=headers)
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            kind, snapshot = await asyncio.wait_for(next_event(resp), 5)
            assert kind == "snapshot" and snapshot["agent"] == name
            streams[name + ":snapshot"] = sorted(c["conversation_id"] for c in snapshot["conversations"])
        assert streams["a-1:snapshot"] == ["c-1"] and streams["a-2:snapshot"] == ["c-2"]
        assert streams["sup-1:snapshot"] == ["c-1", "c-2"]
        # Live: a-3's alert reaches nobody here, a-2's reaches a-2 and the supervisor, then a-1's
        # reaches a-1 (first, so a-2 never saw anything it should not have).
        board.add("alert", alert("al-3", agent="a-3", conversation="c-3"))
        board.add("alert", alert("al-2", agent="a-2", conversation="c-2"))
        board.add("alert", alert("al-1", agent="a-1", conversation="c-1"))
        kind, data = await asyncio.wait_for(next_event(streams["a-1"]), 5)
        assert (kind, data["alert_id"]) == ("alert", "al-1")
        kind, data = await asyncio.wait_for(next_event(streams["a-2"]), 5)
        assert (kind, data["alert_id"]) == ("alert", "al-2")
        seen = [(await asyncio.wait_for(next_event(streams["sup-1"]), 5))[1]["alert_id"] for _ in range(2)]
        assert seen == ["al-2", "al-1"]
        for name in ("a-1", "a-2", "sup-1"):
            streams[name].close()

    with_client(test, tmp_path)


def test_the_event_stream_ends_when_the_token_expires(tmp_path):
    async def test(client: TestClient, console: Console, keys: Keys):
        resp = await client.get("/events", headers=keys.auth("a-1", ttl_s=1))
        assert (await asyncio.wait_for(next_event(resp), 5))[0] == "snapshot"
        kind, _ = await asyncio.wait_for(next_event(resp), 5)
        assert kind == "expired"
        assert await asyncio.wait_for(resp.content.read(), 5) == b""

    with_client(test, tmp_path)


class _Inline(HTMLParser):
    """Collects what a strict CSP would block: inline scripts, styles and event handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.in_script = False

    def handle_starttag(self, tag, attrs):
        names = {name for name, _ in attrs}
        if tag == "style" or "style" in names or any(n.startswith("on") for n in names):
            self.found.append(tag)
        if tag == "script":
            self.in_script = True
            if "src" not in names:
                self.found.append("script without src")

    def handle_endtag(self, tag):
        self.in_script = self.in_script and tag != "script"

    def handle_data(self, data):
        if self.in_script and data.strip():
            self.found.append("inline script")


def test_security_headers_on_every_response_and_no_inline_code(tmp_path):
    async def test(client: TestClient, console: Console, keys: Keys):
        me = keys.auth("a-1")
        # Routes other than the page's, its files' and the health check need a token, even to be
        # told they do not exist.
        responses = [await client.get("/"), await client.get("/static/console.js"),
                     await client.get("/static/nope.js"), await client.get("/static/../server.py"),
                     await client.get("/nothing-here%0Aforged"),
                     await client.get("/healthz"), await client.get("/api/config"),
                     await client.get("/api/config", headers=me),
                     await client.post("/api/feedback", json={"suggestion_id": "s-0", "event": "accepted"},
                                       headers=me),
                     await client.get("/events", headers=me)]
        assert [r.status for r in responses] == [200, 200, 404, 401, 401, 503, 401, 200, 403, 200]
        for resp in responses:
            for name, value in SECURITY_HEADERS.items():
                assert resp.headers.get(name) == value, (resp.url, name)
        csp = SECURITY_HEADERS["Content-Security-Policy"]
        for directive in ("default-src 'self'", "object-src 'none'", "base-uri 'none'",
                          "frame-ancestors 'none'"):
            assert directive in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert SECURITY_HEADERS["Cache-Control"] == "no-store"
        responses[-1].close()
        page = _Inline()
        page.feed(await responses[0].text())
        assert page.found == []

    with_client(test, tmp_path)
