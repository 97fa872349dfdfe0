"""Rewrite docs/knowledge.md's configuration reference from coachflow/knowledge_config.py."""

from pathlib import Path

from coachflow.knowledge_config import reference_table

DOC = Path(__file__).resolve().parents[1] / "docs" / "knowledge.md"
START, END = "<!-- knowledge-config:start -->\n", "<!-- knowledge-config:end -->"
text = DOC.read_text()
head, rest = text.split(START, 1)
tail = rest.split(END, 1)[1]
DOC.write_text(head + START + reference_table() + END + tail)
