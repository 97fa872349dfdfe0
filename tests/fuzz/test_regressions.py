"""What the hostile corpus (``tests.fuzz.hostile``) found, replayed on every run through the embedded job."""

from __future__ import annotations

import json

from tests.fuzz.harness import check_run


def test_a_record_after_a_long_blank_head_is_not_lost(embedded_job, pool) -> None:
    # The JSONL source kept the head of an over-long line and took a blank head for a blank line.
    turn = json.dumps(pool.by_type["turn"]).encode()
    lines = [b" " * 70_000 + turn]
    out = embedded_job.run(lines)
    assert not check_run(lines, out)
    assert [json.loads(row)["reason"] for row in out.lines["dlq"]] == ["payload_too_large"]


def test_one_event_id_in_two_conversations_makes_two_decision_ids(embedded_job, pool) -> None:
    # Decision ids were derived from the event id alone; producers repeat event ids across conversations.
    start, turn = pool.by_type["conversation_start"], pool.by_type["turn"]
    lines = [json.dumps({**record, "conversation_id": conversation}).encode()
             for conversation in ("c-one", "c-two") for record in (start, turn)]
    out = embedded_job.run(lines)
    assert not check_run(lines, out)
    assert len({json.loads(row)["decision_id"] for row in out.lines["decisions"]}) == 4
