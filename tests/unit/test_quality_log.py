"""The GX monitor's log line: the failed expectations, on how many rows, and whether it is only a warning."""

from __future__ import annotations

import logging
from concurrent.futures import Future

from operators.quality import EVENTS_SUITE, QualityMonitor, gx_validate, quality_row
from tests.helpers import T0, envelope, event

RECEIVED_NS = int(T0.timestamp() * 1e9)


def logged(caplog, rows: list[dict]) -> logging.LogRecord:
    """What the monitor logs when GX's result for ``rows`` arrives (validated in this process)."""
    future: Future = Future()
    future.set_result(gx_validate(EVENTS_SUITE, rows))
    monitor = QualityMonitor()
    with caplog.at_level(logging.INFO, logger="coachflow.quality"):
        caplog.clear()
        monitor._done(future)
    (record,) = caplog.records
    assert monitor.latest[EVENTS_SUITE]["rows"] == len(rows)
    return record


def rows_of(*records: dict) -> list[dict]:
    return [quality_row(envelope(r, RECEIVED_NS)) for r in records]


def test_a_failed_warning_is_named_with_its_count_and_said_to_hold_nothing_back(gx_ready, caplog):
    rows = rows_of(event("conversation_start", seq=0), event(seq=1, t=1), event(seq=2, t=2, text=""),
                   event(seq=3, t=3, text=""))
    record = logged(caplog, rows)
    assert record.levelno == logging.INFO
    message = record.getMessage()
    assert message.startswith("GX conversation_events@1.0.0: 4 of 4 rows in ")
    assert message.endswith("; warning expectations failed (measured only, no record held back): "
                            "events.text_length.min (Turns are not empty) on 2 of 4 rows")
    assert "success=" not in message and "critical" not in message


def test_a_batch_that_passes_says_so(gx_ready, caplog):
    record = logged(caplog, rows_of(event("conversation_start", seq=0), event(seq=1, t=1)))
    assert record.levelno == logging.INFO
    assert record.getMessage().endswith(": every expectation passed")


def test_a_critical_failure_gx_sees_is_a_warning_naming_it(gx_ready, caplog):
    # The gate refuses such rows before GX sees them; if GX still finds one, the two disagree.
    rows = rows_of(event(seq=1, t=1), event(seq=2, t=2), event(seq=3, t=3, text=""))
    rows[1] = {**rows[1], "channel": "fax"}  # the contract itself refuses it; the row is what GX judges
    message = (record := logged(caplog, rows)).getMessage()
    assert record.levelno == logging.WARNING
    assert ("critical expectations failed on rows the per-record gate had passed: "
            "events.channel.in_set (Voice or chat) on 1 of 3 rows; ") in message
    assert message.endswith("warning expectations failed (measured only, no record held back): "
                            "events.text_length.min (Turns are not empty) on 1 of 3 rows")
