"""The documentation: a README that leads, links that resolve, contracts.md in step with the code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest

import schemas
from schemas.outputs import DeadLetterReason
from tests.helpers import ROOT

PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
#: The README leads a newcomer and stops; the rest lives in docs/.
README_MAX_LINES = 300
#: Markdown links and images: [text](target), skipping absolute URLs.
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a page: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    heads = re.findall(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_the_readme_leads_in_at_most_300_lines():
    assert len((ROOT / "README.md").read_text().splitlines()) <= README_MAX_LINES


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: broken links {broken}"


def test_contracts_page_lists_every_dead_letter_reason_and_topic():
    page = (ROOT / "docs" / "contracts.md").read_text()
    reasons = page.split("## Dead letters", 1)[1]
    missing = [r for r in get_args(DeadLetterReason) if f"`{r}`" not in reasons]
    assert not missing, f"docs/contracts.md does not list the dead-letter reasons {missing}"
    topics = {topic for topic, _ in schemas.CONTRACTS.values()}
    assert not [t for t in topics if f"`{t}`" not in page]
    assert not [stem for stem in schemas.CONTRACTS if f"`{stem}`" not in page]
