"""readahead-stats: requests, windows and pages read ahead, per device and
file, and what became of the pages (efficiency)."""

from .spec import TOOL

__all__ = ["TOOL"]
