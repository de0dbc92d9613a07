"""Training-job entry point (`docker run <image> train`): one experiment plan, end to end.

Reads /opt/ml/input/config/hyperparameters.json and the `plan` and `video` channels, runs the plan,
writes result.json and the bitstream to /opt/ml/model, the failure reason to /opt/ml/output/failure.
`SM_ROOT` (default /opt/ml) lets tests stand a temporary folder in for /opt/ml.
"""

from __future__ import annotations

import sys

from codec_lab.aws.jobs import SageMakerPaths, train_main

if __name__ == "__main__":
    # SageMaker passes "train" as the only argument; anything else is ignored.
    sys.exit(train_main(SageMakerPaths.from_env()))
