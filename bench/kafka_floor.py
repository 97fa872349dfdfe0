"""The Kafka floor: what moving `coach bench`'s records through this machine's broker costs, with no pipeline.

    .venv/bin/python bench/kafka_floor.py [--records 60000] [--partitions 4]

On topics of its own, like `coach bench` (preloaded with the same STAR dev
conversations), one thread runs a bare confluent-kafka loop that consumes
every input and produces one decision-sized record per input to the
decisions topic, with the job's producer settings (5 ms linger, delivery
reports of failures only, idempotence). Two loops, each on fresh topics:

- ``bytes``: produces each input's own bytes; the Kafka client and broker only.
- ``contracts``: validates each input against its topic contract (the
  parse step's pydantic adapter) and serialises a real decision of the
  sample (pydantic-core, as the job's ``serialize``), with the input's id
  as its decision id: the least work a record costs while the topics keep
  their pydantic contracts.
- ``json``: the same with the standard library (``json.loads`` of the
  input, ``json.dumps`` of the decision as a dict), no validation.

For each it prints the rate (outputs over the span of their broker append
times), the broker's CPU over the loop and two CPU figures per record:
``loop_cpu_us_per_record`` is this process's (the loop's thread, the Kafka
client's own threads and the collector thread that reads the outputs back
to time them), ``loop_thread_cpu_us_per_record`` the loop's thread alone
(its Python and the client calls it makes). It
says how much of the throughput target (20,000 turns/s on this two-core
machine) the client, the broker and JSON leave to the pipeline's own steps.
It starts the project's broker if none runs on 127.0.0.1:9092 and deletes
the topics it made. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coachflow.bench import (  # noqa: E402
    Collector,
    Publisher,
    Usage,
    bench_settings,
    broker_up,
    create_topics,
    delete_created_topics,
    machine,
    records_pool,
)
from coachflow.kafka_log import client_config  # noqa: E402

BROKERS = "127.0.0.1:9092"


def sample_decisions() -> list:
    """Decisions the embedded job writes for the bundled sample (the reference loop's steps, in process)."""
    from coachflow.config import Settings
    from coachflow.reference import Pipeline
    from operators.envelope import Origin, RawRecord
    from schemas import Decision

    path = ROOT / "data" / "sample" / "conversations.jsonl"
    settings = Settings(input=path, output_dir=tempfile.mkdtemp(prefix="floor-"), quality_monitor=False,
                        lineage="none", print_suggestions=False, log_level="WARNING")
    pipeline = Pipeline(settings)
    raws = [RawRecord(value=line, key=None, origin=Origin(file=str(path), line=n), stream="any", size=len(line) + 1)
            for n, line in enumerate(path.read_bytes().splitlines(), 1)]
    out = [*pipeline.process(raws), *pipeline.finish()]
    return [record for record in out if isinstance(record, Decision)]


def broker_pid() -> int:
    status = subprocess.run([str(ROOT / "scripts" / "kafka.sh"), "status"], capture_output=True, text=True).stdout
    return int(status.rsplit("pid", 1)[1].strip(" )\n"))


def floor_run(mode: str, count: int, partitions: int, decisions: list) -> dict:
    from confluent_kafka import Consumer, Producer, TopicPartition

    from schemas.events import CONTEXT_ADAPTER, EVENT_ADAPTER  # the parse step's adapters for the two topics

    adapters = {"events": EVENT_ADAPTER, "context": CONTEXT_ADAPTER}
    as_dicts = [json.loads(decision.__pydantic_serializer__.to_json(decision)) for decision in decisions]

    settings = bench_settings(BROKERS, f"floor{uuid.uuid4().hex[:8]}.", partitions)
    create_topics(settings)
    publisher = Publisher(settings)
    for record in records_pool(count, 400):
        publisher.send(record)
    publisher.flush()
    collector = Collector(settings, topics=(settings.topic_decisions,))
    collector.start()
    consumer = Consumer(client_config({"bootstrap.servers": BROKERS, "group.id": f"floor-{uuid.uuid4().hex}",
                                       "enable.auto.commit": False}))
    consumer.assign([TopicPartition(topic, p, 0) for topic in (settings.topic_events, settings.topic_context)
                     for p in range(partitions)])
    producer = Producer(client_config({"bootstrap.servers": BROKERS, "linger.ms": 5,
                                       "delivery.report.only.error": True, "enable.idempotence": True}))
    broker = Usage([broker_pid()])
    broker.sample()
    broker_before = broker.cpu_s
    broker.start()
    cpu, thread_cpu, done = time.process_time(), time.thread_time(), 0
    while done < count:
        for message in consumer.consume(1000, 0.1):
            if message.error():
                continue
            if mode == "bytes":
                value = message.value()
            elif mode == "contracts":
                stream = "context" if message.topic() == settings.topic_context else "events"
                record = adapters[stream].validate_json(message.value())
                decision = decisions[done % len(decisions)]
                decision = decision.model_copy(update={"decision_id": getattr(record, "event_id", record.customer_id)})
                value = decision.__pydantic_serializer__.to_json(decision)
            else:
                record = json.loads(message.value())
                decision = as_dicts[done % len(as_dicts)]
                value = json.dumps({**decision, "decision_id": record.get("event_id", record["customer_id"])},
                                   separators=(",", ":")).encode()
            done += 1
            while True:
                try:
                    producer.produce(settings.topic_decisions, value=value, key=message.key())
                    break
                except BufferError:
                    producer.poll(0.01)
            producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("floor: undelivered records")
    cpu, thread_cpu = time.process_time() - cpu, time.thread_time() - thread_cpu
    arrived = collector.wait_for(count, 120)
    broker.sample()
    broker.stop()
    collector.stop()
    consumer.close()
    appends = sorted(appended for _, _, appended in collector.outputs)
    if not arrived or len(appends) < 2:
        raise RuntimeError(f"floor: {len(appends)} of {count} outputs arrived")
    span = appends[-1] - appends[0]
    return {"mode": mode, "records": count, "throughput_per_s": round(count / span) if span > 0 else None,
            "loop_cpu_us_per_record": round(cpu / count * 1e6, 1),
            "loop_thread_cpu_us_per_record": round(thread_cpu / count * 1e6, 1),
            "broker_cpu_cores": round((broker.cpu_s - broker_before) / broker.wall, 2) if broker.wall > 0 else None,
            "output_bytes_per_record": round(sum(len(v) for v, _, _ in collector.outputs) / count)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=60_000)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    started = False
    if not broker_up(BROKERS):
        subprocess.run([str(ROOT / "scripts" / "kafka.sh"), "start"], check=True)
        started = True
    try:
        decisions = sample_decisions()
        runs = [floor_run(mode, args.records, args.partitions, decisions) for mode in ("bytes", "contracts", "json")]
        print(json.dumps({"runs": runs, "partitions": args.partitions, "machine": machine()}, indent=2))
        return 0
    finally:
        delete_created_topics(BROKERS)
        if started:
            subprocess.run([str(ROOT / "scripts" / "kafka.sh"), "stop"], check=False)


if __name__ == "__main__":
    sys.exit(main())
