"""Create the job's Kafka topics when they are missing."""

from __future__ import annotations

import logging

from confluent_kafka.admin import AdminClient, NewTopic

from coachflow.config import Settings

log = logging.getLogger(__name__)


def topic_specs(settings: Settings) -> dict[str, dict[str, str]]:
    """Topic -> its config. Customer context is compacted: the latest record per key wins."""
    specs = {settings.topic_events: {}, settings.topic_context: {"cleanup.policy": "compact"},
             settings.topic_feedback: {}}
    for topic in settings.outputs().values():
        specs[topic] = {}
    if settings.lineage == "kafka":
        specs[settings.lineage_topic] = {}
    if settings.policy_topic:
        specs[settings.policy_topic] = {"cleanup.policy": "compact"}
    return specs


def ensure_topics(
    settings: Settings, timeout: float = 30.0, only: tuple[str, ...] | None = None
) -> list[str]:
    """Create whichever of the job's topics (or of ``only``) do not exist; return those created."""
    admin = AdminClient({"bootstrap.servers": settings.brokers, **settings.kafka_config})
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [
        NewTopic(name, num_partitions=settings.topic_partitions, replication_factor=-1, config=config)
        for name, config in topic_specs(settings).items()
        if name not in existing and (only is None or name in only)
    ]
    if not wanted:
        return []
    created = []
    for name, future in admin.create_topics(wanted, request_timeout=timeout).items():
        try:
            future.result(timeout)
            created.append(name)
            log.info("created topic %s", name)
        except Exception as exc:  # another client may have created it meanwhile
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return created
