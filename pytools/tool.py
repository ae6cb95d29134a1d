"""What a tool is: one spec per tool, in the package pytools/tools/<name>/.

A spec names the tool once (`name`: bpf/<name>.c, pytools/tools/<name>/,
its exporter collector, its tests) and holds everything particular to it:
its command and help, options, probe plan, the reader that loads its BPF
program, the delta of two snapshots, its text and JSON rendering, and its
metric families. The CLI, the exporter, doctor and the tests loop over
pytools.tools.TOOLS and know no tool by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable, List, Mapping, Optional, Sequence

from .probes import Candidate, plan_modes


@dataclass(frozen=True)
class Names:
    """The name caches a reader keeps for its output (names for what its
    snapshots hold, looked up only for what is shown): kernel devs
    (names.DeviceNames), cgroup ids as workloads (workloads.Workloads),
    readahead's (dev, inode) as paths (names.FileNames). None: not kept."""
    devices: Any = None
    workloads: Any = None
    files: Any = None


@dataclass(frozen=True)
class View:
    """What a renderer needs besides the snapshot."""
    probe: dict                  # Program.probe_info()
    label: str                   # the candidate that attached, as users read it
    when: str                    # ISO time of this output (JSON)
    clock: Optional[str] = None  # HH:MM:SS with -T, else None
    interval: float = 1.0        # the interval asked for
    opts: Any = field(default_factory=dict)    # the tool's options (Tool.options_of)
    verbose: bool = False        # -v: say why a name could not be found
    names: Names = Names()       # the reader's name caches (Reader.names)

    def rated(self, seconds: float) -> bool:
        """Whether a rate over `seconds` means anything: not for a last
        interval Ctrl-C cut to a few milliseconds."""
        return seconds >= min(1.0, self.interval / 2)


class Tool:
    """Base of every tool spec; subclasses fill in the class attributes and
    the methods that raise NotImplementedError."""

    name = ""            # the one name: bpf/<name>.c, collector, package, tests
    command = ""         # the console script, e.g. "execve-counter"
    # Where the tool stands in every list of tools (commands, doctor, the
    # exporter's collectors): the first eight in the order they came.
    order = 1000
    summary = ""         # one line, for the command list and the README table
    description = ""     # --help text
    examples = ""        # --help epilog: worked examples, each line a command
    default_interval = 5.0
    # click decorators: the tool's own CLI options, and its exporter options
    # (declared with a "--<name>-" prefix and dest "<name>_<option>"; the
    # collector gets them as {"<option>": value}).
    options: Sequence[Callable] = ()
    exporter_options: Sequence[Callable] = ()
    # Old options that took an optional value and are flags now, with the
    # values still read after them for one release ({"-P": choices}).
    legacy_values: dict = {}
    # Whether bpf-exporter loads it without --collectors naming it (False
    # for a tool whose cost to the whole node makes it opt-in).
    exporter_default = True
    # Why the plan's candidates are in their order, where more than one mode
    # can work (shown by -v and pytools doctor).
    order_reason = ""

    # The tool's options: a frozen dataclass with a field per option of its
    # command, built once (options_of) by the CLI, doctor or the exporter
    # (exporter_open) and handed to plan, cflags, features and the reader.
    Options: type

    def options_of(self, params: Mapping[str, Any]) -> Any:
        """The tool's options from its command's parsed ones (aliases
        resolved): each field from its option, absent ones defaulted."""
        names = {f.name for f in fields(self.Options)}
        return self.Options(**{k: v for k, v in params.items() if k in names})

    # ------------------------------------------------------------ probes
    # plan(options), cflags(options) and features(options) are the only
    # builders of what is loaded: the reader open() makes, --ebpf and
    # doctor all use them (plan() with none: the default options).
    def plan(self, options: Any = None) -> List[Candidate]:
        """The probe candidates, in order (tests/unit/test_plan_flags.py)."""
        raise NotImplementedError

    def modes(self) -> List[str]:
        return plan_modes(self.plan())

    def cflags(self, options: Any) -> List[str]:
        """Flags for these options, before the probe candidate's own."""
        raise NotImplementedError

    def features(self, options: Any) -> list:
        """Optional features compiled in where the kernel allows
        (probes.Feature)."""
        return []

    # ------------------------------------------------------------ reading
    def open(self, options: Any, mode: str = "auto"):
        """Load and attach: a reader (pytools.tools.base.Reader). Usage
        errors are the options' (options_of, the command's callbacks), not
        raised here."""
        raise NotImplementedError

    def delta(self, cur, prev):
        raise NotImplementedError

    def cumulative(self, options: Any) -> bool:
        """Show totals since start rather than per interval."""
        return False

    # ------------------------------------------------------------ output
    def text(self, shown, view: View) -> str:
        raise NotImplementedError

    def json(self, shown, view: View) -> dict:
        raise NotImplementedError

    def run(self, reader, session) -> None:
        """The command's main loop; tools that stream events override it."""
        session.intervals(reader)

    # ------------------------------------------------------------ exporter
    def exporter_open(self, opts: dict, mode: str = "auto"):
        """The exporter's reader: `opts` are the collector's options
        ({"by": ...}); the tool builds its Options for the exporter here."""
        raise NotImplementedError

    def families(self, snapshot, collector) -> list:
        """Metric families from a snapshot (None: empty ones, for describe()).
        `collector` offers cap and pod_cap (series caps), stats, opts,
        device(), cgroup_series(by) (values keyed by cgroup id as pod series,
        with churn cleanup) and render_cache(family)."""
        raise NotImplementedError
