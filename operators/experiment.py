"""Experiments: a control and a candidate model and/or policy, split by conversation.

A conversation is assigned to an arm by a stable hash of the experiment's
name and its id (BLAKE2b, 64 bits): the arm is ``candidate`` when the hash,
as a fraction of 2**64, is below ``share``, else ``control``. The same
conversation always lands in the same arm in every process and on every
replay; a share of 0 sends everything to control, 1 everything to the
candidate, so a canary is promoted or rolled back by configuration alone
(``COACH_EXPERIMENT``). Salting with the name gives each experiment an
independent split.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

CONTROL = "control"
CANDIDATE = "candidate"


class ExperimentConfig(BaseModel):
    """``COACH_EXPERIMENT``, as JSON: ``{"name": ..., "share": ..., "model": ..., "policy": ...}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=80, description="Recorded in decisions.")
    share: float = Field(ge=0.0, le=1.0, description="Share of conversations in the candidate arm.")
    model: Path | None = Field(
        default=None, description="The candidate model (registered); unset: control's."
    )
    policy: Path | None = Field(default=None, description="The candidate policy file; unset: control's.")

    @model_validator(mode="after")
    def _has_a_candidate(self) -> ExperimentConfig:
        if self.model is None and self.policy is None:
            raise ValueError("an experiment needs a candidate model, a candidate policy, or both")
        return self


def bucket(name: str, conversation_id: str) -> float:
    """The conversation's place in [0, 1) for experiment ``name``."""
    digest = hashlib.blake2b(f"{name}\x1f{conversation_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def assign(name: str, share: float, conversation_id: str) -> str:
    """``candidate`` or ``control``, deterministically."""
    return CANDIDATE if bucket(name, conversation_id) < share else CONTROL


@dataclass(frozen=True)
class Arms:
    """What each arm runs with: the scorer (model), the policy store and the templates.

    Without an experiment (``name`` None) every conversation is control and
    records carry no arm.
    """

    control_scorer: object
    control_policies: object
    candidate_scorer: object | None = None
    candidate_policies: object | None = None
    name: str | None = None
    share: float = 0.0

    def arm(self, conversation_id: str | None) -> str | None:
        if self.name is None or conversation_id is None:
            return None
        return assign(self.name, self.share, conversation_id)

    def scorer(self, arm: str | None):
        if arm == CANDIDATE and self.candidate_scorer is not None:
            return self.candidate_scorer
        return self.control_scorer

    def policies(self, arm: str | None):
        if arm == CANDIDATE and self.candidate_policies is not None:
            return self.candidate_policies
        return self.control_policies

    def templates(self, arm: str | None):
        return self.scorer(arm).templates
