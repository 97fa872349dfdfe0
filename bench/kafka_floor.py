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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coachflow.bench import (  # noqa: E402
    FLOOR_MODES,
    broker_up,
    delete_created_topics,
    floor_run,
    machine,
    records_pool,
    sample_decisions,
)

BROKERS = "127.0.0.1:9092"


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
        records = records_pool(args.records, 400)
        runs = [floor_run(BROKERS, mode, records, args.partitions, decisions) for mode in FLOOR_MODES]
        print(json.dumps({"runs": runs, "partitions": args.partitions, "machine": machine()}, indent=2))
        return 0
    finally:
        delete_created_topics(BROKERS)
        if started:
            subprocess.run([str(ROOT / "scripts" / "kafka.sh"), "stop"], check=False)


if __name__ == "__main__":
    sys.exit(main())
