"""Kafka credentials from files: a librdkafka properties file, or a secret file; errors never quote a line."""

from __future__ import annotations

from pathlib import Path


def read_properties(path: Path) -> dict[str, str]:
    """A librdkafka properties file: ``key=value`` lines; blank lines and ``#`` or ``!`` comments skipped."""
    properties = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            # The line may hold a secret: say where it is, never what it says.
            raise ValueError(f"{path}, line {number}: not a key=value property")
        properties[key.strip()] = value.strip()
    return properties


def read_secret(path: Path) -> str:
    """A secret file's first line (a ``*_FILE`` variable's file, as Docker and Kubernetes mount them)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0].strip():
        raise ValueError(f"{path} is empty")
    return lines[0].strip()
