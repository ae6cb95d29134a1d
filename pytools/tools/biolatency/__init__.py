"""biolatency: log2 histograms of block I/O latency, per disk and operation."""

from .spec import TOOL

__all__ = ["TOOL"]
