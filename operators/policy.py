"""Load, validate and hot-swap the guardrail policy.

``parse_policy`` turns a YAML (or JSON) document into a ``Policy``: the
validated ``PolicyDocument`` plus what the hot path needs compiled (the PII
redactor, phrase patterns). Its ``hash`` is the SHA-256 of the document's
canonical JSON, so formatting and comments do not change it but any rule does.

``PolicyStore`` holds the policy in force. It re-reads its file when the file
changes (checked at most every ``reload_s``) and, optionally, takes new
documents from a Kafka topic (``coaching.policies``, latest wins). A document
that does not parse or validate is rejected with a clear, logged error and the
policy in force stays.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from operators.pii import Redactor
from operators.records import mask_message
from schemas.policy import PolicyDocument, RequiredStepRule

log = logging.getLogger("coachflow.policy")
M = TypeVar("M", bound=BaseModel)

DEFAULT_POLICY = Path(__file__).resolve().parents[1] / "policies" / "coaching.yaml"


class PolicyError(ValueError):
    """A policy document that cannot be used, with the reasons."""


def _phrases(phrases: list[str]) -> re.Pattern | None:
    if not phrases:
        return None
    alternatives = "|".join(re.escape(p.lower()) for p in sorted(phrases, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


@dataclass(frozen=True)
class Policy:
    """A validated policy, compiled for the hot path."""

    document: PolicyDocument
    hash: str
    redactor: Redactor = field(compare=False)
    conduct: re.Pattern | None = field(compare=False)
    steps: tuple[tuple[RequiredStepRule, re.Pattern | None], ...] = field(compare=False)

    @property
    def name(self) -> str:
        return self.document.name

    @property
    def version(self) -> str:
        return self.document.version

    @property
    def rules(self):
        return self.document.rules

    @classmethod
    def from_document(cls, document: PolicyDocument) -> Policy:
        rules = document.rules
        return cls(
            document=document,
            hash=document_hash(document),
            redactor=Redactor(frozenset(rules.pii.kinds), rules.pii.min_digits),
            conduct=_phrases(rules.conduct.phrases),
            steps=tuple((step, _phrases(step.agent_phrases)) for step in rules.required_steps),
        )


def document_hash(document) -> str:
    """``sha256:`` and the hex SHA-256 of a policy document's canonical JSON."""
    canonical = json.dumps(document.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def read_document(text: str | bytes | None, model: type[M], what: str = "a policy") -> M:
    """A policy document of contract ``model`` from YAML or JSON text.

    Raises ``PolicyError`` saying what is wrong.

    It raises nothing else, whatever ``text`` is: a policy topic brings any bytes, or none (a
    tombstone), and a store keeps the document in force on a ``PolicyError`` only. The reasons
    are masked like an exception's message (they may quote the document).
    """
    try:
        return _read_document(text, model, what)
    except PolicyError as exc:
        raise PolicyError(mask_message(exc, 2_000)) from None
    except Exception as exc:  # noqa: BLE001 - a document the YAML library fails on: rejected, never a crash
        raise PolicyError(f"not a readable document: {type(exc).__name__}: {mask_message(exc)}") from None


def _read_document(text: str | bytes | None, model: type[M], what: str) -> M:
    if text is None:
        raise PolicyError("no document (a tombstone): a policy is replaced by a new version, never deleted")
    try:
        body = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"not valid YAML: {exc}") from None
    if not isinstance(body, dict):
        raise PolicyError(f"{what} is a mapping with schema_version, name, version and rules")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '$'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)[:10]
        )
        raise PolicyError(problems) from None


def parse_policy(text: str | bytes | None) -> Policy:
    """A ``Policy`` from YAML or JSON text; raises ``PolicyError`` saying what is wrong."""
    return Policy.from_document(read_document(text, PolicyDocument))


def load_policy(path: Path | str, parser=parse_policy) -> Policy:
    try:
        return parser(Path(path).read_bytes())
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc}") from None


class PolicyStore:
    """The policy in force, swapped when its file or topic brings a valid new version."""

    def __init__(
        self,
        path: Path | str | None = DEFAULT_POLICY,
        *,
        reload_s: float = 2.0,
        brokers: str | None = None,
        topic: str | None = None,
        kafka_config: dict[str, str] | None = None,
        clock=time.monotonic,
        catch_up_s: float = 30.0,
        consumer_factory=None,
        parser=parse_policy,
    ) -> None:
        self._parser = parser
        """How a document becomes a policy.

        ``parse_policy``; the knowledge job's ``parse_knowledge_policy``.
        """
        self.path = Path(path) if path is not None else None
        self.reload_s = reload_s
        self.rejections: list[str] = []
        self._clock = clock
        self._lock = threading.Lock()
        self._mtime = self._stat()
        self._checked = clock()
        if self.path is None:
            raise PolicyError("a policy file is required (the topic only brings updates)")
        self._policy = load_policy(self.path, parser)
        log.info("policy %s %s (%s) in force", self._policy.name, self._policy.version, self._policy.hash)
        self._stop = threading.Event()
        self._consumer_thread = None
        if brokers and topic:
            if consumer_factory is None:
                from confluent_kafka import Consumer as consumer_factory
            consumer = consumer_factory({
                "bootstrap.servers": brokers,
                "group.id": f"coachflow-policy-{id(self)}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                **(kafka_config or {}),
            })
            consumer.subscribe([topic])
            # The topic's latest policy is in force before the first record is decided,
            # at every start: a restart (from recovery, too) must not decide the
            # records it replays under the file's older policy.
            self._catch_up(consumer, topic, catch_up_s)
            self._consumer_thread = threading.Thread(
                target=self._follow_topic, args=(consumer, topic), daemon=True, name="policy-topic",
            )
            self._consumer_thread.start()

    def current(self) -> Policy:
        """The policy in force (re-checks the file at most every ``reload_s``)."""
        now = self._clock()
        if self.path is not None and now - self._checked >= self.reload_s:
            self._checked = now
            mtime = self._stat()
            if mtime != self._mtime:
                self._mtime = mtime
                self._offer(lambda: load_policy(self.path, self._parser), str(self.path))
        return self._policy

    def _stat(self) -> float | None:
        try:
            return self.path.stat().st_mtime_ns if self.path is not None else None
        except FileNotFoundError:
            return None

    def _offer(self, build, source: str) -> None:
        try:
            policy = build()
        except (PolicyError, OSError) as exc:
            message = (
                f"policy from {source} rejected: {exc}; keeping {self._policy.name} {self._policy.version}"
            )
            self.rejections.append(message)
            log.error(message)
            return
        with self._lock:
            if policy.hash != self._policy.hash:
                log.info(
                    "policy %s %s (%s) in force, from %s", policy.name, policy.version, policy.hash, source
                )
                self._policy = policy

    def _catch_up(self, consumer, topic: str, timeout_s: float) -> None:
        """Read ``topic`` up to the end it has now (at most ``timeout_s``)."""
        from confluent_kafka import TopicPartition

        deadline = time.monotonic() + timeout_s
        try:
            meta = consumer.list_topics(topic, timeout=max(1.0, timeout_s)).topics.get(topic)
            if meta is None or meta.error is not None or not meta.partitions:
                return  # no such topic (yet): nothing published
            ends = {}
            for partition in meta.partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=max(1.0, deadline - time.monotonic())
                )
                if high > low:
                    ends[partition] = high
        except Exception as exc:  # noqa: BLE001 - the follower thread keeps trying
            log.warning(
                "policy topic %s: could not read its end offsets (%s); reading it in the background",
                topic,
                exc,
            )
            return
        while ends and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            self._take(msg, topic)
            if msg.offset() + 1 >= ends.get(msg.partition(), 0):
                ends.pop(msg.partition(), None)
        if ends:
            log.warning("policy topic %s not read to its end within %gs; %s %s stays in force until it is",
                        topic, timeout_s, self._policy.name, self._policy.version)

    def _take(self, msg, topic: str) -> None:
        value = msg.value()
        self._offer(lambda v=value: self._parser(v), f"{topic}@{msg.partition()}:{msg.offset()}")

    def _follow_topic(self, consumer, topic: str) -> None:
        try:
            while not self._stop.is_set():
                msg = consumer.poll(0.5)
                if msg is None or msg.error():
                    continue
                self._take(msg, topic)
        finally:
            consumer.close()

    def close(self) -> None:
        self._stop.set()
