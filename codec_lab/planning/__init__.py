"""Experiment planning: who designs the next round of compression experiments. No torch here.

    planner = make_planner()                       # LocalPlanner, or Bedrock + LocalPlanner fallback
    plans = planner.propose(video, profile, history, targets, budget_left(total, history, vid), n)
    planner.last_report                            # dropped/clamped plans, fallback reason, audit URIs

`LocalPlanner` needs optuna and `BedrockPlanner` needs boto3; both are imported on first use,
so importing this package stays cheap (the Plan Lambda imports it). `RandomSearchPlanner` needs
nothing: it is the local planner where optuna is missing (the Lambdas).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from codec_lab.planning.protocol import Planner, PlannerError, PlanningReport
from codec_lab.planning.scoring import (
    FAILED_SCORE,
    budget_left,
    record_score,
    rounds_done,
    score,
)
from codec_lab.planning.settings import DEFAULT_MODEL_ID, PlannerSettings, make_planner
from codec_lab.planning.space import default_search_space

if TYPE_CHECKING:
    from codec_lab.planning.bedrock import BedrockPlanner
    from codec_lab.planning.local import LocalPlanner, RandomSearchPlanner

__all__ = [
    "BedrockPlanner", "DEFAULT_MODEL_ID", "FAILED_SCORE", "LocalPlanner", "Planner", "PlannerError",
    "PlannerSettings", "PlanningReport", "RandomSearchPlanner", "budget_left", "default_search_space", "make_planner",
    "record_score", "rounds_done", "score",
]


def __getattr__(name: str) -> Any:
    if name in ("LocalPlanner", "RandomSearchPlanner"):
        from codec_lab.planning import local

        return getattr(local, name)
    if name == "BedrockPlanner":
        from codec_lab.planning.bedrock import BedrockPlanner

        return BedrockPlanner
    raise AttributeError(f"module 'codec_lab.planning' has no attribute {name!r}")
