"""`coach bench` summarises its throughput rounds."""

from __future__ import annotations

from datetime import UTC

import pytest

from coachflow.bench import _medians, first_context_appends, latency_report


def test_rounds_are_summarised_by_medians_and_peak_memory():
    rounds = [
        {"records": 60000, "throughput_per_s": 3000.0, "reference_throughput_per_s": 4000.0, "ratio": 0.75,
         "peak_rss_mb": 580.0, "reference_peak_rss_mb": 270.0, "cpu_cores": 1.05},
        {"records": 60000, "throughput_per_s": 3600.0, "reference_throughput_per_s": 4200.0, "ratio": 0.857,
         "peak_rss_mb": 600.0, "reference_peak_rss_mb": 275.0, "cpu_cores": 1.07},
        {"records": 60000, "throughput_per_s": 3300.0, "reference_throughput_per_s": 3900.0, "ratio": 0.846,
         "peak_rss_mb": 590.0, "reference_peak_rss_mb": 272.0, "cpu_cores": 1.08},
    ]
    summary = _medians(rounds)
    assert summary["throughput_per_s"] == 3300.0 and summary["reference_throughput_per_s"] == 4000.0
    # each round's own ratio, then their median (not the ratio of the medians, 0.825)
    assert summary["ratio"] == 0.846
    assert summary["peak_rss_mb"] == 600.0 and summary["reference_peak_rss_mb"] == 275.0
    assert summary["cpu_cores"] == 1.07 and summary["records"] == 60000
    assert _medians(rounds[:1]) == rounds[0]


def _decision(kind, customer, offset, topic="events", **input_fields):
    return {
        "customer_id": customer,
        "latency_ms": {"total_ms": 1.0},
        "input": {"kind": kind, "source": {"topic": topic, "partition": 0, "offset": offset}, **input_fields},
    }


class _Published:
    def __init__(self, appended):
        self.appended = appended


class _Collected:
    def __init__(self, outputs):
        self.outputs = outputs

    def records(self):
        for record, appended in self.outputs:
            yield {**record, "_dlq": False}, appended


def test_latency_splits_inputs_that_came_before_their_customers_context():
    # c1's context is appended at 1.0, before its turn at 2.0; c2's only at 5.0, after its turn at 3.0
    # (held by the join until then); c3 never gets one.
    appended = {("events", 0, 0): 0.5, ("context", 0, 0): 1.0, ("events", 0, 1): 2.0,
                ("events", 0, 2): 3.0, ("context", 0, 1): 5.0, ("events", 0, 3): 4.0}
    outputs = [
        (_decision("conversation_start", "c0", 0), 0.51),
        (_decision("customer_context", "c1", 0, topic="context"), 1.01),
        (_decision("turn", "c1", 1, is_final=True, speaker="customer"), 2.02),
        (_decision("turn", "c2", 2, is_final=True, speaker="customer"), 5.01),
        (_decision("customer_context", "c2", 1, topic="context"), 5.005),
        (_decision("turn", "c3", 3, is_final=True, speaker="customer"), 6.0),
    ]
    report = latency_report(_Collected(outputs), _Published(appended), skip=1)
    assert report["decisions"]["n"] == 5  # the first append is the warm-up
    # c1's context and turn, and c2's context itself; not c2's held turn nor c3's
    assert report["context_first"]["n"] == 3
    assert report["context_first"]["max_ms"] == 20.0
    assert report["final_customer_turns"]["n"] == 3 and report["final_customer_turns"]["max_ms"] == 2010.0
    assert first_context_appends(
        [(record, appended[tuple(record["input"]["source"].values())], at, True) for record, at in outputs]
    ) == {"c1": 1.0, "c2": 5.0}


def test_throughput_counts_from_the_first_input_parsed_not_the_first_append():
    import json
    from datetime import datetime

    from coachflow.bench import Collector
    from coachflow.config import Settings

    def decision(decided_s, total_ms):
        return json.dumps({"decided_at": datetime.fromtimestamp(decided_s, UTC).isoformat(),
                           "latency_ms": {"total_ms": total_ms}}).encode()

    collector = Collector(Settings())
    # A first batch parsed at 100.0 and answered in one burst at 101.0, then one answer per second to
    # 110.0, and a dead letter: 12 answers over 10 s. From the first append it would be 11 over 9 s.
    collector.outputs = [(decision(100.9, 900.0), False, 101.0), (decision(100.95, 950.0), False, 101.0)]
    collector.outputs += [(decision(101.0 + i - 0.01, 10.0), False, 101.0 + i) for i in range(1, 9)]
    collector.outputs += [(b"{}", True, 109.5), (decision(109.99, 10.0), False, 110.0)]
    assert collector.throughput() == pytest.approx(12 / 10.0)
    collector.outputs = collector.outputs[:1]
    assert collector.throughput() == 0.0


def test_bench_refuses_to_measure_nothing_before_starting_a_broker(capsys):
    from coachflow.cli import main

    assert main(["bench", "--rounds", "0", "--duration", "0", "--brokers", "127.0.0.1:1"]) == 2
    assert "nothing to measure" in capsys.readouterr().err


def test_jobs_split_the_partitions_round_robin_and_key_events_by_customer():
    from coachflow.bench import key_by, share_env, shares
    from coachflow.cli import main
    from coachflow.replay import kafka_target

    assert (
        shares(4, 1) == [[0, 1, 2, 3]]
        and shares(4, 2) == [[0, 2], [1, 3]]
        and shares(5, 3) == [[0, 3], [1, 4], [2]]
    )
    with pytest.raises(ValueError):
        shares(2, 3)
    assert share_env([1, 3]) == {"COACH_INPUT_KEY": "customer", "COACH_KAFKA_PARTITIONS": "[1, 3]"}
    turn = {"type": "turn", "conversation_id": "c-1", "customer_id": "u-1"}
    assert kafka_target(turn, key_by(1)) == ("events", "c-1") and kafka_target(turn, key_by(2)) == (
        "events",
        "u-1",
    )
    assert kafka_target({"type": "customer_context", "customer_id": "u-1"}, "conversation") == (
        "context",
        "u-1",
    )
    assert main(["bench", "--jobs", "5", "--partitions", "4", "--brokers", "127.0.0.1:1"]) == 2


def test_rates_are_one_or_several_comma_separated_above_zero():
    import argparse

    from coachflow.cli import _rates

    assert _rates("5000") == (5000.0,) and _rates("1000,2000,5000") == (1000.0, 2000.0, 5000.0)
    for bad in ("", "fast", "1000,", "0", "1000,-5"):
        with pytest.raises(argparse.ArgumentTypeError):
            _rates(bad)
