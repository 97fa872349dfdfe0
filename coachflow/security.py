"""Who may use which Kafka topic: the principals of a secured broker, and their ACLs.

``ACCESS`` is the one table of it: per principal, the topics it reads and
writes, named by their kind in the topic catalog (``schemas.topics``; and
``lineage``, the OpenLineage transport's topic), so renamed or prefixed
topics follow the configuration, and the consumer groups its clients use. Every
ACL is derived from it (``bindings``), for the topics of given settings, and
nothing else is allowed: the broker runs with
``allow.everyone.if.no.acl.found=false``. The admin principal is a super
user (``super.users`` in ``scripts/kafka/server.properties.in``): it creates
the topics and applies these ACLs. ``scripts/kafka.sh`` creates a SCRAM user
per principal and applies the ACLs for the default topic names at every
start; docs/security.md lists the table.

    coach acls show                      the table
    coach acls apply | revoke            create or delete the ACLs of the COACH_* topics, as the admin
    coach acls principals                the principals, admin first (scripts/kafka.sh)
    coach acls users --secrets DIR       add missing SCRAM users with DIR/USER.password (scripts/kafka.sh)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ClusterMetadata,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)

from coachflow.private import read_secret
from schemas.topics import INPUTS, OUTPUTS, topic

if TYPE_CHECKING:
    from coachflow.config import Settings
    from coachflow.knowledge_config import KnowledgeSettings

#: The principal that creates topics and applies ACLs; a super user of the broker.
ADMIN = "admin"
#: The kind for the OpenLineage kafka transport's topic (``COACH_LINEAGE_TOPIC``; not in the catalog).
LINEAGE = "lineage"
SCRAM_ITERATIONS = 8192


@dataclass(frozen=True)
class Access:
    """What one principal may do: read and write topics (catalog kinds), use consumer groups."""

    purpose: str
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    """Consumer group ids its clients use; one ending in ``*`` stands for every id with that prefix."""


#: Who needs which topic: every principal but the admin gets exactly these rights.
ACCESS: dict[str, Access] = {
    "coaching": Access(
        "the coaching dataflow (python -m bytewax.run flows.coaching:flow)",
        reads=(*(spec.kind for spec in INPUTS), "policies"),
        writes=(*(spec.kind for spec in OUTPUTS), LINEAGE),
        # The source's consumers assign partitions (offsets live in the recovery store) under a
        # placeholder group; the lag gauge asks for watermarks; each policy follower has its own group.
        groups=("BYTEWAX_IGNORED", "coachflow-metrics-lag", "coachflow-policy-*"),
    ),
    "knowledge": Access(
        "the knowledge dataflow (python -m bytewax.run flows.knowledge:flow)",
        reads=("events", "context", "policies", "articles", "knowledge_policies"),
        writes=("knowledge", "knowledge_decisions", "knowledge_dlq", LINEAGE),
        groups=("BYTEWAX_IGNORED", "coachflow-metrics-lag", "coachflow-policy-*", "coachflow-knowledge-*"),
    ),
    "console": Access(
        "the reference agent console (coach console)",
        reads=("suggestions", "alerts", "acceptance", "knowledge"),
        writes=("feedback", "knowledge_feedback"),
        groups=("coach-console-*",),
    ),
    "replay": Access(
        "coach replay --brokers: STAR dialogues as live traffic",
        writes=("events", "context"),
    ),
    "report": Access(
        "coach report --brokers and coach lineage explain --brokers (supervisors, governance)",
        reads=(
            "decisions",
            "suggestions",
            "alerts",
            "acceptance",
            "feedback",
            "knowledge",
            "knowledge_feedback",
        ),
        groups=("coachflow-report", "coachflow-explain"),
    ),
}


class KafkaAccessError(RuntimeError):
    """Kafka refused this client (its credentials, its TLS trust or its rights), or never answered it.

    Systemic, not about a record: the job stops with it (non-zero exit) instead of retrying forever.
    """


#: Error codes that mean the broker refused the client: authentication, TLS, authorization.
REFUSALS = frozenset({
    "_AUTHENTICATION", "_SSL", "SASL_AUTHENTICATION_FAILED", "TOPIC_AUTHORIZATION_FAILED",
    "GROUP_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED", "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
})
CREDENTIALS_HINT = ("credentials and TLS trust come from COACH_KAFKA_CONFIG_FILE, COACH_KAFKA_CONFIG and "
                    "COACH_KAFKA_PASSWORD(_FILE); see docs/security.md")


def refused(error: KafkaError | None) -> bool:
    """Whether a librdkafka error means the broker refused the client (not a record's fault, not a hiccup)."""
    return error is not None and error.name() in REFUSALS


def _who(settings: Settings) -> str:
    user = settings.kafka_client().get("sasl.username")
    return f"principal {user}" if user else "this client (no sasl.username)"


def metadata(settings: Settings, timeout: float = 30.0) -> tuple[AdminClient, ClusterMetadata]:
    """An admin client of ``settings`` and the cluster's metadata as it sees it.

    librdkafka retries a refused login forever (the refusal only reaches ``error_cb``), so the
    metadata is asked for a second at a time, and a refusal raises ``KafkaAccessError`` at once;
    so does no answer within ``timeout`` seconds (a wrong address, or a listener of another
    security protocol: those look the same to the client).
    """
    errors: list[KafkaError] = []
    admin = AdminClient(settings.kafka_client(error_cb=errors.append))
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            return admin, admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
        except KafkaException as exc:
            last = exc.args[0].str() if exc.args and hasattr(exc.args[0], "str") else exc
        admin.poll(0)  # serves error_cb
        refusal = next((error for error in errors if refused(error)), None)
        if refusal is not None:
            raise KafkaAccessError(f"Kafka at {settings.brokers} refused {_who(settings)}: {refusal.str()}; "
                                   f"{CREDENTIALS_HINT}")
        if errors:
            last = errors[-1].str()
        if time.monotonic() >= deadline:
            raise KafkaAccessError(
                f"Kafka at {settings.brokers} gave no metadata within {timeout:g} s (last: {last}); check "
                f"COACH_BROKERS and that security.protocol suits that listener; {CREDENTIALS_HINT}")


def check_access(settings: Settings, topics: Iterable[str], timeout: float = 30.0) -> None:
    """Raise ``KafkaAccessError`` unless the broker lets ``settings``' client in and describe every one
    of ``topics`` (reading or writing a topic implies describing it); a missing topic is not checked."""
    admin, listed = metadata(settings, timeout)
    denied = []
    for name in dict.fromkeys(topics):
        if name in listed.topics:
            continue
        found = admin.list_topics(topic=name, timeout=timeout).topics.get(name)
        if found is not None and refused(found.error):
            denied.append(name)
    if denied:
        raise KafkaAccessError(f"Kafka at {settings.brokers} does not let {_who(settings)} use "
                               f"{', '.join(denied)}: ask for its ACLs (coach acls show; docs/security.md)")


def topic_name(settings: Settings, kind: str, *, default: bool = False,
               knowledge: KnowledgeSettings | None = None) -> str | None:
    """The name ``settings`` (the knowledge job's topics: ``knowledge``, default: its ``COACH_KNOWLEDGE_*``
    environment) give the topic of ``kind``; an optional topic that is not set: None, or with ``default``
    its catalog name (``coaching.policies``)."""
    if kind == LINEAGE:
        return settings.lineage_topic
    spec = topic(kind)
    if spec.job == "knowledge":
        from coachflow.knowledge_config import KnowledgeSettings

        source: Any = knowledge if knowledge is not None else KnowledgeSettings()
    else:
        source = settings
    return getattr(source, spec.setting) or (spec.default if default else None)


def topics_of(principal: str, settings: Settings, knowledge: KnowledgeSettings | None = None) -> list[str]:
    """The topics ``principal`` reads or writes under ``settings`` (the set ones)."""
    access = ACCESS[principal]
    names = (topic_name(settings, kind, knowledge=knowledge) for kind in (*access.reads, *access.writes))
    return [name for name in names if name]


def check_job_access(settings: Settings, principal: str = "coaching",
                     knowledge: KnowledgeSettings | None = None) -> None:
    """At a job's start: Kafka lets it in and describe its topics, else ``KafkaAccessError`` now (librdkafka
    would retry refused credentials forever, and the job wait for records that never come)."""
    check_access(settings, topics_of(principal, settings, knowledge))


def principals() -> list[str]:
    """Every principal of the table, the admin first."""
    return [ADMIN, *ACCESS]


def grants(settings: Settings, knowledge: KnowledgeSettings | None = None) -> list[tuple[str, str, str, str]]:
    """``(principal, resource type, name, operation)`` per ACL of ``settings``' topics (and ``knowledge``'s,
    the knowledge job's; default: its environment's) (a ``*`` name: prefix).

    An optional topic that is unset (``COACH_POLICY_TOPIC``) is granted under its catalog name, so a job
    given that topic later needs no new ACL.
    """
    rows = []
    for principal, access in ACCESS.items():
        for operation, fields in (("READ", access.reads), ("WRITE", access.writes)):
            rows += [(principal, "TOPIC", str(topic_name(settings, kind, default=True, knowledge=knowledge)),
                      operation) for kind in fields]
        rows += [(principal, "GROUP", group, "READ") for group in access.groups]
    return rows


def bindings(settings: Settings, knowledge: KnowledgeSettings | None = None) -> list[AclBinding]:
    """The ACLs that give each principal of ``ACCESS`` its rights on ``settings``' topics (READ and
    WRITE imply DESCRIBE), from any host."""
    out = []
    for principal, kind, name, operation in grants(settings, knowledge):
        pattern = ResourcePatternType.PREFIXED if name.endswith("*") else ResourcePatternType.LITERAL
        out.append(AclBinding(ResourceType[kind], name.removesuffix("*"), pattern, f"User:{principal}", "*",
                              AclOperation[operation], AclPermissionType.ALLOW))
    return out


def apply(settings: Settings, timeout: float = 30.0, knowledge: KnowledgeSettings | None = None) -> int:
    """Create the ACLs of ``settings``' topics (with its client's credentials: the admin's); return how many.

    Creating an ACL that exists is a no-op, so this is safe to repeat.
    """
    acls = bindings(settings, knowledge)
    admin = AdminClient(settings.kafka_client())
    for future in admin.create_acls(acls, request_timeout=timeout).values():
        future.result(timeout)
    return len(acls)


def revoke(settings: Settings, timeout: float = 30.0, knowledge: KnowledgeSettings | None = None) -> int:
    """Delete the ACLs ``apply`` creates for ``settings``' topics; return how many were found and deleted."""
    admin = AdminClient(settings.kafka_client())
    filters = [AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation,
                                b.permission_type) for b in bindings(settings, knowledge)]
    deleted = 0
    for future in admin.delete_acls(filters, request_timeout=timeout).values():
        deleted += len(future.result(timeout))
    return deleted


def add_users(settings: Settings, secrets: Path, timeout: float = 30.0) -> list[str]:
    """Give each principal the broker lacks a SCRAM-SHA-512 user, its password from ``secrets/NAME.password``.

    For storage formatted before a principal joined the table (``scripts/kafka.sh`` creates the users
    with ``kafka-storage format --add-scram`` otherwise). Returns the users added.
    """
    admin = AdminClient(settings.kafka_client())
    names = principals()
    known = set()
    described = admin.describe_user_scram_credentials(names, request_timeout=timeout)
    if not isinstance(described, dict):  # a single future only when no users are named
        raise TypeError("describe_user_scram_credentials returned no future per user")
    for name, future in described.items():
        try:
            future.result(timeout)
            known.add(name)
        except Exception as exc:  # noqa: BLE001 - RESOURCE_NOT_FOUND: no credentials for that user yet
            if "RESOURCE_NOT_FOUND" not in str(exc):
                raise
    missing = [name for name in names if name not in known]
    if not missing:
        return []
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(name, info, read_secret(secrets / f"{name}.password").encode())
        for name in missing
    ]
    for future in admin.alter_user_scram_credentials(upserts, request_timeout=timeout).values():
        future.result(timeout)
    return missing


def table() -> str:
    """``ACCESS`` as a Markdown table (docs/security.md), with the default topic names."""
    defaults = _settings(brokers="unused:9092")
    rows = ["| Principal | Reads | Writes | Consumer groups | Used by |", "| --- | --- | --- | --- | --- |",
            f"| `{ADMIN}` | (super user) | (super user) | (super user) "
            "| creating topics, applying these ACLs |"]
    for principal, access in ACCESS.items():
        def names(kinds: tuple[str, ...]) -> str:
            return ", ".join(f"`{topic_name(defaults, kind, default=True)}`" for kind in kinds) or "-"
        groups = ", ".join(f"`{group}`" for group in access.groups) or "-"
        rows.append(f"| `{principal}` | {names(access.reads)} | {names(access.writes)} | {groups} "
                    f"| {access.purpose} |")
    return "\n".join(rows) + "\n"


def _settings(**values: Any) -> Settings:
    # Loaded when needed: the settings import the operators (a second), and `coach` imports this module
    # to build its parser, `scripts/kafka.sh` runs `coach acls principals`.
    from coachflow.config import Settings  # noqa: PLC0415

    return Settings(**values)


def main_acls(args: argparse.Namespace) -> int:
    """``coach acls ACTION``."""
    if args.action in ("principals", "show"):
        print("\n".join(principals()) if args.action == "principals" else table().rstrip("\n"))
        return 0
    settings = _settings(**({"brokers": args.brokers} if args.brokers else {}))
    if not settings.brokers:
        print(f"coach acls {args.action}: give --brokers or set COACH_BROKERS", file=sys.stderr)
        return 2
    if args.action == "users":
        if args.secrets is None:
            print("coach acls users: give --secrets DIR (NAME.password per principal)", file=sys.stderr)
            return 2
        added = add_users(settings, args.secrets)
        said = f"SCRAM users added: {', '.join(added) or 'none (all exist)'}"
    elif args.action == "apply":
        said = f"{apply(settings)} ACLs in force on {settings.brokers}"
    else:
        said = f"{revoke(settings)} ACLs deleted on {settings.brokers}"
    print(f"coach acls: {said}", file=sys.stderr)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("show", "apply", "revoke", "principals", "users"))
    parser.add_argument("--brokers",
                        help="the secured listener (default: COACH_BROKERS); credentials: COACH_KAFKA_*")
    parser.add_argument("--secrets", type=Path, help="users: the directory of NAME.password files")
