"""End-to-end latency with the data-quality gate, GX monitor and lineage on, and off.

    scripts/kafka.sh start
    .venv/bin/python bench/gates_lineage.py [--rate 1000] [--dialogues 600] [--repeat 3]

Runs the job in Kafka mode on the real broker, alternating two arms on the
same replay: "on" (the defaults: the gate on every record, GX validating
micro-batches of up to 5000 rows per suite in its side process, lineage
events to a file), "hot_path" (the gate and lineage without GX) and "off"
(no gate, no GX, no lineage). Each arm publishes the STAR dev
dialogues at a steady rate after a warm-up; a decision's latency is its
append time on the decisions topic minus its input's append time (see
``coachflow.bench``). It also runs the same records through the job in
embedded mode at full speed, where the added work shows as wall time per
record rather than as queueing. A shared 2-core machine is noisy from run to run, so
the arms alternate and each figure is the median over the repeats. Prints
one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coachflow.bench import bench_records, live_run  # noqa: E402

ARMS = {
    "on": {},
    "hot_path": {"COACH_QUALITY_MONITOR": "false"},  # the gate and lineage, without GX's side process
    "off": {"COACH_QUALITY_GATE": "false", "COACH_QUALITY_MONITOR": "false", "COACH_LINEAGE": "none"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", default=os.environ.get("COACH_TEST_BROKERS", "127.0.0.1:9092"))
    parser.add_argument("--rate", type=float, default=1000.0, help="records per second")
    parser.add_argument("--dialogues", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=200, help="conversations in flight")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    records = bench_records(args.dialogues, args.concurrency)
    runs: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    for _ in range(args.repeat):
        for arm, env in ARMS.items():
            runs[arm].append(live_run(args.brokers, records, args.rate, env=env))
            print(arm, json.dumps(runs[arm][-1]["final_customer_turns"]), file=sys.stderr)
    summary = {arm: _medians(rs) for arm, rs in runs.items()}
    full_speed = _embedded(records, args.repeat)
    on, off = summary["on"]["final_customer_turns"], summary["off"]["final_customer_turns"]
    print(json.dumps({
        "records": len(records),
        "rate_per_s": args.rate,
        "repeat": args.repeat,
        **summary,
        "p50_ratio": round(on["p50_ms"] / off["p50_ms"], 3),
        "p99_ratio": round(on["p99_ms"] / off["p99_ms"], 3),
        "in_job_p50_ratio": round(summary["on"]["in_job"]["p50_ms"] / summary["off"]["in_job"]["p50_ms"], 3),
        "hot_path_p50_ratio": round(summary["hot_path"]["final_customer_turns"]["p50_ms"] / off["p50_ms"], 3),
        "embedded_full_speed": full_speed,
        "runs": runs,
    }, indent=2))


def _embedded(records: list[dict], repeat: int) -> dict:
    """Median wall time per record of a full-speed embedded run, per arm (GX's side process included)."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "records.jsonl"
        source.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        walls: dict[str, list[float]] = {arm: [] for arm in ARMS}
        for _ in range(repeat):
            for arm, extra in ARMS.items():
                env = {
                    **os.environ,
                    **extra,
                    "COACH_INPUT": str(source),
                    "COACH_OUTPUT_DIR": str(Path(tmp) / arm),
                    "COACH_PRINT_SUGGESTIONS": "false",
                }
                env.pop("COACH_BROKERS", None)
                began = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "bytewax.run", "flows.coaching:flow"],
                    cwd=root,
                    env=env,
                    check=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                walls[arm].append(time.perf_counter() - began)
                print(arm, "embedded", round(walls[arm][-1], 2), "s", file=sys.stderr)
    out = {
        arm: {
            "wall_s": round(statistics.median(w), 2),
            "us_per_record": round(statistics.median(w) / len(records) * 1e6, 1),
        }
        for arm, w in walls.items()
    }
    out["ratio"] = round(out["on"]["wall_s"] / out["off"]["wall_s"], 3)
    out["hot_path_ratio"] = round(out["hot_path"]["wall_s"] / out["off"]["wall_s"], 3)
    return out


def _medians(runs: list[dict]) -> dict:
    """Per measure (end to end, final customer turns, in the job): the median of each percentile."""
    out = {}
    for measure in ("decisions", "final_customer_turns", "in_job"):
        out[measure] = {
            key: statistics.median(r[measure][key] for r in runs)
            for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms")
        }
    return out


if __name__ == "__main__":
    main()
