"""``coach bench`` measures the reference loop's latency as it does the job's, on the real broker."""

from __future__ import annotations

import pytest

from coachflow import bench


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_reference_loops_answer_a_paced_replay_and_their_latency_is_reported(brokers, tmp_path, jobs):
    records = bench.bench_records(40, 20)[:650]
    before = len(bench.CREATED)
    try:
        live = bench.live_run(brokers, records, 300.0, reference=True, partitions=2, jobs=jobs, warmup=50,
                              settle_s=0.5, log_dir=tmp_path)
    finally:
        made = bench.CREATED[before:]
        bench.delete_created_topics(brokers)
    # Its own topics, not the job's; the loops ran, and only they (no job process wrote a log).
    assert made and all(name.startswith("rlat") for name in made)
    assert sorted(p.name.split(".", 1)[1] for p in tmp_path.iterdir()) == ["reference.log"]
    # Every input after the warm-up has its one decision (live_run raises if any input went unanswered).
    assert live["decisions"]["n"] == len(records) - 50 - live["dead_letters"]
    assert live["dead_letters"] == 0
    ends = live["decisions"]
    assert 0 < ends["p50_ms"] <= ends["p95_ms"] <= ends["p99_ms"] <= ends["max_ms"]
    assert live["in_job"]["n"] == ends["n"] and live["in_job"]["p50_ms"] <= ends["p50_ms"]
    assert live["rate_per_s"] > 150 and live["cpu_cores"] > 0
