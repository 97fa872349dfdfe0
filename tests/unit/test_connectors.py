"""The Kafka output never drops a record silently: an unacknowledged record stops the job.

Records are produced without waiting; a sink partition's end-of-epoch
snapshot (after which Bytewax may commit the epoch) waits for every
acknowledgement and raises ``DeliveryError`` on a failed one.
"""

from __future__ import annotations

import socket

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main

from coachflow.connectors import CheckedKafkaSink, DeliveryError, _CheckedKafkaPartition, _Deliveries


def closed_port() -> int:
    """A local port nothing listens on (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unreachable_sink() -> CheckedKafkaSink:
    # The producer gives up on each record after 300 ms; librdkafka's logs are silenced.
    return CheckedKafkaSink([f"127.0.0.1:{closed_port()}"], {"message.timeout.ms": "300", "log_level": "0"})


def test_the_epoch_does_not_end_before_the_broker_acknowledged_its_records():
    part = unreachable_sink().build_part("write_kafka", "0", None)
    part.write_batch([("t", b"c-1", b"one"), ("t", b"c-1", b"two")])  # returns without waiting
    with pytest.raises(
        DeliveryError, match=r"did not acknowledge 2 output record\(s\) by the end of the epoch"
    ):
        part.snapshot()


def test_the_dataflow_stops_instead_of_moving_on_without_the_record():
    flow = Dataflow("undeliverable")
    items = op.input("in", flow, TestingSource([b"a", b"b"]))
    messages = op.map("to_kafka", items, lambda v: ("k", ("t", b"k", v)))
    op.output("write_kafka", messages, unreachable_sink())
    with pytest.raises(Exception) as raised:  # noqa: B017 - Bytewax wraps it; the cause is ours
        run_main(flow)
    causes = []
    error: BaseException | None = raised.value
    while error is not None:
        causes.append(error)
        error = error.__cause__
    assert any(isinstance(e, DeliveryError) and "did not acknowledge" in str(e) for e in causes), causes


def test_the_partitions_of_a_process_share_one_producer():
    sink = unreachable_sink()
    assert sink.list_parts() == [str(i) for i in range(16)]
    first, second = sink.build_part("write_kafka", "0", None), sink.build_part("write_kafka", "7", None)
    assert first._deliveries is second._deliveries


class FakeProducer:
    """Acknowledges records on flush (or on poll, with ``ack_on_poll``); refuses ``full`` produces first."""

    def __init__(self, full: int = 0, fail: bool = False, ack_on_poll: bool = False) -> None:
        self.full = full
        self.fail = fail
        self.ack_on_poll = ack_on_poll
        self.pending: list = []
        self.sent: list[tuple] = []
        self.polls = 0
        self.flushes = 0

    def produce(self, topic, value=None, key=None, on_delivery=None, **kw):
        if self.full:
            self.full -= 1
            raise BufferError("queue full")
        self.pending.append((topic, key, value, on_delivery))

    def _acknowledge(self) -> None:
        for topic, key, value, callback in self.pending:
            msg = type("Msg", (), {"topic": lambda self, t=topic: t})()
            callback("broker down" if self.fail else None, msg)
            if not self.fail:
                self.sent.append((topic, key, value))
        self.pending = []

    def poll(self, timeout=0):
        self.polls += 1
        if self.ack_on_poll:
            self._acknowledge()
        return 0

    def flush(self, timeout=None):
        self.flushes += 1
        self._acknowledge()
        return 0


def test_writing_does_not_wait_and_the_snapshot_waits_for_every_record():
    producer = FakeProducer(full=2)
    part = _CheckedKafkaPartition(_Deliveries(producer))
    part.write_batch([("decisions", b"c-1", b"one"), ("alerts", b"c-2", b"two")])
    assert producer.flushes == 0 and producer.sent == []  # the full queue was waited out by polling
    assert producer.polls >= 3
    part.snapshot()
    assert producer.flushes == 1
    assert producer.sent == [("decisions", b"c-1", b"one"), ("alerts", b"c-2", b"two")]
    part.close()


def test_a_failure_reported_while_writing_stops_the_job_at_once():
    producer = FakeProducer(fail=True, ack_on_poll=True)
    part = _CheckedKafkaPartition(_Deliveries(producer))
    with pytest.raises(DeliveryError, match=r"1 output record\(s\) so far .*first: dlq: broker down"):
        part.write_batch([("dlq", b"k", b"v")])


def test_a_failed_epoch_does_not_poison_the_next_one():
    producer = FakeProducer(fail=True)
    part = _CheckedKafkaPartition(_Deliveries(producer))
    part.write_batch([("dlq", b"k", b"v")])
    with pytest.raises(
        DeliveryError, match=r"1 output record\(s\) by the end of the epoch .*first: dlq: broker down"
    ):
        part.snapshot()
    producer.fail = False
    part.write_batch([("dlq", b"k", b"v")])
    part.snapshot()
    assert len(producer.sent) == 1


def test_file_outputs_are_flushed_per_batch_synced_per_snapshot_and_resume_at_the_snapshot(
    tmp_path, monkeypatch
) -> None:
    from coachflow import connectors

    synced: list[int] = []
    monkeypatch.setattr(connectors.os, "fsync", synced.append)
    sink = connectors.JsonlDirSink(tmp_path, ("alerts", "decisions"))
    assert sink.list_parts() == ["alerts.jsonl", "decisions.jsonl"] and sink.part_fn("decisions") == 1
    part = sink.build_part("write_files", "decisions.jsonl", None)
    part.write_batch(['{"a":1}', '{"a":2}'])
    part.write_batch(['{"a":3}'])
    assert (tmp_path / "decisions.jsonl").read_text() == '{"a":1}\n{"a":2}\n{"a":3}\n'  # readers see it now
    assert synced == []  # no sync per batch
    offset = part.snapshot()
    assert len(synced) == 1 and offset == len('{"a":1}\n{"a":2}\n{"a":3}\n')
    assert part.snapshot() == offset and len(synced) == 1  # nothing new: nothing to sync
    part.write_batch(['{"a":4}'])  # after the snapshot: lost with a crash, written again by the replay
    part.close()
    resumed = sink.build_part("write_files", "decisions.jsonl", offset)
    resumed.write_batch(['{"a":4}'])
    resumed.close()
    assert (tmp_path / "decisions.jsonl").read_text() == '{"a":1}\n{"a":2}\n{"a":3}\n{"a":4}\n'
