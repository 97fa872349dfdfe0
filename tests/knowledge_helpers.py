"""Small knowledge bases for the knowledge tests."""

from __future__ import annotations

from models.knowledge.articles import markdown_article
from schemas import Article

PLATES = """---
title: Replace your license plates
tags: [domain:dmv, jurisdiction:us-ny]
source: dmv
version: "3"
source_url: https://dmv.example/plates
---
# Replace your license plates

If your plates are lost, stolen or damaged, you can replace them at a DMV office.
Bring your registration and a form of identification.

## Fees

A replacement set of plates costs 25 dollars. Personalized plates cost more.

## Stolen plates

If your plates were stolen, report the theft to the police first and bring the police report.
"""

BENEFITS = """---
title: Apply for disability benefits
tags: [domain:ssa, jurisdiction:us]
source: ssa
version: "7"
---
# Apply for disability benefits

You can apply for disability benefits online, by phone, or at a local office.
Call our help desk at 555-123-4567 or write to help@ssa.example for questions.

## What you need

Have your medical records and your work history ready before you apply.
"""

OFFER = """---
title: Gold membership offer
tags: [kind:offer]
source: offers
version: "1"
---
# Gold membership offer

Upgrade to a gold membership and get free shipping on every order of your license plates frames.
"""


def small_kb() -> list[Article]:
    return [markdown_article(PLATES, "plates"), markdown_article(BENEFITS, "benefits"),
            markdown_article(OFFER, "offer")]
