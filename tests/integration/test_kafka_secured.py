"""The project on the broker's SASL_SSL listener: SCRAM users, TLS, ACLs of least privilege.

The whole flow runs end to end as the documented principals (the replay
writes the inputs, the job reads them and the policy topic and writes its
outputs and lineage, the console reads suggestions and writes feedback, the
report reads the outputs), and no principal's password shows in the job's
log (librdkafka's security debugging on), its lineage events, its dead
letters, any other output or its /metrics. Clients without credentials, with
a wrong password or with another principal's rights are refused, and so is
the job: it exits non-zero at once with a message that says why.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from coachflow import bench, replay, security
from coachflow.config import Settings
from coachflow.security import KafkaAccessError
from coachflow.topics import ensure_topics
from operators.policy import DEFAULT_POLICY
from tests.helpers import ROOT, STAR_DIALOGUES
from tests.integration.conftest import KafkaJob, SecuredKafka, stop

pytestmark = pytest.mark.kafka

START = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
POLICY_VERSION = "1.0.0-sasl"
#: Self-contained bad records (stream, key, value) -> the dead-letter reason each must get.
BAD = [
    ("events", b"c-bad-1", b"{not json", "malformed_json"),
    ("events", b"c-bad-2", json.dumps({"schema_version": "1.0", "type": "turn"}).encode(), "missing_field"),
    ("context", b"u-bad-3", b"[]", "schema_violation"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COACH_")}
    env.update({"PYTHONUNBUFFERED": "1", **extra})
    return env


def coach(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coachflow.cli", *args], check=False, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def get(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except urllib.error.URLError:  # not listening yet
        return 0, ""


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout:g} s: {what}")


def read_all(settings: Settings, topics: list[str], timeout: float = 30.0) -> dict[str, list[bytes]]:
    """Every value of ``topics`` up to their current end, as ``settings``' client."""
    consumer = Consumer(settings.kafka_client(**{"group.id": "check", "enable.auto.commit": False}))
    ends, parts = {}, []
    for topic in topics:
        for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
            ends[(topic, p)] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            parts.append(TopicPartition(topic, p, 0))
    consumer.assign(parts)
    out: dict[str, list[bytes]] = {topic: [] for topic in topics}
    left = {tp for tp, end in ends.items() if end > 0}
    deadline = time.monotonic() + timeout
    try:
        while left and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.5):
                assert not msg.error(), msg.error()
                out[msg.topic()].append(msg.value())
                if msg.offset() + 1 >= ends[(msg.topic(), msg.partition())]:
                    left.discard((msg.topic(), msg.partition()))
    finally:
        consumer.close()
    assert not left, f"not read to the end: {left}"
    return out


def produce(settings: Settings, items: list[tuple[str, bytes | None, bytes]]) -> None:
    """``(topic, key, value)`` records, as ``settings``' client, each to partition 0."""
    producer = Producer(settings.kafka_client())
    errors = []
    for topic, key, value in items:
        producer.produce(topic, value, key, partition=0,
                         on_delivery=lambda err, _msg: err and errors.append(err))
    assert producer.flush(30) == 0 and not errors, errors


def publish_policy(job: KafkaJob) -> None:
    """A new policy version on the policy topic, as governance would publish it (admin)."""
    text = DEFAULT_POLICY.read_text().replace("\nversion: 1.0.0\n", f"\nversion: {POLICY_VERSION}\n")
    assert POLICY_VERSION in text
    produce(job.settings, [(job.settings.policy_topic, b"policy", text.encode())])


def replay_inputs(secured: SecuredKafka, s: Settings) -> tuple[int, str]:
    """STAR dialogues and the bad records, written as `replay` (``coach replay --brokers``, the documented
    settings); the number of inputs and what the replay printed."""
    replayed = coach("replay", str(STAR_DIALOGUES), "--brokers", secured.address,
                     "--topic-events", s.topic_events, "--topic-context", s.topic_context,
                     "--split", "dev", "--limit", "12", "--concurrency", "4",
                     "--start-time", START.isoformat(),
                     env=clean_env(**secured.env("replay")))
    assert replayed.returncode == 0, replayed.stderr[-2000:]
    records = json.loads(replayed.stderr.strip().splitlines()[-1])["records"]
    as_replay = Settings(brokers=secured.address, kafka_config_file=secured.properties("replay"))
    produce(as_replay, [(s.topic_events if stream == "events" else s.topic_context, key, value)
                        for stream, key, value, _ in BAD])
    return records + len(BAD), replayed.stdout + replayed.stderr


def console_verdict(secured: SecuredKafka, s: Settings, suggestion, tmp_path: Path) -> str:
    """``coach console`` as `console` reads ``suggestion`` and writes its agent's verdict on it (201), the
    agent holding a development token; what the console logged."""
    port, key, log = free_port(), tmp_path / "console-dev-key.pem", tmp_path / "console.log"
    minted = coach("console", "token", "--agent", suggestion.agent_id, "--key", str(key), "--raw",
                   env=clean_env())
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    console = subprocess.Popen(
        [sys.executable, "-m", "console", "--port", str(port), "--dev-key", str(key)],
        cwd=ROOT, env=clean_env(**secured.env("console"), **bench.topic_env(s)),
        stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)

    def verdict() -> int:
        body = json.dumps({"suggestion_id": suggestion.suggestion_id, "event": "accepted"}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/feedback", method="POST", data=body,
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code  # 403 too while the console has not read the suggestion yet
        except urllib.error.URLError:  # not listening yet
            return 0

    codes: list[int] = []
    try:
        wait_for(
            lambda: codes.append(verdict()) or codes[-1] == 201, 90, f"the console takes the verdict: {codes}"
        )
    finally:
        stop(console)
    return log.read_text()


def test_the_flow_end_to_end_as_least_privileged_principals_shows_no_password(
        secured: SecuredKafka, secured_job: KafkaJob, tmp_path):
    job, s = secured_job, secured_job.settings
    publish_policy(job)
    inputs, replayed = replay_inputs(secured, s)

    # The job as `coaching`: the username in a properties file, the password in a file of its own.
    client = tmp_path / "coaching.properties"
    client.write_text("".join(line + "\n" for line in secured.properties("coaching").read_text().splitlines()
                              if not line.startswith("sasl.password=")))
    client.chmod(0o600)
    metrics_port = free_port()
    log = tmp_path / "job.log"
    process = job.start(log, **{
        "COACH_KAFKA_CONFIG_FILE": str(client),
        "COACH_KAFKA_PASSWORD_FILE": str(secured.secrets / "coaching.password"),
        "COACH_KAFKA_CONFIG": json.dumps({"debug": "security"}),  # librdkafka says what it does to log in
        "COACH_LOG_LEVEL": "DEBUG", "COACH_METRICS_PORT": str(metrics_port), "COACH_LINEAGE_INTERVAL_S": "2",
        "COACH_CONTEXT_WAIT_MS": "500", "COACH_OUTPUT_DIR": str(tmp_path / "out"),
    })
    try:
        out = job.consume(until=inputs, timeout=240)
        status, metrics = get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert status == 200 and "coachflow_" in metrics
        suggestion = out["suggestions"][0]
        console_log = console_verdict(secured, s, suggestion, tmp_path)
        time.sleep(2)  # a RUNNING lineage event after the outputs
    finally:
        stop(process)
    text = log.read_text()

    # Every input exactly one decision or dead letter, under the policy taken from the policy topic.
    decisions, dead = out["decisions"], out["dlq"]
    assert len(decisions) + len(dead) == inputs, (len(decisions), len(dead), inputs, text[-3000:])
    assert Counter(d.reason for d in dead) == Counter(reason for *_, reason in BAD)
    assert {d.policy_version for d in decisions} == {POLICY_VERSION}

    written = read_all(s, [s.topic_feedback, s.lineage_topic, s.topic_dlq])
    assert any(json.loads(v)["suggestion_id"] == suggestion.suggestion_id for v in written[s.topic_feedback])
    lineage = [json.loads(v) for v in written[s.lineage_topic]]
    assert {"START", "RUNNING"} <= {event["eventType"] for event in lineage}

    # The report as `report`: it reads the decisions, suggestions, alerts, acceptance and feedback.
    report = coach("report", "--brokers", secured.address, "--json", "--no-chart",
                   env=clean_env(**secured.env("report"), **bench.topic_env(s), **job.knowledge_env()))
    assert report.returncode == 0, report.stderr[-2000:]
    sources = json.loads(report.stdout)["sources"]
    assert sources["decisions"]["records"] == len(decisions), sources
    from coachflow.report import SOURCES

    assert all(sources[kind]["status"] == "ok" for kind in SOURCES), sources  # the coaching job's outputs
    assert all(source["status"] != "error" for source in sources.values()), sources  # cards: none here

    # No password anywhere: the job's log (librdkafka's security debugging included), its lineage
    # events, its dead letters (as written), every other output, its /metrics, the tools' output.
    assert "sasl" in text.lower() and "SCRAM-SHA-512" in text  # the debugging did log the login
    shown = {"job log": text, "lineage": json.dumps(lineage),
             "dead letters": b"\n".join(written[s.topic_dlq]).decode(),
             "outputs": "\n".join(record.model_dump_json() for kind in out.values() for record in kind),
             "metrics": metrics, "console log": console_log,
             "tools": replayed + report.stdout + report.stderr}
    leaks = {(where, principal) for where, body in shown.items()
             for principal, password in secured.passwords().items() if password in body}
    assert not leaks


def test_clients_without_credentials_with_a_wrong_password_or_with_others_rights_are_refused(
        secured: SecuredKafka, secured_job: KafkaJob):
    s = secured_job.settings

    def as_(principal: str | None = None, **config) -> Settings:
        base = secured.config(principal) if principal else {"bootstrap.servers": secured.address}
        return Settings(brokers=secured.address, kafka_config={**base, **config})

    # No credentials: TLS without SASL, or not even TLS. The broker answers neither.
    ca = str(secured.secrets / "ca.pem")
    for anonymous in (as_(**{"security.protocol": "SSL", "ssl.ca.location": ca}), as_()):
        with pytest.raises(KafkaAccessError, match="gave no metadata"):
            security.metadata(anonymous, timeout=5)
    # A wrong password, or the right one without the CA: refused at once (not after the timeout).
    for wrong, reason in ((as_("coaching", **{"sasl.password": "not-the-password"}), "SASL authentication"),
                          (as_("coaching", **{"ssl.ca.location": "probe"}), "SSL")):
        began = time.monotonic()
        with pytest.raises(KafkaAccessError, match=reason) as refusal:
            security.metadata(wrong, timeout=30)
        assert time.monotonic() - began < 10 and secured.password("coaching") not in str(refusal.value)

    # Each principal may do exactly what coachflow.security.ACCESS says, on every topic of the job.
    table = security.grants(s, secured_job.knowledge)
    topics = sorted({name for _, kind, name, _ in table if kind == "TOPIC"})
    ensure_topics(s, specs=dict.fromkeys(topics, {}))  # the optional ones too, under their catalog names
    produce(s, [(topic, b"probe", b"probe") for topic in topics])  # one record in each (admin), for reads
    for principal in security.ACCESS:
        mine = [(name, op) for who, kind, name, op in table if who == principal and kind == "TOPIC"]
        may_read = {name for name, op in mine if op == "READ"}
        may_write = {name for name, op in mine if op == "WRITE"}
        assert reads(secured, principal, topics) == may_read, principal
        assert writes(secured, principal, topics) == may_write, principal
    # What least privilege means here, said plainly.
    assert s.topic_events not in writes(secured, "coaching", [s.topic_events])  # the job writes no input
    assert not reads(secured, "console", [s.topic_decisions, s.topic_dlq, s.topic_events])
    assert not reads(secured, "replay", [s.topic_events, s.topic_context])


def reads(secured: SecuredKafka, principal: str, topics: list[str], timeout: float = 20.0) -> set[str]:
    """The topics whose record ``principal`` could read (each holds at least one); the others refused it.

    A topic it may not describe is refused in the metadata (librdkafka then never fetches it); one it
    may describe (write) but not read, in the fetch. The consumer uses one of the principal's groups
    (it looks its coordinator up even to read assigned partitions); one without any is refused that too.
    """
    groups = security.ACCESS[principal].groups
    group = groups[0].replace("*", "probe") if groups else "no-group-of-its-own"
    consumer = Consumer(secured.config(principal, **{"group.id": group, "enable.auto.commit": False}))
    refused = {topic for topic in topics
               if security.refused(consumer.list_topics(topic, timeout=10).topics[topic].error)}
    consumer.assign([TopicPartition(topic, 0, 0) for topic in topics if topic not in refused])
    read: set[str] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(read) + len(refused) < len(topics) and time.monotonic() < deadline:
            for msg in consumer.consume(100, 0.5):
                error = msg.error()
                if error is None:
                    read.add(msg.topic())
                elif error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                    refused.add(msg.topic())
                elif error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED:
                    assert not groups, (principal, group, error)
                else:
                    raise AssertionError(error)
    finally:
        consumer.close()
    assert read | refused == set(topics), (principal, set(topics) - read - refused)
    return read


def writes(secured: SecuredKafka, principal: str, topics: list[str]) -> set[str]:
    """The topics ``principal`` could write a record to; the others refused it."""
    producer = Producer(secured.config(principal, **{"message.timeout.ms": 20000}))
    results: dict[str, KafkaError | None] = {}
    for topic in topics:
        producer.produce(topic, b"probe", b"probe", partition=0,
                         on_delivery=lambda err, msg, topic=topic: results.__setitem__(topic, err))
    assert producer.flush(30) == 0
    unexpected = {topic: error for topic, error in results.items()
                  if error is not None and error.code() != KafkaError.TOPIC_AUTHORIZATION_FAILED}
    assert not unexpected, unexpected
    return {topic for topic, error in results.items() if error is None}


def test_the_job_fails_loudly_and_at_once_when_kafka_refuses_it(secured: SecuredKafka, secured_job: KafkaJob,
                                                               tmp_path):
    runs = {
        # A wrong password: refused at its first request (the topics' metadata at start).
        "wrong password": (
            {**secured.env("coaching"), "COACH_KAFKA_PASSWORD": "not-the-password"},
            "refused principal coaching: .*SASL authentication",
        ),
        # Another principal's credentials (the console's): it may not read the inputs.
        "console's rights": (
            {**secured.env("console"), "COACH_CREATE_TOPICS": "false"},
            "does not let principal console use .*conversation.events",
        ),
        # Its own credentials, but a topic is missing: only the admin may create it.
        "missing topic": (
            secured.env("coaching"),
            "topic .*coaching.summaries is missing and this client may not create it .*Authorization failed",
        ),
    }
    s = secured_job.settings
    admin = AdminClient(s.kafka_client())
    for name, (env, message) in runs.items():
        if name == "missing topic":
            admin.delete_topics([s.topic_summaries])[s.topic_summaries].result(30)
            wait_for(lambda: s.topic_summaries not in admin.list_topics(timeout=10).topics, 30, "deleted")
        log = tmp_path / f"{name}.log"
        began = time.monotonic()
        process = secured_job.start(log, **env)
        try:
            code = process.wait(90)
        finally:
            stop(process)
        text = log.read_text()
        assert code != 0, (name, text[-2000:])
        assert time.monotonic() - began < 60
        assert re.search(message, text), (name, text[-2000:])
        assert "KafkaAccessError" in text
        assert not [p for p in secured.passwords().values() if p in text] and "not-the-password" not in text


def test_bench_runs_over_sasl_ssl_with_the_admins_credentials(secured: SecuredKafka, monkeypatch):
    """``coach bench --brokers`` with COACH_KAFKA_CONFIG_FILE: its topics, job and clients all on SASL_SSL."""
    for name, value in secured.env(security.ADMIN).items():
        monkeypatch.setenv(name, value)
    items = replay.records(STAR_DIALOGUES, split="dev", limit=6, concurrency=3, start=START)
    records = [record for _, record in items]
    try:
        result = bench.throughput_run(secured.address, records, partitions=2, reference=False)
    finally:
        deleted = bench.delete_created_topics(secured.address)
    assert result["throughput_per_s"] > 0 and len(deleted) > 5


def test_the_knowledge_job_runs_as_its_own_least_privileged_principal(
        secured: SecuredKafka, secured_job: KafkaJob, tmp_path):
    """The knowledge dataflow on SASL_SSL as `knowledge`: it reads the inputs, writes its cards and
    decisions, accounts for every input, and shows no password; it may not write the coaching outputs."""
    from schemas import KnowledgeCard, KnowledgeDecision

    job, s, k = secured_job, secured_job.settings, secured_job.knowledge
    inputs, replayed = replay_inputs(secured, s)
    log = tmp_path / "knowledge.log"
    env = job.env(**secured.env("knowledge"), **job.knowledge_env(), COACH_KNOWLEDGE_NICE="0",
                  COACH_CONTEXT_WAIT_MS="300", COACH_LOG_LEVEL="DEBUG",
                  COACH_KAFKA_CONFIG=json.dumps({"debug": "security"}))
    process = subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", "flows.knowledge:flow"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        def decided() -> dict[str, list[bytes]] | None:
            assert process.poll() is None, log.read_text()[-3000:]
            out = read_all(s, [k.topic_cards, k.topic_decisions, k.topic_dlq])
            return out if len(out[k.topic_decisions]) + len(out[k.topic_dlq]) >= inputs else None

        out = wait_for(decided, 240, "the knowledge job's decisions")
    finally:
        stop(process)
    text = log.read_text()
    decisions = [KnowledgeDecision.model_validate_json(v) for v in out[k.topic_decisions]]
    cards = [KnowledgeCard.model_validate_json(v) for v in out[k.topic_cards]]
    assert len(decisions) + len(out[k.topic_dlq]) == inputs
    assert cards and {card.card_id for card in cards} <= {d.card_id for d in decisions if d.card_id}
    assert "SCRAM-SHA-512" in text  # it logged in as its principal
    shown = text + replayed + "".join(v.decode() for values in out.values() for v in values)
    assert not [p for p, password in secured.passwords().items() if password in shown]
    # Least privilege: the knowledge principal may not write what the coaching job publishes, nor the inputs.
    assert not writes(secured, "knowledge", [s.topic_suggestions, s.topic_decisions, s.topic_events])
