"""Names shared by the AWS tests (a module with a unique name: `conftest` is ambiguous across suites)."""

BUCKET = "codec-lab-test-bucket"
TABLE = "codec-lab-experiments"
IDEMPOTENCY = "codec-lab-idempotency"


def model_tarball(result) -> bytes:
    """A SageMaker model.tar.gz holding `result` as result.json, as the training job writes it."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = result.model_dump_json().encode()
        info = tarfile.TarInfo("result.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def av1_only_planner():
    """The local planner restricted to SVT-AV1 (fast, no torch), seed 1."""
    from codec_lab.planning.local import LocalPlanner
    from codec_lab.planning.space import default_search_space

    return LocalPlanner(default_search_space().only(["av1"]), seed=1)
