"""Prometheus metrics: the embedded flow's counters equal its outputs, scraped over HTTP too."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections import Counter
from itertools import takewhile
from typing import get_args

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from coachflow import metrics
from coachflow.config import SAMPLE_INPUT, Settings
from coachflow.runtime import start_metrics
from schemas import INPUT_ADAPTER, SourceRef
from schemas.outputs import DeadLetterReason
from tests import badcorpus
from tests.helpers import run_job
from tests.unit.test_flow_embedded import read_outputs

STAGES = [stage for _, stage in metrics.STAGES]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def samples(families) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, for the coachflow_* metrics."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families if family.name.startswith("coachflow_")
        for s in family.samples
    }


def delta(after: dict, before: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def _valid(line: str) -> bool:
    try:
        INPUT_ADAPTER.validate_json(line)
    except ValueError:
        return False
    return True


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The bundled sample plus the bad corpus through the embedded flow, metrics on."""
    tmp = tmp_path_factory.mktemp("metrics")
    # The sample's valid records (its bad ones come last), with the bad corpus woven in.
    sample = [line for line in SAMPLE_INPUT.read_text().splitlines() if line.strip()]
    valid = [json.loads(line) for line in takewhile(_valid, sample)]
    assert len(valid) == 310
    bad = [b for b in badcorpus.build(valid) if not b.kafka_only and b.value.strip()]
    lines = [
        (json.dumps(record).encode() if record is not None else b.value).replace(b"\n", b" ")
        for _stream, record, b in badcorpus.interleave(valid, bad)
    ]
    source = tmp / "input.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    port = free_port()
    settings = Settings(input=source, output_dir=tmp / "out", context_wait_ms=50, print_suggestions=False,
                        metrics_port=port, lineage="none", quality_monitor=False)
    before = samples(REGISTRY.collect())
    run_job(settings)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        scraped = samples(text_string_to_metric_families(response.read().decode()))
    return {"before": before, "after": samples(REGISTRY.collect()), "scraped": scraped,
            "out": read_outputs(tmp / "out"), "inputs": len(lines), "bad": bad}


def test_decisions_by_outcome_equal_the_decision_log(run):
    out, before, after = run["out"], run["before"], run["after"]
    outcomes = Counter(d.outcome for d in out["decisions"])
    assert set(outcomes) == {"shown", "suppressed", "recorded"}
    for outcome in ("shown", "suppressed", "recorded"):
        assert delta(after, before, "coachflow_records_total", kind="decisions", outcome=outcome) \
            == outcomes[outcome], outcome
    for kind in ("suggestions", "alerts", "dlq", "summaries"):
        assert delta(after, before, "coachflow_records_total", kind=kind, outcome="published") \
            == len(out[kind]) > 0, kind
    # Every input: one decision or one dead letter.
    assert delta(after, before, "coachflow_records_total", kind="dlq", outcome="published") \
        + sum(outcomes.values()) == run["inputs"]


def test_dead_letters_by_reason_equal_the_dlq(run):
    out, before, after = run["out"], run["before"], run["after"]
    reasons = Counter(d.reason for d in out["dlq"])
    assert reasons == Counter(b.reason for b in run["bad"]) and len(reasons) >= 10
    for reason in get_args(DeadLetterReason):
        assert delta(after, before, "coachflow_dead_letters_total", reason=reason) == reasons[reason], reason


def test_rule_firings_equal_the_decisions_non_pass_verdicts(run):
    out, before, after = run["out"], run["before"], run["after"]
    fired = Counter((r.rule_id, r.outcome) for d in out["decisions"] for r in d.rules if r.outcome != "pass")
    assert fired and "block" in {verdict for _, verdict in fired}
    for (rule, verdict), count in fired.items():
        assert delta(after, before, "coachflow_rule_firings_total", rule=rule, verdict=verdict) == count
    assert not any(delta(after, before, "coachflow_rule_firings_total", rule=rule, verdict="pass")
                   for rule, _ in fired)


def test_stage_latencies_are_the_decisions_latencies(run):
    out, before, after = run["out"], run["before"], run["after"]
    timed = [d.latency_ms for d in out["decisions"] if d.latency_ms is not None]
    assert len(timed) == len(out["decisions"])
    for field, stage in metrics.STAGES:
        assert delta(after, before, "coachflow_stage_latency_seconds_count", stage=stage) == len(timed)
        seconds = sum(getattr(t, field) for t in timed) / 1000
        assert delta(after, before, "coachflow_stage_latency_seconds_sum", stage=stage) \
            == pytest.approx(seconds, rel=1e-6, abs=1e-9)
    # Held turns wait for context (50 ms here): some join waits land above the sub-ms buckets.
    assert delta(after, before, "coachflow_stage_latency_seconds_bucket", stage="total", le="1.0") == len(
        timed
    )


def test_embedded_mode_has_no_e2e_latency_and_the_endpoint_serves_the_registry(run):
    before, after, scraped = run["before"], run["after"], run["scraped"]
    assert delta(after, before, "coachflow_e2e_latency_seconds_count") == 0
    assert not any(name.startswith("coachflow_consumer_lag") for name, _ in after)
    # The HTTP endpoint serves the same registry (nothing else was published since).
    for key in ("coachflow_records_total", "coachflow_dead_letters_total",
                "coachflow_stage_latency_seconds_count"):
        assert {k: v for k, v in scraped.items() if k[0] == key} == \
            {k: v for k, v in after.items() if k[0] == key}


def test_e2e_latency_is_measured_from_the_kafka_timestamp(run):
    decision = run["out"]["decisions"][0]
    source = SourceRef(kind="kafka", topic="conversation.events", partition=2, offset=7,
                       timestamp_ms=1_700_000_000_000)
    kafka = decision.model_copy(update={"input": decision.input.model_copy(update={"source": source})})
    hook = metrics.JobMetrics(clock=lambda: 1_700_000_000.25)
    count = REGISTRY.get_sample_value("coachflow_e2e_latency_seconds_count")
    total = REGISTRY.get_sample_value("coachflow_e2e_latency_seconds_sum")
    under = REGISTRY.get_sample_value("coachflow_e2e_latency_seconds_bucket", {"le": "0.25"})
    hook.observe("metrics", kafka)
    assert REGISTRY.get_sample_value("coachflow_e2e_latency_seconds_count") == count + 1
    assert REGISTRY.get_sample_value("coachflow_e2e_latency_seconds_sum") == pytest.approx(total + 0.25)
    assert REGISTRY.get_sample_value("coachflow_e2e_latency_seconds_bucket", {"le": "0.25"}) == under + 1


def test_consumer_lag_is_high_watermark_minus_next_offset():
    lag = metrics.ConsumerLag({"bootstrap.servers": "127.0.0.1:1"}, interval_s=60)
    lag.positions.update({("lagtest.events", 0): 10, ("lagtest.events", 1): 5, ("lagtest.context", 0): 3})
    highs = {("lagtest.events", 0): 25, ("lagtest.events", 1): 5, ("lagtest.context", 0): 2}

    def watermark(topic: str, partition: int) -> int:
        if topic == "lagtest.context":
            raise RuntimeError("broker away")
        return highs[(topic, partition)]

    lag.update(watermark)
    value = lambda topic, p: REGISTRY.get_sample_value(  # noqa: E731
        "coachflow_consumer_lag", {"topic": topic, "partition": str(p)})
    assert value("lagtest.events", 0) == 15 and value("lagtest.events", 1) == 0
    assert value("lagtest.context", 0) is None  # a failed fetch leaves no reading
    lag.update(lambda topic, partition: highs[(topic, partition)])
    assert value("lagtest.context", 0) == 0  # a stale watermark never gives negative lag


@pytest.mark.parametrize(("argv", "env", "main", "expected"), [
    (["-w", "2", "flows.coaching:flow"], {}, "bytewax.run", 0),
    (["-i", "2", "-a", "h:1;h:2;h:3", "flows.coaching:flow"], {}, "bytewax.run", 2),
    (["-i1", "-a", "h:1;h:2", "flows.coaching:flow"], {}, "bytewax.run", 1),
    (["--process-id=3", "-a", "x", "flows.coaching:flow"], {}, "bytewax.run", 3),
    (["flows.coaching:flow"], {"BYTEWAX_PROCESS_ID": "4"}, "bytewax.run", 4),
    (["flows.coaching:flow"], {"BYTEWAX_POD_NAME": "coach-5", "BYTEWAX_STATEFULSET_NAME": "coach"},
     "bytewax.run", 5),
    (None, {}, "pytest", 0),
])
def test_process_index_as_bytewax_run_finds_it(argv, env, main, expected):
    assert metrics.process_index(argv, env, main) == expected


def test_metrics_ports_by_mode():
    assert Settings().metrics_base_port is None  # embedded: off unless set
    assert Settings(metrics_port=9100).metrics_base_port == 9100
    assert Settings(brokers="b:9092").metrics_base_port == 9464
    assert Settings(brokers="b:9092", metrics_port=0).metrics_base_port is None
    assert start_metrics(Settings(brokers="b:9092", metrics_port=0)) is None


def test_the_server_starts_once_per_process(run):
    served = metrics._served
    assert served is not None
    assert metrics.serve("127.0.0.1", free_port()) == served  # a second flow reuses the endpoint


def test_the_hook_labels_carry_no_record_data(run):
    """Every coachflow_* label value is from a fixed set (or a policy rule id, a topic)."""
    ids = {d.decision_id for d in run["out"]["decisions"]} | {
        d.input.event_id for d in run["out"]["decisions"]
    }
    ids |= {d.conversation_id for d in run["out"]["decisions"] if d.conversation_id}
    ids |= {d.customer_id for d in run["out"]["decisions"]}
    values = {v for (_, labels) in run["scraped"] for _, v in labels}
    assert not values & ids
