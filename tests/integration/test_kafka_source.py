"""The Kafka input (``RawKafkaSource``) on the real broker: every record once, in order, resumable."""

from __future__ import annotations

import time
import uuid

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, run_main
from confluent_kafka import OFFSET_BEGINNING, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from coachflow.connectors import POLL_S, RawKafkaSource


def topics_with_records(brokers: str, counts: dict[int, int]) -> tuple[str, str]:
    """A fresh topic with ``counts[p]`` records in partition ``p``, and an empty second topic."""
    name = f"src{uuid.uuid4().hex[:8]}"
    full, empty = f"{name}.events", f"{name}.feedback"
    admin = AdminClient({"bootstrap.servers": brokers})
    for future in admin.create_topics([NewTopic(full, len(counts), 1), NewTopic(empty, 2, 1)]).values():
        future.result(30)
    producer = Producer({"bootstrap.servers": brokers})
    for partition, count in counts.items():
        for i in range(count):
            producer.produce(
                full, value=f"{partition}:{i}".encode(), key=f"k{partition}".encode(), partition=partition
            )
    assert producer.flush(30) == 0
    return full, empty


def source(brokers: str, full: str, empty: str, positions: dict | None = None) -> RawKafkaSource:
    return RawKafkaSource([brokers], {full: "events", empty: "feedback"}, tail=False,
                          starting_offset=OFFSET_BEGINNING, add_config={}, batch_size=7, positions=positions)


def test_every_record_once_in_partition_order_with_its_origin(brokers):
    full, empty = topics_with_records(brokers, {0: 40, 1: 25, 2: 0})
    positions: dict = {}
    flow = Dataflow("kafka_source")
    out: list = []
    op.output("out", op.input("read_kafka", flow, source(brokers, full, empty, positions)), TestingSink(out))
    run_main(flow)  # tail=False: it stops at the end of every partition

    assert len(out) == 65
    for partition, count in ((0, 40), (1, 25)):
        mine = [r for r in out if r.origin.partition == partition]
        assert [r.value for r in mine] == [f"{partition}:{i}".encode() for i in range(count)]
        assert [r.origin.offset for r in mine] == list(range(count))
        assert {(r.key, r.stream, r.origin.topic, r.error) for r in mine} == {
            (f"k{partition}".encode(), "events", full, None)
        }
        assert all(r.origin.timestamp_ms and r.origin.timestamp_ms > 0 for r in mine)
    assert positions == {(full, 0): 40, (full, 1): 25}  # the consumer-lag gauge's next offsets


def test_a_partition_resumes_at_its_snapshot_and_shares_its_workers_consumer(brokers):
    full, empty = topics_with_records(brokers, {0: 30, 1: 12})
    src = source(brokers, full, empty)
    assert sorted(src.list_parts()) == sorted([f"0-{full}", f"1-{full}", f"0-{empty}", f"1-{empty}"])
    first = src.build_part("read_kafka", f"0-{full}", 10)  # a snapshot said: next is offset 10
    second = src.build_part("read_kafka", f"1-{full}", None)
    assert first._shared is second._shared  # one consumer for the worker's partitions

    read: dict[int, list[int]] = {0: [], 1: []}
    done = set()
    deadline = time.monotonic() + 60
    while (
        time.monotonic() < deadline
    ):  # as Bytewax polls: every partition in turn, a pause when none had data
        for index, part in ((0, first), (1, second)):
            if index in done:
                continue
            try:
                batch = part.next_batch()
            except StopIteration:
                done.add(index)
                continue
            # At most batch_size (7) a call, and never more than two consumes' worth read ahead.
            assert len(batch) <= 7 and first._shared.buffered < 2 * 7 * 2, (
                len(batch),
                first._shared.buffered,
            )
            read[index] += [r.origin.offset for r in batch]
            # A full batch (a backlog) reads on at once; otherwise every partition waits for one shared tick.
            awake = part.next_awake()
            if len(batch) == 7:
                assert awake is None
            else:
                ahead = awake.timestamp() - time.time()
                assert -0.001 < ahead <= POLL_S and round(awake.timestamp() / POLL_S, 6) % 1 == 0, awake
        if done == {0, 1}:
            break
        time.sleep(0.001)  # Bytewax would wait for next_awake; reading early is allowed
    assert read == {0: list(range(10, 30)), 1: list(range(12))}
    assert (first.snapshot(), second.snapshot()) == (30, 12)  # where a restart would go on
    first.close()
    second.close()


def test_a_share_reads_its_partition_numbers_of_each_topic_and_refuses_what_cannot_be_co_partitioned(brokers):
    full, empty = topics_with_records(brokers, {0: 3, 1: 5})  # two partitions each

    def shared(share: list[int], topics: tuple[str, ...] = (full, empty)) -> RawKafkaSource:
        return RawKafkaSource(
            [brokers],
            dict(zip(topics, ("events", "feedback", "context"), strict=False)),
            tail=False,
            starting_offset=OFFSET_BEGINNING,
            add_config={},
            batch_size=7,
            share=share,
        )

    assert sorted(shared([1]).list_parts()) == sorted([f"1-{full}", f"1-{empty}"])
    flow = Dataflow("kafka_share")
    out: list = []
    op.output("out", op.input("in", flow, shared([1])), TestingSink(out))
    run_main(flow)
    assert sorted(r.value for r in out) == [f"1:{i}".encode() for i in range(5)]  # partition 1 only

    with pytest.raises(ValueError, match=r"partitions \[2\]; the input topics have 2"):
        shared([0, 2]).list_parts()
    odd = f"{full}.odd"
    admin = AdminClient({"bootstrap.servers": brokers})  # kept: its futures need the handle
    for future in admin.create_topics([NewTopic(odd, 3, 1)]).values():
        future.result(30)
    with pytest.raises(ValueError, match="one partition count"):
        shared([0], (full, empty, odd)).list_parts()
