"""`npx aws-cdk@2 synth` with the venv's python: the app runs under the real CLI, without Docker."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_cdk_cli_synth(tmp_path):
    npx = shutil.which("npx")
    if npx is None:
        pytest.skip("npx is not installed")
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1", "CDK_DISABLE_VERSION_CHECK": "1",
           # Docker must not be needed: point it at a command that fails if anything calls it.
           "CDK_DOCKER": "/bin/false"}
    out = tmp_path / "cdk.out"
    run = subprocess.run([npx, "--yes", "aws-cdk@2", "synth", "-q", "--no-notices", "--output", str(out)], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])
    template = json.loads((out / "CodecLab.template.json").read_text())
    assert sum(r["Type"] == "AWS::Lambda::Function" for r in template["Resources"].values()) == 5
    assets = json.loads((out / "CodecLab.assets.json").read_text())
    assert assets["dockerImages"]  # described for `cdk deploy`, not built
