"""The experiment store protocol, its errors, and the logic both stores share.

Writes are idempotent on ids: writing the same plan twice is a no-op; a finished result is
never overwritten (the first one wins, a retried write returns False). A plan without a
result is an unfinished experiment: still running, or its runner crashed; it is never lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from codec_lab.contracts import (
    AuditRecord,
    ExperimentPlan,
    ExperimentRecord,
    ExperimentResult,
    SceneClass,
    Targets,
    VideoRecord,
    VideoStatus,
    utc_now,
)
from codec_lab.errors import CodecLabError
from codec_lab.planning.scoring import score


class StoreError(CodecLabError):
    """The store refused an operation (missing record, unreadable file, newer schema)."""


class StoreConflictError(StoreError):
    """A write reuses an id for different content (a bug in the caller, never a retry)."""


@runtime_checkable
class ExperimentStore(Protocol):
    def put_video(self, record: VideoRecord) -> None: ...
    def get_video(self, video_id: str) -> VideoRecord | None: ...
    def set_video_status(self, video_id: str, status: VideoStatus, note: str | None = None) -> VideoRecord: ...
    def list_videos(self) -> list[VideoRecord]: ...
    def put_plan(self, plan: ExperimentPlan) -> bool: ...
    def put_plans(self, plans: Sequence[ExperimentPlan]) -> list[bool]: ...
    def put_result(self, result: ExperimentResult) -> bool: ...
    def get_experiment(self, video_id: str, plan_id: str) -> ExperimentRecord | None: ...
    def list_experiments(self, video_id: str) -> list[ExperimentRecord]: ...
    def unfinished(self, video_id: str) -> list[ExperimentRecord]: ...
    def best_by_scene_class(self, scene_class: SceneClass, limit: int = 10) -> list[ExperimentRecord]: ...
    def history_for(self, video_id: str, similar_limit: int = 20) -> list[ExperimentRecord]: ...
    def put_audit(self, record: AuditRecord) -> bool: ...
    def list_audit(self, video_id: str) -> list[AuditRecord]: ...


def same_plan(a: ExperimentPlan, b: ExperimentPlan) -> bool:
    """Same experiment (a retried write), whatever the rationale text or timestamp."""
    return (a.video_id, a.round, a.strategy, dict(a.parameters)) == (b.video_id, b.round, b.strategy, dict(b.parameters))


def conflict(existing: ExperimentPlan, new: ExperimentPlan) -> StoreConflictError:
    return StoreConflictError(
        f"plan id {new.plan_id!r} of video {new.video_id!r} is already stored for a different experiment "
        f"({existing.strategy} {dict(existing.parameters)} round {existing.round}, not {new.strategy} "
        f"{dict(new.parameters)} round {new.round}); plan ids must be unique per experiment"
    )


class StoreBase:
    """Operations built from the primitive ones; both stores inherit them."""

    default_targets: Targets = Targets()

    def put_plans(self, plans: Sequence[ExperimentPlan]) -> list[bool]:
        return [self.put_plan(p) for p in plans]  # type: ignore[attr-defined]

    def unfinished(self, video_id: str) -> list[ExperimentRecord]:
        return [r for r in self.list_experiments(video_id) if not r.finished]  # type: ignore[attr-defined]

    def history_for(self, video_id: str, similar_limit: int = 20) -> list[ExperimentRecord]:
        """This video's experiments, then the best `similar_limit` on other clips of its scene class."""
        mine = self.list_experiments(video_id)  # type: ignore[attr-defined]
        video = self.get_video(video_id)  # type: ignore[attr-defined]
        if video is None or video.profile is None or similar_limit <= 0:
            return mine
        similar = [r for r in self.best_by_scene_class(video.profile.scene_class, similar_limit + len(mine))  # type: ignore[attr-defined]
                   if r.video_id != video_id]
        return mine + similar[:similar_limit]

    def set_video_status(self, video_id: str, status: VideoStatus, note: str | None = None) -> VideoRecord:
        current = self.get_video(video_id)  # type: ignore[attr-defined]
        if current is None:
            raise StoreError(f"no video {video_id!r} in the store; put_video it first")
        updated = current.model_copy(update={"status": status, "note": note if note is not None else current.note,
                                             "updated_at": utc_now()})
        self.put_video(updated)  # type: ignore[attr-defined]
        return updated

    def _context(self, video_id: str) -> tuple[SceneClass | None, Targets]:
        video = self.get_video(video_id)  # type: ignore[attr-defined]
        if video is None:
            return None, self.default_targets
        return (video.profile.scene_class if video.profile else None), video.targets

    def _score(self, result: ExperimentResult, targets: Targets) -> float | None:
        return score(result.metrics, targets) if result.status == "succeeded" and result.metrics else None
