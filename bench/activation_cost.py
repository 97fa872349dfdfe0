"""The fixed cost of one activation: the embedded job at several input batch sizes.

    .venv/bin/python bench/activation_cost.py [--limit 200] [--sizes 1,4,16,64,256,1024] [--repeat 2]

It replays STAR dev dialogues to a file once, then runs the embedded job
(``python -m bytewax.run flows.coaching:flow``, the full pipeline) once per batch size
``B`` (``COACH_INPUT_BATCH_SIZE``: at most ``B`` lines go into one activation). Each run is
timed on the job's own clock, as ``coach bench`` times it: from the first input parsed
(the earliest decision's ``decided_at`` less its ``latency_ms.total_ms``) to the last
decision, so start-up is not counted. A least-squares fit of

    time per record = per_record + per_activation / B

over the sizes gives what every activation costs whatever it holds (``per_activation_us``)
and what a record costs in a full one (``per_record_us``). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coachflow.bench import machine, parsed_at, replay_to_file  # noqa: E402


def span_s(decisions: Path) -> tuple[float, int]:
    """Seconds from the first input parsed to the last decision, and the decisions counted."""
    first, last, count = float("inf"), float("-inf"), 0
    with decisions.open() as lines:
        for line in lines:
            record = json.loads(line)
            first = min(first, parsed_at(record))
            last = max(last, datetime.fromisoformat(record["decided_at"]).timestamp())
            count += 1
    return last - first, count


def run_job(events: Path, size: int, work: Path) -> tuple[float, int]:
    """One embedded run at input batch size ``size``: its span and its decisions."""
    out = work / f"out-{size}"
    env = {**os.environ, "COACH_INPUT": str(events), "COACH_OUTPUT_DIR": str(out),
           "COACH_INPUT_BATCH_SIZE": str(size), "COACH_METRICS_PORT": "0", "COACH_PRINT_SUGGESTIONS": "false"}
    with (work / f"job-{size}.log").open("w") as log:
        subprocess.run([sys.executable, "-m", "bytewax.run", "flows.coaching:flow"], cwd=ROOT, env=env,
                       check=True, stdout=log, stderr=subprocess.STDOUT)
    return span_s(out / "decisions.jsonl")


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least squares of ``y = a + b / x``: (a, b)."""
    xs = [1 / size for size, _ in points]
    ys = [y for _, y in points]
    n = len(points)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    return my - b * mx, b


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dialogues", type=Path, default=ROOT.parent / "shared/data/star/dialogues.jsonl.gz")
    parser.add_argument("--split", default="dev", choices=("dev", "train", "all"))
    parser.add_argument("--limit", type=int, default=200, help="dialogues replayed")
    parser.add_argument("--sizes", default="1,4,16,64,256,1024", help="input batch sizes, comma-separated")
    parser.add_argument("--repeat", type=int, default=2, help="runs per size; the fastest counts")
    args = parser.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",")})
    if len(sizes) < 2:  # noqa: PLR2004 - a fit needs two sizes
        parser.error("--sizes needs at least two sizes")
    with tempfile.TemporaryDirectory(prefix="coach-activation-") as tmp:
        work = Path(tmp)
        events = work / "events.jsonl"
        records = replay_to_file(args.dialogues, args.split, args.limit, events)
        runs = []
        for size in sizes:
            spans = [run_job(events, size, work) for _ in range(args.repeat)]
            span, decided = min(spans)
            if decided != records:
                print(f"activation_cost: {decided} decisions for {records} records at size {size}",
                      file=sys.stderr)
                return 1
            runs.append({"batch_size": size, "span_s": round(span, 3),
                         "us_per_record": round(span / records * 1e6, 1)})
    per_record, per_activation = fit([(r["batch_size"], r["us_per_record"]) for r in runs])
    print(json.dumps({
        "records": records,
        "runs": runs,
        "per_record_us": round(per_record, 1),
        "per_activation_us": round(per_activation, 1),
        "machine": machine(),
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
