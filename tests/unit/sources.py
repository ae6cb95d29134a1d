"""Stand-ins for loaded tools in unit tests: plain snapshots, no kernel."""


class FixedSource:
    """Stands in for a loaded tool: fixed snapshots, no kernel."""

    def __init__(self, *snapshots, mode="tracepoint", label="via tracepoints"):
        self.snapshots = list(snapshots)
        self.program = self
        self.mode, self.label = mode, label
        self.reads = 0

    def probe_info(self):
        return {"mode": self.mode, "label": self.label, "hooks": []}

    def snapshot(self):
        self.reads += 1
        if not self.snapshots:
            raise OSError("map gone")
        return self.snapshots.pop(0) if len(self.snapshots) > 1 else self.snapshots[0]
