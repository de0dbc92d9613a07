"""The CDK app: `cdk synth` / `cdk deploy` run `python -m cdk.app` (see cdk.json).

Settings come from `cdk.json` context (or `-c key=value`), validated by `codec_lab.aws.settings`;
cdk-nag's AwsSolutions checks run on every synth and fail it on any unsuppressed finding.
"""

from __future__ import annotations

import os

import aws_cdk as cdk
import cdk_nag

from cdk.stack import CodecLabStack
from codec_lab.aws.settings import LabSettings

STACK_NAME = "CodecLab"


def build_app(context: dict | None = None, *, outdir: str | None = None, nag: bool = True) -> tuple[cdk.App, CodecLabStack]:
    app = cdk.App(context=context, outdir=outdir)
    settings = LabSettings.from_context(app.node.try_get_context)
    env = cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION"))
    stack = CodecLabStack(app, app.node.try_get_context("stackName") or STACK_NAME, settings=settings, env=env)
    if nag:
        cdk.Aspects.of(app).add(cdk_nag.AwsSolutionsChecks(verbose=True))
    return app, stack


def main() -> None:
    app, _ = build_app()
    app.synth()


if __name__ == "__main__":
    main()
