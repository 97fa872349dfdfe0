"""The Kafka output never drops a record silently: an unacknowledged record stops the job."""

from __future__ import annotations

import socket

import bytewax.operators as op
import pytest
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main

from coachflow.connectors import CheckedKafkaSink, DeliveryError, _CheckedKafkaPartition


def closed_port() -> int:
    """A local port nothing listens on (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unreachable_sink() -> CheckedKafkaSink:
    # The producer gives up on each record after 300 ms; librdkafka's logs are silenced.
    return CheckedKafkaSink([f"127.0.0.1:{closed_port()}"], {"message.timeout.ms": "300", "log_level": "0"})


def test_a_record_the_broker_never_acknowledges_raises():
    part = unreachable_sink().build("write_kafka", 0, 1)
    batch = [KafkaSinkMessage(b"c-1", b"one", topic="t"), KafkaSinkMessage(b"c-1", b"two", topic="t")]
    with pytest.raises(DeliveryError, match="did not acknowledge 2 of 2 output records"):
        part.write_batch(batch)


def test_the_dataflow_stops_instead_of_moving_on_without_the_record():
    flow = Dataflow("undeliverable")
    items = op.input("in", flow, TestingSource([b"a", b"b"]))
    messages = op.map("to_kafka", items, lambda v: KafkaSinkMessage(b"k", v, topic="t"))
    op.output("write_kafka", messages, unreachable_sink())
    with pytest.raises(Exception) as raised:  # noqa: B017 - Bytewax wraps it; the cause is ours
        run_main(flow)
    causes = []
    error: BaseException | None = raised.value
    while error is not None:
        causes.append(error)
        error = error.__cause__
    assert any(isinstance(e, DeliveryError) and "did not acknowledge" in str(e) for e in causes), causes


class FakeProducer:
    """Acknowledges every record on flush; refuses the first ``full`` produce calls."""

    def __init__(self, full: int = 0, fail: bool = False) -> None:
        self.full = full
        self.fail = fail
        self.pending: list = []
        self.sent: list[tuple] = []
        self.polls = 0

    def produce(self, topic, value=None, key=None, headers=None, timestamp=0, on_delivery=None, **kw):
        if self.full:
            self.full -= 1
            raise BufferError("queue full")
        self.pending.append((topic, key, value, kw, on_delivery))

    def poll(self, timeout=0):
        self.polls += 1
        return 0

    def flush(self, timeout=None):
        for topic, key, value, kw, callback in self.pending:
            msg = type("Msg", (), {"topic": lambda self, t=topic: t})()
            callback("broker down" if self.fail else None, msg)
            if not self.fail:
                self.sent.append((topic, key, value, kw))
        self.pending = []
        return 0


def test_a_full_queue_waits_and_every_record_is_acknowledged():
    producer = FakeProducer(full=2)
    part = _CheckedKafkaPartition(producer)
    part.write_batch([
        KafkaSinkMessage(b"c-1", b"one", topic="decisions"),
        KafkaSinkMessage(b"c-2", b"two", topic="alerts", partition=3),
    ])
    assert producer.sent == [("decisions", b"c-1", b"one", {}), ("alerts", b"c-2", b"two", {"partition": 3})]
    assert producer.polls >= 2
    part.close()


def test_a_failed_batch_does_not_poison_the_next_one():
    producer = FakeProducer(fail=True)
    part = _CheckedKafkaPartition(producer)
    with pytest.raises(DeliveryError, match="1 of 1 .*first: dlq: broker down"):
        part.write_batch([KafkaSinkMessage(b"k", b"v", topic="dlq")])
    producer.fail = False
    part.write_batch([KafkaSinkMessage(b"k", b"v", topic="dlq")])
    assert len(producer.sent) == 1
