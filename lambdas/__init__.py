"""AWS Lambda handlers: parse the event, call `codec_lab.aws.lab`, return a small JSON document.

In the deployment zip each module sits at the root (handler `ingest.handler`, ...); tests import
them as `lambdas.<name>`.
"""
