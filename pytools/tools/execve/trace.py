"""execve: the event stream (--trace)."""

from __future__ import annotations

import datetime as _dt
from typing import Callable, Dict, List, Optional

import click

from ... import cdefs, events, tracing
from ...options import buffer_pages_option
from ...probes import Feature, place_fields
from ...structs import Field
from ...workloads import WORKLOAD_KINDS
from ...escape import escape
from ..file_opens.output import CUT, errno_name


ARGS = 20                        # arguments shown after argv[0], as execsnoop
SHARED = {"ARG_LEN": 128,        # bytes of each argument kept (then cut, marked)
          "ARGV_MAX": ARGS + 1,  # argv entries read: argv[0] and ARGS arguments
          "FILE_LEN": 4096}      # bytes of the file name: PATH_MAX, so never cut in practice
MORE = "[more args]"
HEADER = (f"{'TIME':<15} {'POD':<32} {'PID':>7} {'PPID':>7} {'COMM':<16} {'RESULT':>7} "
          "FILE ARGS")
NOTE = (f"With --trace, print each exec instead (for INTERVAL x COUNT seconds, or until "
        f"Ctrl-C): the time it returned, the pod "
        f"(namespace/pod/container, where the caller's cgroup is a pod's; --by pod or "
        f"container keeps only those), pid and parent pid, the caller's name, the result "
        f"(ok, or the errno name of a failed exec), the file and argv: argv[0] (shown when "
        f"it is not the file's name) and the first {ARGS} arguments, each cut at "
        f"{SHARED['ARG_LEN']} bytes (marked {CUT}; {MORE} when there were more). "
        f"Names and arguments are printed escaped on one line; events the buffer could "
        f"not take are counted in the kernel and shown as \"[N events lost]\".")

OPTIONS = (
    click.option("--trace", is_flag=True, help="Print each exec as it happens instead of counts."),
    buffer_pages_option(),
)


def cflags(options) -> List[str]:
    """The sizes always (the shared lines of bpf/execve_trace.h and events.h,
    both left out of the program without TRACE); with trace, TRACE, which
    results to send. `options`: the tool's (plan.ExecveOptions)."""
    flags = cdefs.flags(SHARED) + events.page_flags(options.buffer_pages)
    if not options.trace:
        return flags
    flags.append("-DTRACE")
    outcome = options.outcome
    if outcome:
        flags.append(f"-DTRACE_{outcome.upper()}")
    return flags


# The caller's parent (bpf/execve.c's `// btf:` line), with PARENT.
PARENT_FIELDS = (Field("PARENT_TGID", "task_struct->real_parent->tgid"),)


def parent_feature() -> Feature:
    """The parent's pid, where its struct reads can be placed: the kernel's
    BTF first, else its own headers (pytools/probes.py place_fields); else
    the trace runs without it (ppid unknown)."""
    # the loader (headers, tempfiles) only where a program is loaded: --help starts without it.
    from ...loader import prepare
    flags, source, problem = place_fields(PARENT_FIELDS, prepare().facts, btf_first=True)
    return Feature("parent pid", defines=tuple(flags) + ("-DPARENT",), problem=problem,
                   detail=f"the parent's pid, from {source}" if source else "")


def features(options) -> list:
    if not options.trace:
        return []
    # ringbuf=False (tests): the perf buffer, as on kernels before 5.8.
    ringbuf = [events.ringbuf_feature()] if options.ringbuf else []
    return ringbuf + [parent_feature()]


def check_pages(params: dict) -> None:
    """--buffer-pages with --trace: a usage error where it is no buffer size."""
    if not params.get("trace"):
        return
    try:
        events.page_flags(params["buffer_pages"])
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--buffer-pages") from None


def split_data(data: bytes, argc: int) -> "tuple[bytes, List[bytes]]":
    """The event's data: the file name, then argc arguments, each NUL-ended."""
    parts = data.split(b"\0")
    return parts[0], parts[1:1 + argc]


def decode(event, data: bytes, wall_offset: float,
           workload: Callable[[int], Dict[str, str]]) -> dict:
    """An event (bpf/execve_trace.h's fields) and its data as plain data."""
    ret = int(event.ret)
    cut = int(event.cut)
    filename, argv = split_data(data, int(event.argc))
    when = _dt.datetime.fromtimestamp(event.ts / 1e9 + wall_offset, _dt.timezone.utc)
    return {"event": "exec", "time": when.isoformat(timespec="microseconds"),
            **workload(int(event.cgroup_id)), "pid": int(event.pid), "tid": int(event.tid),
            "ppid": int(event.ppid) or None, "uid": int(event.uid),
            "comm": escape(bytes(event.comm).split(b"\0", 1)[0]),
            "ret": ret, "result": errno_name(-ret) if ret < 0 else "ok", "failed": ret < 0,
            "file": escape(filename), "file_cut": bool(cut & 1),
            "argv": [escape(a) for a in argv],
            "argv_cut": [i for i in range(len(argv)) if cut >> (i + 1) & 1],
            "argv_more": bool(event.more)}


def quoted(arg: str) -> str:
    """An escaped argument as one shell-like word: quoted where it is empty
    or holds a space or a quote."""
    if arg and not any(c in arg for c in " \"'"):
        return arg
    return '"' + arg.replace('"', '\\"') + '"'


def args_text(e: dict) -> str:
    """The file, then argv[0] where it is not the file's name, then the
    arguments, each marked where cut."""
    def word(i: int, arg: str) -> str:
        return quoted(arg) + (CUT if i in e["argv_cut"] else "")

    words = [e["file"] + (CUT if e["file_cut"] else "")]
    argv = e["argv"]
    if argv and argv[0] not in (e["file"], e["file"].rsplit("/", 1)[-1]):
        words.append("[argv0 " + word(0, argv[0]) + "]")
    words += [word(i, a) for i, a in enumerate(argv) if i]
    if e["argv_more"]:
        words.append(MORE)
    return " ".join(words)


def event_line(e: dict) -> str:
    pod = "/".join(v for v in (e.get("namespace"), e.get("pod"), e.get("container")) if v) \
        or "-"
    return (f"{e['time'][11:26]:<15} {pod:<32} {e['pid']:>7} {e['ppid'] or '?':>7} "
            f"{e['comm']:<16} {e['result']:>7} {args_text(e)}")


def in_pod(fields: Dict[str, str]) -> bool:
    return bool(fields.get("pod"))


class Tracer(tracing.Tracer):
    """Reads an ExecveReader's events (compiled with TRACE)."""

    def __init__(self, reader, emit: Callable[[object], None], as_json: bool,
                 workload: Callable[[int], Dict[str, str]], pages: int,
                 pods_only: bool = False):
        self.workload, self.pods_only = workload, pods_only
        self.wall_offset = tracing.wall_offset()   # bpf_ktime_get_ns is monotonic
        self.event_type = tracing.event_struct(reader.program, "execve_scratch")
        super().__init__(reader.program, emit, as_json, self._decode, event_line, pages)

    def _decode(self, address: int, size: int) -> Optional[dict]:
        event = self.event_type.from_address(address)
        data = tracing.tail(self.event_type, "data", address, size, int(event.data_len))
        e = decode(event, data, self.wall_offset, self.workload)
        return None if self.pods_only and not in_pod(e) else e


def run(reader, session) -> None:
    """--trace: events until INTERVAL x COUNT seconds or Ctrl-C."""
    options = session.opts

    def pod_of(cgroup_id: int) -> dict:
        return tracing.pod_fields(reader.names.workloads, cgroup_id)

    tracer = Tracer(reader, session.emit, session.as_json, pod_of,
                    options.buffer_pages, pods_only=options.by in WORKLOAD_KINDS)
    tracing.run_trace(tracer, reader.program, session, HEADER,
                      tracing.session_deadline(session))
