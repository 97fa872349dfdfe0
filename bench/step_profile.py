"""Where the coaching job's time goes: a py-spy profile of one run, summarised by step.

    .venv/bin/python bench/step_profile.py [--dialogues ../shared/data/star/dialogues.jsonl.gz]
        [--split dev] [--limit N] [--rate 400] [--raw profile.txt] [--json out.json]
    .venv/bin/python bench/step_profile.py --pid PID --duration 30      # a running job (coach bench's)
    .venv/bin/python bench/step_profile.py --from-raw profile.txt       # summarise a kept profile

Without ``--pid`` it replays STAR's dialogues to a file, runs the embedded job
(``python -m bytewax.run flows.coaching:flow``) on it under ``py-spy record --gil`` and
prints the share of the samples of each step; ``--pid`` attaches to a job that runs
already (the one ``coach bench`` starts reads Kafka, so its sources and sinks show too).
A sample belongs to the innermost step its stack passes through (the rules in ``STEPS``);
samples taken while the flow is built (imports, the model, the policies) are start-up and
reported apart. py-spy samples the thread holding the GIL, so the shares are of the
job's Python time, the Bytewax runtime's Rust code included where it holds the GIL.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coachflow.bench import replay_to_file  # noqa: E402

#: (step, frames that belong to it); a sample is counted for the innermost step one of its
#: frames matches. Contracts and JSON (``SHARED``) are counted for the step that calls them.
STEPS: tuple[tuple[str, str], ...] = (
    (
        "Bytewax runtime and operator shims",
        r"\(run\.py:|bytewax/operators/__init__\.py|\(operators/__init__\.py",
    ),
    ("error boundaries (state copies)", r"\(operators/boundary\.py"),
    ("read inputs", r"\(coachflow/connectors\.py:\d+\)$|_JsonlPartition|KafkaSource|confluent_kafka"),
    ("parse and contracts", r"\(operators/(parse|records|limits|envelope)\.py"),
    ("masking", r"\(operators/(pii|privacy|names)\.py|phonenumbers|stdnum"),
    ("quality gate", r"\(operators/quality\.py"),
    ("context join", r"\(operators/join\.py"),
    ("conversation state and features", r"\(operators/(conversation|features|candidates)\.py"),
    ("scoring (ONNX)", r"\(operators/scoring\.py|\(models/|onnxruntime"),
    ("guardrails", r"\(operators/(guardrails|policy|playbook|templates|experiment|store)\.py"),
    ("acceptance", r"\(operators/acceptance\.py"),
    ("publish and serialise", r"\(operators/publish\.py|connectors/files\.py|KafkaSink"),
    ("metrics and lineage", r"\(coachflow/metrics\.py|prometheus_client|\(lineage/|openlineage"),
)
SHARED = ("parse and contracts", r"\(schemas/|pydantic|json/|orjson")
_COMPILED = tuple((name, re.compile(pattern)) for name, pattern in STEPS)
_SHARED = re.compile(SHARED[1])
_STARTUP = re.compile(r"_locate_dataflow|\(coachflow/runtime\.py")


def step_of(frames: list[str]) -> str:
    """The step one sampled stack (outermost frame first) is counted for."""
    if any(_STARTUP.search(frame) for frame in frames):
        return "start-up"
    step = "other"
    for frame in frames:
        if _SHARED.search(frame):
            if step == "other" or step.startswith("Bytewax"):
                step = SHARED[0]
            continue
        for name, pattern in _COMPILED:
            if pattern.search(frame):
                # A boundary wraps a step's own logic: what runs inside it is that step's.
                if name.startswith("Bytewax") and step != "other":
                    break
                step = name
                break
    return step


def summarise(raw: Path) -> dict[str, object]:
    """Samples and shares per step of a py-spy ``--format raw`` (collapsed stacks) file."""
    counts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if stack:
            counts[step_of(stack.split(";"))] += int(n)
    startup = counts.pop("start-up", 0)
    working = sum(counts.values())
    steps = {name: {"samples": n, "share": round(n / working, 4)} for name, n in counts.most_common()}
    return {
        "samples": working + startup,
        "start_up_samples": startup,
        "working_samples": working,
        "steps": steps,
    }


def _py_spy() -> str:
    candidate = Path(sys.executable).with_name("py-spy")
    return str(candidate) if candidate.exists() else "py-spy"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dialogues", type=Path, default=ROOT.parent / "shared/data/star/dialogues.jsonl.gz")
    parser.add_argument("--split", default="dev", choices=("dev", "train", "all"))
    parser.add_argument(
        "--limit", type=int, default=0, help="at most this many dialogues (0: all of the split)"
    )
    parser.add_argument("--rate", type=int, default=400, help="samples a second")
    parser.add_argument("--pid", type=int, help="profile this running job instead of an embedded run")
    parser.add_argument("--duration", type=int, default=30, help="seconds to sample a --pid")
    parser.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks here")
    parser.add_argument("--json", type=Path, help="write the summary here")
    parser.add_argument("--from-raw", type=Path, help="summarise these collapsed stacks instead of profiling")
    args = parser.parse_args(argv)
    if args.from_raw:
        return _print(args, {"records": None, "rate": None, **summarise(args.from_raw)})
    with tempfile.TemporaryDirectory(prefix="coach-profile-") as tmp:
        work = Path(tmp)
        raw = args.raw or work / "raw.txt"
        record = [_py_spy(), "record", "--gil", "-r", str(args.rate), "-f", "raw", "-o", str(raw)]
        if args.pid:
            subprocess.run([*record, "-d", str(args.duration), "--pid", str(args.pid)], check=True)
            records = None
        else:
            events = work / "events.jsonl"
            records = replay_to_file(args.dialogues, args.split, args.limit, events)
            env = {**os.environ, "COACH_INPUT": str(events), "COACH_OUTPUT_DIR": str(work / "out"),
                   "COACH_METRICS_PORT": "0"}
            with (work / "job.log").open("w") as log:
                subprocess.run([*record, "--", sys.executable, "-m", "bytewax.run", "flows.coaching:flow"],
                               cwd=ROOT, env=env, check=True, stdout=log, stderr=subprocess.STDOUT)
        summary = {"records": records, "rate": args.rate, **summarise(raw)}
    return _print(args, summary)


def _print(args: argparse.Namespace, summary: dict[str, object]) -> int:
    records = summary["records"]
    print(f"{summary['working_samples']} samples while working, {summary['start_up_samples']} in start-up"
          + (f"; {records} input records" if records else ""))
    for name, step in summary["steps"].items():  # type: ignore[union-attr]
        print(f"{100 * step['share']:5.1f} %  {name}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
