"""The console shows the knowledge job's cards with their citation; an accept click becomes card feedback.

A doc2dial conversation of the bundled sample goes through the knowledge job on the real broker; the
agent's page (headless Chromium) shows its cards beside the suggestions, and Accept on one produces a
``CardFeedback`` on the card feedback topic, keyed by the conversation.
"""

from __future__ import annotations

import json

import pytest

from coachflow.knowledge_config import SAMPLE_CONVERSATIONS
from schemas.knowledge import CardFeedback
from tests.e2e.test_console import (
    IdentityProvider,
    browser,  # noqa: F401 - fixture
    create_topics,
    free_port,
    open_console,
    read_until,
    start_console,
)
from tests.integration.conftest import KafkaJob, stop
from tests.integration.test_kafka_knowledge import knowledge_topics, messages, start

pytestmark = [pytest.mark.kafka, pytest.mark.browser]


def test_cards_beside_suggestions_and_an_accept_click_is_card_feedback(
    kafka_job: KafkaJob, browser, tmp_path  # noqa: F811 - the fixture imported above
):
    topics = knowledge_topics(kafka_job)
    del topics["articles_topic"]  # the bundled articles file
    create_topics(kafka_job.brokers, [topics["topic_cards"], topics["topic_feedback"]])
    records = [json.loads(line) for line in SAMPLE_CONVERSATIONS.read_text().splitlines()[:-2]]
    first = next(r for r in records if r["type"] == "conversation_start")
    conversation, agent = first["conversation_id"], first["agent_id"]
    lines = [json.dumps(r) for r in records if r.get("conversation_id") == conversation
             or (r["type"] == "customer_context" and r["customer_id"] == first["customer_id"])]

    idp = IdentityProvider(tmp_path)
    teams = tmp_path / "teams.yaml"
    teams.write_text(f"sup-e2e: [{agent}]\n")
    # The job may still be starting when the records arrive: no freshness budget to shed them by.
    job = start(kafka_job, tmp_path / "knowledge.log", topics, COACH_KNOWLEDGE_SHED_MAX_AGE_S="600")
    port = free_port()
    console = start_console(kafka_job, port, tmp_path / "console.log",
                            {"feedback": f"{kafka_job.prefix}coaching.feedback",
                             "acceptance": f"{kafka_job.prefix}coaching.acceptance"}, idp, teams,
                            COACH_KNOWLEDGE_TOPIC_CARDS=topics["topic_cards"],
                            COACH_KNOWLEDGE_TOPIC_FEEDBACK=topics["topic_feedback"])
    blocked: list[str] = []
    context = None
    try:
        context, page = open_console(browser, port, idp.token(agent), blocked)
        page.wait_for_selector("#status[data-state=live]", timeout=30_000)
        kafka_job.produce(messages(lines))
        try:
            page.wait_for_selector(
                f'.conversation[data-conversation-id="{conversation}"] .card', timeout=120_000
            )
        except Exception:
            raise AssertionError(
                "no card reached the page:\n"
                + (tmp_path / "knowledge.log").read_text()[-3000:]
                + (tmp_path / "console.log").read_text()[-3000:]
            ) from None
        item = page.locator(".card").last
        card_id = item.get_attribute("data-card-id")
        citation = item.locator(".citation").inner_text()
        assert item.get_attribute("data-article-id") in citation and "chars" in citation and "kb-" in citation
        assert item.locator(".passage").inner_text().strip()
        item.locator("button.accept").click()
        page.wait_for_selector(f'.card[data-card-id="{card_id}"][data-verdict=accepted]', timeout=30_000)

        def accepted(seen) -> list[CardFeedback]:
            out = []
            for key, value in seen:
                record = CardFeedback.model_validate_json(value)
                assert key == record.conversation_id.encode()
                if record.card_id == card_id and record.event == "accepted":
                    out.append(record)
            return out

        (record,) = accepted(read_until(kafka_job.brokers, topics["topic_feedback"], accepted, timeout=30))
        assert record.agent_id == agent and record.conversation_id == conversation
        assert blocked == [], blocked
    finally:
        if context is not None:
            context.close()
        stop(console)
        stop(job)
