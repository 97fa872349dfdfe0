"""What Bytewax itself costs a record: a map, a keyed stateful step, and a sharded batch step.

    .venv/bin/python bench/keyed_overhead.py [--records 100000] [--keys 2000] [--shards 4]

Each flow reads ``--records`` items from ``bytewax.testing.TestingSource`` (batches of 500),
passes them through one step whose logic does next to nothing, and drops them; the
time per record is what the step's kind costs in Bytewax 0.21 on this machine:

- ``map``: ``op.map``;
- ``stateful``: ``op.key_on``, ``op.stateful`` (a logic per key, ``on_item`` per record,
  ``notify_at`` per awoken key and activation), ``op.key_rm``, as each keyed step of the
  job runs;
- ``sharded_batch``: ``op.stateful_batch`` over ``--shards`` keys, each logic holding many
  keys' state in a dict and taking its records of an activation in one call.

Prints one JSON object (microseconds per record, best of ``--repeat`` runs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from datetime import datetime
from pathlib import Path

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulBatchLogic, StatefulLogic
from bytewax.testing import TestingSource, run_main

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coachflow.bench import machine  # noqa: E402


class _Count(StatefulLogic):
    def __init__(self, resume: int | None) -> None:
        self.n = resume or 0

    def on_item(self, value: object) -> tuple[list, bool]:
        self.n += 1
        return [value], False

    def notify_at(self) -> datetime | None:
        return None

    def snapshot(self) -> int:
        return self.n


class _ShardCount(StatefulBatchLogic):
    def __init__(self, resume: dict | None) -> None:
        self.counts: dict[str, int] = resume or {}

    def on_batch(self, values: list) -> tuple[list, bool]:
        counts = self.counts
        for key, _ in values:
            counts[key] = counts.get(key, 0) + 1
        return values, False

    def snapshot(self) -> dict:
        return dict(self.counts)


def run(kind: str, records: int, keys: int, shards: int) -> float:
    """Microseconds per record of one flow of ``kind``."""
    flow = Dataflow(kind)
    items = op.input("in", flow, TestingSource([(f"c{i % keys}", i) for i in range(records)], batch_size=500))
    if kind == "map":
        out = op.map("step", items, lambda item: item)
    elif kind == "stateful":
        keyed = op.key_on("key", items, lambda item: item[0])
        out = op.key_rm("unkey", op.stateful("step", keyed, _Count))
    else:
        keyed = op.key_on("key", items, lambda item: str(zlib.crc32(item[0].encode()) % shards))
        out = op.key_rm("unkey", op.stateful_batch("step", keyed, _ShardCount))
    op.inspect("drop", out, lambda _step, _item: None)
    began = time.perf_counter()
    run_main(flow)
    return (time.perf_counter() - began) / records * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=2000, help="distinct keys (conversations)")
    parser.add_argument("--shards", type=int, default=4, help="keys of the sharded batch step")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    result: dict[str, object] = {"records": args.records, "keys": args.keys, "shards": args.shards}
    for kind in ("map", "stateful", "sharded_batch"):
        best = min(run(kind, args.records, args.keys, args.shards) for _ in range(args.repeat))
        result[f"{kind}_us_per_record"] = round(best, 2)
    result["machine"] = machine()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
