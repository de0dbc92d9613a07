"""`SqliteStore`: the local default, one file (runs/lab.sqlite), WAL mode.

Safe for one writer and any number of concurrent readers (other processes included):
writes take an IMMEDIATE transaction, readers never block on WAL. Every row is validated
against its contract when read.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from pydantic import ValidationError

from codec_lab.contracts import (
    AuditRecord,
    ExperimentPlan,
    ExperimentRecord,
    ExperimentResult,
    SceneClass,
    Targets,
    VideoRecord,
)
from codec_lab.store.protocol import StoreBase, StoreError, conflict, same_plan

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS videos (
    video_id TEXT PRIMARY KEY, status TEXT NOT NULL, scene_class TEXT, updated_at TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS experiments (
    video_id TEXT NOT NULL, plan_id TEXT NOT NULL, round INTEGER NOT NULL, status TEXT NOT NULL,
    scene_class TEXT, score REAL, plan TEXT NOT NULL, result TEXT, created_at TEXT NOT NULL,
    PRIMARY KEY (video_id, plan_id));
CREATE INDEX IF NOT EXISTS experiments_by_scene ON experiments (scene_class, score DESC) WHERE score IS NOT NULL;
CREATE TABLE IF NOT EXISTS audit (
    video_id TEXT NOT NULL, audit_id TEXT NOT NULL, created_at TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (video_id, audit_id));
"""


class SqliteStore(StoreBase):
    def __init__(self, path: str | Path = "runs/lab.sqlite", *, targets: Targets | None = None, create: bool = True) -> None:
        self.path = Path(path)
        self.default_targets = targets or Targets()
        if not create and not self.path.exists():
            raise StoreError(f"no experiment store at {self.path}; run an experiment first or pass --store PATH")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a readable SQLite experiment store ({exc})") from exc
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} has store schema {version}, newer than this codec-lab ({SCHEMA_VERSION}); upgrade codec-lab")
        self._lock = threading.Lock()
        if version < SCHEMA_VERSION:
            with self._write():
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "SqliteStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------
    class _Tx:
        def __init__(self, store: "SqliteStore") -> None:
            self.store = store

        def __enter__(self) -> sqlite3.Connection:
            self.store._lock.acquire()
            self.store._db.execute("BEGIN IMMEDIATE")
            return self.store._db

        def __exit__(self, exc_type: object, *rest: object) -> None:
            try:
                self.store._db.execute("ROLLBACK" if exc_type else "COMMIT")
            finally:
                self.store._lock.release()

    def _write(self) -> "SqliteStore._Tx":
        return SqliteStore._Tx(self)

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _load(self, model: type, text: str, what: str):  # type: ignore[no-untyped-def]
        try:
            return model.model_validate_json(text)
        except ValidationError as exc:
            raise StoreError(f"{self.path}: stored {what} does not match its contract: {exc.errors()[0]}") from exc

    def _record(self, row: tuple) -> ExperimentRecord:
        video_id, plan, result, scene_class, score = row
        return ExperimentRecord(
            video_id=video_id,
            plan=self._load(ExperimentPlan, plan, f"plan of {video_id}"),
            result=self._load(ExperimentResult, result, f"result of {video_id}") if result else None,
            scene_class=scene_class, score=score,
        )

    # -- videos -----------------------------------------------------------------------
    def put_video(self, record: VideoRecord) -> None:
        scene = record.profile.scene_class if record.profile else None
        with self._write() as db:
            db.execute(
                "INSERT INTO videos (video_id, status, scene_class, updated_at, body) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (video_id) DO UPDATE SET status=excluded.status, scene_class=excluded.scene_class, "
                "updated_at=excluded.updated_at, body=excluded.body",
                (record.video_id, record.status, scene, record.updated_at, record.model_dump_json()),
            )
            if scene is not None:  # experiments planned before the profile existed learn their class now
                db.execute("UPDATE experiments SET scene_class=? WHERE video_id=? AND scene_class IS NULL", (scene, record.video_id))

    def get_video(self, video_id: str) -> VideoRecord | None:
        rows = self._read("SELECT body FROM videos WHERE video_id=?", (video_id,))
        return self._load(VideoRecord, rows[0][0], f"video {video_id}") if rows else None

    def list_videos(self) -> list[VideoRecord]:
        return [self._load(VideoRecord, b, "video") for (b,) in self._read("SELECT body FROM videos ORDER BY updated_at DESC, video_id")]

    # -- experiments ------------------------------------------------------------------
    def put_plan(self, plan: ExperimentPlan) -> bool:
        scene, _ = self._context(plan.video_id)
        with self._write() as db:
            row = db.execute("SELECT plan FROM experiments WHERE video_id=? AND plan_id=?", (plan.video_id, plan.plan_id)).fetchone()
            if row is not None:
                existing = self._load(ExperimentPlan, row[0], f"plan {plan.plan_id}")
                if not same_plan(existing, plan):
                    raise conflict(existing, plan)
                return False
            db.execute(
                "INSERT INTO experiments (video_id, plan_id, round, status, scene_class, score, plan, result, created_at) "
                "VALUES (?, ?, ?, 'planned', ?, NULL, ?, NULL, ?)",
                (plan.video_id, plan.plan_id, plan.round, scene, plan.model_dump_json(), plan.created_at),
            )
            return True

    def put_result(self, result: ExperimentResult) -> bool:
        scene, targets = self._context(result.video_id)
        with self._write() as db:
            row = db.execute("SELECT result FROM experiments WHERE video_id=? AND plan_id=?", (result.video_id, result.plan_id)).fetchone()
            if row is None:
                raise StoreError(f"no plan {result.plan_id!r} for video {result.video_id!r}; put_plan must come before put_result")
            if row[0] is not None:
                return False  # finished already: the first result stays
            db.execute(
                "UPDATE experiments SET status=?, result=?, score=?, scene_class=COALESCE(?, scene_class) WHERE video_id=? AND plan_id=?",
                (result.status, result.model_dump_json(), self._score(result, targets), scene, result.video_id, result.plan_id),
            )
            return True

    _COLUMNS = "video_id, plan, result, scene_class, score"

    def get_experiment(self, video_id: str, plan_id: str) -> ExperimentRecord | None:
        rows = self._read(f"SELECT {self._COLUMNS} FROM experiments WHERE video_id=? AND plan_id=?", (video_id, plan_id))
        return self._record(rows[0]) if rows else None

    def list_experiments(self, video_id: str) -> list[ExperimentRecord]:
        rows = self._read(f"SELECT {self._COLUMNS} FROM experiments WHERE video_id=? ORDER BY round, plan_id", (video_id,))
        return [self._record(r) for r in rows]

    def best_by_scene_class(self, scene_class: SceneClass, limit: int = 10) -> list[ExperimentRecord]:
        rows = self._read(
            f"SELECT {self._COLUMNS} FROM experiments WHERE scene_class=? AND score IS NOT NULL "
            "ORDER BY score DESC, video_id, plan_id LIMIT ?", (scene_class, int(limit)))
        return [self._record(r) for r in rows]

    # -- audit ------------------------------------------------------------------------
    def put_audit(self, record: AuditRecord) -> bool:
        with self._write() as db:
            cur = db.execute("INSERT OR IGNORE INTO audit (video_id, audit_id, created_at, body) VALUES (?, ?, ?, ?)",
                             (record.video_id, record.audit_id, record.created_at, record.model_dump_json()))
            return cur.rowcount == 1

    def list_audit(self, video_id: str) -> list[AuditRecord]:
        rows = self._read("SELECT body FROM audit WHERE video_id=? ORDER BY created_at, audit_id", (video_id,))
        return [self._load(AuditRecord, b, "audit record") for (b,) in rows]
