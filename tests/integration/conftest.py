"""Fixtures for tests on the real Kafka broker that `scripts/kafka.sh` runs.

`make test` starts the broker and sets COACH_TEST_BROKERS. When it is set and
the broker cannot be reached, the Kafka tests fail; they are skipped only when
it is unset (a bare `pytest` on a laptop without a broker). The same broker's
SASL_SSL listener (``secured``) is at its port + 2 (COACH_TEST_SASL_BROKERS),
with the principals' client files in .kafka/secrets-PORT (COACH_TEST_KAFKA_SECRETS).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from coachflow import security
from coachflow.bench import prefixed_settings, topic_env
from coachflow.config import Settings
from coachflow.knowledge import topic_specs as knowledge_topic_specs
from coachflow.knowledge_config import KnowledgeSettings
from coachflow.private import read_properties, read_secret
from coachflow.topics import ensure_topics
from schemas.topics import OUTPUTS
from tests.helpers import ROOT

#: The knowledge job's own topic settings (``KnowledgeSettings``), prefixed per test like the coaching job's.
KNOWLEDGE_TOPICS = ("topic_cards", "topic_decisions", "topic_dlq", "topic_feedback")

#: Output kind -> its contract's model (``schemas.topics``).
OUTPUT_MODELS = {spec.kind: spec.schema for spec in OUTPUTS}


@pytest.fixture(scope="session")
def brokers() -> str:
    address = os.environ.get("COACH_TEST_BROKERS")
    if not address:
        pytest.skip("COACH_TEST_BROKERS is unset: run `make test`, which starts Kafka and sets it")
    try:
        AdminClient({"bootstrap.servers": address}).list_topics(timeout=15)
    except Exception as exc:  # noqa: BLE001 - any failure to reach it is fatal here
        pytest.fail(f"Kafka at {address} is unreachable: {exc}")
    return address


@dataclass
class KafkaJob:
    """One test's topics, and the job's environment on them.

    ``client_file``: the librdkafka properties (credentials) of the test's own clients, which create
    the topics and produce and read the records (the secured listener's admin); none on PLAINTEXT.
    """

    brokers: str
    prefix: str
    client_file: Path | None = None
    overrides: dict = field(default_factory=dict)
    settings: Settings = field(init=False)
    knowledge: KnowledgeSettings = field(init=False)
    """The knowledge job's settings on this test's topics (``COACH_KNOWLEDGE_TOPIC_*``, prefixed too)."""

    def __post_init__(self) -> None:
        credentials = {"kafka_config_file": self.client_file} if self.client_file else {}
        self.settings = prefixed_settings(self.brokers, self.prefix, **credentials, **self.overrides)
        defaults = KnowledgeSettings()
        self.knowledge = KnowledgeSettings(
            **{name: self.prefix + getattr(defaults, name) for name in KNOWLEDGE_TOPICS}
        )
        ensure_topics(self.settings)

    def knowledge_env(self) -> dict[str, str]:
        """The ``COACH_KNOWLEDGE_TOPIC_*`` variables of this test's knowledge topics."""
        return {f"COACH_KNOWLEDGE_{name.upper()}": getattr(self.knowledge, name) for name in KNOWLEDGE_TOPICS}

    def env(self, **extra: str) -> dict[str, str]:
        s = self.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith("COACH_")}
        env.update(
            {
                "COACH_BROKERS": self.brokers,
                **topic_env(s),
                **({"COACH_POLICY_TOPIC": s.policy_topic} if s.policy_topic else {}),
                **(
                    {"COACH_LINEAGE": "kafka", "COACH_LINEAGE_TOPIC": s.lineage_topic}
                    if s.lineage == "kafka"
                    else {}
                ),
                "PYTHONUNBUFFERED": "1",
                # No metrics endpoint unless a test asks for one: jobs of tests that run side by side
                # (several checkouts on one machine) would contend for the default port.
                "COACH_METRICS_PORT": "0",
            }
        )
        env.update(extra)
        return env

    def start(self, log: Path, *args: str, **env: str) -> subprocess.Popen:
        """Start `python -m bytewax.run flows.coaching:flow` with this job's topics."""
        return subprocess.Popen(
            [sys.executable, "-m", "bytewax.run", *args, "flows.coaching:flow"],
            cwd=ROOT, env=self.env(**env), stdout=log.open("w"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def produce(self, items: list[tuple[str, bytes | None, bytes]]) -> list[tuple[str, int, int]]:
        """Produce (stream, key, value) in order; return each record's (topic, partition, offset)."""
        topics = self.settings.inputs()
        producer = Producer(self.settings.kafka_client(**{"enable.idempotence": True, "linger.ms": 5}))
        positions: list[tuple[str, int, int] | None] = [None] * len(items)
        errors: list[str] = []

        def report(index: int):
            def delivered(err, msg) -> None:
                if err is not None:
                    errors.append(str(err))
                else:
                    positions[index] = (msg.topic(), msg.partition(), msg.offset())
            return delivered

        for index, (stream, key, value) in enumerate(items):
            producer.produce(topics[stream], key=key, value=value, on_delivery=report(index))
            producer.poll(0)
        assert producer.flush(60) == 0 and not errors, errors
        assert all(p is not None for p in positions)
        return positions  # type: ignore[return-value]

    def consume(self, until: int, timeout: float = 180.0, settle: float = 3.0) -> dict[str, list]:
        """Read every output topic from the start until decisions + dead letters reach
        ``until`` (then ``settle`` seconds more, to catch extras); validate each record."""
        names = self.settings.outputs()
        kinds = {topic: kind for kind, topic in names.items()}
        consumer = Consumer(self.settings.kafka_client(**{
            "group.id": f"{self.prefix}reader", "enable.auto.commit": False, "auto.offset.reset": "earliest",
        }))
        parts = []
        for topic in names.values():
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            parts += [TopicPartition(topic, p, 0) for p in meta.partitions]
        consumer.assign(parts)
        out: dict[str, list] = {kind: [] for kind in names}
        deadline = time.monotonic() + timeout
        reached_at = None
        try:
            while time.monotonic() < deadline:
                for msg in consumer.consume(1000, 0.5):
                    if msg.error():
                        raise AssertionError(msg.error())
                    kind = kinds[msg.topic()]
                    out[kind].append(OUTPUT_MODELS[kind].model_validate_json(msg.value()))
                done = len(out["decisions"]) + len(out["dlq"])
                if done >= until and reached_at is None:
                    reached_at = time.monotonic()
                if reached_at is not None and time.monotonic() - reached_at >= settle:
                    break
        finally:
            consumer.close()
        return out


@pytest.fixture
def kafka_job(brokers) -> Iterator[KafkaJob]:
    yield KafkaJob(brokers, f"t{uuid.uuid4().hex[:10]}.")


@dataclass(frozen=True)
class SecuredKafka:
    """The broker's SASL_SSL listener, and its principals' client files as ``scripts/kafka.sh`` made them."""

    address: str
    secrets: Path

    def properties(self, principal: str) -> Path:
        return self.secrets / f"{principal}.properties"

    def config(self, principal: str, **extra) -> dict:
        """A raw client's librdkafka configuration as ``principal``."""
        return {"bootstrap.servers": self.address, **read_properties(self.properties(principal)), **extra}

    def password(self, principal: str) -> str:
        return read_secret(self.secrets / f"{principal}.password")

    def passwords(self) -> dict[str, str]:
        return {principal: self.password(principal) for principal in security.principals()}

    def env(self, principal: str) -> dict[str, str]:
        """A client process's variables as ``principal`` (the documented settings)."""
        return {"COACH_BROKERS": self.address, "COACH_KAFKA_CONFIG_FILE": str(self.properties(principal))}


@pytest.fixture(scope="session")
def secured(brokers) -> SecuredKafka:
    host, port = brokers.rsplit(":", 1)
    found = SecuredKafka(
        os.environ.get("COACH_TEST_SASL_BROKERS", f"{host}:{int(port) + 2}"),
        Path(os.environ.get("COACH_TEST_KAFKA_SECRETS", ROOT / ".kafka" / f"secrets-{port}")),
    )
    restart = "restart the broker with this checkout's scripts/kafka.sh (stop, then start)"
    if not found.properties(security.ADMIN).is_file():
        pytest.fail(f"no {found.properties(security.ADMIN)}: {restart}")
    try:
        security.metadata(
            Settings(brokers=found.address, kafka_config_file=found.properties(security.ADMIN)), 15
        )
    except security.KafkaAccessError as exc:
        pytest.fail(f"the SASL_SSL listener at {found.address} does not serve the admin: {exc}; {restart}")
    return found


@pytest.fixture
def secured_job(secured) -> Iterator[KafkaJob]:
    """A test's topics on the SASL_SSL listener, made by the admin, with the ACLs of coachflow.security."""
    prefix = f"s{uuid.uuid4().hex[:10]}."
    # The policy and lineage topics too (no COACH_TOPIC_* setting names them: the job gets them in env()).
    job = KafkaJob(
        secured.address,
        prefix,
        client_file=secured.properties(security.ADMIN),
        overrides={
            "policy_topic": f"{prefix}coaching.policy",
            "lineage": "kafka",
            "lineage_topic": f"{prefix}openlineage.events",
        },
    )
    ensure_topics(job.settings, specs=knowledge_topic_specs(job.knowledge, job.settings))
    security.apply(job.settings, knowledge=job.knowledge)
    yield job
    security.revoke(job.settings, knowledge=job.knowledge)


def stop(process: subprocess.Popen, timeout: float = 30.0) -> int:
    """Interrupt a job the way a user does (Ctrl-C), then kill it if it hangs."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    return process.wait(timeout)
