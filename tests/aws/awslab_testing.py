"""Names shared by the AWS tests (a module with a unique name: `conftest` is ambiguous across suites)."""

BUCKET = "codec-lab-test-bucket"
TABLE = "codec-lab-experiments"
IDEMPOTENCY = "codec-lab-idempotency"
