"""Explicit IAM statements: named actions only (no `*`, no `Get*`), resources scoped to prefixes.

CDK's `grant_read` gives `s3:GetObject*`/`s3:List*`; the lab names each action instead so that a
reader (and the tests) can see exactly what each role may do.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3

TABLE_READ = ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:DescribeTable")
TABLE_WRITE = ("dynamodb:PutItem", "dynamodb:UpdateItem")


def s3_read(grantee: iam.IGrantable, bucket: s3.IBucket, prefixes: Sequence[str]) -> None:
    grantee.grant_principal.add_to_principal_policy(iam.PolicyStatement(
        actions=["s3:GetObject", "s3:GetObjectVersion"],
        resources=[bucket.arn_for_objects(f"{p}*") for p in prefixes],
    ))
    grantee.grant_principal.add_to_principal_policy(iam.PolicyStatement(
        actions=["s3:ListBucket"],
        resources=[bucket.bucket_arn],
        conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}},
    ))


def s3_write(grantee: iam.IGrantable, bucket: s3.IBucket, prefixes: Sequence[str]) -> None:
    grantee.grant_principal.add_to_principal_policy(iam.PolicyStatement(
        actions=["s3:PutObject", "s3:AbortMultipartUpload"],
        resources=[bucket.arn_for_objects(f"{p}*") for p in prefixes],
    ))


def table_access(grantee: iam.IGrantable, table: ddb.ITable, *, write: bool, with_indexes: bool = True) -> None:
    actions = list(TABLE_READ) + (list(TABLE_WRITE) if write else [])
    resources = [table.table_arn] + ([f"{table.table_arn}/index/*"] if with_indexes else [])
    grantee.grant_principal.add_to_principal_policy(iam.PolicyStatement(actions=actions, resources=resources))
