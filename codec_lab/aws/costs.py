"""What SageMaker time costs: the budget per video in dollars becomes GPU-seconds for the planner.

On-demand SageMaker training prices, us-east-1, USD per instance-hour (AWS price list, 2025).
Other regions differ by up to ~30%; managed spot is typically 60-70% cheaper. An instance type not
listed falls back to DEFAULT_USD_PER_HOUR and the docs say so.
"""

from __future__ import annotations

TRAINING_USD_PER_HOUR: dict[str, float] = {
    "ml.g4dn.xlarge": 0.736,
    "ml.g4dn.2xlarge": 0.94,
    "ml.g4dn.4xlarge": 1.505,
    "ml.g5.xlarge": 1.408,
    "ml.g5.2xlarge": 1.515,
    "ml.g6.xlarge": 1.1644,
    "ml.g6.2xlarge": 1.4016,
    "ml.p3.2xlarge": 3.825,
}
PROCESSING_USD_PER_HOUR: dict[str, float] = {
    "ml.m5.large": 0.115,
    "ml.m5.xlarge": 0.23,
    "ml.m5.2xlarge": 0.461,
    "ml.c5.xlarge": 0.204,
    "ml.c5.2xlarge": 0.408,
}
DEFAULT_USD_PER_HOUR = 1.5


def training_usd_per_hour(instance_type: str) -> float:
    return TRAINING_USD_PER_HOUR.get(instance_type, DEFAULT_USD_PER_HOUR)


def gpu_seconds_for_budget(budget_usd: float, instance_type: str) -> float:
    return budget_usd / training_usd_per_hour(instance_type) * 3600.0


def usd_for_gpu_seconds(seconds: float, instance_type: str) -> float:
    return seconds / 3600.0 * training_usd_per_hour(instance_type)
