"""Approved reply templates per task, from STAR's ``tasks/`` (MIT).

A suggestion's text only ever comes from here: the template of the suggested
action in the conversation's task, with its slots (``{balance:d}``) filled
from the latest knowledge-base item. A slot with no matching value stays a
visible placeholder (``[balance]``) for the agent to fill.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from operators.features import QUERY_ACTION

_SLOT_VALUE_CHARS = 80
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069{}<>]")
_FORMATTER = string.Formatter()


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


@dataclass(frozen=True)
class TemplateBook:
    """Reply templates and flow graphs of the STAR tasks."""

    by_task: dict[str, dict[str, str]]
    """task -> action -> template."""
    graph: dict[str, dict[str, str]] = field(default_factory=dict)
    """task -> action -> the flow graph's next action."""

    @classmethod
    def from_star(cls, tasks_dir: Path | str) -> TemplateBook:
        """Read ``tasks/<task>/<task>.json`` and ``responses.json`` of every task."""
        by_task: dict[str, dict[str, str]] = {}
        graph: dict[str, dict[str, str]] = {}
        for folder in sorted(Path(tasks_dir).iterdir()):
            spec = folder / f"{folder.name}.json"
            if not spec.is_file():
                continue
            body = json.loads(spec.read_text())
            replies = dict(body.get("replies", {}))
            responses = folder / "responses.json"
            if responses.is_file():
                for action, text in json.loads(responses.read_text()).items():
                    replies.setdefault(action, text)
            by_task[folder.name] = replies
            graph[folder.name] = dict(body.get("graph", {}))
        return cls(by_task=by_task, graph=graph)

    def to_json(self) -> dict:
        return {"by_task": self.by_task, "graph": self.graph}

    @classmethod
    def from_json(cls, body: dict) -> TemplateBook:
        return cls(by_task=body["by_task"], graph=body.get("graph", {}))

    def template(self, action: str, task: str | None, tasks: tuple[str, ...] = ()) -> str | None:
        """The template of ``action``: in ``task``, else the conversation's other tasks, else any."""
        for name in (task, *tasks):
            if name and action in self.by_task.get(name, {}):
                return self.by_task[name][action]
        for replies in self.by_task.values():
            if action in replies:
                return replies[action]
        return None

    def has(self, action: str) -> bool:
        return action == QUERY_ACTION or any(action in r for r in self.by_task.values())

    def approved(
        self, action: str, text: str, task: str | None, tasks: tuple[str, ...] = (), max_slot_chars: int = 80
    ) -> bool:
        """Whether ``text`` is ``action``'s approved template with plain slot values."""
        if action == QUERY_ACTION:
            return text == self.render(QUERY_ACTION, task, tasks)
        template = self.template(action, task, tasks)
        return template is not None and _pattern(template, max_slot_chars).match(text) is not None

    def render(
        self,
        action: str,
        task: str | None,
        tasks: tuple[str, ...] = (),
        kb_item: tuple[tuple[str, object], ...] = (),
    ) -> str | None:
        """The reply for ``action`` with its slots filled, or None without a template."""
        if action == QUERY_ACTION:
            return f"[Look up: {(task or 'knowledge base').replace('_', ' ')}]"
        template = self.template(action, task, tasks)
        if template is None:
            return None
        return fill(template, dict(kb_item))

    def stated_facts(
        self, action: str, text: str, task: str | None, tasks: tuple[str, ...] = (),
        kb_item: tuple[tuple[str, object], ...] = (),
    ) -> list[tuple[str, str, object]]:
        """The facts ``text`` states from the knowledge-base result: (slot, stated value, the result's
        value) for each of the template's slots that ``text`` fills and the result has a field for."""
        if action == QUERY_ACTION or not kb_item:
            return []
        template = self.template(action, task, tasks)
        if template is None or "{" not in template:
            return []
        pattern, names = _slots(template)
        match = pattern.match(text)
        if match is None:
            return []
        item = dict(kb_item)
        facts = []
        for group, name in enumerate(names, 1):
            stated = match.group(group)
            if stated is None or stated == f"[{name}]":
                continue
            value = _lookup(name, item)
            if value is not None:
                facts.append((name, stated, value))
        return facts


    def contradictions(
        self, action: str, text: str, task: str | None, tasks: tuple[str, ...] = (),
        kb_item: tuple[tuple[str, object], ...] = (),
    ) -> list[str]:
        """The slots whose value in ``text`` is not the knowledge-base result's (``agrees``)."""
        return [slot for slot, stated, value in self.stated_facts(action, text, task, tasks, kb_item)
                if not agrees(stated, value)]


def agrees(stated: str, value: object) -> bool:
    """Whether a value a suggestion states is the result's ``value`` (as ``fill`` writes it, or equal)."""
    if _norm_text(stated) in (_norm_text(_safe(value)), _norm_text(str(value))):
        return True
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return abs(float(stated.replace(",", "").lstrip("$")) - float(value)) < 0.5  # noqa: PLR2004 - the same number, rounded
        except ValueError:
            return False
    return False


def _norm_text(text: str) -> str:
    return " ".join(text.lower().split())


@lru_cache(maxsize=4096)
def _slots(template: str) -> tuple[re.Pattern, tuple[str, ...]]:
    """A template as a pattern with a group per slot, and the slots' names in order."""
    out, names = [], []
    for literal, name, _spec, _conversion in _FORMATTER.parse(template):
        out.append(re.escape(literal))
        if name is not None:
            out.append(r"(.+?)")
            names.append(name)
    return re.compile("".join(out) + r"\Z", re.DOTALL), tuple(names)


@lru_cache(maxsize=4096)
def _pattern(template: str, max_slot_chars: int) -> re.Pattern:
    """A template as a pattern: its text verbatim, each slot a short plain value or ``[slot]``."""
    out = []
    for literal, name, _spec, _conversion in _FORMATTER.parse(template):
        out.append(re.escape(literal))
        if name is not None:
            out.append(rf"(?:\[{re.escape(name)}\]|[^\n\r{{}}<>\x00-\x1f]{{1,{max_slot_chars}}})")
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _lookup(slot: str, item: dict[str, object]) -> object | None:
    want = _norm(slot)
    if not want:
        return None
    normalized = {_norm(k): v for k, v in item.items()}
    if want in normalized:
        return normalized[want]
    for key, value in normalized.items():
        if key and (key.endswith(want) or want.endswith(key)):
            return value
    return None


def _safe(value: object) -> str:
    if isinstance(value, (list, tuple)):
        value = ", ".join(map(str, value))
    return _UNSAFE.sub("", str(value))[:_SLOT_VALUE_CHARS]


def fill(template: str, item: dict[str, object]) -> str:
    """Fill ``{slot}`` / ``{slot:d}`` fields from ``item``; unknown slots stay ``[slot]``."""
    out: list[str] = []
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError:
        return template
    for literal, name, spec, _conversion in parsed:
        out.append(literal)
        if name is None:
            continue
        value = _lookup(name, item)
        if value is None or value in ("", [], ()) or (isinstance(value, bool) and spec == "d"):
            out.append(f"[{name}]")
        elif spec == "d" and isinstance(value, (int, float)):
            out.append(str(int(value)))
        else:
            out.append(_safe(value))
    return "".join(out)
