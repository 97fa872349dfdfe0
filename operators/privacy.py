"""Strict masking where text leaves the job: published records, log lines, lineage events.

Turns and knowledge-base values are masked at parse by the policy's fast
redactor, before the model and the state. What the job then writes out is
masked again, strictly (``operators.pii.STRICT_KINDS``: people and addresses
too), at three places:

- ``scrub(record)``: every published record, in ``operators.publish.serialize``.
  Only the fields that can quote a customer, an agent or a knowledge-base
  value are read: suggestion texts (template slots filled from a KB item), knowledge cards' passages, alert
  messages and evidence (the conduct rule quotes the agent), dead letters' details and
  error locations (they may quote a refused record's values and field names). Dead-letter
  payloads and keys are masked when the dead letter is built (``operators.records``).
- ``MaskingFilter``: a ``logging`` filter on the ``coachflow`` loggers' handlers.
- lineage's error message and stack trace (``lineage/__init__.py``, with ``SHAPED``).

These texts carry numbers that are not personal data (prices, booking ids,
times, seconds, ports), so they are masked with ``SHAPED``: every kind, but a
bare number only where a keyword says what it is ("account 1234").
"""

from __future__ import annotations

import logging
import traceback
from functools import lru_cache

from operators.records import SHAPED
from schemas import Alert, DeadLetter, Decision, FieldError, KnowledgeCard, Suggestion


@lru_cache(maxsize=16_384)
def _shaped(text: str) -> tuple[str, tuple[str, ...]]:
    # Suggestion texts repeat (one template, a few KB values): each is masked once.
    clean, kinds = SHAPED.redact(text)
    return clean, tuple(kinds)


_CACHED_CHARS = 512


def scrub_text(text: str) -> str:
    """``text`` with personal data masked (``SHAPED``)."""
    return _shaped(text)[0] if len(text) <= _CACHED_CHARS else SHAPED.redact(text)[0]


def scrub(record):
    """``record`` with personal data masked in the fields that can quote a person; the same
    object when nothing changed (the usual case: no copy on the hot path)."""
    kind = type(record)
    if kind is Decision:
        suggestion = record.suggestion
        if suggestion is not None:
            text = _shaped(suggestion.text)[0]
            if text != suggestion.text:
                return record.model_copy(update={"suggestion": suggestion.model_copy(update={"text": text})})
    elif kind is Suggestion:
        text = _shaped(record.text)[0]
        if text != record.text:
            return record.model_copy(update={"text": text})
    elif kind is Alert:
        message = scrub_text(record.message)
        evidence = {k: scrub_text(v) if isinstance(v, str) else v for k, v in record.evidence.items()}
        if message != record.message or evidence != record.evidence:
            return record.model_copy(update={"message": message, "evidence": evidence})
    elif kind is KnowledgeCard:  # a passage of the knowledge base (masked by the knowledge policy already)
        passage = scrub_text(record.passage)
        if passage != record.passage:
            return record.model_copy(update={"passage": passage})
    elif kind is DeadLetter:
        detail = scrub_text(record.detail)
        errors = [FieldError.trusted(loc=scrub_text(e.loc), type=e.type, msg=scrub_text(e.msg))
                  for e in record.errors]
        if detail != record.detail or errors != record.errors:
            return record.model_copy(update={"detail": detail, "errors": errors})
    return record


class MaskingFilter(logging.Filter):
    """Masks personal data in a log record's message, exception and stack (in place; never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub_text(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub_text("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        elif record.exc_text:
            record.exc_text = scrub_text(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub_text(record.stack_info)
        return True
