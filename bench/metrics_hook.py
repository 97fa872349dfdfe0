"""Cost of the metrics hook per published record (``JobMetrics.observe``).

    .venv/bin/python bench/metrics_hook.py [--repeat 200]

Runs the bundled sample through the embedded flow once for real outputs,
then times the hook over them (decisions given a Kafka timestamp, so the
end-to-end histogram is observed too, as in Kafka mode), and the consumer
lag's per-record bookkeeping in ``read_inputs`` (one dict write). Prints one
JSON object; the figures are medians over the repeats.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from coachflow.config import Settings  # noqa: E402
from coachflow.metrics import JobMetrics  # noqa: E402
from schemas import Alert, ConversationSummary, DeadLetter, Decision, SourceRef, Suggestion  # noqa: E402
from tests.helpers import run_job  # noqa: E402

MODELS = {"decisions": Decision, "suggestions": Suggestion, "alerts": Alert, "dlq": DeadLetter,
          "summaries": ConversationSummary}


def outputs() -> dict[str, list]:
    with tempfile.TemporaryDirectory() as tmp:
        run_job(Settings(output_dir=Path(tmp), print_suggestions=False, lineage="none",
                                   quality_monitor=False))
        return {kind: [model.model_validate_json(line)
                       for line in (Path(tmp) / f"{kind}.jsonl").read_text().splitlines()]
                for kind, model in MODELS.items()}


def with_timestamp(decision: Decision, ms: int) -> Decision:
    source = SourceRef(kind="kafka", topic="conversation.events", partition=0, offset=1, timestamp_ms=ms)
    return decision.model_copy(update={"input": decision.input.model_copy(update={"source": source})})


def per_item_us(fn, items, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for item in items:
            fn("metrics", item)
        runs.append((time.perf_counter_ns() - start) / len(items) / 1e3)
    return round(statistics.median(runs), 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    out = outputs()
    now_ms = time.time_ns() // 1_000_000
    decisions = [with_timestamp(d, now_ms) for d in out["decisions"]]
    published = decisions + out["suggestions"] + out["alerts"] + out["dlq"] + out["summaries"]
    hook = JobMetrics().observe
    noop = lambda _step, _item: None  # noqa: E731 - the cost of the call alone
    positions: dict[tuple[str, int], int] = {}
    keys = [("conversation.events", i % 4) for i in range(10_000)]

    def note(_step, key):
        positions[key] = 42

    result = {
        "published_records": len(published),
        "per_published_record_us": per_item_us(hook, published, args.repeat),
        "per_decision_us": per_item_us(hook, decisions, args.repeat),
        "per_other_record_us": per_item_us(hook, published[len(decisions):], args.repeat),
        "call_overhead_us": per_item_us(noop, published, args.repeat),
        "lag_bookkeeping_per_input_us": per_item_us(note, keys, max(1, args.repeat // 10)),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
