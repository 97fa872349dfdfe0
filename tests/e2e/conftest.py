"""The end-to-end tests use the Kafka fixtures of the integration tests."""

from tests.integration.conftest import brokers, kafka_job  # noqa: F401 - fixtures

