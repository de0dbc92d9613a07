"""codec-lab: find how best to compress a given video."""

__version__ = "0.1.0"
