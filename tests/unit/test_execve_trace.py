"""execve-counter --trace's pure parts: flags, decoding an event, the
line it prints."""

import json
from types import SimpleNamespace

from pytools import events
from pytools.escape import unescape
from pytools.tools.execve import spec as execve_spec
from pytools.tools.execve.plan import ExecveOptions
from pytools.tools.execve.trace import (ARGS, SHARED, args_text, cflags, decode, event_line,
                                        features, quoted, split_data)


def test_counting_pays_nothing_for_the_trace():
    plain = cflags(ExecveOptions(by="comm"))   # sizes only: nothing included without TRACE
    assert plain == [f"-D{k}={v}" for k, v in SHARED.items()] + \
        [f"-DEVENTS_PAGES={events.DEFAULT_PAGES}"]
    assert features(ExecveOptions(trace=False)) == []
    assert "-DTRACE" not in execve_spec.TOOL.cflags(execve_spec.TOOL.options_of({"by": "comm"}))


def test_trace_flags_carry_the_outcome_and_the_buffer():
    flags = cflags(ExecveOptions(trace=True, outcome="failed", buffer_pages=8))
    assert "-DTRACE" in flags and "-DTRACE_FAILED" in flags and "-DEVENTS_PAGES=8" in flags
    assert "-DTRACE_OK" in cflags(ExecveOptions(trace=True, outcome="ok"))
    assert SHARED["ARGV_MAX"] == ARGS + 1


def event(**kw):
    fields = dict(ts=0, cgroup_id=7, pid=42, tid=42, ppid=41, uid=0, ret=0, argc=0, cut=0,
                  more=0, comm=b"evil\x1bname\0")
    fields.update(kw)
    return SimpleNamespace(**fields)


def test_split_data_stops_at_argc():
    assert split_data(b"/bin/ls\0ls\0-l\0", 2) == (b"/bin/ls", [b"ls", b"-l"])
    assert split_data(b"/bin/ls\0ls\0-l\0", 1) == (b"/bin/ls", [b"ls"])
    assert split_data(b"\0", 0) == (b"", [])


def test_a_traced_exec_is_one_line_and_valid_json():
    pod = {"namespace": "shop", "pod": "web-1", "container": "app"}
    data = b"/tmp/new\nline\0sh\0-c\0\x1b[2Jx y\0" + b"A" * 128 + b"\0"
    e = decode(event(argc=4, cut=1 << 4, more=1), data, 1_700_000_000.0, lambda cid: pod)
    assert e["time"] == "2023-11-14T22:13:20.000000+00:00"
    assert (e["pid"], e["ppid"], e["comm"], e["result"], e["failed"]) == \
        (42, 41, "evil\\ename", "ok", False)
    assert e["file"] == "/tmp/new\\nline" and e["argv"][2] == "\\e[2Jx y"
    assert e["argv_cut"] == [3] and e["argv_more"] and not e["file_cut"]
    assert unescape(json.loads(json.dumps(e))["argv"][2]) == b"\x1b[2Jx y"
    line = event_line(e)
    assert "\n" not in line and "\x1b" not in line
    assert line.split()[1:6] == ["shop/web-1/app", "42", "41", "evil\\ename", "ok"]
    assert line.endswith('/tmp/new\\nline [argv0 sh] -c "\\e[2Jx y" ' + "A" * 128 +
                         "[cut] [more args]")


def test_a_failed_exec_outside_pods_names_its_errno():
    e = decode(event(ret=-2, argc=1, ppid=0), b"/nope\0nope\0", 0.0, lambda cid: {})
    assert (e["result"], e["failed"], e["ppid"]) == ("ENOENT", True, None)
    assert event_line(e).split()[1:6] == ["-", "42", "?", "evil\\ename", "ENOENT"]
    assert event_line(e).endswith(" /nope")            # argv[0] the file's name: not repeated


def test_words_are_quoted_only_where_a_shell_would_split_them():
    assert quoted("plain") == "plain"
    assert quoted("") == '""' and quoted('say "hi"') == '"say \\"hi\\""'
    e = {"file": "/bin/x", "file_cut": True, "argv": ["/bin/x", "a"], "argv_cut": [],
         "argv_more": False}
    assert args_text(e) == "/bin/x[cut] a"
