"""librdkafka's log through ``logging``: a broker that is not there costs a line, not one every 50 ms."""

from __future__ import annotations

import logging
import time

from confluent_kafka import Consumer

from coachflow.bench import free_ports
from coachflow.kafka_log import LOGGER, RepeatedConnectionFailures, client_config

REFUSED = ("FAIL", "rdkafka#consumer-1", "[thrd:127.0.0.1:1/bootstrap]: 127.0.0.1:1/bootstrap: Connect to "
           "ipv4#127.0.0.1:1 failed: Connection refused (after {ms}ms in state CONNECT)")


def poll_a_consumer_of_nothing(config: dict, seconds: float = 2.0) -> None:
    """A consumer of a port nobody listens on, polled as the job's source polls."""
    (port,) = free_ports(1)
    consumer = Consumer({**config, "bootstrap.servers": f"127.0.0.1:{port}", "group.id": "nobody"})
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        consumer.poll(0.1)
    consumer.close()


def test_a_plain_client_floods_stderr_and_a_routed_one_logs_once(capfd, caplog):
    poll_a_consumer_of_nothing({})
    flood = [line for line in capfd.readouterr().err.splitlines() if "Connection refused" in line]
    assert len(flood) >= 10  # what a client without the route prints in two seconds

    with caplog.at_level(logging.INFO, logger=LOGGER.name):
        poll_a_consumer_of_nothing(client_config({}))
    assert "Connection refused" not in capfd.readouterr().err
    refused = [r for r in caplog.records if "Connection refused" in r.getMessage()]
    assert len(refused) == 1, [r.getMessage() for r in caplog.records]
    assert refused[0].levelno == logging.WARNING and refused[0].name == "coachflow.kafka"


def record(args: tuple, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(LOGGER.name, level, "rdkafka", 0, "%s [%s] %s", args, None)


def test_a_window_passes_one_failure_per_message_and_counts_the_rest():
    clock = [0.0]
    keep = RepeatedConnectionFailures(window_s=60.0, clock=lambda: clock[0]).filter
    first = record((*REFUSED[:2], REFUSED[2].format(ms=0)))
    assert keep(first) and first.levelno == logging.WARNING
    for ms in range(1, 6):
        clock[0] += 1.0
        assert not keep(record((*REFUSED[:2], REFUSED[2].format(ms=ms))))
    other_broker = record(
        (REFUSED[0], REFUSED[1], REFUSED[2].replace("127.0.0.1:1", "127.0.0.2:1").format(ms=0))
    )
    assert keep(other_broker)
    clock[0] += 60.0
    later = record((*REFUSED[:2], REFUSED[2].format(ms=9)))
    assert keep(later)
    assert later.getMessage().endswith("(5 like it in the last 60 s not shown)")


def test_other_lines_keep_their_level_and_retries_are_info(caplog):
    keep = RepeatedConnectionFailures().filter
    down = record(("ERROR", "rdkafka#producer-1", "1/1 brokers are down"))
    assert keep(down) and down.levelno == logging.ERROR
    assert keep(down)  # genuine errors are never held back
    retry = record(
        (
            "GETPID",
            "rdkafka#producer-2",
            "[thrd:main]: Failed to acquire idempotence PID from "
            "broker 127.0.0.1:9092/1: Broker: Coordinator load in progress: retrying",
        ),
        logging.WARNING,
    )
    with caplog.at_level(logging.WARNING, logger=LOGGER.name):
        assert not keep(retry)  # info, below what the logger shows
    with caplog.at_level(logging.INFO, logger=LOGGER.name):
        assert keep(retry) and retry.levelno == logging.INFO
