"""Configuration: environment variables, derived step configs, the reference in docs/operations.md."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from coachflow.config import REFERENCE_DOC, Settings, with_reference_table
from tests.helpers import ROOT


def test_operations_doc_configuration_reference_matches_the_settings():
    page = REFERENCE_DOC.read_text()
    assert page == with_reference_table(page), (
        f"the configuration reference in {REFERENCE_DOC.relative_to(ROOT)} is stale: "
        "run .venv/bin/python scripts/update_config_reference.py"
    )


def test_the_reference_needs_both_markers():
    with pytest.raises(ValueError):
        with_reference_table("<!-- config-reference:start -->\nno end marker\n")


def test_brokers_switch_to_kafka_mode_from_the_environment(monkeypatch):
    monkeypatch.delenv("COACH_BROKERS", raising=False)
    assert not Settings().kafka_mode and Settings().should_print
    monkeypatch.setenv("COACH_BROKERS", "127.0.0.1:9092, 127.0.0.1:9094")
    monkeypatch.setenv("COACH_KAFKA_CONFIG", '{"security.protocol": "PLAINTEXT"}')
    monkeypatch.setenv("COACH_CONTEXT_WAIT_MS", "250")
    settings = Settings()
    assert settings.kafka_mode and not settings.should_print
    assert settings.broker_list == ["127.0.0.1:9092", "127.0.0.1:9094"]
    assert settings.kafka_config == {"security.protocol": "PLAINTEXT"}
    assert settings.join_config().hold_s == 0.25
    assert settings.parse_limits().check_keys


def test_invalid_settings_are_refused(monkeypatch):
    monkeypatch.setenv("COACH_MAX_TEXT_CHARS", "0")
    with pytest.raises(ValidationError):
        Settings()


def test_a_share_of_the_partitions_needs_co_partitioned_input(monkeypatch):
    monkeypatch.setenv("COACH_KAFKA_PARTITIONS", "[0, 2]")
    with pytest.raises(ValidationError, match="COACH_INPUT_KEY=customer"):
        Settings()  # events still keyed by conversation: a customer's context may be in another job's share
    monkeypatch.setenv("COACH_INPUT_KEY", "customer")
    settings = Settings()
    assert settings.kafka_partitions == [0, 2] and settings.parse_limits().key_by == "customer"
    for bad in ("[]", "[1, 1]", "[-1]"):
        monkeypatch.setenv("COACH_KAFKA_PARTITIONS", bad)
        with pytest.raises(ValidationError, match="distinct partition numbers"):
            Settings()


def test_defaults_point_at_shipped_files():
    settings = Settings()
    assert (
        Path(settings.input).is_file() and Path(settings.model).is_file() and Path(settings.policy).is_file()
    )
