"""`BedrockPlanner`: Claude (or any Converse model) on Amazon Bedrock, with one forced tool.

One `propose` call: render the versioned prompt, call Converse (throttling and timeouts
retried with backoff), validate and clamp the tool input, and if no plan survives, ask once
more with the validation errors fed back. If that also fails, or the service refuses (access
denied, unknown model), the fallback planner (the `LocalPlanner`) plans instead. Every
prompt and raw reply goes to the audit sinks, failures included.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from codec_lab.contracts import (
    AuditRecord,
    Budget,
    ExperimentPlan,
    ExperimentRecord,
    SceneProfile,
    SearchSpace,
    Targets,
    VideoInfo,
)
from codec_lab.planning.audit import AuditSink, write_all
from codec_lab.planning.prompt import (
    PROMPT_VERSION,
    TOOL_NAME,
    load_prompt,
    render_user_prompt,
    tool_input_schema,
)
from codec_lab.planning.protocol import Planner, PlannerError, PlanningReport
from codec_lab.planning.scoring import rounds_done
from codec_lab.planning.settings import DEFAULT_MODEL_ID
from codec_lab.planning.space import default_search_space
from codec_lab.planning.validate import finalize

log = logging.getLogger(__name__)

RETRYABLE_CODES = frozenset({
    "ThrottlingException", "ServiceUnavailableException", "ModelTimeoutException",
    "InternalServerException", "ModelNotReadyException", "TooManyRequestsException",
})


class BedrockUnavailable(Exception):
    """Bedrock could not be used for this call (after retries where retrying is safe)."""


def parse_tool_input(response: dict[str, Any]) -> tuple[list[Any], str | None, str | None]:
    """(drafts, problem, tool_use_id) from a Converse response; `problem` says what was wrong."""
    content = ((response.get("output") or {}).get("message") or {}).get("content") or []
    uses = [b["toolUse"] for b in content if isinstance(b, dict) and "toolUse" in b]
    use = next((u for u in uses if u.get("name") == TOOL_NAME), None)
    if use is None:
        texts = " ".join(b.get("text", "") for b in content if isinstance(b, dict) and "text" in b)
        return [], (f"the reply did not call the tool {TOOL_NAME} (stopReason={response.get('stopReason')!r}); "
                    f"answer only by calling {TOOL_NAME}" + (f"; it said: {texts[:200]!r}" if texts else "")), None
    payload = use.get("input")
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except json.JSONDecodeError as exc:
            return [], f"the tool input is not valid JSON ({exc.msg} at char {exc.pos})", use.get("toolUseId")
    if isinstance(payload, list):
        payload = {"plans": payload}
    if not isinstance(payload, dict) or not isinstance(payload.get("plans"), list):
        return [], "the tool input must be an object with a list field 'plans'", use.get("toolUseId")
    return payload["plans"], None, use.get("toolUseId")


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


class BedrockPlanner:
    """Plans with a Converse model; `fallback` (default `LocalPlanner`) when it cannot."""

    def __init__(
        self,
        *,
        model_id: str = DEFAULT_MODEL_ID,
        region: str | None = None,
        client: Any | None = None,
        space: SearchSpace | None = None,
        fallback: Planner | None | bool = True,
        audit: Sequence[AuditSink] = (),
        prompt_version: str = PROMPT_VERSION,
        max_attempts: int = 4,
        base_delay_s: float = 1.0,
        read_timeout_s: float = 120.0,
        max_tokens: int = 4096,
        temperature: float = 0.3,
        sleep: Callable[[float], None] = time.sleep,
        seed: int = 0,
    ) -> None:
        self.model_id = model_id
        self.region = region
        self._client = client
        self.space = space or default_search_space()
        if fallback is True:
            from codec_lab.planning.local import local_planner

            fallback = local_planner(self.space, seed=seed)
        self.fallback: Planner | None = fallback or None
        self.audit = list(audit)
        self.prompt_version = prompt_version
        self.max_attempts = max(1, max_attempts)
        self.base_delay_s = base_delay_s
        self.read_timeout_s = read_timeout_s
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.sleep = sleep
        self._rng = random.Random(seed)
        self.last_report: PlanningReport | None = None

    @property
    def name(self) -> str:
        return f"bedrock:{self.model_id}"

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            # Our own loop retries (with audit); botocore makes one attempt per call.
            config = Config(read_timeout=self.read_timeout_s, connect_timeout=10,
                            retries={"mode": "standard", "total_max_attempts": 1})
            self._client = boto3.client("bedrock-runtime", region_name=self.region, config=config)
        return self._client

    # -- request ----------------------------------------------------------------------
    def build_request(
        self, video: VideoInfo, profile: SceneProfile, history: Sequence[ExperimentRecord],
        targets: Targets, budget: Budget, n: int,
    ) -> dict[str, Any]:
        """The Converse kwargs for this round, exactly as `propose` sends them first."""
        system, _ = load_prompt(self.prompt_version)
        round_ = rounds_done(history, profile.video_id) + 1
        n = max(1, min(n, budget.experiments))
        user = render_user_prompt(video=video, profile=profile, history=history, targets=targets, budget=budget,
                                  space=self.space, n=n, round_=round_, version=self.prompt_version)
        return {
            "modelId": self.model_id,
            "system": [{"text": system}],
            "messages": [{"role": "user", "content": [{"text": user}]}],
            "inferenceConfig": {"maxTokens": self.max_tokens, "temperature": self.temperature},
            "toolConfig": {
                "tools": [{"toolSpec": {
                    "name": TOOL_NAME,
                    "description": "Submit this round's experiment plans (strategy, parameters, one-line rationale, expected outcome).",
                    "inputSchema": {"json": tool_input_schema(self.space, n)},
                }}],
                "toolChoice": {"tool": {"name": TOOL_NAME}},
            },
        }

    def _converse(self, request: dict[str, Any]) -> dict[str, Any]:
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        for attempt in range(1, self.max_attempts + 1):
            try:
                return self.client.converse(**request)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "ClientError")
                message = exc.response.get("Error", {}).get("Message", "")
                if code not in RETRYABLE_CODES:
                    hint = ""
                    if code == "AccessDeniedException":
                        hint = (f" (grant bedrock:InvokeModel on {self.model_id} and its foundation models, "
                                "and enable model access in the Bedrock console)")
                    elif code in ("ResourceNotFoundException", "ValidationException"):
                        hint = " (check CODEC_LAB_BEDROCK_MODEL_ID and CODEC_LAB_BEDROCK_REGION)"
                    raise BedrockUnavailable(f"{code}: {message}{hint}") from exc
                reason = f"{code}: {message}"
            except (ReadTimeoutError, ConnectTimeoutError, EndpointConnectionError, ConnectionClosedError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            if attempt == self.max_attempts:
                raise BedrockUnavailable(f"gave up after {attempt} attempts; last: {reason}")
            delay = self.base_delay_s * (2 ** (attempt - 1)) * (0.5 + self._rng.random() / 2)
            log.warning("bedrock converse attempt %d failed (%s); retrying in %.1fs", attempt, reason, delay)
            self.sleep(delay)
        raise AssertionError("unreachable")

    @staticmethod
    def _with_feedback(request: dict[str, Any], response: dict[str, Any], problem: str, tool_use_id: str | None) -> dict[str, Any]:
        follow = copy.deepcopy(request)
        reply = (response.get("output") or {}).get("message") or {}
        content = [b for b in reply.get("content") or [] if isinstance(b, dict)] or [{"text": "(empty reply)"}]
        follow["messages"].append({"role": "assistant", "content": content})
        feedback = (f"No valid plan could be used: {problem}. Call {TOOL_NAME} again with corrected plans "
                    "that follow the rules and the search space.")
        if tool_use_id is not None and any("toolUse" in b for b in content):
            block = {"toolResult": {"toolUseId": tool_use_id, "content": [{"text": feedback}], "status": "error"}}
            follow["messages"].append({"role": "user", "content": [block]})
        else:
            follow["messages"].append({"role": "user", "content": [{"text": feedback}]})
        return follow

    # -- proposing --------------------------------------------------------------------
    def propose(
        self, video: VideoInfo, profile: SceneProfile, history: Sequence[ExperimentRecord],
        targets: Targets, budget: Budget, n: int,
    ) -> list[ExperimentPlan]:
        round_ = rounds_done(history, profile.video_id) + 1
        report = PlanningReport(planner=self.name, round=round_)
        if n <= 0 or budget.rounds <= 0 or budget.experiments <= 0:
            self.last_report = report
            return []
        request = self.build_request(video, profile, history, targets, budget, n)
        reason = "no valid plan in 2 replies"
        for attempt in (1, 2):
            audit = dict(audit_id=f"{profile.video_id[:40]}-r{round_:02d}-a{attempt}-{int(time.time() * 1000)}",
                         video_id=profile.video_id, round=round_, attempt=attempt, planner=self.name,
                         model_id=self.model_id, prompt_version=self.prompt_version, request=_jsonable(request))
            try:
                response = self._converse(request)
            except BedrockUnavailable as exc:
                reason = str(exc)
                report = report.model_copy(update={"audit_uris": report.audit_uris + self._audit(AuditRecord(error=reason, **audit))})
                break
            drafts, problem, tool_use_id = parse_tool_input(response)
            done = finalize(drafts, space=self.space, profile=profile, history=history, budget=budget,
                            n=n, round_=round_, planner=self.name)
            uris = self._audit(AuditRecord(response=_jsonable(response), error=problem, accepted=len(done.plans),
                                           dropped=done.dropped, **audit))
            report = report.model_copy(update={
                "audit_uris": report.audit_uris + uris, "dropped": report.dropped + done.dropped,
                "adjusted": report.adjusted + done.adjusted,
            })
            if done.plans:
                self.last_report = report.model_copy(update={"proposed": len(done.plans)})
                return done.plans
            problem = problem or "; ".join(f"plan {d.index}: {d.reason}" for d in done.dropped) or "the reply held no plans"
            reason = f"no valid plan: {problem}"
            request = self._with_feedback(request, response, problem, tool_use_id)
        return self._fall_back(video, profile, history, targets, budget, n, reason, report)

    def _audit(self, record: AuditRecord) -> list[str]:
        try:
            return write_all(self.audit, record)
        except Exception as exc:  # the audit must not take planning down; it is logged loudly
            log.error("could not write the planner audit record %s: %s", record.audit_id, exc)
            return []

    def _fall_back(self, video: VideoInfo, profile: SceneProfile, history: Sequence[ExperimentRecord],
                   targets: Targets, budget: Budget, n: int, reason: str, report: PlanningReport) -> list[ExperimentPlan]:
        if self.fallback is None:
            self.last_report = report.model_copy(update={"fallback_reason": reason})
            raise PlannerError(f"the Bedrock planner ({self.model_id}) produced no plan: {reason}")
        log.warning("bedrock planner falling back to %s: %s", self.fallback.name, reason)
        plans = self.fallback.propose(video, profile, history, targets, budget, n)
        inner = self.fallback.last_report
        self.last_report = report.model_copy(update={
            "planner": f"{self.name} -> {self.fallback.name}", "proposed": len(plans), "fallback_reason": reason,
            "adjusted": report.adjusted + (inner.adjusted if inner else []),
        })
        return plans
