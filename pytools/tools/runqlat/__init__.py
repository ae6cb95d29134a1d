"""runqlat: run queue (CPU scheduler) latency as log2 histograms."""

from .spec import TOOL

__all__ = ["TOOL"]
