"""file-opens without a kernel: flags, plan, delta, the table, the JSON,
the trace's lines, and file_open_errors_total through a registry."""

import errno
import json
import os
from types import SimpleNamespace

import pytest

from pytools import events
from pytools.self_metrics import SelfStats
from pytools.series import OTHER
from pytools.tools.file_opens import spec as file_opens_spec
from pytools.tools.file_opens.spec import SHARED, cflags, plan
from pytools.tools.file_opens.output import (OpensSnapshot, by_workload, delta, errno_name,
                                             opens_json, opens_table,
                                             path_text)
from pytools.tools.file_opens.trace import decode, event_line, flag_names, lost_line

from .pods import Pods
from .sources import FixedSource, StubCollector, registry_with, tool_collector

CUT = SHARED["PATH_KEY_LEN"] - 1


def snap(counts, overflow=0, at=10.0, by="comm"):
    return OpensSnapshot(by, counts, overflow, at, path_cut=CUT)


def test_cflags_encode_options_and_the_shared_constants():
    flags = cflags("pod", pid=7, failed=True, trace=True, max_keys=16, pages=2)
    assert f"-DBY={SHARED['KEY_CGROUP']}" in flags and "-DFILTER_PID=7" in flags
    assert {"-DFAILED_ONLY", "-DTRACE", "-DMAX_KEYS=16", "-DEVENTS_PAGES=2"} <= set(flags)
    assert "-DNO_PATH" in cflags("cgroup", paths=False)
    assert f"-DBY={SHARED['KEY_COMM']}" in cflags("comm")
    with pytest.raises(ValueError):
        cflags("uid")
    with pytest.raises(ValueError):
        cflags("comm", pages=3)          # not a power of two


def test_plan_hooks_open_only_where_the_architecture_has_it():
    x86 = [h.target for h in plan(True, "x86_64")[0].hooks]
    arm = [h.target for h in plan(True, "aarch64")[0].hooks]
    assert "syscalls:sys_enter_open" in x86 and "syscalls:sys_exit_open" in x86
    assert not [t for t in arm if t.endswith("_open")] and "syscalls:sys_exit_openat2" in arm
    exits_only = plan(False, "x86_64")[0].hooks        # the exporter: errors, no paths
    assert all("sys_exit_" in h.target for h in exits_only) and len(exits_only) == 3
    assert plan()[0].any_of      # openat2 (5.6+) only where it exists


def test_features_ask_for_the_ring_buffer_only_when_tracing():
    tool = file_opens_spec.TOOL
    assert tool.features(tool.options_of({"trace": False})) == []
    assert [f.name for f in tool.features(tool.options_of({"trace": True}))] == [events.RINGBUF]
    assert tool.features(tool.options_of({"trace": True, "ringbuf": False})) == []
    assert events.ringbuf_problem(0x050700) and events.ringbuf_problem(0x050800) is None


def test_delta_subtracts_and_drops_unchanged_rows():
    a = snap({("sh", b"/etc/x", 0): 3, ("sh", b"/nope", errno.ENOENT): 5}, 1, 10.0)
    b = snap({("sh", b"/etc/x", 0): 3, ("sh", b"/nope", errno.ENOENT): 9}, 4, 12.5)
    d = delta(b, a)
    assert d.counts == {("sh", b"/nope", errno.ENOENT): 4} and d.overflow == 3
    assert d.elapsed == 2.5 and d.total == 7 and d.failed == 4


def test_table_has_result_rate_and_escaped_paths():
    s = delta(snap({("sh", b"/etc/a\nb", 0): 4, ("sh", b"", errno.EFAULT): 1,
                    ("sh", b"/x" * 100, errno.ENOENT): 2}, 1, 2.0), snap({}, 0, 0.0))
    text = opens_table(s, 10, 2.0, failed_only=False, timestamp="12:00:00")
    lines = text.splitlines()
    assert lines[0] == "12:00:00 opens over 2.0s"
    assert lines[1].split() == ["COMM", "RESULT", "COUNT", "RATE/s", "PATH"]
    assert lines[2].split() == ["sh", "ok", "4", "2.0", "/etc/a\\nb"]
    assert "[path unreadable]" in text and "EFAULT" in text and "[cut]" in text
    assert "[map full: not keyed]" in text
    assert lines[-1].split() == ["TOTAL", "8", "4.0", "3", "failed"]
    assert "failed opens over" in opens_table(s, 10, 2.0, failed_only=True)


def test_json_rows_by_pod_with_errno_and_a_valid_hostile_path():
    workloads = Pods({5: ("shop", "web-5"), 6: ("shop", "web-6")})
    s = snap({(5, b"/etc/\x1b[31m\xff", errno.ENOENT): 7, (6, b"/a", errno.EACCES): 2},
             by="pod")
    grouped, fields = by_workload(s, workloads)
    obj = opens_json(grouped, 10, 5.0, {"mode": "tracepoint"}, "now", fields=fields)
    first = json.loads(json.dumps(obj))["groups"][0]
    assert first == {"key": "shop/web-5", "namespace": "shop", "pod": "web-5",
                     "container": "", "result": "ENOENT", "errno": errno.ENOENT, "count": 7,
                     "rate": 1.4, "path": "/etc/\\e[31m\\xff", "path_unreadable": False,
                     "path_cut": False}
    assert obj["failed"] == 9 and obj["total"] == 9


def test_errno_names_and_paths():
    assert errno_name(0) == "ok" and errno_name(errno.EMFILE) == "EMFILE"
    assert errno_name(4000) == "4000"
    assert path_text(b"", CUT) == "[path unreadable]"
    assert path_text(b"a" * CUT, CUT).endswith("[cut]") and path_text(b"a", CUT) == "a"


def test_flag_names():
    assert flag_names(os.O_RDONLY | os.O_CLOEXEC) == "O_RDONLY|O_CLOEXEC"
    assert flag_names(os.O_WRONLY | os.O_CREAT | os.O_TRUNC) == "O_WRONLY|O_CREAT|O_TRUNC"
    assert flag_names(os.O_RDWR | os.O_TMPFILE) == "O_RDWR|O_TMPFILE"
    assert flag_names(os.O_SYNC) == "O_RDONLY|O_SYNC"
    assert flag_names(1 << 30) == f"O_RDONLY|{hex(1 << 30)}"


def event(**fields):
    base = dict(ts=2_000_000_000, cgroup_id=9, pid=42, tid=43, ret=-errno.ENOENT,
                flags=os.O_RDONLY, call=SHARED["CALL_OPENAT"], comm=b"evil\x1bname")
    return SimpleNamespace(**{**base, **fields})


def test_a_traced_event_is_one_line_and_valid_json():
    calls = {SHARED[f"CALL_{c.upper()}"]: c for c in file_opens_spec.CALLS}
    pod = {"namespace": "shop", "pod": "web-1", "container": "app"}
    e = decode(event(), b"/etc/\nfake line\x9b", calls, 1_700_000_000.0, lambda cid: pod)
    assert e["time"] == "2023-11-14T22:13:22.000000+00:00"
    assert e["result"] == "ENOENT" and e["call"] == "openat" and e["comm"] == "evil\\ename"
    line = event_line(e)
    assert "\n" not in line and "\x1b" not in line and "/etc/\\nfake line\\x9b" in line
    assert line.split()[1:3] == ["shop/web-1", "42"]
    assert json.loads(json.dumps(e))["path"] == "/etc/\\nfake line\\x9b"
    ok = decode(event(ret=5, call=SHARED["CALL_OPENAT2"]), b"", calls, 0.0, lambda cid: {})
    assert ok["result"] == "5" and ok["path_unreadable"] and "[path unreadable]" in \
        event_line(ok) and event_line(ok).split()[1] == "-"
    assert lost_line(12, "ring buffer") == "[12 events lost: the ring buffer was full]"


def collector_for(snapshot, pods, max_series=10):
    from pytools.series import CgroupSeries
    c = tool_collector("file_opens", FixedSource(snapshot), SelfStats(), "k", max_series)
    c._cgroup_series = CgroupSeries(Pods(pods), "pod", 90.0, lambda ids: None)
    return c


def test_errors_by_pod_and_errno_two_containers_summed():
    s = OpensSnapshot("cgroup", {(1, b"", errno.ENOENT): 5, (2, b"", errno.ENOENT): 2,
                                 (2, b"", errno.EACCES): 1, (3, b"", errno.EMFILE): 4}, 3)
    registry = registry_with(collector_for(s, {1: ("shop", "web"), 2: ("shop", "web"),
                                               3: ("batch", "job")}))
    get = registry.get_sample_value
    assert get("file_open_errors_total", {"namespace": "shop", "pod": "web",
                                          "errno": "ENOENT"}) == 7
    assert get("file_open_errors_total", {"namespace": "shop", "pod": "web",
                                          "errno": "EACCES"}) == 1
    assert get("file_open_errors_total", {"namespace": "batch", "pod": "job",
                                          "errno": "EMFILE"}) == 4
    assert get("file_open_errors_total", {"namespace": OTHER, "pod": OTHER,
                                          "errno": OTHER}) == 3     # map full


def test_pods_beyond_the_cap_fold_into_other_keeping_their_errno():
    s = OpensSnapshot("cgroup", {(1, b"", errno.ENOENT): 9, (2, b"", errno.ENOENT): 2,
                                 (3, b"", errno.EACCES): 1})
    collector = collector_for(s, {1: ("a", "p1"), 2: ("a", "p2"), 3: ("a", "p3")}, 1)
    registry = registry_with(collector)
    get = registry.get_sample_value
    assert get("file_open_errors_total", {"namespace": "a", "pod": "p1", "errno": "ENOENT"}) == 9
    assert get("file_open_errors_total", {"namespace": OTHER, "pod": OTHER,
                                          "errno": "ENOENT"}) == 2
    assert get("file_open_errors_total", {"namespace": OTHER, "pod": OTHER,
                                          "errno": "EACCES"}) == 1


def test_empty_families_for_describe():
    (family,) = file_opens_spec.TOOL.families(None, StubCollector())
    assert family.name == "file_open_errors" and not family.samples
