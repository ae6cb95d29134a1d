"""vfs_read: log2 histograms of read latency, per process, pod or kind of file."""

from .spec import TOOL

__all__ = ["TOOL"]
