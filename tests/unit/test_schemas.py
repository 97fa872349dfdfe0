"""The topic contracts and their committed JSON Schemas."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

import schemas
from schemas import CONTRACTS, JSON_DIR, CustomerContext, Turn
from tests.helpers import ROOT, context, event


@pytest.mark.parametrize("stem", list(CONTRACTS))
def test_committed_json_schema_matches_the_model(stem):
    path = JSON_DIR / f"{stem}.schema.json"
    assert path.is_file(), f"missing {path}; run `coach schemas export`"
    assert path.read_text() == schemas.render(stem), f"{path} is stale; run `coach schemas export`"


def test_every_contract_carries_a_schema_version():
    for stem in CONTRACTS:
        body = json.loads((JSON_DIR / f"{stem}.schema.json").read_text())
        text = json.dumps(body)
        assert "schema_version" in text, stem
        assert body["x-topic"] == CONTRACTS[stem][0]


def test_schema_check_command_passes_on_the_committed_files():
    from coachflow.cli import main

    assert main(["schemas", "check"]) == 0


def test_records_are_frozen_strict_and_utc():
    turn = Turn.model_validate(event(event_time="2026-03-02T16:00:00+02:00"))
    assert turn.event_time.utcoffset().total_seconds() == 0 and turn.event_time.hour == 14
    with pytest.raises(ValidationError):
        turn.text = "changed"
    with pytest.raises(ValidationError, match="extra"):
        CustomerContext.model_validate({**context(), "vip": True})


def test_conversation_event_json_schema_is_a_discriminated_union():
    body = json.loads((JSON_DIR / "conversation_event.v1.schema.json").read_text())
    assert set(body["discriminator"]["mapping"]) == {
        "conversation_start", "turn", "task_selected", "kb_result", "conversation_end",
    }


def test_the_topic_catalog_is_the_one_list_of_topics():
    from coachflow.config import Settings
    from operators.publish import kind_of
    from schemas.topics import OUTPUTS, TOPICS, topic

    kinds = [spec.kind for spec in TOPICS]
    assert len(set(kinds)) == len(kinds) and len({spec.default for spec in TOPICS}) == len(TOPICS)
    settings = Settings()
    for spec in TOPICS:  # every entry has its setting, defaulting to the catalog's name
        assert settings.topic(spec.kind) == (None if spec.optional else spec.default)
        assert (ROOT / "schemas" / "json" / f"{spec.contract}.schema.json").is_file()
    assert list(settings.outputs()) == [spec.kind for spec in OUTPUTS]
    for spec in OUTPUTS:  # the sinks route each output record type to its kind
        for record in spec.records:
            assert kind_of(record.model_construct()) == spec.kind
    renamed = Settings(topic_dlq="elsewhere.dlq")
    assert renamed.topic("dlq") == "elsewhere.dlq" and renamed.outputs()["dlq"] == "elsewhere.dlq"
    with pytest.raises(KeyError, match="the catalog has"):
        topic("nonsense")
