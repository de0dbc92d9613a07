"""Where planner exchanges are kept: a JSON file per exchange locally, an S3 object on AWS.

Each sink returns the URI it wrote; the planner puts it in the `AuditRecord` it also hands
to the store (`ExperimentStore.put_audit`), so the history can point at the full text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Protocol

from codec_lab.contracts import AuditRecord


class AuditSink(Protocol):
    def write(self, record: AuditRecord) -> str:
        """Persist `record`; return its URI."""
        ...


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "_"


def _key(record: AuditRecord) -> str:
    return f"{_safe(record.video_id)}/round-{record.round:02d}/{_safe(record.audit_id)}.json"


class FileAuditSink:
    """One pretty-printed JSON file per exchange under `root` (default runs/audit)."""

    def __init__(self, root: str | Path = "runs/audit") -> None:
        self.root = Path(root)

    def write(self, record: AuditRecord) -> str:
        path = self.root / _key(record)
        path.parent.mkdir(parents=True, exist_ok=True)
        uri = path.resolve().as_uri()
        path.write_text(json.dumps(record.model_copy(update={"uri": uri}).model_dump(mode="json"), indent=2))
        return uri


class S3AuditSink:
    """One JSON object per exchange at s3://bucket/prefix/<video>/round-NN/<id>.json (SSE by the bucket)."""

    def __init__(self, bucket: str, prefix: str = "runs/audit", client: Any | None = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("s3")
        self.bucket, self.prefix, self.client = bucket, prefix.strip("/"), client

    def write(self, record: AuditRecord) -> str:
        key = f"{self.prefix}/{_key(record)}" if self.prefix else _key(record)
        uri = f"s3://{self.bucket}/{key}"
        body = json.dumps(record.model_copy(update={"uri": uri}).model_dump(mode="json"), indent=2).encode()
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")
        return uri


class MemoryAuditSink:
    """Keeps records in a list (tests, dry runs)."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    def write(self, record: AuditRecord) -> str:
        uri = f"memory://{_key(record)}"
        self.records.append(record if record.uri else record.model_copy(update={"uri": uri}))
        return uri


class StoreAuditSink:
    """Hands the record to an `ExperimentStore` (its audit trail); put after a file/S3 sink so `uri` is set."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def write(self, record: AuditRecord) -> str:
        self.store.put_audit(record)
        return f"store://{record.video_id}/{record.audit_id}"


def write_all(sinks: list[Any], record: AuditRecord) -> list[str]:
    """Write `record` to every sink in order; the first URI is stamped on the record the later ones get."""
    uris: list[str] = []
    for sink in sinks:
        stamped = record if record.uri or not uris else record.model_copy(update={"uri": uris[0]})
        uris.append(sink.write(stamped))
    return uris
