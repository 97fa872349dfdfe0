"""Rewrite the README's configuration reference from coachflow.config.Settings."""

from pathlib import Path

from coachflow.config import reference_table

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- config-reference:start -->\n", "<!-- config-reference:end -->"
text = README.read_text()
head, rest = text.split(START, 1)
_, tail = rest.split(END, 1)
README.write_text(head + START + reference_table() + END + tail)
print(f"updated {README}")
