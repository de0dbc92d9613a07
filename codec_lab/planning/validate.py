"""Turn planner drafts into plans: validate, clamp to the search space and the budget, give ids.

Both planners go through `finalize`, so a plan that reaches the store is always inside the
space and the budget. Values outside a parameter's bounds are clamped (and the change is
noted); a draft that cannot be repaired is dropped with its reason.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from codec_lab.contracts import (
    Budget,
    DroppedPlan,
    ExperimentPlan,
    ExperimentRecord,
    ParamSpec,
    ParamValue,
    PlanDraft,
    SceneProfile,
    SearchSpace,
    StrategySpec,
)
from codec_lab.planning.scoring import measured_on_clip


class DraftRejected(ValueError):
    """A draft that cannot be turned into a plan; the message is the recorded reason."""


@dataclass
class Finalized:
    plans: list[ExperimentPlan] = field(default_factory=list)
    dropped: list[DroppedPlan] = field(default_factory=list)
    adjusted: list[str] = field(default_factory=list)


def validation_message(exc: ValidationError) -> str:
    """'plans.0.strategy: Input should be ...; ...' : every failing field named, one line."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        got = repr(err.get("input"))
        parts.append(f"{loc}: {err['msg']} (got {got[:60] + '...' if len(got) > 60 else got})")
    return "; ".join(parts)


def _coerce(spec: ParamSpec, strategy: str, value: Any, notes: list[str]) -> ParamValue:
    where = f"{strategy}.{spec.name}"
    if spec.kind == "categorical":
        text = str(value)
        if text not in (spec.choices or []):
            raise DraftRejected(f"{where}={value!r} is not one of {spec.choices}")
        return text
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise DraftRejected(f"{where}={value!r} is not a number")
    try:
        number = float(value)
    except ValueError:
        raise DraftRejected(f"{where}={value!r} is not a number") from None
    if not math.isfinite(number):
        raise DraftRejected(f"{where}={value!r} is not a finite number")
    assert spec.low is not None and spec.high is not None
    clamped = min(max(number, spec.low), spec.high)
    if spec.kind == "int":
        clamped = int(round(clamped))
    if clamped != number:
        notes.append(f"{where}: {value!r} clamped to {clamped!r} (bounds [{_fmt(spec.low)}, {_fmt(spec.high)}])")
    return clamped if spec.kind == "int" else float(clamped)


def _fmt(x: float | None) -> str:
    return "?" if x is None else (str(int(x)) if float(x).is_integer() else f"{x:g}")


def clamp_parameters(strategy: StrategySpec, parameters: dict[str, Any], notes: list[str]) -> dict[str, ParamValue]:
    unknown = sorted(set(parameters) - {p.name for p in strategy.params})
    if unknown:
        raise DraftRejected(
            f"{strategy.name} has no parameter(s) {unknown}; known: {[p.name for p in strategy.params]}"
        )
    out: dict[str, ParamValue] = {}
    for spec in strategy.params:
        if spec.name in parameters and parameters[spec.name] is not None:
            out[spec.name] = _coerce(spec, strategy.name, parameters[spec.name], notes)
        elif not spec.optional:
            out[spec.name] = spec.default
            notes.append(f"{strategy.name}.{spec.name}: missing, default {spec.default!r} used")
    return out


def estimate_gpu_seconds(strategy: StrategySpec, parameters: dict[str, ParamValue], profile: SceneProfile) -> float:
    if not strategy.gpu:
        return 0.0
    iterations = float(parameters.get("iterations", 1000))
    megapixel_frames = profile.width * profile.height * profile.frames / 1e6
    per_iteration = strategy.gpu_seconds_per_iteration + megapixel_frames * strategy.gpu_seconds_per_iteration_megapixel
    return round(iterations * per_iteration, 1)


def fit_iterations(strategy: StrategySpec, parameters: dict[str, ParamValue], profile: SceneProfile,
                   gpu_seconds: float) -> dict[str, ParamValue] | None:
    """`parameters` with as many iterations as `gpu_seconds` buy (None if fewer than the parameter's minimum)."""
    spec = strategy.param("iterations")
    per_iteration = estimate_gpu_seconds(strategy, {**parameters, "iterations": 10_000}, profile) / 10_000  # unrounded
    if spec is None or "iterations" not in parameters or per_iteration <= 0:
        return None
    affordable = int(gpu_seconds / per_iteration)
    if affordable < int(spec.low or 1):
        return None
    return {**parameters, "iterations": min(int(parameters["iterations"]), affordable)}


def parameters_key(strategy: str, parameters: dict[str, Any]) -> str:
    return json.dumps([strategy, parameters], sort_keys=True, default=str)


def plan_id(video_id: str, round_: int, index: int, key: str) -> str:
    digest = hashlib.sha256(f"{video_id}|{round_}|{key}".encode()).hexdigest()[:8]
    return f"r{round_:02d}-{index:02d}-{digest}"


def finalize(
    drafts: Sequence[dict | PlanDraft],
    *,
    space: SearchSpace,
    profile: SceneProfile,
    history: Sequence[ExperimentRecord],
    budget: Budget,
    n: int,
    round_: int,
    planner: str,
) -> Finalized:
    """Validate and clamp `drafts` in order; keep at most min(n, budget) plans."""
    result = Finalized()
    if budget.rounds <= 0:
        result.dropped += [DroppedPlan(index=i, reason="no rounds left in the budget") for i in range(len(drafts))]
        return result
    limit = max(0, min(n, budget.experiments))
    gpu_left = budget.gpu_seconds
    seen = {
        parameters_key(r.plan.strategy, dict(r.plan.parameters)): r.plan.plan_id
        for r in history
        if measured_on_clip(r.video_id, profile.video_id) and r.status != "failed"
    }
    for index, raw in enumerate(drafts):
        raw_dict = raw.model_dump(mode="json") if isinstance(raw, PlanDraft) else raw

        def drop(reason: str) -> None:
            result.dropped.append(DroppedPlan(index=index, reason=reason, draft=raw_dict if isinstance(raw_dict, dict) else None))

        try:
            draft = raw if isinstance(raw, PlanDraft) else PlanDraft.model_validate(raw)
        except ValidationError as exc:
            drop(f"not a valid plan: {validation_message(exc)}")
            continue
        strategy = space.strategy(draft.strategy)
        if strategy is None or not strategy.runnable:
            runnable = [s.name for s in space.runnable()]
            drop(f"strategy {draft.strategy!r} is not runnable yet; choose one of {runnable}")
            continue
        notes: list[str] = []
        try:
            params = clamp_parameters(strategy, dict(draft.parameters), notes)
        except DraftRejected as exc:
            drop(str(exc))
            continue
        key = parameters_key(strategy.name, params)
        if key in seen:
            drop(f"duplicate of experiment {seen[key]} ({strategy.name} {params})")
            continue
        if len(result.plans) >= limit:
            drop(f"over the experiment budget: {limit} plan(s) allowed this round")
            continue
        gpu = estimate_gpu_seconds(strategy, params, profile)
        if gpu > gpu_left:
            # A training plan that is only too long is shortened to its share of what is left, not thrown away.
            fitted = fit_iterations(strategy, params, profile, gpu_left / max(1, limit - len(result.plans)))
            if fitted is None:
                drop(f"needs an estimated {gpu:.0f} GPU s but only {gpu_left:.0f} are left in the budget")
                continue
            notes.append(f"iterations cut from {params['iterations']} to {fitted['iterations']} to fit the GPU budget left")
            params, key = fitted, parameters_key(strategy.name, fitted)
            if key in seen:
                drop(f"duplicate of experiment {seen[key]} ({strategy.name} {params})")
                continue
            gpu = estimate_gpu_seconds(strategy, params, profile)
        gpu_left -= gpu
        seen[key] = plan_id(profile.video_id, round_, len(result.plans), key)
        result.adjusted += [f"draft {index}: {note}" for note in notes]
        result.plans.append(
            ExperimentPlan(
                strategy=strategy.name,
                parameters=params,
                rationale=" ".join(draft.rationale.split()),
                expected=draft.expected,
                plan_id=seen[key],
                video_id=profile.video_id,
                round=round_,
                planner=planner,
                est_gpu_seconds=gpu,
            )
        )
    return result
