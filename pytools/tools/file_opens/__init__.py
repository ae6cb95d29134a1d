"""file-opens: open/openat/openat2 calls by caller, file and result; with
--failed only the failures, by errno; with --trace each one as it happens."""

from .spec import TOOL

__all__ = ["TOOL"]
