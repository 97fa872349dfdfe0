"""How the input topics are keyed: the one rule the parse step checks and the replay tools follow."""

from __future__ import annotations


def key_field(stream: str, key_by: str = "conversation") -> str:
    """The field whose value keys a record of ``stream`` ("events", "context", "feedback") on Kafka.

    Context is keyed by customer id. Events and feedback are keyed by
    conversation id, or with ``key_by="customer"`` (``COACH_INPUT_KEY``) by
    customer id, so that a customer's conversations, context and feedback
    share a partition number (co-partitioned topics, as
    ``COACH_KAFKA_PARTITIONS`` needs).
    """
    return "customer_id" if stream == "context" or key_by == "customer" else "conversation_id"
