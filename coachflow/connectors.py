"""Where records come from and go to: Kafka topics, or JSONL files in embedded mode.

Both inputs produce ``RawRecord``s and both outputs take ``(kind, key, value)``
triples, so the dataflow between them is the same in either mode.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import bytewax.operators as op
from bytewax.connectors.files import DirSink
from bytewax.connectors.kafka import KafkaError, KafkaSource, KafkaSourceMessage
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Producer

from coachflow.config import Settings
from operators.envelope import Origin, RawRecord

if TYPE_CHECKING:
    from coachflow.metrics import JobMetrics

#: Output kinds. Sorted: Bytewax orders a sink's partitions by name, and
#: ``assign_file`` returns an index into that order.
OUTPUT_KINDS = tuple(sorted(("suggestions", "alerts", "decisions", "dlq", "summaries", "acceptance")))


class _JsonlPartition(StatefulSourcePartition[RawRecord, tuple[int, int]]):
    """Reads a JSONL file line by line; the resume state is (byte offset, line number)."""

    def __init__(self, path: Path, batch_size: int, limit: int, resume: tuple[int, int] | None):
        self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._name = path.name
        self._batch_size = batch_size
        self._limit = limit
        offset, self._line = resume if resume is not None else (0, 0)
        self._file.seek(offset)

    def _read_line(self) -> tuple[bytes, int] | None:
        """The next line (cut at ``limit + 1`` bytes) and its full size, or None at EOF."""
        chunk = self._file.readline(self._limit + 1)
        if not chunk:
            return None
        size = len(chunk)
        # An over-long line: keep its head, skip the rest, remember its size.
        while not chunk.endswith(b"\n") and size > self._limit:
            rest = self._file.readline(1 << 20)
            if not rest:
                break
            size += len(rest)
            if rest.endswith(b"\n"):
                break
        line = chunk.rstrip(b"\r\n")
        return line, size - (len(chunk) - len(line)) if chunk.endswith(b"\n") else size

    def next_batch(self) -> list[RawRecord]:
        batch: list[RawRecord] = []
        while len(batch) < self._batch_size:
            read = self._read_line()
            if read is None:
                if batch:
                    return batch
                raise StopIteration
            self._line += 1
            line, size = read
            if not line.strip():
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


def read_inputs(flow: Dataflow, settings: Settings, metrics: JobMetrics | None = None) -> Stream[RawRecord]:
    """Conversation events, customer context and UI feedback, from Kafka or the JSONL input.

    With ``metrics``, the next offset to read of each partition is noted in
    ``metrics.positions`` (for the consumer-lag gauge).
    """
    if not settings.kafka_mode:
        source = JsonlSource(settings.input, line_limit=settings.max_payload_bytes)
        return op.input("read_jsonl", flow, source)

    streams = {settings.topic_events: "events", settings.topic_context: "context",
               settings.topic_feedback: "feedback"}
    source = KafkaSource(
        settings.broker_list,
        list(streams),
        tail=settings.kafka_tail,
        starting_offset=OFFSET_BEGINNING if settings.kafka_starting_offset == "earliest" else OFFSET_END,
        add_config=dict(settings.kafka_config),
        batch_size=settings.kafka_batch_size,
        raise_on_errors=False,
    )

    positions = metrics.positions if metrics is not None else None

    def to_raw(message: KafkaSourceMessage | KafkaError) -> RawRecord:
        if isinstance(message, KafkaError):
            failed = message.msg
            offset = failed.offset
            if positions is not None and failed.partition is not None and offset is not None and offset >= 0:
                positions[(failed.topic, failed.partition)] = offset + 1
            return RawRecord(
                value=failed.value, key=failed.key,
                origin=Origin(topic=failed.topic, partition=failed.partition, offset=failed.offset,
                              timestamp_ms=_timestamp_ms(failed.timestamp)),
                stream=streams.get(failed.topic or "", "events"), error=str(message.err),
            )
        if positions is not None:
            positions[(message.topic, message.partition)] = message.offset + 1
        return RawRecord(
            value=message.value,
            key=message.key,
            origin=Origin(topic=message.topic, partition=message.partition, offset=message.offset,
                          timestamp_ms=_timestamp_ms(message.timestamp)),
            stream=streams[message.topic],
        )

    return op.map("to_raw", op.input("read_kafka", flow, source), to_raw)


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

    def __init__(self, brokers: list[str], config: dict[str, str] | None = None, partitions: int = 16) -> None:
        self._config = {"bootstrap.servers": ",".join(brokers), "enable.idempotence": "true", **(config or {})}
        self._partitions = partitions
        self._deliveries: _Deliveries | None = None
        self._lock = threading.Lock()  # the workers of a process build their partitions in their own threads

    def list_parts(self) -> list[str]:
        return [str(i) for i in range(self._partitions)]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _CheckedKafkaPartition:
        with self._lock:
            if self._deliveries is None:
                self._deliveries = _Deliveries(Producer(self._config))
        return _CheckedKafkaPartition(self._deliveries)


def write_outputs(stream: Stream[tuple[str, bytes | None, bytes]], settings: Settings) -> None:
    """Publish ``(kind, key, value)`` to the output topics or ``<kind>.jsonl`` files."""
    if settings.kafka_mode:
        topics = settings.outputs()
        messages = op.map(
            "to_kafka", stream,
            lambda item: (item[1].decode("utf-8", "replace") if item[1] else item[0], (topics[item[0]], *item[1:])),
        )
        op.output("write_kafka", messages, CheckedKafkaSink(settings.broker_list, dict(settings.kafka_config)))
        return
    directory = Path(settings.output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    lines = op.map("to_line", stream, lambda item: (item[0], item[2].decode("utf-8")))
    sink = DirSink(
        directory,
        len(OUTPUT_KINDS),
        file_namer=lambda index, _count: f"{OUTPUT_KINDS[index]}.jsonl",
        assign_file=OUTPUT_KINDS.index,
    )
    op.output("write_files", lines, sink)
