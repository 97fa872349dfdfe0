"""What a job process sets up besides the dataflow: lineage, GX monitor, metrics, banner."""

from __future__ import annotations

import logging
import sys

from coachflow import metrics
from coachflow.config import Settings
from lineage import Lineage, install_exit_hooks
from lineage.job import job_lineage
from operators.quality import QualityMonitor, Suite


def configure_logging(level: str) -> None:
    """``coachflow.*`` log lines to stderr (unless the host application configured logging)."""
    root = logging.getLogger("coachflow")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(level.upper())
        root.propagate = False


def start_lineage(settings: Settings, scorer, policy, suites: dict[str, Suite]) -> Lineage:
    """Emit START for this process's run and arrange COMPLETE / FAIL / ABORT at its end."""
    entry = scorer.registry_entry
    lineage = job_lineage(
        settings,
        settings.lineage_config(),
        model={"name": entry["name"], "version": entry["version"], "sha256": entry["sha256"]},
        policy={"name": policy.name, "version": policy.version, "hash": policy.hash},
        suites=[suite.label for suite in suites.values()],
    )
    lineage.start()
    install_exit_hooks()
    return lineage


def quality_monitor(settings: Settings, lineage: Lineage) -> QualityMonitor | None:
    if not settings.quality_monitor:
        return None
    monitor = QualityMonitor(
        settings.quality_suites, settings.quality_batch_rows, settings.quality_interval_s,
        on_result=lineage.update_quality,
    )
    monitor.start()
    return monitor


def start_metrics(settings: Settings, experiment: tuple[str, float] | None = None) -> metrics.JobMetrics | None:
    """The Prometheus endpoint of this process (port + process index) and the hot-path hook.

    None when metrics are off. The endpoint starts once per process; in Kafka
    mode a background thread keeps the consumer-lag gauge.
    """
    base = settings.metrics_base_port
    if base is None:
        return None
    port = base + metrics.process_index()
    if port > 65_535:
        logging.getLogger("coachflow.metrics").warning("metrics port %d out of range: no endpoint", port)
    else:
        metrics.serve(settings.metrics_host, port)
    lag = None
    if settings.kafka_mode:
        lag = metrics.ConsumerLag(settings.kafka_client(), settings.metrics_lag_interval_s)
        lag.start()
    return metrics.JobMetrics(lag, experiment=experiment)


def banner(settings: Settings, scorer, policy, lineage: Lineage) -> None:
    where = (
        f"Kafka {settings.brokers}" if settings.kafka_mode
        else f"{settings.input} -> {settings.output_dir}/{{suggestions,alerts,decisions,acceptance,dlq,summaries}}.jsonl"
    )
    print(
        f"coachflow: {where}; model {scorer.version}, policy {policy.name} {policy.version}, "
        f"lineage run {lineage.run_id} ({settings.lineage})",
        file=sys.stderr,
    )
