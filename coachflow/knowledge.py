"""What the knowledge job opens besides its dataflow: the index (and its reloads), the
re-ranker, the knowledge policy, lineage with the knowledge base as an input dataset.

``IndexStore`` serves the knowledge base from one of three places and swaps in
a new version while the job runs, without a restart:

- an index directory built by ``coach knowledge index`` (``COACH_KNOWLEDGE_INDEX``):
  reloaded when its manifest names a new index version;
- an articles file or folder (``COACH_KNOWLEDGE_ARTICLES``): re-indexed when it changes;
- a compacted Kafka topic of articles (``COACH_KNOWLEDGE_ARTICLES_TOPIC``, key:
  article id, a tombstone deletes): read to its end before the first record,
  then followed; a change is re-indexed at most every ``reload_s``.

A new version that does not load (an altered index, an invalid article) is
refused with a logged error and the version in force stays. Each swap names
the new KB version in the next lineage event.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

from pydantic import ValidationError

from coachflow.config import Settings
from coachflow.knowledge_config import KnowledgeSettings
from coachflow.metrics import JobMetrics
from coachflow.runtime import configure_logging, end_run, start_metrics
from coachflow.security import check_job_access
from coachflow.topics import ensure_topics
from lineage import (
    CoachflowRunFacet,
    DatasetSpec,
    Lineage,
    ending_error,
    file_namespace,
    install_exit_hooks,
    kafka_namespace,
)
from models.knowledge import articles as kb
from models.knowledge.index import IndexIntegrityError, KnowledgeIndex, read_manifest
from models.knowledge.ranker import Reranker, Retriever, load_reranker
from operators.cards import KnowledgePolicy, parse_knowledge_policy
from operators.policy import PolicyStore
from operators.quality import Gate, load_suites
from operators.shedding import LoadShedder
from schemas import KNOWLEDGE_TOPICS, Article, topic

if TYPE_CHECKING:
    from confluent_kafka import Consumer

log = logging.getLogger("coachflow.knowledge")


class IndexStore:
    """The retriever and the knowledge base in force; ``start`` follows its source for new versions."""

    def __init__(self, ks: KnowledgeSettings, settings: Settings, reranker: Reranker,
                 consumer_factory: Callable | None = None) -> None:
        self.ks, self.settings = ks, settings
        self.on_swap: list[Callable[[KnowledgeIndex], None]] = []
        self.rejections: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._articles: dict[str, Article] = {}
        self._changed = False
        self._consumer: Consumer | None = None
        if ks.articles_topic and settings.kafka_mode:
            self.source = ("topic", ks.articles_topic)
            self._consumer = self._subscribe(consumer_factory)
            self._catch_up(ks.articles_topic, self._consumer)
            index = KnowledgeIndex.build(list(self._articles.values()), ks.max_words)
        elif ks.index is not None:
            self.source = ("index", str(ks.index))
            index = KnowledgeIndex.load(ks.index)
        else:
            self.source = ("articles", str(ks.articles))
            index = KnowledgeIndex.build(kb.load(ks.articles), ks.max_words)
        self._stamp = self._current_stamp()
        self.retriever = Retriever(index, reranker)
        log.info("knowledge base %s in force: %d articles, %d passages, from %s %s",
                 index.kb_version, len(index.articles), len(index), *self.source)

    @property
    def index(self) -> KnowledgeIndex:
        return self.retriever.index

    # -- following the source ------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._follow, name="knowledge-index", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()

    def check(self) -> bool:
        """Look at the source once; swap in a new version if there is one. True if swapped."""
        kind, _ = self.source
        try:
            if kind == "topic":
                self._poll(0.0)
                if not self._changed:
                    return False
                self._changed = False
                index = KnowledgeIndex.build(list(self._articles.values()), self.ks.max_words)
            else:
                stamp = self._current_stamp()
                if stamp == self._stamp:
                    return False
                self._stamp = stamp
                index = (KnowledgeIndex.load(self.source[1]) if kind == "index"
                         else KnowledgeIndex.build(kb.load(self.ks.articles), self.ks.max_words))
        except (IndexIntegrityError, kb.KnowledgeBaseError, OSError, ValueError) as error:
            message = f"knowledge base from {kind} rejected: {error}; keeping {self.index.kb_version}"
            self.rejections.append(message)
            log.error(message)
            return False
        if index.kb_version == self.index.kb_version and index.max_words == self.index.max_words:
            return False
        self.retriever.swap(index)
        log.info(
            "knowledge base %s in force: %d articles, %d passages",
            index.kb_version,
            len(index.articles),
            len(index),
        )
        for listener in self.on_swap:
            listener(index)
        return True

    def _follow(self) -> None:
        while not self._stop.wait(self.ks.reload_s):
            self.check()

    def _current_stamp(self) -> object:
        kind, _ = self.source
        if kind == "index":
            try:
                return read_manifest(self.source[1])["index_version"]
            except IndexIntegrityError:
                return None
        if kind == "articles":
            path = Path(self.ks.articles)
            try:
                files = [path] if path.is_file() else sorted(path.rglob("*.md"))
                return tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
            except OSError:
                return None
        return None

    # -- the articles topic --------------------------------------------------------
    def _subscribe(self, consumer_factory):
        if consumer_factory is None:
            from confluent_kafka import Consumer as consumer_factory
        consumer = consumer_factory(self.settings.kafka_client(**{
            "group.id": f"coachflow-knowledge-{os.getpid()}-{id(self)}",
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
        }))
        consumer.subscribe([self.ks.articles_topic])
        return consumer

    def _catch_up(self, topic: str, consumer: Consumer, timeout_s: float = 60.0) -> None:
        """Read the articles topic up to the end it has now: the job starts with the whole KB."""
        from confluent_kafka import TopicPartition

        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            log.warning(
                "articles topic %s has no partitions yet: starting with an empty knowledge base", topic
            )
            return
        ends = {}
        for partition in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high > low:
                ends[partition] = high
        deadline = time.monotonic() + timeout_s
        while ends and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            self._take(message)
            offset = message.offset()
            if offset is not None and offset + 1 >= ends.get(message.partition(), 0):
                ends.pop(message.partition(), None)
        if ends:
            raise TimeoutError(f"articles topic {topic} not read to its end within {timeout_s:g} s")
        self._changed = False

    def _poll(self, timeout: float) -> None:
        consumer = self._consumer
        if consumer is None:  # a file source has no consumer
            return
        while True:
            message = consumer.poll(timeout)
            if message is None:
                return
            if not message.error():
                self._take(message)
            timeout = 0.0

    def _take(self, message) -> None:
        key = (message.key() or b"").decode("utf-8", "replace")
        value = message.value()
        if value is None:  # a tombstone: the article is gone
            if self._articles.pop(key, None) is not None:
                self._changed = True
            return
        try:
            article = kb.ARTICLE_ADAPTER.validate_json(value)
        except ValidationError as error:
            message_text = (
                f"article at {message.topic()}/{message.partition()}@{message.offset()} rejected: "
                f"{kb._problems(error)}"
            )
            self.rejections.append(message_text)
            log.error(message_text)
            return
        if key and key != article.article_id:
            self.rejections.append(f"article {article.article_id!r} keyed {key!r}: rejected")
            log.error("article %r keyed %r: rejected (key articles by their id)", article.article_id, key)
            return
        if self._articles.get(article.article_id) != article:
            self._articles[article.article_id] = article
            self._changed = True


def publish_articles(articles: list[Article], brokers: str, topic: str, partitions: int = 1,
                     timeout_s: float = 30.0) -> int:
    """Produce articles to the compacted ``topic`` (created if missing), keyed by id; wait for delivery."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from coachflow.topics import wait_visible

    config = Settings(brokers=brokers).kafka_client()  # the job's Kafka client settings and credentials
    admin = AdminClient(config)
    if topic not in admin.list_topics(timeout=timeout_s).topics:
        futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=-1,
                                                config={"cleanup.policy": "compact"})])
        for future in futures.values():
            try:
                future.result(timeout_s)
            except Exception as exc:  # another client may have made it meanwhile
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
        wait_visible(admin, [topic], timeout_s)
    producer = Producer({**config, "enable.idempotence": "true"})
    failed: list[str] = []
    for article in articles:
        producer.produce(
            topic,
            article.model_dump_json(exclude_none=True).encode(),
            article.article_id.encode(),
            on_delivery=lambda err, msg: failed.append(str(err)) if err is not None else None,
        )
        producer.poll(0)
    producer.flush(timeout_s)
    if failed:
        raise RuntimeError(f"{len(failed)} article(s) not delivered to {topic}: {failed[0]}")
    return len(articles)


def topic_specs(ks: KnowledgeSettings, settings: Settings) -> dict[str, dict[str, str]]:
    """The knowledge job's topics and their config (``schemas.topics``): the inputs it shares with the
    coaching job, and each of its catalog topics its settings name (compacted where the catalog says)."""
    compact = {"cleanup.policy": "compact"}
    specs: dict[str, dict[str, str]] = {
        settings.inputs()[kind]: compact if topic(kind).compacted else {} for kind in ("events", "context")
    }
    for spec in KNOWLEDGE_TOPICS:
        name = getattr(ks, spec.setting)
        if name:
            specs[name] = compact if spec.compacted else {}
    return specs


def lower_priority(nice: int) -> None:
    """Lower this process's CPU priority (``COACH_KNOWLEDGE_NICE``): the coaching job goes first."""
    if nice > 0:
        try:
            os.nice(nice)
        except OSError as exc:  # not permitted: run at the priority we have
            log.warning("could not lower the CPU priority by %d: %s", nice, exc)


def kb_dataset(ks: KnowledgeSettings, settings: Settings) -> tuple[str, str]:
    """The knowledge base as a lineage dataset: (namespace, name)."""
    if ks.articles_topic and settings.brokers:  # Kafka mode
        return kafka_namespace(settings.brokers), ks.articles_topic
    path = ks.index if ks.index is not None else ks.articles
    return file_namespace(), str(Path(path).resolve())


def knowledge_lineage(ks: KnowledgeSettings, settings: Settings, reranker: Reranker, policy: KnowledgePolicy,
                      suites: list[str]) -> tuple[Lineage, str]:
    """The knowledge job's ``Lineage``: events, context and the KB in; cards, decisions, dead letters out."""
    if settings.brokers:  # Kafka mode
        namespace = kafka_namespace(settings.brokers)
        inputs = [
            DatasetSpec(namespace, settings.topic_events, "conversation_event.v1", "conversation_events"),
            DatasetSpec(namespace, settings.topic_context, "customer_context.v1", "customer_context"),
        ]
        outputs = {kind: (namespace, topic) for kind, topic in ks.outputs().items()}
    else:
        namespace = file_namespace()
        inputs = [
            DatasetSpec(
                namespace, str(Path(ks.input).resolve()), "conversation_event.v1", "conversation_events"
            )
        ]
        out = Path(ks.output_dir).resolve()
        outputs = {kind: (namespace, str(out / f"{kind}.jsonl")) for kind in ks.outputs()}
    kb_namespace, kb_name = kb_dataset(ks, settings)
    inputs.append(DatasetSpec(kb_namespace, kb_name, "article.v1"))
    contracts = {"knowledge": "knowledge_card.v1", "knowledge_decisions": "knowledge_decision.v1",
                 "dlq": "dead_letter.v1"}
    entry = reranker.registry_entry
    lineage = Lineage(
        settings.lineage_config(),
        inputs,
        [DatasetSpec(*outputs[kind], contracts[kind]) for kind in ks.outputs()],
        CoachflowRunFacet(
            model={"name": entry["name"], "version": entry["version"], "sha256": entry["sha256"]},
            policy={"name": policy.name, "version": policy.version, "hash": policy.hash},
            qualitySuites=suites,
        ),
        description=(
            "Knowledge assist: cards citing the knowledge-base passage that answers the customer's question."
        ),
    )
    return lineage, kb_name


class KnowledgeResources:
    """What one knowledge-job process opens for its dataflow, and closes at its end.

    ``open`` lowers the process's CPU priority, loads the re-ranker, the knowledge
    base (and follows it for new versions), the knowledge policy, the coaching
    policy (its PII rule masks input text, as in the coaching job) and the
    data-quality suites, creates missing topics (in embedded mode, the output
    directory), starts lineage and metrics; ``close`` emits COMPLETE, FAIL or ABORT
    and stops what it started. Attributes are set by ``open``.

        with KnowledgeResources(ks, settings) as job:
            run_main(flows.knowledge.get_flow(ks, settings, job))
    """

    reranker: Reranker
    store: IndexStore
    policies: PolicyStore
    masking: PolicyStore
    gate: Gate
    lineage: Lineage
    metrics: JobMetrics | None
    shedder: LoadShedder

    def __init__(self, ks: KnowledgeSettings, settings: Settings) -> None:
        self.ks, self.settings = ks, settings
        self.opened = self.closed = False

    def open(self) -> KnowledgeResources:
        if self.opened:
            return self
        ks, settings = self.ks, self.settings
        configure_logging(settings.log_level)
        if settings.kafka_mode:  # credentials, TLS trust and rights first: refused, the job stops at once
            check_job_access(settings, "knowledge", ks)
        lower_priority(ks.nice)
        self.masking = settings.policy_store()
        suites = load_suites(settings.quality_suites)
        self.gate = Gate(suites)
        if settings.kafka_mode and settings.create_topics and ks.create_topics:
            # Card feedback is the console's and the report's: created here when this client may.
            ensure_topics(
                settings, specs=topic_specs(ks, settings), for_others=frozenset({ks.topic_feedback})
            )
        if not settings.kafka_mode:
            Path(ks.output_dir).mkdir(parents=True, exist_ok=True)
        self.reranker = load_reranker(ks.ranker)
        self.store = IndexStore(ks, settings, self.reranker)
        self.policies = PolicyStore(
            ks.policy,
            reload_s=settings.policy_reload_s,
            brokers=settings.brokers if settings.kafka_mode else None,
            topic=ks.policy_topic,
            kafka_config=settings.kafka_client(),
            parser=parse_knowledge_policy,
        )
        # The store parses with parse_knowledge_policy, so what it holds is a KnowledgePolicy.
        policy = cast(KnowledgePolicy, self.policies.current())
        self.lineage, name = knowledge_lineage(ks, settings, self.reranker, policy,
                                               [suite.label for suite in suites.values()])
        self.lineage.versions[name] = self.store.index.kb_version
        self.store.on_swap.append(lambda index: self.lineage.versions.__setitem__(name, index.kb_version))
        self.lineage.start()
        self.store.start()
        self.metrics = start_metrics(settings)
        self.shedder = LoadShedder(ks.shed_config(), arrived_s=lambda ask: ask.arrived_s)
        self.opened = True
        return self

    def close(self, error: BaseException | None = None) -> None:
        if not self.opened or self.closed:
            return
        self.closed = True
        self.store.close()
        self.policies.close()
        self.masking.close()
        if self.metrics is not None and self.metrics.lag is not None:
            self.metrics.lag.stop()
        end_run(self.lineage, error)

    def close_at_exit(self) -> None:
        """Close when the process ends (the lineage exit hooks say how it ended)."""
        install_exit_hooks()
        atexit.register(lambda: self.close(ending_error()))

    def __enter__(self) -> KnowledgeResources:
        return self.open()

    def __exit__(self, kind, error, tb) -> None:
        self.close(error)

    @property
    def redactor(self):
        """The coaching policy's PII redactor (read per batch: a new policy takes over at once)."""
        return self.masking.current().redactor
