"""The reference agent console: live suggestions and alerts for one agent, with feedback.

A background thread reads ``coaching.suggestions`` and ``coaching.alerts``
(and ``coaching.acceptance``, to show what the job counted) with
confluent-kafka, keeps the agent's recent conversations in memory and hands
each new record to the page over server-sent events (``GET /events``). The
page's accept and dismiss buttons ``POST /api/feedback``; the server builds a
:class:`schemas.feedback.Feedback` record, validates it and produces it to
``coaching.feedback`` keyed by the conversation id, as any agent UI would.

Topics and brokers come from the job's ``COACH_*`` variables (``COACH_BROKERS``,
``COACH_TOPIC_SUGGESTIONS``, ``COACH_TOPIC_ALERTS``, ``COACH_TOPIC_FEEDBACK``,
``COACH_TOPIC_ACCEPTANCE``), so a console points at whatever the job uses.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from schemas import Alert, Suggestion
from schemas import topics as catalog
from schemas.feedback import Acceptance, Feedback

log = logging.getLogger("coachflow.console")

#: How many conversations the console keeps in memory (oldest dropped first).
MAX_CONVERSATIONS = 200
#: Suggestions and alerts kept per conversation.
MAX_ITEMS = 100
VERDICTS = ("accepted", "dismissed")


@dataclass(frozen=True)
class ConsoleConfig:
    brokers: str
    agent: str | None
    topic_suggestions: str = catalog.topic("suggestions").default
    topic_alerts: str = catalog.topic("alerts").default
    topic_feedback: str = catalog.topic("feedback").default
    topic_acceptance: str = catalog.topic("acceptance").default
    host: str = "127.0.0.1"
    port: int = 8765
    since_s: float = 900.0
    kafka_config: dict[str, Any] = field(default_factory=dict, repr=False)
    """The clients' librdkafka configuration (``Settings.kafka_client``: brokers and credentials)."""


def config_from(args: argparse.Namespace) -> ConsoleConfig:
    """Brokers and topics as the job reads them (``COACH_*``), with the command line's overrides."""
    from coachflow.config import Settings

    settings = Settings()
    brokers = args.brokers or settings.brokers
    if not brokers:
        raise SystemExit("console: give --brokers or set COACH_BROKERS")
    return ConsoleConfig(
        brokers=brokers,
        agent=args.agent,
        topic_suggestions=settings.topic_suggestions,
        topic_alerts=settings.topic_alerts,
        topic_feedback=settings.topic_feedback,
        topic_acceptance=settings.topic_acceptance,
        host=args.host,
        port=args.port,
        since_s=args.since_s,
        kafka_config=settings.model_copy(update={"brokers": brokers}).kafka_client(),
    )


def feedback_id(suggestion_id: str, event: str) -> str:
    """Deterministic per suggestion and verdict, so a repeated click is a duplicate the job drops."""
    return "fb-" + hashlib.sha256(f"{suggestion_id}|{event}".encode()).hexdigest()[:32]


class Board:
    """The agents' recent conversations: suggestions, alerts, verdicts and what the job counted.

    Touched only from the event loop; the Kafka thread hands records over with
    ``call_soon_threadsafe``.
    """

    def __init__(self, agent: str | None) -> None:
        self.agent = agent
        self.conversations: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.suggestions: dict[str, Suggestion] = {}
        self.verdicts: dict[str, str] = {}
        self.feedback: dict[str, dict[str, Any]] = {}
        self.subscribers: set[tuple[str | None, asyncio.Queue]] = set()

    def wants(self, agent_id: str) -> bool:
        return self.agent is None or agent_id == self.agent

    def _conversation(self, record: Suggestion | Alert) -> dict[str, Any]:
        conv = self.conversations.get(record.conversation_id)
        if conv is None:
            conv = {"conversation_id": record.conversation_id, "agent_id": record.agent_id,
                    "customer_id": record.customer_id, "suggestions": [], "alerts": []}
            self.conversations[record.conversation_id] = conv
            while len(self.conversations) > MAX_CONVERSATIONS:
                _, old = self.conversations.popitem(last=False)
                for s in old["suggestions"]:
                    self.suggestions.pop(s["suggestion_id"], None)
                    self.verdicts.pop(s["suggestion_id"], None)
                    self.feedback.pop(s["suggestion_id"], None)
        else:
            self.conversations.move_to_end(record.conversation_id)
        return conv

    def add(self, kind: str, record: Suggestion | Alert | Acceptance) -> None:
        if not self.wants(record.agent_id):
            return
        if kind == "suggestion":
            if record.suggestion_id in self.suggestions:  # at-least-once: drop duplicates by id
                return
            conv = self._conversation(record)
            self.suggestions[record.suggestion_id] = record
            item = record.model_dump(mode="json")
            conv["suggestions"] = (conv["suggestions"] + [item])[-MAX_ITEMS:]
        elif kind == "alert":
            conv = self._conversation(record)
            if any(a["alert_id"] == record.alert_id for a in conv["alerts"]):
                return
            item = record.model_dump(mode="json")
            conv["alerts"] = (conv["alerts"] + [item])[-MAX_ITEMS:]
        elif kind == "acceptance":
            conv = self.conversations.get(record.conversation_id)
            if conv is None:
                return
            item = record.model_dump(mode="json")
            for s in conv["suggestions"]:
                if s["suggestion_id"] == record.suggestion_id:
                    s.setdefault("counted", {})[record.mode] = item  # click and inferred are separate
        else:
            raise ValueError(f"unknown record kind {kind}")
        self.broadcast(kind, item)

    def broadcast(self, kind: str, item: dict[str, Any]) -> None:
        for agent, queue in list(self.subscribers):
            if agent is None or agent == item.get("agent_id"):
                queue.put_nowait((kind, item))

    def snapshot(self, agent: str | None) -> list[dict[str, Any]]:
        convs = [c for c in self.conversations.values() if agent is None or c["agent_id"] == agent]
        out = []
        for conv in convs:
            conv = dict(conv)
            conv["suggestions"] = [
                {**s, "verdict": self.verdicts.get(s["suggestion_id"])} for s in conv["suggestions"]
            ]
            out.append(conv)
        return out


class KafkaReader(threading.Thread):
    """Reads the output topics from ``since_s`` ago onwards (no consumer group, no commits)."""

    def __init__(self, config: ConsoleConfig, deliver) -> None:
        super().__init__(name="console-kafka", daemon=True)
        self.config = config
        self.deliver = deliver
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.kinds = {
            config.topic_suggestions: ("suggestion", Suggestion),
            config.topic_alerts: ("alert", Alert),
            config.topic_acceptance: ("acceptance", Acceptance),
        }

    def run(self) -> None:
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({
            "bootstrap.servers": self.config.brokers,
            "group.id": f"coach-console-{os.getpid()}-{time.time_ns()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **self.config.kafka_config,
        })
        assigned: set[str] = set()
        warned: set[str] = set()
        next_check = 0.0
        try:
            while not self.stopping.is_set():
                if len(assigned) < len(self.kinds) and time.monotonic() >= next_check:
                    # Topics that do not exist yet (the acceptance topic before the job makes it)
                    # are looked for again every few seconds.
                    new = self._partitions(consumer, [t for t in self.kinds if t not in assigned])
                    for topic in set(self.kinds) - assigned - {t for t, _, _ in new} - warned:
                        log.info("console: topic %s does not exist yet; looking again every 5 s", topic)
                        warned.add(topic)
                    if new:
                        consumer.incremental_assign([TopicPartition(t, p, o) for t, p, o in new])
                        assigned |= {t for t, _, _ in new}
                        log.info("console: reading %s", ", ".join(sorted(assigned)))
                    if self.config.topic_suggestions in assigned:
                        self.ready.set()
                    next_check = time.monotonic() + 5.0
                for msg in consumer.consume(500, 0.25):
                    if msg.error():
                        log.warning("console: %s", msg.error())
                        continue
                    kind, model = self.kinds[msg.topic()]
                    try:
                        record = model.model_validate_json(msg.value())
                    except ValidationError as exc:
                        log.warning("console: skipped an invalid %s record at %s[%d]@%d: %s", kind,
                                    msg.topic(), msg.partition(), msg.offset(), exc.errors()[:1])
                        continue
                    self.deliver(kind, record)
        except Exception:  # noqa: BLE001 - log it; the page shows the console as disconnected
            log.exception("console: the Kafka reader stopped")
        finally:
            consumer.close()

    def _partitions(self, consumer, topics: list[str]) -> list[tuple[str, int, int]]:
        from confluent_kafka import TopicPartition

        found = []
        since_ms = int((time.time() - self.config.since_s) * 1000)
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
            if meta is None or meta.error is not None or not meta.partitions:
                continue
            wanted = [TopicPartition(topic, p, since_ms) for p in meta.partitions]
            for tp in consumer.offsets_for_times(wanted, timeout=5):
                # -1: nothing that recent; start at the end.
                found.append((topic, tp.partition, tp.offset if tp.offset >= 0 else -1))
        return found


class Console:
    def __init__(self, config: ConsoleConfig) -> None:
        self.config = config
        self.board = Board(config.agent)
        self.reader: KafkaReader | None = None
        self.producer = None

    # -- lifecycle ------------------------------------------------------------
    async def start(self, app: web.Application) -> None:
        from confluent_kafka import Producer

        loop = asyncio.get_running_loop()
        self.producer = Producer({"bootstrap.servers": self.config.brokers, "enable.idempotence": True,
                                  "linger.ms": 0, **self.config.kafka_config})

        def deliver(kind: str, record: Any) -> None:
            loop.call_soon_threadsafe(self.board.add, kind, record)

        self.reader = KafkaReader(self.config, deliver)
        self.reader.start()

    async def stop(self, app: web.Application) -> None:
        for _, queue in list(self.board.subscribers):
            queue.put_nowait(None)
        if self.reader is not None:
            self.reader.stopping.set()
            await asyncio.to_thread(self.reader.join, 3)
        if self.producer is not None:
            await asyncio.to_thread(self.producer.flush, 10)

    # -- HTTP -------------------------------------------------------------------
    def _agent(self, request: web.Request) -> str | None:
        agent = request.query.get("agent") or self.config.agent
        if self.config.agent and agent != self.config.agent:
            raise web.HTTPForbidden(text=f"this console serves agent {self.config.agent} only")
        return agent

    async def index(self, request: web.Request) -> web.Response:
        page = resources.files("console").joinpath("static/index.html").read_text(encoding="utf-8")
        return web.Response(text=page, content_type="text/html")

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        types = {"js": "application/javascript", "css": "text/css"}
        kind = types.get(name.rsplit(".", 1)[-1])
        res = resources.files("console").joinpath("static", name)
        if kind is None or "/" in name or not res.is_file():
            raise web.HTTPNotFound()
        return web.Response(text=res.read_text(encoding="utf-8"), content_type=kind)

    async def health(self, request: web.Request) -> web.Response:
        ready = self.reader is not None and self.reader.ready.is_set() and self.reader.is_alive()
        return web.json_response({"ready": ready, "agent": self.config.agent},
                                 status=200 if ready else 503)

    async def config_json(self, request: web.Request) -> web.Response:
        return web.json_response({"agent": self._agent(request), "topics": {
            "suggestions": self.config.topic_suggestions, "alerts": self.config.topic_alerts,
            "feedback": self.config.topic_feedback, "acceptance": self.config.topic_acceptance,
        }})

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: a ``snapshot`` first, then ``suggestion``, ``alert``,
        ``feedback`` and ``acceptance`` events as they happen."""
        agent = self._agent(request)
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
        })
        await response.prepare(request)
        queue: asyncio.Queue = asyncio.Queue()
        entry = (agent, queue)
        self.board.subscribers.add(entry)
        try:
            await self._send(response, "snapshot", {"agent": agent, "conversations": self.board.snapshot(agent)})
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), 15)
                except asyncio.TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if item is None:
                    break
                await self._send(response, *item)
        except ConnectionResetError:  # the page went away
            pass
        finally:
            self.board.subscribers.discard(entry)
        return response

    @staticmethod
    async def _send(response: web.StreamResponse, kind: str, data: Any) -> None:
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        await response.write(f"event: {kind}\ndata: {body}\n\n".encode())

    async def feedback(self, request: web.Request) -> web.Response:
        """``{"suggestion_id": ..., "event": "accepted" | "dismissed"}`` -> a Feedback record."""
        try:
            body = await request.json()
            suggestion_id, event = body["suggestion_id"], body["event"]
        except (ValueError, KeyError, TypeError):
            raise web.HTTPBadRequest(text='expected {"suggestion_id": ..., "event": "accepted"|"dismissed"}') from None
        if event not in VERDICTS:
            raise web.HTTPBadRequest(text=f"event must be one of {', '.join(VERDICTS)}")
        suggestion = self.board.suggestions.get(suggestion_id)
        if suggestion is None:
            raise web.HTTPNotFound(text=f"no suggestion {suggestion_id} on this console")
        self._agent(request)
        earlier = self.board.verdicts.get(suggestion_id)
        if earlier is not None:
            if earlier != event:
                raise web.HTTPConflict(text=f"suggestion {suggestion_id} was already {earlier}")
            # A repeated click (or a reloaded page): already on the topic, nothing more to send.
            return web.json_response(self.board.feedback[suggestion_id], status=200)
        record = Feedback(
            feedback_id=feedback_id(suggestion_id, event),
            suggestion_id=suggestion_id,
            conversation_id=suggestion.conversation_id,
            agent_id=suggestion.agent_id,
            event=event,
            at=datetime.now(timezone.utc),
        )
        # Validated against the contract as a consumer would read it.
        value = record.model_dump_json().encode()
        Feedback.model_validate_json(value)
        await self._produce(self.config.topic_feedback, suggestion.conversation_id.encode(), value)
        self.board.verdicts[suggestion_id] = event
        item = record.model_dump(mode="json")
        self.board.feedback[suggestion_id] = item
        self.board.broadcast("feedback", item)
        return web.json_response(item, status=201)

    async def _produce(self, topic: str, key: bytes, value: bytes) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()

        def delivered(err, _msg) -> None:
            loop.call_soon_threadsafe(
                lambda: done.done() or (done.set_exception(RuntimeError(str(err))) if err else done.set_result(None))
            )

        self.producer.produce(topic, key=key, value=value, on_delivery=delivered)
        # Serve delivery callbacks until this record is acknowledged.
        deadline = time.monotonic() + 30
        while not done.done():
            await asyncio.to_thread(self.producer.poll, 0.1)
            if time.monotonic() > deadline:
                raise web.HTTPServiceUnavailable(text=f"Kafka did not acknowledge the feedback on {topic}")
        try:
            done.result()
        except RuntimeError as exc:
            raise web.HTTPServiceUnavailable(text=f"Kafka refused the feedback: {exc}") from exc


CONSOLE = web.AppKey("console", Console)


def build_app(config: ConsoleConfig) -> web.Application:
    console = Console(config)
    app = web.Application()
    app[CONSOLE] = console
    app.on_startup.append(console.start)
    app.on_shutdown.append(console.stop)
    app.router.add_get("/", console.index)
    app.router.add_get("/static/{name}", console.static)
    app.router.add_get("/healthz", console.health)
    app.router.add_get("/api/config", console.config_json)
    app.router.add_get("/events", console.events)
    app.router.add_post("/api/feedback", console.feedback)
    return app


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m console",
        description="The reference agent console: live suggestions and alerts for one agent, "
        "with accept and dismiss buttons that write coaching.feedback.",
    )
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--brokers", default=None, help="Kafka bootstrap servers (default: COACH_BROKERS)")
    p.add_argument("--agent", default=None,
                   help="the agent whose conversations to show (default: any, chosen with ?agent= on the page)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port to listen on (default: 8765)")
    p.add_argument("--since-s", type=float, default=900.0,
                   help="on start, show records from this many seconds back (default: 900)")


def run(args: argparse.Namespace) -> int:
    """Entry point for `python -m console` (and a `coach console` subcommand)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = config_from(args)
    log.info("console: agent %s on http://%s:%d/ (brokers %s; feedback -> %s)",
             config.agent or "(any)", config.host, config.port, config.brokers, config.topic_feedback)
    web.run_app(build_app(config), host=config.host, port=config.port, print=None,
                access_log=None, shutdown_timeout=5)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(parser().parse_args(argv))
