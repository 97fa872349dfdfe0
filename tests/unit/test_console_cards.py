"""The console's knowledge cards: shown beside suggestions with their citation, judged like suggestions."""

from __future__ import annotations

import logging

from console.server import Board, Console, Subscriber, card_feedback_id
from schemas.knowledge import CardFeedback, Citation, KnowledgeCard
from tests.unit.test_console import NOW, Keys, next_event, suggestion, with_client


def card(
    card_id: str = "k-1", conversation: str = "c-1", agent: str = "a-1", url: str | None = None
) -> KnowledgeCard:
    return KnowledgeCard(
        card_id=card_id,
        decision_id=f"kd-{card_id}",
        conversation_id=conversation,
        customer_id=f"u-{conversation}",
        agent_id=agent,
        channel="chat",
        event_id="e-3",
        article_id="plates",
        title="Replace your plates",
        passage="Bring your registration to a DMV office.",
        score=0.6,
        citation=Citation(
            article_id="plates",
            article_version="3",
            kb_version="kb-1",
            start=10,
            end=52,
            heading="Replace your plates",
            source="dmv",
            source_url=url,
        ),
        latency_ms=12.0,
        kb_version="kb-1",
        ranker_version="knowledge-ranker-1.0.0",
        policy_version="1.0.0",
        created_at=NOW,
    )


def test_cards_go_to_the_streams_that_see_their_agent_with_the_snapshot():
    board = Board()
    mine, theirs = Subscriber(frozenset({"a-1"})), Subscriber(frozenset({"a-2"}))
    board.subscribers |= {mine, theirs}
    board.add("suggestion", suggestion())
    board.add("card", card())
    board.add("card", card())  # at-least-once: a duplicate is dropped
    assert mine.queue.qsize() == 2 and theirs.queue.qsize() == 0
    (conv,) = board.snapshot(frozenset({"a-1"}))
    assert [c["card_id"] for c in conv["cards"]] == ["k-1"] and conv["cards"][0]["citation"]["start"] == 10
    assert board.snapshot(frozenset({"a-2"})) == []


def test_accepting_a_card_produces_card_feedback_keyed_by_conversation(tmp_path):
    async def test(client, console: Console, keys: Keys):
        console.config = type(console.config)(
            **{**console.config.__dict__, "topic_card_feedback": "t.cards.fb"}
        )
        console.board.add("card", card())
        me = keys.auth("a-1")
        resp = await client.post(
            "/api/card-feedback", json={"card_id": "k-1", "event": "accepted"}, headers=me
        )
        assert resp.status == 201, await resp.text()
        ((topic, key, value),) = console.producer.sent
        record = CardFeedback.model_validate_json(value)
        assert topic == "t.cards.fb" and key == b"c-1"
        assert (record.card_id, record.event, record.agent_id) == ("k-1", "accepted", "a-1")
        assert record.feedback_id == card_feedback_id("k-1", "accepted")
        again = await client.post(
            "/api/card-feedback", json={"card_id": "k-1", "event": "accepted"}, headers=me
        )
        assert again.status == 200 and len(console.producer.sent) == 1
        other = await client.post(
            "/api/card-feedback", json={"card_id": "k-1", "event": "dismissed"}, headers=me
        )
        assert other.status == 409

    with_client(test, tmp_path)


def test_card_feedback_from_others_is_refused(tmp_path, caplog):
    async def test(client, console: Console, keys: Keys):
        console.board.add("card", card("k-1", agent="a-1"))
        caplog.set_level(logging.WARNING, logger="coachflow.console")
        for caller, role, card_id, reason in [("a-2", "agent", "k-1", "not_your_card"),
                                              ("a-1", "agent", "k-unknown", "not_your_card"),
                                              ("sup-1", "supervisor", "k-1", "read_only")]:
            resp = await client.post("/api/card-feedback", json={"card_id": card_id, "event": "accepted"},
                                     headers=keys.auth(caller, role))
            assert resp.status == 403 and (await resp.json())["reason"] == reason
        for body in ({"card_id": "k-1", "event": "shown"}, {"card_id": 3, "event": "accepted"}, {}):
            assert (
                await client.post("/api/card-feedback", json=body, headers=keys.auth("a-1"))
            ).status == 400
        no_token = await client.post("/api/card-feedback", json={"card_id": "k-1", "event": "accepted"})
        assert no_token.status == 401
        assert console.producer.sent == []

    with_client(test, tmp_path)


def test_the_event_stream_carries_cards(tmp_path):
    async def test(client, console: Console, keys: Keys):
        console.board.add("card", card())
        resp = await client.get("/events", headers=keys.auth("a-1"))
        kind, data = await next_event(resp)
        assert kind == "snapshot" and data["conversations"][0]["cards"][0]["card_id"] == "k-1"
        console.board.add("card", card("k-2"))
        kind, data = await next_event(resp)
        assert kind == "card" and data["card_id"] == "k-2" and data["citation"]["article_version"] == "3"
        resp.close()

    with_client(test, tmp_path)
