"""Shared by the handlers: Powertools objects, clients and the store, created once per container."""

from __future__ import annotations

import functools

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer

from codec_lab.aws.lab import LabRuntime

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@functools.lru_cache(maxsize=1)
def runtime() -> LabRuntime:
    return LabRuntime.from_env()


@functools.lru_cache(maxsize=None)
def client(name: str, region: str | None = None):  # noqa: ANN201
    return boto3.client(name, region_name=region) if region else boto3.client(name)


@functools.lru_cache(maxsize=1)
def store():  # noqa: ANN201
    from codec_lab.store.dynamo import DynamoStore

    return DynamoStore(runtime().table_name, client("dynamodb"))


def reset() -> None:
    """Tests: forget cached clients after changing the environment."""
    runtime.cache_clear()
    client.cache_clear()
    store.cache_clear()
