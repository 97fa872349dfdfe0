"""Scoring cost, model size and start-up time of the embedded ONNX model.

    .venv/bin/python bench/scoring.py [--dialogues ../shared/data/star/dialogues.jsonl.gz] [--repeat 3]

Prediction points come from our dev split through the serving code path
(mapping, conversation tracker, vectoriser, onnxruntime, ranking). "cold" is
the first pass in a fresh process (every text and state new to the caches, as
each new turn is in the stream), with the garbage collector settled as a job
process settles it (``models.heap.settle_heap``); "warm" repeats it.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models import star  # noqa: E402
from models.dataset import examples  # noqa: E402
from models.heap import settle_heap  # noqa: E402
from models.registry import load_scorer  # noqa: E402
from models.train import ARTIFACT  # noqa: E402


def _per_point(scorer, features, batch_size: int) -> float:
    started = time.perf_counter()
    for i in range(0, len(features), batch_size):
        scorer.score_batch(features[i : i + batch_size])
    return (time.perf_counter() - started) / len(features) * 1e6


def _cold(batch_size: int, dialogues: Path) -> float:
    """Cold µs per point at ``batch_size``, in a fresh process."""
    code = (
        "import sys; sys.path.insert(0, 'bench'); from scoring import _cold_here; "
        f"print(_cold_here({batch_size}, {str(dialogues)!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _cold_here(batch_size: int, dialogues: str) -> float:
    scorer, _, features = _setup(Path(dialogues))
    return round(_per_point(scorer, features, batch_size), 1)


def _setup(dialogues: Path):
    """The scorer (and its load time) with the heap settled as a job process settles it, and the dev points.
    """
    loaded = time.perf_counter()
    scorer = load_scorer(ARTIFACT)
    load_s = time.perf_counter() - loaded
    settle_heap()
    return scorer, load_s, [p.features for p in examples(star.select(dialogues, split="dev"))]


def _startup(runs: int) -> dict:
    code = (
        "import time; t=time.perf_counter(); from flows.coaching import get_flow; "
        "get_flow(); print(time.perf_counter()-t)"
    )
    env = {**os.environ, "COACH_PRINT_SUGGESTIONS": "false"}
    env.pop("COACH_BROKERS", None)
    build = []
    whole = []
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.jsonl"
        empty.write_text("")
        for _ in range(runs):
            out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                                 text=True, check=True)
            build.append(float(out.stdout.strip().splitlines()[-1]))
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "bytewax.run", "flows.coaching:flow"], cwd=ROOT, check=True,
                env={**env, "COACH_INPUT": str(empty), "COACH_OUTPUT_DIR": tmp}, capture_output=True,
            )
            whole.append(time.perf_counter() - started)
    return {
        "startup_import_and_build_s": round(statistics.median(build), 3),
        "startup_whole_run_empty_input_s": round(statistics.median(whole), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialogues", type=Path, default=star.DEFAULT_STAR_DIR / "dialogues.jsonl.gz")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    scorer, load_s, features = _setup(args.dialogues)

    result: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "model": scorer.version,
        "model_file_mb": round(ARTIFACT.stat().st_size / 1e6, 2),
        "model_load_s": round(load_s, 3),
        "points": len(features),
    }
    cpu = time.process_time()
    result["score_us_per_point_cold_batch256"] = round(_per_point(scorer, features, 256), 1)
    result["cpu_us_per_point_cold_batch256"] = round((time.process_time() - cpu) / len(features) * 1e6, 1)
    # the job polls up to COACH_KAFKA_BATCH_SIZE (1000) records, so it scores batches up to that size
    result["score_us_per_point_cold_batch1000"] = _cold(1000, args.dialogues)
    for batch in (256, 64, 16, 1):
        runs = [
            _per_point(scorer, features[: 4096 if batch > 1 else 2000], batch) for _ in range(args.repeat)
        ]
        result[f"score_us_per_point_warm_batch{batch}"] = round(min(runs), 1)

    singles = []
    for f in features[::7][:2000]:
        t = time.perf_counter()
        scorer.score_batch([f])
        singles.append((time.perf_counter() - t) * 1e3)
    singles.sort()
    result["batch_of_one_ms_p50"] = round(singles[len(singles) // 2], 3)
    result["batch_of_one_ms_p99"] = round(singles[int(len(singles) * 0.99)], 3)
    result["batch_of_one_ms_max"] = round(singles[-1], 3)

    inputs = [scorer.vectorizer.padded(features[i : i + 128]) for i in range(0, 4096, 128)]
    t = time.perf_counter()
    for inp in inputs:
        scorer.session.run(None, inp)
    result["onnx_only_us_per_point_batch128"] = round((time.perf_counter() - t) / 4096 * 1e6, 1)
    result.update(_startup(args.repeat))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
