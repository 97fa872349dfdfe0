"""`coach bench` starting its own broker says what it does, without librdkafka's reconnect lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from coachflow.bench import free_ports
from tests.helpers import ROOT

pytestmark = pytest.mark.kafka


def test_a_bench_that_starts_its_broker_prints_a_line_per_step(brokers, tmp_path):
    # `brokers`: run with the other Kafka tests (the jars are there); the bench starts its own broker,
    # on free ports, its data under tmp_path.
    home = tmp_path / "kafka"
    home.mkdir()
    (home / "lib").symlink_to(ROOT / ".kafka" / "lib")
    port, controller = free_ports(2)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("COACH_")},
           "KAFKA_HOME": str(home), "KAFKA_PORT": str(port), "KAFKA_CONTROLLER_PORT": str(controller)}
    done = subprocess.run(
        [sys.executable, "-m", "coachflow.cli", "bench", "--rounds", "1", "--throughput-records", "300",
         "--duration", "1", "--rate", "100,200", "--no-reference", "--partitions", "1", "--concurrency", "10",
         "--compact"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["records"] == 300
    # The floor ran in the same invocation: the job's rate against it, and each one's CPU a record.
    # (300 records are too few for the CPU a record while working, or the bytes floor's rate: none here.)
    assert result["floor_throughput_per_s"] > result["throughput_per_s"] > 0
    assert result["ratio_to_floor"] == round(result["throughput_per_s"] / result["floor_throughput_per_s"], 3)
    assert result["floor_cpu_us_per_record"] > result["floor_bytes_cpu_us_per_record"] > 0
    # Two latency runs, one per rate; the first one's figures also at the top level.
    assert [run["rate_target_per_s"] for run in result["latency"]] == [100.0, 200.0]
    assert [run["latency_records"] for run in result["latency"]] == [600, 700]  # a second each, and warm-up
    assert result["p99_ms"] == result["latency"][0]["p99_ms"] and result["rate_target_per_s"] == 100.0
    assert all(run["p99_ms"] >= run["p50_ms"] > 0 and run["in_job_p99_ms"] > 0 for run in result["latency"])
    lines = done.stderr.splitlines()
    assert not [line for line in lines if "Connection refused" in line or "rdkafka" in line], lines
    # First start: the TLS files, the broker, its ACLs (docs/security.md); then the bench's steps (the
    # throughput round and its result, the floor and its result, a latency run per rate).
    assert [line.split(":", 1)[0] for line in lines] == [
        "kafka", "kafka", "kafka", "coach acls", *["coach bench"] * 6, "kafka"], lines
    assert lines[2].startswith(f"kafka: ready on 127.0.0.1:{port}") and lines[-1] == "kafka: stopped"
