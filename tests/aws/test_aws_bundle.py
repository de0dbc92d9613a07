"""The Lambda bundle: built locally (no Docker), and every module in it imports without torch or numpy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from cdk.bundling import bundle_files, bundle_hash, write_bundle  # noqa: E402

BLOCK_AND_IMPORT = """
import sys, importlib, pkgutil
for heavy in ("torch", "numpy", "av", "optuna", "matplotlib", "skimage"):
    sys.modules[heavy] = None  # any import of these raises ImportError
names = [p[:-3] for p in sys.argv[1:]]
for name in names:
    importlib.import_module(name.replace("/", ".").removesuffix(".__init__"))
print("imported", len(names))
"""


def test_bundle_holds_the_handlers_and_the_torch_free_library(tmp_path):
    written = write_bundle(tmp_path)
    for handler in ("ingest.py", "plan.py", "record.py", "decide.py", "report.py", "_common.py"):
        assert handler in written
    assert "codec_lab/contracts.py" in written and "codec_lab/store/dynamo.py" in written
    assert not any(p.startswith(("codec_lab/codec/", "codec_lab/video/")) or p == "codec_lab/baselines.py" for p in written)
    assert any(p.startswith("codec_lab/planning/prompts/") for p in written)  # package data travels too
    assert bundle_hash() == bundle_hash() and len(bundle_files()) == len(written)


def test_every_bundled_module_imports_without_torch(tmp_path):
    write_bundle(tmp_path)
    modules = [p for p in sorted(str(f.relative_to(tmp_path)) for f in tmp_path.rglob("*.py"))]
    run = subprocess.run([sys.executable, "-c", BLOCK_AND_IMPORT, *modules], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "POWERTOOLS_TRACE_DISABLED": "true",
                                                      "AWS_DEFAULT_REGION": "us-east-1", "PYTHONPATH": str(tmp_path)})
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == f"imported {len(modules)}"
