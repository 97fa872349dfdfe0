"""Private files: what can hold personal data is made owner-only; credentials are read, never shown.

The job's embedded outputs and lineage file, and the replay's JSONL, are made
here before anything writes them: a file is created with mode 0600 (an
existing one of this user is set to it), and a directory this creates gets
0700. An existing directory keeps its mode: it may be shared (``/tmp``).
Kafka credentials come from a librdkafka properties file or a secret file
(``read_properties``, ``read_secret``), whose errors never quote a line.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("coachflow.private")

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path | str) -> Path:
    """``path`` as a directory; made with mode 0700 (its missing parents too) unless it exists."""
    path = Path(path)
    if not path.is_dir():
        if not path.parent.is_dir():
            private_dir(path.parent)
        try:
            path.mkdir(mode=DIR_MODE)
        except FileExistsError:  # made meanwhile by another process of the job
            pass
        else:
            os.chmod(path, DIR_MODE)  # mkdir's mode passes through the umask
    return path


def private_file(path: Path | str) -> Path:
    """``path`` as a file of mode 0600: created empty when missing (its directory with ``private_dir``)."""
    path = Path(path)
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except PermissionError:  # another user's file: written as it is, but said
        log.warning("%s belongs to another user: its mode stays %o", path, os.fstat(fd).st_mode & 0o777)
    finally:
        os.close(fd)
    return path


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
