"""S3 URIs and the lab's bucket layout (uploads/, runs/, reports/). No AWS calls here."""

from __future__ import annotations

from dataclasses import dataclass

UPLOADS = "uploads/"
RUNS = "runs/"
REPORTS = "reports/"
TMP = "tmp/"


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> "S3Uri":
        if not uri.startswith("s3://"):
            raise ValueError(f"not an s3:// URI: {uri!r}")
        bucket, _, key = uri[5:].partition("/")
        if not bucket:
            raise ValueError(f"no bucket in {uri!r}")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def join(self, *parts: str) -> "S3Uri":
        key = self.key
        for part in parts:
            key = (key.rstrip("/") + "/" if key else "") + part.lstrip("/")
        return S3Uri(self.bucket, key)

    @property
    def name(self) -> str:
        return self.key.rstrip("/").rsplit("/", 1)[-1]


def run_prefix(bucket: str, video_id: str) -> S3Uri:
    return S3Uri(bucket, f"{RUNS}{video_id}/")


def analysis_prefix(bucket: str, video_id: str) -> S3Uri:
    return S3Uri(bucket, f"{RUNS}{video_id}/analysis/")


def plan_prefix(bucket: str, video_id: str, plan_id: str) -> S3Uri:
    return S3Uri(bucket, f"{RUNS}{video_id}/plans/{plan_id}/")


def jobs_prefix(bucket: str, video_id: str) -> S3Uri:
    return S3Uri(bucket, f"{RUNS}{video_id}/jobs/")


def checkpoint_prefix(bucket: str, video_id: str, plan_id: str) -> S3Uri:
    return S3Uri(bucket, f"{TMP}checkpoints/{video_id}/{plan_id}/")


def report_prefix(bucket: str, video_id: str) -> S3Uri:
    return S3Uri(bucket, f"{REPORTS}{video_id}/")
