"""The experiment store: videos, plans, results and the planner audit trail. No torch here.

    store = open_store()                 # SqliteStore at $CODEC_LAB_STORE or runs/lab.sqlite
    store = DynamoStore(table, client)   # on AWS
    store.put_plans(plans); store.put_result(result); store.history_for(video_id)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codec_lab.store.protocol import ExperimentStore, StoreConflictError, StoreError
from codec_lab.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from codec_lab.store.dynamo import DynamoStore

DEFAULT_STORE_PATH = "runs/lab.sqlite"

__all__ = ["DEFAULT_STORE_PATH", "DynamoStore", "ExperimentStore", "SqliteStore", "StoreConflictError",
           "StoreError", "default_store_path", "open_store"]


def default_store_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--store PATH, else $CODEC_LAB_STORE, else runs/lab.sqlite (relative to the working folder)."""
    return Path(explicit or os.environ.get("CODEC_LAB_STORE") or DEFAULT_STORE_PATH)


def open_store(path: str | os.PathLike[str] | None = None, *, create: bool = True) -> SqliteStore:
    return SqliteStore(default_store_path(path), create=create)


def __getattr__(name: str) -> Any:
    if name == "DynamoStore":
        from codec_lab.store.dynamo import DynamoStore

        return DynamoStore
    raise AttributeError(f"module 'codec_lab.store' has no attribute {name!r}")
