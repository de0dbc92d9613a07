"""The AWS lab's glue: settings, payloads of the state machine, S3 URIs, the ingest rules,
the SageMaker job contract and a boto3 SageMaker backend. No torch at import time: the
Lambdas carry this package (the job entry points import the heavy library lazily).
"""
