"""The reference agent console: live suggestions and alerts for the signed-in agent, with feedback.

A background thread reads ``coaching.suggestions`` and ``coaching.alerts``
(and ``coaching.acceptance``, to show what the job counted) with
confluent-kafka, keeps the recent conversations in memory and hands each new
record to the pages allowed to see it over server-sent events (``GET /events``).
Every request but the page, its static files and ``/healthz`` carries a bearer
token (:mod:`console.auth`): an agent sees and judges their own conversations,
a supervisor sees their team's, read-only. The page's accept and dismiss buttons
``POST /api/feedback``; the server builds a :class:`schemas.feedback.Feedback`
record, validates it and produces it to ``coaching.feedback`` keyed by the
conversation id, as any agent UI would.

Topics and brokers come from the job's ``COACH_*`` variables (``COACH_BROKERS``,
``COACH_TOPIC_SUGGESTIONS``, ``COACH_TOPIC_ALERTS``, ``COACH_TOPIC_FEEDBACK``,
``COACH_TOPIC_ACCEPTANCE``), so a console points at whatever the job uses.

Beside the suggestions it shows the knowledge job's cards (``coaching.knowledge``,
``COACH_KNOWLEDGE_TOPIC_CARDS``) with their citation; accept and dismiss on a
card ``POST /api/card-feedback`` and produce a :class:`schemas.knowledge.CardFeedback`
to ``coaching.knowledge.feedback`` (``COACH_KNOWLEDGE_TOPIC_FEEDBACK``), under the
same rules as suggestions: only the agent a card was made for judges it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from coachflow.kafka_log import client_config
from console.auth import (
    DEFAULT_TTL_S,
    AuthConfig,
    Forbidden,
    KeyConfigError,
    Principal,
    TokenRefused,
    Verifier,
    caller_ref,
    dev_key_path,
    dev_private_key,
    load_teams,
    mint,
    parse_duration,
    principal,
)
from schemas import Alert, Suggestion
from schemas import topics as catalog
from schemas.feedback import Acceptance, Feedback
from schemas.knowledge import CardFeedback, KnowledgeCard

log = logging.getLogger("coachflow.console")

#: How many conversations the console keeps in memory by default (oldest dropped first).
MAX_CONVERSATIONS = 2000
#: Suggestions and alerts kept per conversation.
MAX_ITEMS = 100
#: Events queued for one page before it is cut off (it reconnects and gets a fresh snapshot).
MAX_QUEUED = 1000
VERDICTS = ("accepted", "dismissed")
MAX_ID_CHARS = 128
#: Sent on every response: no inline script or style, no framing, no plugins, no referrer.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class ConsoleConfig:
    brokers: str
    topic_suggestions: str = catalog.topic("suggestions").default
    topic_alerts: str = catalog.topic("alerts").default
    topic_feedback: str = catalog.topic("feedback").default
    topic_acceptance: str = catalog.topic("acceptance").default
    topic_cards: str = catalog.topic("knowledge").default
    topic_card_feedback: str = catalog.topic("knowledge_feedback").default
    host: str = "127.0.0.1"
    port: int = 8765
    since_s: float = 900.0
    max_conversations: int = MAX_CONVERSATIONS
    kafka_config: dict[str, Any] = field(default_factory=dict, repr=False)
    """The clients' librdkafka configuration (``Settings.kafka_client``: brokers and credentials)."""
    auth: AuthConfig = field(default_factory=AuthConfig)

    def kafka(self, **settings: Any) -> dict[str, Any]:
        """The configuration of every Kafka client of the console: brokers, the client's own
        settings, then ``kafka_config`` (``Settings.kafka_client``: properties and credentials) over both."""
        return client_config({"bootstrap.servers": self.brokers, **settings, **self.kafka_config})


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def config_from(args: argparse.Namespace) -> ConsoleConfig:
    """Brokers and topics as the job reads them (``COACH_*``), with the command line's overrides."""
    from coachflow.config import Settings
    from coachflow.knowledge_config import KnowledgeSettings

    settings, knowledge = Settings(), KnowledgeSettings()
    brokers = args.brokers or settings.brokers
    if not brokers:
        raise SystemExit("console: give --brokers or set COACH_BROKERS")
    return ConsoleConfig(
        brokers=brokers,
        topic_suggestions=settings.topic_suggestions,
        topic_alerts=settings.topic_alerts,
        topic_feedback=settings.topic_feedback,
        topic_acceptance=settings.topic_acceptance,
        topic_cards=knowledge.topic_cards,
        topic_card_feedback=knowledge.topic_feedback,
        host=args.host,
        port=args.port,
        since_s=args.since_s,
        max_conversations=args.max_conversations,
        kafka_config=settings.model_copy(update={"brokers": brokers}).kafka_client(),
        auth=auth_from(args),
    )


def auth_from(args: argparse.Namespace) -> AuthConfig:
    return AuthConfig(
        public_key=_path(args.jwt_public_key), secret_file=_path(args.jwt_secret_file), jwks=_path(args.jwks),
        algorithm=args.jwt_algorithm or None, issuer=args.issuer or None, audience=args.audience or None,
        teams=_path(args.teams), dev_key=_path(args.dev_key),
    )


def feedback_id(suggestion_id: str, event: str) -> str:
    """Deterministic per suggestion and verdict, so a repeated click is a duplicate the job drops."""
    return "fb-" + hashlib.sha256(f"{suggestion_id}|{event}".encode()).hexdigest()[:32]


def card_feedback_id(card_id: str, event: str) -> str:
    """Deterministic per card and verdict, so a repeated click is a duplicate the report drops."""
    return "cfb-" + hashlib.sha256(f"card|{card_id}|{event}".encode()).hexdigest()[:32]


class Subscriber:
    """One open event stream: whose conversations it may see, and its queue."""

    def __init__(self, agents: frozenset[str]) -> None:
        self.agents = agents
        self.queue: asyncio.Queue = asyncio.Queue(MAX_QUEUED)
        self.ended = False

    def put(self, item: tuple[str, dict[str, Any]] | None) -> None:
        """Queue an event; ``None`` ends the stream. A page that does not read is ended (it
        reconnects and gets a fresh snapshot) rather than buffered for without bound."""
        if self.ended:
            return
        if item is not None and self.queue.qsize() < MAX_QUEUED - 1:
            self.queue.put_nowait(item)
            return
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)
        self.ended = True


class Board:
    """The agents' recent conversations: suggestions, alerts, verdicts and what the job counted.

    Touched only from the event loop; the Kafka thread hands records over with
    ``call_soon_threadsafe``. Each record goes only to the streams whose caller sees its agent.
    """

    def __init__(self, max_conversations: int = MAX_CONVERSATIONS) -> None:
        self.max_conversations = max_conversations
        self.conversations: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.suggestions: dict[str, Suggestion] = {}
        self.verdicts: dict[str, str] = {}
        self.feedback: dict[str, dict[str, Any]] = {}
        self.cards: dict[str, KnowledgeCard] = {}
        self.subscribers: set[Subscriber] = set()

    def _conversation(self, record: Suggestion | Alert | KnowledgeCard) -> dict[str, Any]:
        conv = self.conversations.get(record.conversation_id)
        if conv is None:
            conv = {"conversation_id": record.conversation_id, "customer_id": record.customer_id,
                    "suggestions": [], "alerts": [], "cards": []}
            self.conversations[record.conversation_id] = conv
            while len(self.conversations) > self.max_conversations:
                _, old = self.conversations.popitem(last=False)
                for s in old["suggestions"]:
                    self.suggestions.pop(s["suggestion_id"], None)
                    self.verdicts.pop(s["suggestion_id"], None)
                    self.feedback.pop(s["suggestion_id"], None)
                for c in old["cards"]:
                    self.cards.pop(c["card_id"], None)
                    self.verdicts.pop(c["card_id"], None)
                    self.feedback.pop(c["card_id"], None)
        else:
            self.conversations.move_to_end(record.conversation_id)
        return conv

    def add(self, kind: str, record: Suggestion | Alert | Acceptance | KnowledgeCard) -> None:
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
        elif kind == "card":
            if record.card_id in self.cards:
                return
            conv = self._conversation(record)
            self.cards[record.card_id] = record
            item = record.model_dump(mode="json")
            conv["cards"] = (conv["cards"] + [item])[-MAX_ITEMS:]
        elif kind == "acceptance":
            conv = self.conversations.get(record.conversation_id)
            if conv is None:
                return
            item = record.model_dump(mode="json")
            for s in conv["suggestions"]:
                if s["suggestion_id"] == record.suggestion_id and s["agent_id"] == record.agent_id:
                    s.setdefault("counted", {})[record.mode] = item  # click and inferred are separate
        else:
            raise ValueError(f"unknown record kind {kind}")
        self.broadcast(kind, item)

    def broadcast(self, kind: str, item: dict[str, Any]) -> None:
        for subscriber in list(self.subscribers):
            if item.get("agent_id") in subscriber.agents:
                subscriber.put((kind, item))

    def snapshot(self, agents: frozenset[str]) -> list[dict[str, Any]]:
        """The conversations with items for ``agents``, holding only those items (a conversation
        handed from one agent to another shows each agent their own part)."""
        out = []
        for conv in self.conversations.values():
            suggestions = [{**s, "verdict": self.verdicts.get(s["suggestion_id"])}
                           for s in conv["suggestions"] if s["agent_id"] in agents]
            alerts = [a for a in conv["alerts"] if a["agent_id"] in agents]
            cards = [{**c, "verdict": self.verdicts.get(c["card_id"])}
                     for c in conv["cards"] if c["agent_id"] in agents]
            if suggestions or alerts or cards:
                out.append({**conv, "suggestions": suggestions, "alerts": alerts, "cards": cards})
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
            config.topic_cards: ("card", KnowledgeCard),
        }

    def run(self) -> None:
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer(self.config.kafka(**{
            "group.id": f"coach-console-{os.getpid()}-{time.time_ns()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }))
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
                        # Where and what kind of error only: the offending value may be personal data.
                        errors = [(".".join(map(str, e["loc"])), e["type"]) for e in exc.errors()[:3]]
                        log.warning("console: skipped an invalid %s record at %s[%d]@%d: %s", kind,
                                    msg.topic(), msg.partition(), msg.offset(), errors)
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


PRINCIPAL = web.RequestKey("principal", Principal)


def _public(path: str) -> bool:
    """The page, its static files, the browser's icon request and the health check need no
    token; everything else does."""
    return path in ("/", "/healthz", "/favicon.ico") or path.startswith("/static/")


def _route(request: web.Request) -> str:
    """The route a request matched, for log lines (a raw path is the caller's text)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(no such route)"


def _refusal(status: int, error: str, reason: str, message: str) -> web.Response:
    headers = {}
    if status == web.HTTPUnauthorized.status_code:
        # RFC 6750: no error code when the request had no credentials at all.
        code = "" if reason == "missing_token" else f', error="{error}"'
        headers["WWW-Authenticate"] = f'Bearer realm="coachflow-console"{code}'
    return web.json_response({"error": error, "reason": reason, "message": message},
                             status=status, headers=headers)


async def _no_content(_request: web.Request) -> web.Response:
    return web.Response(status=204)


class Console:
    def __init__(self, config: ConsoleConfig, verifier: Verifier | None = None,
                 teams: dict[str, frozenset[str]] | None = None) -> None:
        self.config = config
        self.verifier = verifier or config.auth.verifier()
        self.teams = load_teams(config.auth.teams) if teams is None else teams
        self.board = Board(config.max_conversations)
        self.reader: KafkaReader | None = None
        self.producer = None

    # -- lifecycle ------------------------------------------------------------
    async def start(self, app: web.Application) -> None:
        from confluent_kafka import Producer

        loop = asyncio.get_running_loop()
        self.producer = Producer(self.config.kafka(**{"enable.idempotence": True, "linger.ms": 0}))

        def deliver(kind: str, record: Any) -> None:
            loop.call_soon_threadsafe(self.board.add, kind, record)

        self.reader = KafkaReader(self.config, deliver)
        self.reader.start()

    async def stop(self, app: web.Application) -> None:
        for subscriber in list(self.board.subscribers):
            subscriber.put(None)
        if self.reader is not None:
            self.reader.stopping.set()
            await asyncio.to_thread(self.reader.join, 3)
        if self.producer is not None:
            await asyncio.to_thread(self.producer.flush, 10)

    # -- who is asking ------------------------------------------------------------
    @web.middleware
    async def authenticate(self, request: web.Request, handler) -> web.StreamResponse:
        """Every route but the public ones needs ``Authorization: Bearer <token>`` (nothing else:
        no cookie, no query parameter), verified, and a caller who sees someone."""
        if _public(request.path):
            return await handler(request)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer" or not token.strip():
                raise TokenRefused("missing_token", "send Authorization: Bearer <token>")
            claims = self.verifier.verify(token.strip())
        except TokenRefused as exc:
            log.warning("console: refused a token for %s %s: %s", request.method, _route(request), exc.reason)
            return _refusal(401, "invalid_token", exc.reason, "the token was refused: " + exc.reason)
        try:
            caller = principal(claims, self.teams)
        except Forbidden as exc:
            log.warning("console: refused %s %s for %s (%s): %s", request.method, _route(request),
                        caller_ref(claims.sub), claims.role, exc.reason)
            return _refusal(403, "forbidden", exc.reason, exc.detail or exc.reason)
        request[PRINCIPAL] = caller
        return await handler(request)

    @staticmethod
    async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in SECURITY_HEADERS.items():
            response.headers[name] = value

    # -- HTTP -------------------------------------------------------------------
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
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    async def config_json(self, request: web.Request) -> web.Response:
        """Who the caller is and what they may do."""
        caller = request[PRINCIPAL]
        return web.json_response({
            "agent": caller.agent_id, "role": caller.role, "agents": sorted(caller.agents),
            "may_judge": caller.may_judge,
            "expires_at": datetime.fromtimestamp(caller.expires_at, UTC).isoformat(),
        })

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: a ``snapshot`` first, then ``suggestion``, ``alert``, ``feedback``
        and ``acceptance`` events for the caller's agents as they happen; ``expired`` and the
        end of the stream when the caller's token expires."""
        caller = request[PRINCIPAL]
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"})
        await response.prepare(request)
        subscriber = Subscriber(caller.agents)
        self.board.subscribers.add(subscriber)
        try:
            await self._send(response, "snapshot", {
                "agent": caller.agent_id, "role": caller.role, "may_judge": caller.may_judge,
                "conversations": self.board.snapshot(caller.agents),
            })
            while True:
                left = caller.expires_at - time.time()
                if left <= 0:
                    await self._send(response, "expired", {"agent": caller.agent_id})
                    break
                try:
                    item = await asyncio.wait_for(subscriber.queue.get(), min(15.0, left))
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if item is None:
                    break
                await self._send(response, *item)
        except ConnectionResetError:  # the page went away
            pass
        finally:
            self.board.subscribers.discard(subscriber)
        return response

    @staticmethod
    async def _send(response: web.StreamResponse, kind: str, data: Any) -> None:
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        await response.write(f"event: {kind}\ndata: {body}\n\n".encode())

    def _refuse_feedback(self, caller: Principal, reason: str, what: str) -> web.Response:
        log.warning("console: refused feedback from %s (%s) on %s: %s",
                    caller_ref(caller.agent_id), caller.role, what, reason)
        messages = {"read_only": "a supervisor's view is read-only",
                    "not_your_suggestion": "this suggestion is not one of yours on this console",
                    "not_your_card": "this card is not one of yours on this console"}
        return _refusal(403, "forbidden", reason, messages[reason])

    async def feedback(self, request: web.Request) -> web.Response:
        """``{"suggestion_id": ..., "event": "accepted" | "dismissed"}`` -> a Feedback record.

        Only the agent a suggestion was made for judges it; a suggestion of another agent's and
        one the console does not know are refused alike (403), so ids cannot be probed."""
        caller = request[PRINCIPAL]
        try:
            body = await request.json()
            suggestion_id, event = body["suggestion_id"], body["event"]
        except (ValueError, KeyError, TypeError):
            raise web.HTTPBadRequest(
                text='expected {"suggestion_id": ..., "event": "accepted"|"dismissed"}') from None
        if not isinstance(suggestion_id, str) or not 0 < len(suggestion_id) <= MAX_ID_CHARS:
            raise web.HTTPBadRequest(text=f"suggestion_id must be a string of 1 to {MAX_ID_CHARS} characters")
        if event not in VERDICTS:
            raise web.HTTPBadRequest(text=f"event must be one of {', '.join(VERDICTS)}")
        suggestion = self.board.suggestions.get(suggestion_id)
        # Only ids the job made reach the log; a caller's unknown id is not repeated there.
        what = f"suggestion {suggestion_id}" if suggestion is not None else "an unknown suggestion id"
        if not caller.may_judge:
            return self._refuse_feedback(caller, "read_only", what)
        if suggestion is None:
            return self._refuse_feedback(caller, "not_your_suggestion", what)
        if suggestion.agent_id != caller.agent_id:
            return self._refuse_feedback(caller, "not_your_suggestion", what + " of another agent")
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
            at=datetime.now(UTC),
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

    async def card_feedback(self, request: web.Request) -> web.Response:
        """``{"card_id": ..., "event": "accepted" | "dismissed"}`` -> a CardFeedback record on the
        card feedback topic, under the rules of ``feedback``."""
        caller = request[PRINCIPAL]
        try:
            body = await request.json()
            card_id, event = body["card_id"], body["event"]
        except (ValueError, KeyError, TypeError):
            raise web.HTTPBadRequest(
                text='expected {"card_id": ..., "event": "accepted"|"dismissed"}'
            ) from None
        if not isinstance(card_id, str) or not 0 < len(card_id) <= MAX_ID_CHARS:
            raise web.HTTPBadRequest(text=f"card_id must be a string of 1 to {MAX_ID_CHARS} characters")
        if event not in VERDICTS:
            raise web.HTTPBadRequest(text=f"event must be one of {', '.join(VERDICTS)}")
        card = self.board.cards.get(card_id)
        what = f"card {card_id}" if card is not None else "an unknown card id"
        if not caller.may_judge:
            return self._refuse_feedback(caller, "read_only", what)
        if card is None or card.agent_id != caller.agent_id:
            return self._refuse_feedback(caller, "not_your_card", what)
        earlier = self.board.verdicts.get(card_id)
        if earlier is not None:
            if earlier != event:
                raise web.HTTPConflict(text=f"card {card_id} was already {earlier}")
            return web.json_response(self.board.feedback[card_id], status=200)
        record = CardFeedback(feedback_id=card_feedback_id(card_id, event), card_id=card_id,
                              conversation_id=card.conversation_id, agent_id=card.agent_id, event=event,
                              at=datetime.now(UTC))
        value = record.model_dump_json().encode()
        CardFeedback.model_validate_json(value)
        await self._produce(self.config.topic_card_feedback, card.conversation_id.encode(), value)
        self.board.verdicts[card_id] = event
        item = record.model_dump(mode="json")
        self.board.feedback[card_id] = item
        self.board.broadcast("card_feedback", item)
        return web.json_response(item, status=201)

    async def _produce(self, topic: str, key: bytes, value: bytes) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()

        def delivered(err, _msg) -> None:
            def settle() -> None:
                if done.done():
                    return
                if err:
                    done.set_exception(RuntimeError(str(err)))
                else:
                    done.set_result(None)

            loop.call_soon_threadsafe(settle)

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


def build_app(config: ConsoleConfig, verifier: Verifier | None = None,
              teams: dict[str, frozenset[str]] | None = None) -> web.Application:
    console = Console(config, verifier, teams)
    app = web.Application(middlewares=[console.authenticate], client_max_size=64 * 1024)
    app[CONSOLE] = console
    app.on_startup.append(console.start)
    app.on_shutdown.append(console.stop)
    app.on_response_prepare.append(console.security_headers)
    app.router.add_get("/", console.index)
    app.router.add_get("/static/{name}", console.static)
    app.router.add_get("/healthz", console.health)
    app.router.add_get("/favicon.ico", _no_content)
    app.router.add_get("/api/config", console.config_json)
    app.router.add_get("/events", console.events)
    app.router.add_post("/api/feedback", console.feedback)
    app.router.add_post("/api/card-feedback", console.card_feedback)
    return app


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m console",
        description="The reference agent console: live suggestions and alerts for the signed-in agent, "
        "with accept and dismiss buttons that write coaching.feedback.",
    )
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    env = os.environ.get
    p.add_argument("--brokers", default=None, help="Kafka bootstrap servers (default: COACH_BROKERS)")
    # Gone: the token says who the caller is. Kept only to say so to those who still give it.
    p.add_argument("--agent", dest="server_agent", default=None, help=argparse.SUPPRESS)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port to listen on (default: 8765)")
    p.add_argument("--since-s", type=float, default=900.0,
                   help="on start, show records from this many seconds back (default: 900)")
    p.add_argument("--max-conversations", type=int, default=MAX_CONVERSATIONS,
                   help=f"conversations kept in memory, oldest dropped first (default: {MAX_CONVERSATIONS})")
    keys = p.add_argument_group(
        "tokens", "where the keys that sign callers' tokens come from; with none of them the console runs "
        "in development mode on the development key of `coach console token`")
    for option, variable, meaning in (
        ("--jwks", "JWKS", "a JWKS document (file) of the issuer's signing keys"),
        ("--jwt-public-key", "JWT_PUBLIC_KEY", "a PEM public key or certificate"),
        ("--jwt-secret-file", "JWT_SECRET_FILE", "a shared HMAC secret, at least 32 bytes, mode 0600"),
        ("--jwt-algorithm", "JWT_ALGORITHM",
         "the one algorithm the key verifies (default: RS256, the curve's ES*, EdDSA or HS256 by key type)"),
        ("--issuer", "ISSUER", "required iss"),
        ("--audience", "AUDIENCE", "required aud"),
        ("--teams", "TEAMS", "YAML/JSON file: supervisor id -> agent ids of their team"),
    ):
        keys.add_argument(option, default=env(f"COACH_CONSOLE_{variable}"),
                          help=f"{meaning} (COACH_CONSOLE_{variable})")
    keys.add_argument("--dev-key", default=None,
                      help="development mode: the development key "
                           f"(default: COACH_CONSOLE_DEV_KEY or {dev_key_path()})")
    actions = p.add_subparsers(dest="console_action", metavar="{token}")
    token = actions.add_parser("token",
                               help="mint a development token and print the console's address with it")
    token.add_argument("--agent", required=True, help="the agent id (for a supervisor: their own id)")
    token.add_argument("--role", choices=("agent", "supervisor"), default="agent")
    token.add_argument("--ttl", default=f"{DEFAULT_TTL_S // 3600}h",
                       help="how long it is valid: 90s, 30m, 8h (default: 8h, at most 24h)")
    token.add_argument("--url", default="http://127.0.0.1:8765/", help="the console's address")
    token.add_argument("--raw", action="store_true",
                       help="print the bare token (for curl) instead of the address")
    token.add_argument("--key", dest="token_key", default=None,
                       help="the development key (default: COACH_CONSOLE_DEV_KEY or the user's state dir)")


def mint_token(args: argparse.Namespace) -> int:
    """``coach console token``: a development token in the console's address (its fragment)."""
    path = Path(args.token_key) if args.token_key else dev_key_path()
    try:
        ttl_s = parse_duration(args.ttl)
        token = mint(dev_private_key(path), args.agent, args.role, ttl_s)
    except (ValueError, ValidationError) as exc:
        print(f"coach console token: {exc}", file=sys.stderr)
        return 2
    until = datetime.fromtimestamp(time.time() + ttl_s, UTC).isoformat(timespec="seconds")
    print(token if args.raw else args.url.rstrip("/") + "/#token=" + token)
    print(f"coach console token: {args.role} {args.agent}, valid until {until}, signed by the development "
          f"key {path} (accepted by a console in development mode)", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    """Entry point for `python -m console` (and `coach console`)."""
    if getattr(args, "console_action", None) == "token":
        return mint_token(args)
    if getattr(args, "server_agent", None):
        raise SystemExit("console: --agent is gone, the caller's token says who they are: run the console "
                         "without it and open the address `coach console token --agent ID` prints")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = config_from(args)
    try:
        app = build_app(config)
    except (KeyConfigError, OSError) as exc:
        raise SystemExit(f"console: {exc}") from None
    auth = config.auth
    if auth.development:
        log.warning("console: DEVELOPMENT MODE: accepting tokens signed by the development key %s "
                    "(`coach console token --agent ID`); give --jwks, --jwt-public-key or --jwt-secret-file "
                    "with --issuer and --audience for real use", auth.dev_key or dev_key_path())
    else:
        log.info("console: accepting tokens of issuer %s for audience %s", auth.issuer, auth.audience)
    log.info("console: on http://%s:%d/ (brokers %s; feedback -> %s)",
             config.host, config.port, config.brokers, config.topic_feedback)
    web.run_app(app, host=config.host, port=config.port, print=None, access_log=None, shutdown_timeout=5)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(parser().parse_args(argv))
