"""The planner protocol and what a planning call reports besides its plans."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from pydantic import Field

from codec_lab.contracts import (
    Budget,
    Contract,
    DroppedPlan,
    ExperimentPlan,
    ExperimentRecord,
    SceneProfile,
    Targets,
    VideoInfo,
)
from codec_lab.errors import CodecLabError


class PlannerError(CodecLabError):
    """The planner could not produce plans (and had no fallback); the message says why."""


class PlanningReport(Contract):
    """What the last `propose` call did: who planned, what was dropped or clamped, where the audit went."""

    planner: str
    round: int
    proposed: int = 0
    dropped: list[DroppedPlan] = Field(default_factory=list)
    adjusted: list[str] = Field(default_factory=list)
    fallback_reason: str | None = None
    audit_uris: list[str] = Field(default_factory=list)


@runtime_checkable
class Planner(Protocol):
    name: str
    last_report: PlanningReport | None

    def propose(
        self,
        video: VideoInfo,
        profile: SceneProfile,
        history: Sequence[ExperimentRecord],
        targets: Targets,
        budget: Budget,
        n: int,
    ) -> list[ExperimentPlan]:
        """Up to `n` plans for the next round, inside the search space and `budget` (the budget LEFT).

        `history`: this video's experiments plus the best ones on clips of the same scene class
        (`ExperimentStore.history_for`). Returns [] when the budget is spent.
        """
        ...
