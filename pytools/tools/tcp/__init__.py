"""tcpretrans: TCP retransmitted segments, SYN retransmits and resets by
the pod that owns the socket (not the task on the CPU), counted in the
kernel's own unit; --trace prints each one."""

from .spec import TOOL

__all__ = ["TOOL"]
