"""Create the job's Kafka topics when they are missing."""

from __future__ import annotations

import logging
import time

from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from coachflow.config import Settings
from coachflow.security import KafkaAccessError, metadata, refused
from schemas.topics import TOPICS

log = logging.getLogger(__name__)


def topic_specs(settings: Settings) -> dict[str, dict[str, str]]:
    """Topic -> its config, for every catalog topic the settings name (``schemas.topics``);
    compacted topics keep the latest record per key. Decisions, dead letters and feedback are kept
    ``COACH_RETENTION_*_DAYS`` (docs/security.md)."""
    specs: dict[str, dict[str, str]] = {}
    for spec in TOPICS:
        name = settings.topic(spec.kind)
        if name:
            specs[name] = {"cleanup.policy": "compact"} if spec.compacted else {}
    for name, retention_ms in settings.retention_ms().items():
        specs[name]["retention.ms"] = str(retention_ms)
    if settings.lineage == "kafka":
        specs[settings.lineage_topic] = {}
    return specs


def ensure_topics(
    settings: Settings,
    timeout: float = 30.0,
    only: tuple[str, ...] | None = None,
    extra_config: dict[str, dict[str, str]] | None = None,
    align_retention: bool = False,
    specs: dict[str, dict[str, str]] | None = None,
    for_others: frozenset[str] = frozenset(),
) -> list[str]:
    """Create whichever of the job's topics (or of ``only``) do not exist; return those created.

    ``extra_config`` adds topic settings per topic (the benchmark's broker-stamped append times).
    ``align_retention`` also sets the configured retention on those that exist (``coach topics create``).
    ``specs`` (topic -> config) names another job's topics instead of ``topic_specs(settings)``.
    Credentials the broker refuses, or a topic this client may not create, raise ``KafkaAccessError``;
    but a topic in ``for_others`` (made for other clients, not used by this one: a principal that may
    not use it does not see it) is only logged when it may not create it.
    """
    admin, listed = metadata(settings, timeout)
    existing = set(listed.topics)
    if align_retention:
        set_retention(admin, settings, existing, timeout)
    extra_config = extra_config or {}
    wanted = [
        NewTopic(name, num_partitions=settings.topic_partitions, replication_factor=-1,
                 config={**config, **extra_config.get(name, {})})
        for name, config in (specs if specs is not None else topic_specs(settings)).items()
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
            if "TOPIC_ALREADY_EXISTS" in str(exc):
                continue
            if exc.args and refused(exc.args[0]) and name in for_others:
                log.info(
                    "topic %s not created: not this client's to create or use (coach topics create)", name
                )
                continue
            if exc.args and refused(exc.args[0]):
                raise KafkaAccessError(
                    f"topic {name} is missing and this client may not create it ({exc.args[0].str()}): "
                    "create the topics with the admin's credentials (coach topics create)") from None
            raise
    wait_visible(admin, [t.topic for t in wanted if t.topic in created or t.topic not in for_others], timeout)
    return created


def set_retention(admin: AdminClient, settings: Settings, existing: set[str],
                  timeout: float = 30.0) -> list[str]:
    """Give the existing topics of ``settings.retention_ms()`` that retention; return those changed."""
    wanted = {topic: str(ms) for topic, ms in settings.retention_ms().items() if topic in existing}
    if not wanted:
        return []
    resources = [ConfigResource(ConfigResource.Type.TOPIC, topic) for topic in wanted]
    current = {resource.name: future.result(timeout)["retention.ms"].value
               for resource, future in admin.describe_configs(resources, request_timeout=timeout).items()}
    changes = [ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", ms, incremental_operation=AlterConfigOpType.SET)])
        for topic, ms in wanted.items() if current[topic] != ms]
    if changes:
        for future in admin.incremental_alter_configs(changes, request_timeout=timeout).values():
            future.result(timeout)
        for change in changes:
            log.info("topic %s: retention.ms set to %s", change.name, wanted[change.name])
    return [change.name for change in changes]


def wait_visible(admin: AdminClient, topics: list[str], timeout: float = 30.0) -> None:
    """Wait until the broker's metadata lists every topic with its partitions.

    A topic just created (above all on a broker that has just started) can be
    missing from metadata for a moment; a consumer listing its partitions
    then fails with "Unknown topic or partition".
    """
    deadline = time.monotonic() + timeout
    missing = list(topics)
    while missing:
        listed = admin.list_topics(timeout=max(1.0, deadline - time.monotonic())).topics
        missing = [
            t for t in missing if t not in listed or listed[t].error is not None or not listed[t].partitions
        ]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics not visible after {timeout:g} s: {', '.join(missing)}")
        time.sleep(0.2)
