"""Stand-ins for loaded tools in unit tests: plain snapshots, no kernel."""

import dataclasses

import pytest

from pytools.tools import TOOLS


class FixedSource:
    """Stands in for a loaded tool: fixed snapshots, no kernel."""

    def __init__(self, *snapshots, mode="tracepoint", label="via tracepoints"):
        self.snapshots = list(snapshots)
        self.program = self
        self.mode, self.label = mode, label
        self.reads = 0

    def probe_info(self):
        return {"mode": self.mode, "label": self.label, "hooks": []}

    def forget_cgroups(self, ids):
        """Nothing kept per cgroup here (pytools.tools.base.Reader's default)."""

    def snapshot(self):
        self.reads += 1
        if not self.snapshots:
            raise OSError("map gone")
        return self.snapshots.pop(0) if len(self.snapshots) > 1 else self.snapshots[0]


def registry_with(*collectors):
    """A registry of these collectors, none described at registration."""
    from prometheus_client import CollectorRegistry
    registry = CollectorRegistry(auto_describe=False)
    for c in collectors:
        registry.register(c)
    return registry


def tool_collector(name, source, stats, kernel, max_series, **opts):
    """The exporter's collector around tool `name`, reading `source`."""
    from pytools.exporter import ToolCollector
    from pytools.tools import by_name
    return ToolCollector(by_name(name), source, stats, kernel, max_series, opts)


def ExecveCollector(source, stats, kernel, max_series, by):
    return tool_collector("execve", source, stats, kernel, max_series, by=by)


def VfsReadCollector(source, stats, kernel, max_series):
    return tool_collector("vfs_read", source, stats, kernel, max_series)


def ReadaheadCollector(source, stats, kernel, max_series):
    return tool_collector("readahead", source, stats, kernel, max_series)


class StubCollector:
    """The Collector protocol (pytools.exporter) for a tool's families()
    called directly: fixed caps and options, devices named by `names`."""

    def __init__(self, max_series=10, names=str, **opts):
        from pytools.self_metrics import SelfStats
        from pytools.series import SeriesCap
        self.name = "stub"
        self.opts = opts
        self.cap, self.pod_cap = SeriesCap(max_series), SeriesCap(max_series)
        self.stats = SelfStats()
        self.device = names
        self._caches = {}

    def cgroup_series(self, by):
        raise AssertionError("no cgroup series in this stub")

    def render_cache(self, family):
        return self._caches.setdefault(family, {})


@pytest.fixture
def opened(monkeypatch):
    """Stops every tool at open() as Ctrl-C while loading would (exit 130),
    keeping the options it was given: what parsing delivered, no BPF."""
    seen = {}

    def stop(self, opts, mode="auto"):
        seen.update(dataclasses.asdict(opts))
        raise KeyboardInterrupt
    for tool in TOOLS:
        monkeypatch.setattr(type(tool), "open", stop)
    return seen
