"""Strict masking where text leaves the job: published records, dead letters, log lines, lineage."""

from __future__ import annotations

import base64
import io
import json
import logging
from datetime import UTC, datetime

from openlineage.client.event_v2 import RunState

from coachflow.runtime import configure_logging
from lineage import CoachflowRunFacet, Lineage, LineageConfig
from operators.envelope import Origin
from operators.privacy import MaskingFilter, scrub
from operators.publish import serialize
from operators.records import dead_letter
from schemas import Alert, Decision, FieldError, SuggestedResponse, Suggestion
from tests import adversarial

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def suggestion(text: str) -> Suggestion:
    return Suggestion(
        suggestion_id="s-1", decision_id="d-1", conversation_id="c-1", customer_id="u-1", agent_id="a-1",
        channel="chat", event_id="e-1", action="party_inform", text=text, confidence=0.9,
        model_version="coach-1.0.0", policy_version="1.0.0", created_at=NOW,
    )


def test_published_text_fields_are_masked_and_clean_records_are_not_copied():
    kb_filled = "Your message was: password is hunter2, my name is Sherlock Holmes."
    masked = scrub(suggestion(kb_filled))
    assert masked.text == "Your message was: password is [CREDENTIAL], my name is [PERSON]."
    clean = suggestion("Dr. Johnson is available at 3 pm; the booking id is 8271632.")
    assert scrub(clean) is clean  # numbers from the knowledge base stay: the agent reads them out

    decision = Decision(
        decision_id="d-1", decided_at=NOW, conversation_id="c-1", customer_id="u-1",
        input={"kind": "turn", "event_id": "e-1", "source": {"kind": "file", "file": "x", "line": 1}},
        outcome="shown", suggestion=SuggestedResponse(action="party_inform", text=kb_filled),
        context_status="present", policy_name="p", policy_version="1.0.0", policy_hash="h",
    )
    kind, _, value = serialize(decision)
    assert kind == "decisions" and adversarial.leaks([value.decode()]) == []
    assert json.loads(value)["suggestion"]["text"] == masked.text

    alert = Alert(
        alert_id="al-1", conversation_id="c-1", customer_id="u-1", agent_id="a-1", event_id="e-1",
        kind="agent_conduct", severity="warning", audience=["supervisor"],
        message='The agent said "my name is Sherlock Holmes", which the policy prohibits.',
        evidence={"phrase": "call me on oh two oh, seven nine four six, oh nine five eight",
                  "rule_id": "x.y"},
        event_time=NOW, raised_at=NOW,
    )
    _, _, value = serialize(alert)
    assert adversarial.leaks([value.decode()]) == [] and "[PERSON]" in value.decode()
    assert json.loads(value)["evidence"] == {"phrase": "call me on [PHONE]", "rule_id": "x.y"}


def test_dead_letters_mask_payload_detail_key_and_error_locations():
    payload = json.dumps({"type": "turn", "my name is Sherlock Holmes": "born on the third of May 1980"})
    letter = dead_letter(
        origin=Origin(file="in.jsonl", line=3), reason="unknown_field",
        detail="key 'password is hunter2' refused",
        payload=payload.encode(), received_ns=0, payload_limit=65_536, key=b"221B Baker Street",
        errors=[FieldError(loc="my name is Sherlock Holmes", type="extra_forbidden", msg="Extra inputs")],
    )
    kept = base64.b64decode(letter.payload_b64).decode()
    assert set(letter.payload_masked) == {"person", "date_of_birth"}
    assert letter.key == "[ADDRESS]"
    _, _, value = serialize(letter)
    assert adversarial.leaks([value.decode(), kept]) == []
    published = json.loads(value)
    assert published["errors"][0]["loc"] == "my name is [PERSON]"
    assert published["detail"] == "key 'password is [CREDENTIAL]' refused"


def test_log_lines_of_the_job_are_masked(monkeypatch):
    root = logging.getLogger("coachflow")
    monkeypatch.setattr(root, "handlers", [])
    configure_logging("INFO")
    out = io.StringIO()
    root.handlers[0].setStream(out)
    log = logging.getLogger("coachflow.kafka")
    log.warning("record %s refused: %s", "c-1", "password is hunter2, username jsmith")
    try:
        raise ValueError("my name is Sherlock Holmes, card 4111 1111 1111 1111")
    except ValueError:
        log.exception("step failed")
    text = out.getvalue()
    assert "record c-1 refused: password is [CREDENTIAL], username [CREDENTIAL]" in text
    assert "ValueError: my name is [PERSON], card [CARD_NUMBER]" in text
    assert adversarial.leaks(text.splitlines()) == []


def test_a_host_applications_handler_gets_the_filter_too(monkeypatch):
    root = logging.getLogger("coachflow")
    out = io.StringIO()
    monkeypatch.setattr(root, "handlers", [logging.StreamHandler(out)])
    configure_logging("INFO")
    configure_logging("INFO")
    assert sum(isinstance(f, MaskingFilter) for f in root.handlers[0].filters) == 1
    logging.getLogger("coachflow.policy").error("DOB 1975-07-14")
    assert out.getvalue().strip() == "DOB [DATE_OF_BIRTH]"


def test_lineage_error_messages_and_stack_traces_are_masked(tmp_path):
    lineage = Lineage(LineageConfig(transport="none"), [], [],
                      CoachflowRunFacet(model={}, policy={}, qualitySuites=[]))
    try:
        raise RuntimeError("refused turn: my iban is DE89370400440532013000, I live at 10 Downing Street")
    except RuntimeError as error:
        event = lineage.event(RunState.FAIL, error)
    facet = event.run.facets["errorMessage"]
    assert facet.message == "RuntimeError: refused turn: my iban is [IBAN], I live at [ADDRESS]"
    assert "[IBAN]" in facet.stackTrace and adversarial.leaks([facet.message, facet.stackTrace]) == []
