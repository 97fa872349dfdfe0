"""`coach bench` summarises its throughput rounds."""

from __future__ import annotations

from coachflow.bench import _medians


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
