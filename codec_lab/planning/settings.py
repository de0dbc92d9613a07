"""Planner settings from the environment, and `make_planner` that picks the planner.

    CODEC_LAB_PLANNER          auto (default) | local | bedrock
    CODEC_LAB_BEDROCK_MODEL_ID inference-profile id; setting it turns Bedrock on in 'auto'
    CODEC_LAB_BEDROCK_REGION   else AWS_REGION, else AWS_DEFAULT_REGION
    CODEC_LAB_PLANNER_SEED     LocalPlanner seed (default 0)
    CODEC_LAB_AUDIT_BUCKET     write audit records to S3 (prefix CODEC_LAB_AUDIT_PREFIX, default runs/audit)
    CODEC_LAB_AUDIT_DIR        else to this folder (default runs/audit)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from codec_lab.contracts import SearchSpace
from codec_lab.errors import CodecLabError
from codec_lab.planning.protocol import Planner

DEFAULT_MODEL_ID = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


@dataclass(frozen=True)
class PlannerSettings:
    kind: str = "auto"
    model_id: str | None = None
    region: str | None = None
    seed: int = 0
    audit_bucket: str | None = None
    audit_prefix: str = "runs/audit"
    audit_dir: str = "runs/audit"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "PlannerSettings":
        env = os.environ if env is None else env
        kind = env.get("CODEC_LAB_PLANNER", "auto").strip().lower() or "auto"
        if kind not in ("auto", "local", "bedrock"):
            raise CodecLabError(f"CODEC_LAB_PLANNER={kind!r} is not one of auto, local, bedrock")
        seed_text = env.get("CODEC_LAB_PLANNER_SEED", "0")
        try:
            seed = int(seed_text)
        except ValueError:
            raise CodecLabError(f"CODEC_LAB_PLANNER_SEED={seed_text!r} is not an integer") from None
        return cls(
            kind=kind,
            model_id=env.get("CODEC_LAB_BEDROCK_MODEL_ID") or None,
            region=env.get("CODEC_LAB_BEDROCK_REGION") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            seed=seed,
            audit_bucket=env.get("CODEC_LAB_AUDIT_BUCKET") or None,
            audit_prefix=env.get("CODEC_LAB_AUDIT_PREFIX", "runs/audit"),
            audit_dir=env.get("CODEC_LAB_AUDIT_DIR", "runs/audit"),
        )

    @property
    def uses_bedrock(self) -> bool:
        return self.kind == "bedrock" or (self.kind == "auto" and self.model_id is not None)


def make_planner(
    settings: PlannerSettings | None = None, *, space: SearchSpace | None = None, store: Any | None = None,
    client: Any | None = None,
) -> Planner:
    """LocalPlanner unless Bedrock is configured; then BedrockPlanner with LocalPlanner as fallback.

    Where optuna is not installed (the Lambdas) the local planner is `RandomSearchPlanner`.
    `store`, when given, also receives every audit record (`put_audit`).
    """
    from codec_lab.planning.local import local_planner

    settings = settings or PlannerSettings.from_env()
    local = local_planner(space, seed=settings.seed)
    if not settings.uses_bedrock:
        return local
    from codec_lab.planning.audit import FileAuditSink, S3AuditSink, StoreAuditSink
    from codec_lab.planning.bedrock import BedrockPlanner

    sinks: list[Any] = [S3AuditSink(settings.audit_bucket, settings.audit_prefix) if settings.audit_bucket
                        else FileAuditSink(settings.audit_dir)]
    if store is not None:
        sinks.append(StoreAuditSink(store))
    return BedrockPlanner(model_id=settings.model_id or DEFAULT_MODEL_ID, region=settings.region, client=client,
                          space=space, fallback=local, audit=sinks, seed=settings.seed)
