"""Processing-job entry point for Analyze: probe, scene profile, classical anchor sweep.

Input under /opt/ml/processing/input/video, outputs under /opt/ml/processing/output (uploaded to
runs/<video id>/analysis/ by SageMaker); the failure reason goes to /opt/ml/output/message.
"""

from __future__ import annotations

import sys

from codec_lab.aws.jobs import SageMakerPaths, analyze_main

if __name__ == "__main__":
    sys.exit(analyze_main(SageMakerPaths.from_env(), sys.argv[1:]))
