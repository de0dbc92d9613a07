"""Lambda code bundled without Docker.

The Lambdas' dependencies (pydantic 2, aws-xray-sdk, Powertools itself) come from the Powertools
public layer and boto3 from the runtime, so the bundle is pure Python that we own: the handlers in
`lambdas/` at the root of the zip, and the torch-free part of `codec_lab`. A local bundler copies
exactly those files; the Docker image CDK asks for is never used (CDK tries `local` first).

`LAMBDA_MODULES` is the allow-list; `tests/aws` imports every bundled module with torch and numpy
blocked, proving the Lambdas carry no torch.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import aws_cdk as cdk
import jsii

REPO_ROOT = Path(__file__).resolve().parent.parent
LAMBDAS_DIR = REPO_ROOT / "lambdas"

# Torch-free parts of the library the handlers import (files and packages, relative to the repo root).
LAMBDA_MODULES: tuple[str, ...] = (
    "codec_lab/__init__.py",
    "codec_lab/contracts.py",
    "codec_lab/errors.py",
    "codec_lab/steps.py",
    "codec_lab/decide.py",
    "codec_lab/aws",
    "codec_lab/store",
    "codec_lab/planning",
)
PACKAGE_DATA_SUFFIXES = (".py", ".json", ".txt", ".md")


def bundle_files() -> list[tuple[Path, str]]:
    """(source file, path inside the zip) for everything the Lambda bundle holds, sorted."""
    files: list[tuple[Path, str]] = []
    for handler in sorted(LAMBDAS_DIR.glob("*.py")):
        if handler.name != "__init__.py":
            files.append((handler, handler.name))
    for entry in LAMBDA_MODULES:
        src = REPO_ROOT / entry
        if src.is_file():
            files.append((src, entry))
        elif src.is_dir():
            for path in sorted(src.rglob("*")):
                if path.is_file() and path.suffix in PACKAGE_DATA_SUFFIXES and "__pycache__" not in path.parts:
                    files.append((path, path.relative_to(REPO_ROOT).as_posix()))
    return files


def bundle_hash() -> str:
    """SHA-256 over the bundle's paths and contents: the asset changes exactly when the bundle does."""
    digest = hashlib.sha256()
    for src, rel in bundle_files():
        digest.update(rel.encode() + b"\0" + src.read_bytes() + b"\0")
    return digest.hexdigest()


def write_bundle(output_dir: str | Path) -> list[str]:
    out = Path(output_dir)
    written = []
    for src, rel in bundle_files():
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        written.append(rel)
    return written


@jsii.implements(cdk.ILocalBundling)
class LocalPythonBundler:
    """CDK's local bundling hook: copy the allow-listed files, never run Docker."""

    def try_bundle(self, output_dir: str, *, image: cdk.DockerImage, **_: object) -> bool:  # noqa: D102
        write_bundle(output_dir)
        return True


def lambda_code() -> "cdk.aws_lambda.Code":
    from aws_cdk import aws_lambda

    return aws_lambda.Code.from_asset(
        str(LAMBDAS_DIR),
        asset_hash=bundle_hash(),
        asset_hash_type=cdk.AssetHashType.CUSTOM,
        bundling=cdk.BundlingOptions(
            # Required by the API, never pulled: the local bundler always succeeds.
            image=cdk.DockerImage.from_registry("public.ecr.aws/sam/build-python3.13"),
            local=LocalPythonBundler(),
        ),
    )
