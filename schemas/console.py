"""Console contracts: the claims of the agent console's bearer tokens and its team file.

A token's subject (``sub``) is the agent id as it appears in ``agent_id`` on the
suggestion, alert and acceptance topics; ``role`` says whether the caller is that
agent or a supervisor. Issuer, audience and times are checked by the console
before these models see the claims; the models only type the claims it reads.

The team file maps each supervisor's id to the agent ids they see::

    sup-emea-1: [agent-0a1b2c3d, agent-4e5f6a7b]
    sup-emea-2: [agent-8c9d0e1f]
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from schemas._base import Identifier

ConsoleRole = Literal["agent", "supervisor"]


class ConsoleClaims(BaseModel):
    """The claims the console reads from a verified token (others are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    sub: Identifier = Field(description="The caller's agent id (a supervisor's own id for role supervisor).")
    role: ConsoleRole = Field(
        description="agent: sees and judges their own conversations; supervisor: sees a team, read-only.")
    iss: str = Field(min_length=1, max_length=512)
    aud: str | list[str]
    exp: int = Field(description="Expiry, seconds since the epoch (UTC).")
    iat: int = Field(description="Issued at, seconds since the epoch (UTC).")
    nbf: int | None = None
    jti: str | None = Field(default=None, max_length=256)


class TeamFile(RootModel[dict[Identifier, list[Identifier]]]):
    """Supervisor id -> the agent ids of their team (YAML or JSON)."""
