"""The job's Prometheus endpoint on a real broker: end-to-end latency from the
inputs' Kafka timestamps, consumer lag per input partition, dead letters by
reason; and with two processes, one endpoint each on port + process index."""

from __future__ import annotations

import socket
import time
import urllib.request
from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import KafkaJob, stop
from tests.integration.test_kafka_flow import to_messages, traffic

pytestmark = pytest.mark.kafka


def free_ports(count: int) -> int:
    """A base port with ``count`` free ports from it."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + count > 65_535:
            continue
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise AssertionError("no free ports")


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, of the coachflow_* metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text) if family.name.startswith("coachflow_")
        for s in family.samples
    }


def value(metrics: dict, name: str, **labels: str) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def lags(metrics: dict) -> dict[tuple[str, int], float]:
    return {
        (dict(labels)["topic"], int(dict(labels)["partition"])): v
        for (name, labels), v in metrics.items() if name == "coachflow_consumer_lag"
    }


def wait_for(check, ports: list[int], timeout: float = 60.0) -> list[dict]:
    """Scrape ``ports`` until ``check(scrapes)`` holds; return the last scrapes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            scrapes = [scrape(port) for port in ports]
        except OSError:
            scrapes = None
        if scrapes is not None and check(scrapes):
            return scrapes
        if time.monotonic() > deadline:
            raise AssertionError(f"metrics never settled: {scrapes}")
        time.sleep(0.5)


def test_the_endpoint_reports_latency_lag_and_dead_letters(kafka_job: KafkaJob, tmp_path):
    valid, bad, plan = traffic(30)
    positions = kafka_job.produce(to_messages(plan))
    read = {(topic, partition) for topic, partition, _ in positions}
    port = free_ports(1)
    log = tmp_path / "job.log"
    job = kafka_job.start(log, COACH_METRICS_PORT=str(port), COACH_METRICS_LAG_INTERVAL_S="0.5",
                          COACH_CONTEXT_WAIT_MS="300")
    try:
        out = kafka_job.consume(until=len(plan))
        decisions, dead = out["decisions"], out["dlq"]
        assert len(decisions) + len(dead) == len(plan)
        [metrics] = wait_for(
            lambda s: value(s[0], "coachflow_e2e_latency_seconds_count") >= len(decisions)
            and set(lags(s[0])) >= read and not any(lags(s[0]).values()),
            [port],
        )
        assert job.poll() is None
        text = log.read_text()
        assert "Traceback" not in text and "Error" not in text, text[-3000:]
        assert f"metrics on http://127.0.0.1:{port}/metrics" in text
    finally:
        stop(job)

    # End to end: one observation per decision, each from its input's Kafka timestamp.
    assert all(d.input.source.timestamp_ms for d in decisions)
    assert value(metrics, "coachflow_e2e_latency_seconds_count") == len(decisions)
    assert 0 < value(metrics, "coachflow_e2e_latency_seconds_sum") < 120 * len(decisions)
    assert value(metrics, "coachflow_e2e_latency_seconds_bucket", le="+Inf") == len(decisions)

    # Lag: a gauge per input partition the job read, at 0 once all is read; nothing else.
    assert set(lags(metrics)) == read and len(read) >= 6

    # Dead letters by reason, records by kind and outcome: as published.
    reasons = Counter(d.reason for d in dead)
    assert reasons == Counter(b.reason for b in bad)
    for reason, count in reasons.items():
        assert value(metrics, "coachflow_dead_letters_total", reason=reason) == count, reason
    assert sum(v for (name, _), v in metrics.items() if name == "coachflow_dead_letters_total") == len(dead)
    for outcome, count in Counter(d.outcome for d in decisions).items():
        assert value(metrics, "coachflow_records_total", kind="decisions", outcome=outcome) == count
    assert value(metrics, "coachflow_records_total", kind="suggestions", outcome="published") \
        == len(out["suggestions"])
    assert value(metrics, "coachflow_stage_latency_seconds_count", stage="total") == len(decisions)


def test_each_process_serves_its_own_partitions_on_port_plus_its_index(kafka_job: KafkaJob, tmp_path):
    valid, bad, plan = traffic(20)
    positions = kafka_job.produce(to_messages(plan))
    read = {(topic, partition) for topic, partition, _ in positions}
    base = free_ports(4)  # metrics on base and base + 1; the processes talk on base + 2 and base + 3
    cluster = base + 2
    addresses = f"127.0.0.1:{cluster};127.0.0.1:{cluster + 1}"
    env = {
        "COACH_METRICS_PORT": str(base),
        "COACH_METRICS_LAG_INTERVAL_S": "0.5",
        "COACH_CONTEXT_WAIT_MS": "300",
    }
    jobs = [kafka_job.start(tmp_path / f"job{i}.log", "-i", str(i), "-a", addresses, **env) for i in range(2)]
    try:
        out = kafka_job.consume(until=len(plan))
        decisions = out["decisions"]
        assert len(decisions) + len(out["dlq"]) == len(plan)
        scrapes = wait_for(
            lambda s: sum(value(m, "coachflow_e2e_latency_seconds_count") for m in s) >= len(decisions)
            and set(lags(s[0])) | set(lags(s[1])) >= read,
            [base, base + 1],
        )
        assert all(job.poll() is None for job in jobs)
    finally:
        for job in jobs:
            stop(job)
    # Each process reports the partitions it reads, and no partition is read twice.
    mine = [set(lags(m)) for m in scrapes]
    assert mine[0] and mine[1] and not mine[0] & mine[1]
    assert mine[0] | mine[1] == read
    # Decisions are published from either process; together, one observation each.
    assert sum(value(m, "coachflow_e2e_latency_seconds_count") for m in scrapes) == len(decisions)
    assert sum(value(m, "coachflow_records_total", kind="dlq", outcome="published") for m in scrapes) \
        == len(out["dlq"])
