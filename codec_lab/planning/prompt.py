"""Render the planner prompt (versioned text file) and the forced tool's input schema.

Every value pasted into the prompt goes through `data_block`: JSON with non-ASCII, '<', '>'
and '&' escaped, so a file name, a metadata tag or an error message can neither close a
<data> element nor smuggle in markup. The video's path and free-text metadata are left out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from string import Template
from typing import Any

from codec_lab.contracts import (
    Budget,
    ExperimentRecord,
    PlanDraft,
    SceneProfile,
    SearchSpace,
    Targets,
    VideoInfo,
)
from codec_lab.planning.scoring import record_score

PROMPT_VERSION = "plan_v1"
TOOL_NAME = "propose_experiments"
MAX_ERROR_CHARS = 240


@lru_cache(maxsize=8)
def load_prompt(version: str = PROMPT_VERSION) -> tuple[str, str]:
    """(system, user template) from codec_lab/planning/prompts/<version>.txt."""
    text = resources.files("codec_lab.planning").joinpath("prompts", f"{version}.txt").read_text(encoding="utf-8")
    _, _, rest = text.partition("=== system ===\n")
    system, sep, user = rest.partition("=== user ===\n")
    if not sep or not system.strip() or not user.strip():
        raise ValueError(f"prompt file {version}.txt needs '=== system ===' and '=== user ===' sections")
    return system.strip(), user.strip()


def data_block(value: Any) -> str:
    """JSON that is inert inside a <data> element: ASCII only, no raw '<', '>' or '&'."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), sort_keys=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _clip(text: str | None, limit: int = MAX_ERROR_CHARS) -> str | None:
    if text is None:
        return None
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _entry(record: ExperimentRecord, targets: Targets) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": record.plan.plan_id, "strategy": record.plan.strategy, "params": dict(record.plan.parameters)}
    r = record.result
    if r is None:
        entry["status"] = "unfinished"
        return entry
    entry["status"] = r.status
    if r.metrics is not None:
        m = r.metrics
        entry.update(kbps=round(m.kbps, 1), psnr_yuv=round(m.quality.psnr_yuv, 2), ssim=round(m.quality.ssim, 4))
        if m.tops_per_frame is not None:
            entry["tops_per_frame"] = round(m.tops_per_frame, 4)
        entry["meets_target"] = m.meets_target
    else:
        entry["error"] = _clip(r.error)
    score = record_score(record, targets)
    if score is not None:
        entry["score"] = round(score, 3)
    return entry


def compact_history(
    profile: SceneProfile, history: Sequence[ExperimentRecord], targets: Targets, *, max_rounds: int = 6, per_round: int = 12, best: int = 3
) -> dict[str, Any]:
    """Best results, failures with their error, and what each earlier round tried and got."""
    mine = [r for r in history if r.video_id == profile.video_id]
    mine.sort(key=lambda r: (r.plan.round, r.plan.plan_id))
    finished = [r for r in mine if r.result is not None and r.result.metrics is not None]
    finished.sort(key=lambda r: -(record_score(r, targets) or -1e9))
    rounds = sorted({r.plan.round for r in mine})[-max_rounds:]
    similar = [r for r in history if r.video_id != profile.video_id and r.result is not None and r.result.metrics is not None]
    similar.sort(key=lambda r: (-(record_score(r, targets) or -1e9), r.video_id, r.plan.plan_id))
    return {
        "this_clip": {
            "best": [_entry(r, targets) for r in finished[:best]],
            "failures": [_entry(r, targets) for r in mine if r.status == "failed"][-per_round:],
            "rounds": [
                {"round": k, "tried": [_entry(r, targets) for r in mine if r.plan.round == k][:per_round]} for k in rounds
            ],
        },
        "similar_scenes": [
            {"scene_class": r.scene_class, **_entry(r, targets)} for r in similar[:best * 2]
        ],
    }


def video_summary(video: VideoInfo) -> dict[str, Any]:
    """Technical fields only: no path, no file name, no free-text metadata."""
    return {
        "container": video.container[:32], "codec": video.codec[:32], "width": video.width, "height": video.height,
        "frames": video.frames, "fps": round(video.fps, 3), "duration_s": round(video.duration_s, 3),
        "pix_fmt": video.pix_fmt[:32], "bit_depth": video.bit_depth, "size_bytes": video.size_bytes,
    }


def space_summary(space: SearchSpace) -> list[dict[str, Any]]:
    out = []
    for s in space.strategies:
        params = {}
        for p in s.params:
            d: dict[str, Any] = {"type": p.kind, "default": p.default}
            if p.kind == "categorical":
                d["choices"] = p.choices
            else:
                d.update(low=p.low if p.kind == "float" else int(p.low or 0), high=p.high if p.kind == "float" else int(p.high or 0))
                if p.log:
                    d["log"] = True
            if p.optional:
                d["optional"] = True
            if p.description:
                d["meaning"] = p.description
            params[p.name] = d
        entry: dict[str, Any] = {"name": s.name, "runnable": s.runnable, "gpu": s.gpu, "what": s.description}
        if s.runnable:  # parameters of strategies that cannot run yet would only cost tokens
            entry["params"] = params
        out.append(entry)
    return out


def render_user_prompt(
    *, video: VideoInfo, profile: SceneProfile, history: Sequence[ExperimentRecord], targets: Targets,
    budget: Budget, space: SearchSpace, n: int, round_: int, version: str = PROMPT_VERSION,
) -> str:
    _, template = load_prompt(version)
    profile_data = {k: round(v, 3) if isinstance(v, float) else v
                    for k, v in profile.model_dump(mode="json", exclude={"version", "video_id", "notes"}).items()}
    return Template(template).substitute(
        round=int(round_), n=int(n),
        video=data_block(video_summary(video)),
        profile=data_block(profile_data),
        targets=data_block(targets.model_dump(mode="json")),
        budget=data_block(budget.model_dump(mode="json")),
        space=data_block(space_summary(space)),
        history=data_block(compact_history(profile, history, targets)),
    )


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target = defs[node["$ref"].rsplit("/", 1)[-1]]
            merged = {**_inline_refs(target, defs), **{k: v for k, v in node.items() if k != "$ref"}}
            return merged
        return {k: _inline_refs(v, defs) for k, v in node.items() if k not in ("$defs", "title")}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


def tool_input_schema(space: SearchSpace, n: int) -> dict[str, Any]:
    """JSON schema of the tool input, generated from `PlanDraft` (refs inlined, strategies = runnable ones)."""
    schema = PlanDraft.model_json_schema()
    item = _inline_refs(schema, schema.get("$defs", {}))
    item["properties"]["strategy"] = {
        "type": "string", "enum": [s.name for s in space.runnable()], "description": "a runnable strategy",
    }
    item["additionalProperties"] = False
    return {
        "type": "object",
        "properties": {"plans": {"type": "array", "items": item, "minItems": 1, "maxItems": max(1, int(n))}},
        "required": ["plans"],
        "additionalProperties": False,
    }
