"""Synthesize the stack once per session (jsii start-up and synthesis take ~20 s on a small machine)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")


def context(**overrides):
    ctx = json.loads((REPO / "cdk.json").read_text())["context"]
    ctx.update(overrides)
    return ctx


class Synth:
    def __init__(self, tmp: Path, **overrides) -> None:
        from aws_cdk.assertions import Annotations, Template

        from cdk.app import build_app

        self.app, self.stack = build_app(context(**overrides), outdir=str(tmp))
        self.assembly = self.app.synth()
        self.template = Template.from_stack(self.stack)
        self.json = self.template.to_json()
        self.annotations = Annotations.from_stack(self.stack)
        self.definition = state_machine_definition(self.json)


def state_machine_definition(template: dict) -> dict:
    (sm,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    parts = sm["Properties"]["DefinitionString"]["Fn::Join"][1]
    return json.loads("".join(p if isinstance(p, str) else "TOKEN" for p in parts))


@pytest.fixture(scope="session")
def synth(tmp_path_factory) -> Synth:
    return Synth(tmp_path_factory.mktemp("cdk-out"))


@pytest.fixture(scope="session")
def spot_synth(tmp_path_factory) -> Synth:
    return Synth(tmp_path_factory.mktemp("cdk-out-spot"), useSpot=True, notificationEmail="lab@example.com",
                 bedrockModelId="anthropic.claude-3-haiku-20240307-v1:0")
