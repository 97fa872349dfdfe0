"""Retention of the topics keeping personal data longest: set on creation, kept by `coach topics create`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from coachflow.bench import topic_env
from tests.helpers import ROOT
from tests.integration.conftest import KafkaJob

pytestmark = pytest.mark.kafka
DAY_MS = 86_400_000


def retention(admin: AdminClient, topics: list[str]) -> dict[str, int]:
    resources = [ConfigResource(ConfigResource.Type.TOPIC, topic) for topic in topics]
    return {resource.name: int(future.result(30)["retention.ms"].value)
            for resource, future in admin.describe_configs(resources).items()}


def test_decisions_dead_letters_and_feedback_get_their_retention(kafka_job: KafkaJob):
    s = kafka_job.settings
    admin = AdminClient(s.kafka_client())
    kept = retention(admin, [s.topic_decisions, s.topic_dlq, s.topic_feedback, s.topic_suggestions])
    assert kept[s.topic_decisions] == 30 * DAY_MS and kept[s.topic_feedback] == 30 * DAY_MS
    assert kept[s.topic_dlq] == 7 * DAY_MS
    assert kept[s.topic_suggestions] not in (7 * DAY_MS, 30 * DAY_MS)  # the broker's default

    # Someone lengthened the dead letters' retention by hand; `coach topics create` puts it back,
    # and gives the decisions the retention now configured.
    change = ConfigResource(ConfigResource.Type.TOPIC, s.topic_dlq, incremental_configs=[
        ConfigEntry("retention.ms", str(365 * DAY_MS), incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([change])[change].result(30)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COACH_")}
    env.update({**topic_env(s), "COACH_RETENTION_DECISIONS_DAYS": "90"})
    done = subprocess.run([sys.executable, "-m", "coachflow.cli", "topics", "create", "--brokers", s.brokers],
                          check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    kept = retention(admin, [s.topic_decisions, s.topic_dlq, s.topic_feedback])
    assert kept == {s.topic_decisions: 90 * DAY_MS, s.topic_dlq: 7 * DAY_MS, s.topic_feedback: 30 * DAY_MS}
