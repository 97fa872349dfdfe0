"""Where records come from and go to: Kafka topics, or JSONL files in embedded mode.

Both inputs produce ``RawRecord``s and both outputs take ``(kind, key, value)``
triples, so the dataflow between them is the same in either mode.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, cast

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSource
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import FixedPartitionedSource, Source, StatefulSourcePartition
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, Producer, TopicPartition
from confluent_kafka import KafkaError as ConfluentKafkaError

from coachflow.config import Settings
from coachflow.kafka_log import client_config
from coachflow.security import KafkaAccessError, refused
from operators.envelope import Origin, RawRecord
from schemas.topics import OUTPUTS

if TYPE_CHECKING:
    from coachflow.metrics import JobMetrics

log = logging.getLogger("coachflow.kafka")

#: Output kinds (``schemas.topics``). Sorted: Bytewax orders a sink's partitions by name, and
#: ``assign_file`` returns an index into that order.
OUTPUT_KINDS = tuple(sorted(spec.kind for spec in OUTPUTS))


class _JsonlPartition(StatefulSourcePartition[RawRecord, tuple[int, int]]):
    """Reads a JSONL file line by line; the resume state is (byte offset, line number)."""

    def __init__(self, path: Path, batch_size: int, limit: int, resume: tuple[int, int] | None):
        self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._name = path.name
        self._batch_size = batch_size
        self._limit = limit
        offset, self._line = resume if resume is not None else (0, 0)
        self._file.seek(offset)

    def _read_line(self) -> tuple[bytes, int, bool] | None:
        """The next line (cut at ``limit + 1`` bytes), its full size and whether all of it is blank, or None
        at EOF."""
        chunk = self._file.readline(self._limit + 1)
        if not chunk:
            return None
        size = len(chunk)
        blank = not chunk.strip()
        # An over-long line: keep its head, skip the rest, remember its size (and whether all of it is blank:
        # a head of whitespace must not hide the record after it).
        while not chunk.endswith(b"\n") and size > self._limit:
            rest = self._file.readline(1 << 20)
            if not rest:
                break
            size += len(rest)
            blank = blank and not rest.strip()
            if rest.endswith(b"\n"):
                break
        line = chunk.rstrip(b"\r\n")
        return line, (size - (len(chunk) - len(line)) if chunk.endswith(b"\n") else size), blank

    def next_batch(self) -> list[RawRecord]:
        batch: list[RawRecord] = []
        while len(batch) < self._batch_size:
            read = self._read_line()
            if read is None:
                if batch:
                    return batch
                raise StopIteration
            self._line += 1
            line, size, blank = read
            if blank:
                continue  # a blank line holds no record
            batch.append(RawRecord(
                value=line, key=None, origin=Origin(file=self._name, line=self._line),
                stream="any", size=size,
            ))
        return batch

    def snapshot(self) -> tuple[int, int]:
        return (self._file.tell(), self._line)

    def close(self) -> None:
        self._file.close()


class JsonlSource(FixedPartitionedSource[RawRecord, tuple[int, int]]):
    """One JSONL file of interleaved conversation events and context records."""

    def __init__(self, path: Path | str, batch_size: int = 500, line_limit: int = 65_536):
        self._path = Path(path)
        self._batch_size = batch_size
        self._limit = line_limit

    def list_parts(self) -> list[str]:
        return [self._path.name]

    def build_part(self, step_id: str, for_part: str, resume_state: tuple[int, int] | None):
        return _JsonlPartition(self._path, self._batch_size, self._limit, resume_state)


def _timestamp_ms(timestamp: tuple[int, int] | None) -> int | None:
    """A Kafka message's ``(type, ms)`` timestamp as ms, or None when it has none."""
    if timestamp is None or timestamp[0] == 0 or timestamp[1] < 0:  # 0: TIMESTAMP_NOT_AVAILABLE
        return None
    return timestamp[1]


_EOF = object()  # in a partition's buffer: the consumer reached the partition's end
POLL_S = 0.005  # without a backlog, the input partitions are read every 5 ms, all at once


class _WorkerConsumer:
    """One consumer for every input partition of a worker, each partition with its own buffer.

    Bytewax's ``KafkaSource`` opens a consumer (with its librdkafka threads
    and fetch session) per topic partition; here a worker's partitions share
    one, and each partition's ``next_batch`` takes its share of a ``consume``.
    A partition with an empty buffer consumes for all of them, but only while
    the buffers hold fewer than ``batch_size`` records per partition; each
    ``next_batch`` hands on at most ``batch_size`` (as Bytewax's source does),
    so a backlog (a restart's catch-up) waits in Kafka, not in the job's memory.
    """

    def __init__(self, config: dict, batch_size: int) -> None:
        self._consumer = Consumer(client_config(config))
        self.batch_size = batch_size
        self._idle_until = 0.0
        self.buffers: dict[tuple[str, int], deque] = {}
        self.buffered = 0  # messages in the buffers

    def assign(self, topic: str, partition: int, offset: int) -> deque:
        buffer = self.buffers[(topic, partition)] = deque()
        self._consumer.incremental_assign([TopicPartition(topic, partition, offset)])
        return buffer

    def release(self, topic: str, partition: int) -> None:
        buffer = self.buffers.pop((topic, partition), None)
        if buffer is None:
            return
        self.buffered -= sum(1 for message in buffer if message is not _EOF)
        if self.buffers:
            self._consumer.incremental_unassign([TopicPartition(topic, partition)])
        else:
            self._consumer.close()

    def fill(self) -> None:
        buffers = self.buffers
        want = self.batch_size * len(buffers)
        if self.buffered >= want:  # the other partitions have enough to hand on: none is read ahead further
            return
        now = time.monotonic()
        if now < self._idle_until:  # the last look found nothing: the other empty partitions need not look
            return
        # Never block: a partition with nothing to read returns an empty batch
        # and is read again on the next tick (``next_awake``), while the worker
        # goes on with the rest of the dataflow (Bytewax's own source waits
        # up to a millisecond in every empty partition's poll, holding up the
        # worker's whole round: feedback topics are mostly empty).
        messages = self._consumer.consume(want, 0)
        if not messages:
            self._idle_until = now + 0.0005
        for message in messages:
            topic, partition = message.topic(), message.partition()
            buffer = None if topic is None or partition is None else buffers.get((topic, partition))
            error = message.error()
            if error is not None:
                if error.code() == ConfluentKafkaError._PARTITION_EOF:
                    if buffer is not None:
                        buffer.append(_EOF)
                    continue
                if refused(error):  # revoked rights or credentials: no record will come, stop loudly
                    raise KafkaAccessError(f"Kafka refused the job's consumer: {error.str()} "
                                           "(docs/security.md)")
                offset = message.offset()
                if buffer is None or offset is None or offset < 0:
                    # No record behind it (broker unreachable, ...): librdkafka recovers by itself.
                    log.warning("Kafka consumer: %s", error)
                    continue
            if buffer is not None:
                buffer.append(message)
                self.buffered += 1


class _KafkaPartition(StatefulSourcePartition[RawRecord, int]):
    """One input topic partition, read through its worker's consumer; the resume state is the next offset."""

    def __init__(self, shared: _WorkerConsumer, topic: str, partition: int, stream: str, offset: int,
                 positions: dict[tuple[str, int], int] | None) -> None:
        self._shared = shared
        self._topic, self._partition, self._stream = topic, partition, stream
        self._offset = offset
        self._positions = positions
        self._eof = False
        self._full = False
        self._buffer = shared.assign(topic, partition, offset)

    def next_batch(self) -> list[RawRecord]:
        if self._eof:
            raise StopIteration
        buffer = self._buffer
        if not buffer:
            self._shared.fill()
        batch: list[RawRecord] = []
        append, stream, topic, partition = batch.append, self._stream, self._topic, self._partition
        for _ in range(min(len(buffer), self._shared.batch_size)):
            message = buffer.popleft()
            if message is _EOF:
                self._eof = True  # StopIteration on the next call, after this batch
                break
            error = message.error()
            append(RawRecord(
                value=message.value(), key=message.key(),
                origin=Origin(topic=topic, partition=partition, offset=message.offset(),
                              timestamp_ms=_timestamp_ms(message.timestamp())),
                stream=stream, error=None if error is None else str(error),
            ))
        if batch:
            self._shared.buffered -= len(batch)
            last = batch[-1].origin.offset
            if last is not None:  # a Kafka record has one
                self._offset = last + 1  # resume after the last record handed on
            if self._positions is not None:
                self._positions[(topic, partition)] = self._offset
        self._full = len(batch) == self._shared.batch_size
        return batch

    def next_awake(self) -> datetime | None:
        # A full batch: a backlog, so read on at once. Otherwise wait for the
        # next tick of a POLL_S clock that every partition shares, so that one
        # activation of the dataflow takes what all of them got meanwhile:
        # polling each partition as soon as it has anything makes batches of
        # a record or two, whose fixed costs (twenty steps, a model call)
        # overload the job at rates it otherwise handles.
        if self._full:
            return None
        return datetime.fromtimestamp((time.time() // POLL_S + 1) * POLL_S, UTC)

    def snapshot(self) -> int:
        return self._offset

    def close(self) -> None:
        self._shared.release(self._topic, self._partition)


class RawKafkaSource(KafkaSource):
    """Kafka input as ``RawRecord``s, one consumer per worker.

    Partitions keep ``KafkaSource``'s names (``"{partition}-{topic}"``) and
    resume state (the next offset to read), so a recovery store written with
    Bytewax's source resumes here. A consumer error about a record becomes
    that record with ``error`` set (a dead letter); errors about no record
    (an unreachable broker) are logged, and librdkafka reconnects.
    """

    def __init__(self, brokers: list[str], streams: dict[str, str], *, tail: bool, starting_offset: int,
                 add_config: dict[str, str], batch_size: int,
                 positions: dict[tuple[str, int], int] | None = None,
                 share: list[int] | None = None) -> None:
        super().__init__(brokers, list(streams), tail=tail, starting_offset=starting_offset,
                         add_config=add_config, batch_size=batch_size, raise_on_errors=False)
        self._streams = streams
        self._positions = positions
        self._share = None if share is None else frozenset(share)
        self._local = threading.local()  # a worker is a thread: its consumer

    def list_parts(self) -> list[str]:
        """Every partition of the input topics; with a share (``COACH_KAFKA_PARTITIONS``), those of each.

        Jobs that split the partitions between them keep no state in common,
        so a customer's context, conversations and feedback must be in the
        same partition number of their topics: topics keyed by customer id
        (``COACH_INPUT_KEY=customer``, checked per record) with one partition
        count, checked here. A share naming a partition the topics lack
        stops the job before it reads anything.
        """
        parts = super().list_parts()
        if self._share is None:
            return parts
        counts: dict[str, int] = {}
        for part in parts:
            topic = part.split("-", 1)[1]
            counts[topic] = counts.get(topic, 0) + 1
        if len(set(counts.values())) > 1:
            raise ValueError(
                f"COACH_KAFKA_PARTITIONS needs co-partitioned input topics of one partition count, "
                f"not {counts}"
            )
        count = next(iter(counts.values()), 0)
        missing = sorted(n for n in self._share if n >= count)
        if missing:
            raise ValueError(
                f"COACH_KAFKA_PARTITIONS names partitions {missing}; the input topics have {count} "
                f"(0 to {count - 1})"
            )
        return [part for part in parts if int(part.split("-", 1)[0]) in self._share]

    # KafkaSource lists the partitions; its own partitions yield KafkaSourceMessages, these RawRecords.
    def build_part(  # type: ignore[override]
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> _KafkaPartition:
        index, topic = for_part.split("-", 1)
        if topic not in self._streams:
            raise ValueError(f"the recovery store holds input topic {topic!r}, which this job does not read")
        shared = getattr(self._local, "consumer", None)
        if shared is None or not shared.buffers:  # none yet, or closed after its last partition ended
            shared = self._local.consumer = _WorkerConsumer({
                "group.id": "BYTEWAX_IGNORED",  # offsets live in the recovery store, not in a group
                "enable.auto.commit": "false",
                "bootstrap.servers": ",".join(self._brokers),
                "enable.partition.eof": str(not self._tail).lower(),
                **self._add_config,
            }, self._batch_size)
        offset = self._starting_offset if resume_state is None else resume_state
        return _KafkaPartition(shared, topic, int(index), self._streams[topic], offset, self._positions)


def read_inputs(flow: Dataflow, settings: Settings, metrics: JobMetrics | None = None,
                streams: dict[str, str] | None = None) -> Stream[RawRecord]:
    """Conversation events, customer context and UI feedback, from Kafka or the JSONL input.

    With ``metrics``, the next offset to read of each partition is noted in
    ``metrics.positions`` (for the consumer-lag gauge). ``streams`` (topic ->
    contract stream) reads other topics than the coaching job's three.
    """
    if not settings.kafka_mode:
        source = JsonlSource(settings.input, settings.input_batch_size, settings.max_payload_bytes)
        return op.input("read_jsonl", flow, source)

    streams = streams or {name: kind for kind, name in settings.inputs().items()}
    kafka = RawKafkaSource(
        settings.broker_list,
        streams,
        tail=settings.kafka_tail,
        starting_offset=OFFSET_BEGINNING if settings.kafka_starting_offset == "earliest" else OFFSET_END,
        add_config=settings.kafka_client(),
        batch_size=settings.kafka_batch_size,
        positions=metrics.positions if metrics is not None else None,
        share=settings.kafka_partitions,
    )
    # A KafkaSource by its partition listing only: its partitions yield RawRecords (see build_part).
    return op.input("read_kafka", flow, cast("Source[RawRecord]", kafka))


class DeliveryError(RuntimeError):
    """The broker did not acknowledge records the job wrote."""


#: An output record for Kafka: (topic, key, value).
KafkaOut = tuple[str, bytes | None, bytes]


class _Deliveries:
    """One idempotent producer per process and its delivery reports, shared by the sink's partitions."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.failed = 0
        self.first_error: str | None = None

    def delivered(self, err, msg) -> None:
        if err is not None:
            self.failed += 1
            if self.first_error is None:
                self.first_error = f"{msg.topic()}: {err}"

    def check(self, when: str) -> None:
        failed, first = self.failed, self.first_error
        if failed:
            self.failed, self.first_error = 0, None
            raise DeliveryError(
                f"Kafka did not acknowledge {failed} output record(s) {when} (first: {first}); "
                "stopping so that a restart from the recovery store replays them"
            )


class _CheckedKafkaPartition(StatefulSinkPartition[KafkaOut, None]):
    """Produces without waiting; each epoch ends only once the broker acknowledged all of it."""

    def __init__(self, deliveries: _Deliveries) -> None:
        self._deliveries = deliveries

    def write_batch(self, items: list[KafkaOut]) -> None:
        producer, delivered = self._deliveries.producer, self._deliveries.delivered
        for topic, key, value in items:
            while True:
                try:
                    producer.produce(topic, value, key, on_delivery=delivered)
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    producer.poll(0.5)
        producer.poll(0)  # delivery reports so far: a failure stops the job now, not at the epoch's end
        self._deliveries.check("so far")

    def snapshot(self) -> None:
        # Bytewax snapshots a sink partition after its last write of the
        # epoch and commits the epoch only after every snapshot of it: so no
        # epoch (nor the input offsets in its snapshot) is committed before
        # the broker acknowledged all of its output.
        self._settle()

    def close(self) -> None:
        self._settle()

    def _settle(self) -> None:
        self._deliveries.producer.flush()  # returns once each record is acknowledged or has failed
        self._deliveries.check("by the end of the epoch")


class CheckedKafkaSink(FixedPartitionedSink[KafkaOut, None]):
    """Kafka output that fails loudly instead of dropping records it could not deliver.

    Bytewax's ``KafkaSink`` flushes each batch but never reads the delivery
    reports: a record the producer gives up on (after ``message.timeout.ms``,
    e.g. a broker down for longer than that) is dropped without a word, and
    the epoch, then the recovery snapshot after it, move on without it.
    Here records are produced without waiting (so the stream does not stop
    for the broker's round trip on every batch) and each sink partition's
    end-of-epoch snapshot waits for the acknowledgement of everything
    produced so far: the epoch and its recovery snapshot are committed only
    after all of its output is on the broker. A failed delivery raises
    ``DeliveryError``: the job exits non-zero, and a restart from its
    recovery store replays the unacknowledged epoch (at-least-once). The
    producer is idempotent unless ``config`` says otherwise, so its own
    retries neither duplicate nor reorder a conversation's records.

    Items are ``(route, (topic, key, value))``: ``route`` (the record's key)
    picks one of ``partitions`` sink partitions, which Bytewax spreads over
    the workers; every partition of a process shares one producer.
    """

    def __init__(
        self, brokers: list[str], config: dict[str, str] | None = None, partitions: int = 16
    ) -> None:
        # Delivery reports only of failures: an acknowledged record calls no Python;
        # ``flush`` still waits for every acknowledgement.
        self._config = {"bootstrap.servers": ",".join(brokers), "enable.idempotence": "true",
                        "delivery.report.only.error": True, **(config or {})}
        self._partitions = partitions
        self._deliveries: _Deliveries | None = None
        self._lock = threading.Lock()  # the workers of a process build their partitions in their own threads

    def list_parts(self) -> list[str]:
        return [str(i) for i in range(self._partitions)]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _CheckedKafkaPartition:
        with self._lock:
            if self._deliveries is None:
                self._deliveries = _Deliveries(Producer(client_config(self._config)))
        return _CheckedKafkaPartition(self._deliveries)


def write_outputs(stream: Stream[tuple[str, bytes | None, bytes]], settings: Settings,
                  outputs: dict[str, str] | None = None) -> None:
    """Publish ``(kind, key, value)`` to the output topics or ``<kind>.jsonl`` files.

    ``outputs`` (kind -> topic) serves another job's kinds than the coaching job's.
    """
    topics = outputs or settings.outputs()
    kinds = OUTPUT_KINDS if outputs is None else tuple(sorted(outputs))
    if settings.kafka_mode:
        messages = op.map(
            "to_kafka",
            stream,
            lambda item: (
                item[1].decode("utf-8", "replace") if item[1] else item[0],
                (topics[item[0]], *item[1:]),
            ),
        )
        op.output("write_kafka", messages, CheckedKafkaSink(settings.broker_list, settings.kafka_client()))
        return
    directory = Path(settings.output_dir)  # made by the job's resources (``JobResources.open``)
    lines = op.map("to_line", stream, lambda item: (item[0], item[2].decode("utf-8")))
    op.output("write_files", lines, JsonlDirSink(directory, kinds))


class _JsonlFilePartition(StatefulSinkPartition[str, int]):
    """One output file: lines flushed after each batch, made durable once per snapshot.

    Bytewax's ``DirSink`` syncs every file after every batch, a fixed cost of
    each activation (one ``fsync`` per output file a batch touches). Readers
    of the file see each batch as soon as it is flushed; what recovery needs
    is that the lines before a snapshot's offset are on disk when the
    snapshot is committed, so ``snapshot`` syncs what was written since the
    last one. The resume state is the file's offset, as ``DirSink``'s is, so
    recovery stores written with it resume here.
    """

    def __init__(self, path: Path, resume_state: int | None) -> None:
        self._file = path.open("at")
        self._file.seek(0 if resume_state is None else resume_state)
        self._file.truncate()  # what came after the snapshot is written again by the replay
        self._unsynced = False

    def write_batch(self, items: list[str]) -> None:
        write = self._file.write
        for item in items:
            write(item)
            write("\n")
        self._file.flush()
        self._unsynced = True

    def snapshot(self) -> int:
        if self._unsynced:
            os.fsync(self._file.fileno())
            self._unsynced = False
        return self._file.tell()

    def close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


class JsonlDirSink(FixedPartitionedSink[str, int]):
    """One ``{kind}.jsonl`` file per output kind in ``directory``, for ``(kind, line)`` items.

    As Bytewax's ``DirSink`` (the same partition names and resume state, so recovery stores written
    with it resume here), synced once per snapshot rather than after every batch.
    """

    def __init__(self, directory: Path, kinds: tuple[str, ...]) -> None:
        self._directory = directory
        self._kinds = kinds

    def list_parts(self) -> list[str]:
        return [f"{kind}.jsonl" for kind in self._kinds]

    def part_fn(self, item_key: str) -> int:
        return self._kinds.index(item_key)

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _JsonlFilePartition:
        return _JsonlFilePartition(self._directory / for_part, resume_state)
