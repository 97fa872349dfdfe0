"""Kafka client credentials: read from files or the environment, built in one place, never shown."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError
from pydantic import ValidationError

from coachflow.config import KAFKA_CLIENT_VARIABLES, KafkaClientConfig, Settings, kafka_client_env
from coachflow.connectors import _WorkerConsumer
from coachflow.private import read_properties
from coachflow.security import KafkaAccessError
from coachflow.topics import topic_specs

PASSWORD = "s3cret-Pa55word-0f-the-job"


@pytest.fixture
def clean_env(monkeypatch):
    for name in (*KAFKA_CLIENT_VARIABLES, "COACH_BROKERS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def owner_only(path, text: str):
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_a_properties_file_gives_every_client_its_credentials(clean_env, tmp_path):
    props = owner_only(tmp_path / "coaching.properties", f"""# a comment
! another
security.protocol = SASL_SSL
sasl.mechanism=SCRAM-SHA-512

sasl.username=coaching
sasl.password={PASSWORD}
ssl.ca.location=/etc/ca.pem
""")
    clean_env.setenv("COACH_BROKERS", "127.0.0.1:9094")
    clean_env.setenv("COACH_KAFKA_CONFIG_FILE", str(props))
    clean_env.setenv("COACH_KAFKA_CONFIG", '{"sasl.username": "overridden", "client.rack": "r1"}')
    config = Settings().kafka_client(**{"group.id": "g", "security.protocol": "PLAINTEXT"})
    assert config.pop("logger") is logging.getLogger("coachflow.kafka")  # librdkafka's log through logging
    assert config == {
        "bootstrap.servers": "127.0.0.1:9094", "group.id": "g", "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "overridden", "sasl.password": PASSWORD,
        "ssl.ca.location": "/etc/ca.pem", "client.rack": "r1",
    }


def test_the_password_file_or_variable_sets_sasl_password_over_the_properties(clean_env, tmp_path):
    secret = owner_only(tmp_path / "password", PASSWORD + "\n")
    clean_env.setenv("COACH_KAFKA_CONFIG", '{"sasl.username": "coaching", "sasl.password": "old"}')
    clean_env.setenv("COACH_KAFKA_PASSWORD_FILE", str(secret))
    assert Settings(brokers="b:1").kafka_client()["sasl.password"] == PASSWORD
    clean_env.delenv("COACH_KAFKA_PASSWORD_FILE")
    clean_env.setenv("COACH_KAFKA_PASSWORD", PASSWORD)
    assert Settings(brokers="b:1").kafka_client()["sasl.password"] == PASSWORD
    clean_env.setenv("COACH_KAFKA_PASSWORD_FILE", str(secret))
    with pytest.raises(ValidationError, match="not both"):
        Settings()


def test_no_setting_shows_a_secret(clean_env, tmp_path):
    clean_env.setenv("COACH_KAFKA_CONFIG", f'{{"sasl.password": "{PASSWORD}"}}')
    clean_env.setenv("COACH_KAFKA_PASSWORD", PASSWORD)
    settings = Settings(brokers="b:1")
    config = settings.kafka_client()
    assert config["sasl.password"] == PASSWORD
    for shown in (repr(settings), str(settings), repr(config), str(config), repr(settings.lineage_config())):
        assert PASSWORD not in shown
    assert "'sasl.password': '***'" in repr(config) and isinstance(config, KafkaClientConfig)
    # A refused value is not quoted in the error (pydantic shows input values by default).
    clean_env.setenv("COACH_KAFKA_CONFIG", f'{{"sasl.password": ["{PASSWORD}"]}}')
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert PASSWORD not in str(refused.value)
    bad = owner_only(tmp_path / "bad.properties", f"sasl.password {PASSWORD}\n")
    with pytest.raises(ValueError, match="line 1: not a key=value property") as unreadable:
        read_properties(bad)
    assert PASSWORD not in str(unreadable.value)


def test_a_credentials_file_others_may_read_is_used_but_said(clean_env, tmp_path, caplog):
    props = tmp_path / "open.properties"
    props.write_text(f"sasl.password={PASSWORD}\n")
    props.chmod(0o644)
    clean_env.setenv("COACH_KAFKA_CONFIG_FILE", str(props))
    with caplog.at_level(logging.WARNING, logger="coachflow.config"):
        assert Settings(brokers="b:1").kafka_client()["sasl.password"] == PASSWORD
    assert "others than its owner may read it" in caplog.text and PASSWORD not in caplog.text
    clean_env.setenv("COACH_KAFKA_CONFIG_FILE", str(tmp_path / "missing.properties"))
    with pytest.raises(ValidationError, match="is not a readable file"):
        Settings()


def test_child_jobs_get_the_client_variables_only(clean_env):
    env = {"COACH_KAFKA_CONFIG_FILE": "/x", "COACH_KAFKA_PASSWORD_FILE": "/y", "COACH_TOPIC_EVENTS": "t",
           "PATH": "/bin"}
    assert kafka_client_env(env) == {"COACH_KAFKA_CONFIG_FILE": "/x", "COACH_KAFKA_PASSWORD_FILE": "/y"}


def test_retention_of_decisions_dead_letters_and_feedback_is_set_and_configurable(clean_env):
    specs = topic_specs(Settings(brokers="b:1"))
    day = 86_400_000
    assert specs["coaching.decisions"]["retention.ms"] == str(30 * day)
    assert specs["coaching.dlq"]["retention.ms"] == str(7 * day)
    assert specs["coaching.feedback"]["retention.ms"] == str(30 * day)
    assert "retention.ms" not in specs["coaching.suggestions"]
    assert "retention.ms" not in specs["customer.context"]
    clean_env.setenv("COACH_RETENTION_DLQ_DAYS", "0.5")
    assert topic_specs(Settings(brokers="b:1"))["coaching.dlq"]["retention.ms"] == str(day // 2)


class _Refusal:
    """A consumer event as librdkafka hands one over when the broker refuses a fetch."""

    def __init__(self, code: int) -> None:
        self._error = KafkaError(code)

    def error(self) -> KafkaError:
        return self._error

    def topic(self) -> str:
        return "t.conversation.events"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 5


class _RefusingConsumer:
    def __init__(self, code: int) -> None:
        self.code = code

    def incremental_assign(self, _parts) -> None:
        pass

    def consume(self, _count: int, _timeout: float) -> list:
        return [_Refusal(self.code)]


@pytest.mark.parametrize("code", [KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError._AUTHENTICATION])
def test_a_refused_fetch_stops_the_source_instead_of_becoming_a_dead_letter(code):
    shared = _WorkerConsumer({"bootstrap.servers": "127.0.0.1:1", "group.id": "g"}, batch_size=10)
    shared._consumer = _RefusingConsumer(code)
    shared.assign("t.conversation.events", 0, 0)
    with pytest.raises(KafkaAccessError, match="Kafka refused the job's consumer"):
        shared.fill()
    # Any other error about a record is that record's (a dead letter), as before.
    shared._consumer = _RefusingConsumer(KafkaError.MSG_SIZE_TOO_LARGE)
    shared._idle_until = 0.0
    shared.fill()
    assert shared.buffered == 1
