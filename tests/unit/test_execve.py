from types import SimpleNamespace

import pytest

from pytools.tools.execve import plan as execve_plan
from pytools.tools.execve.plan import decode_key
from pytools.tools.execve.snapshot import ExecveSnapshot, delta


def test_decode_filename_stops_at_nul_and_tolerates_bad_utf8():
    raw = SimpleNamespace(filename=b"/bin/tr\xffue\0garbage")
    assert decode_key("filename", raw) == "/bin/tr\ufffdue"


def test_decode_empty_filename_names_execveat_by_fd():
    assert decode_key("filename", SimpleNamespace(filename=b"\0" * 8)) == execve_plan.EMPTY_FILENAME


def test_decode_numeric_keys():
    assert decode_key("uid", SimpleNamespace(uid=1000)) == 1000
    assert decode_key("cgroup", SimpleNamespace(cgroup_id=4242)) == 4242
    assert decode_key("comm", SimpleNamespace(comm=b"bash\0\0\0")) == "bash"


def test_delta_subtracts_and_drops_unchanged_keys():
    prev = ExecveSnapshot("filename", {"/a": 5, "/b": 2}, overflow=1, taken_at=10.0)
    cur = ExecveSnapshot("filename", {"/a": 9, "/b": 2, "/c": 3}, overflow=4, taken_at=12.5)
    d = delta(cur, prev)
    assert d.counts == {"/a": 4, "/c": 3}
    assert d.overflow == 3 and d.total == 10 and d.elapsed == 2.5
    assert d.failed == {} and d.total_failed == 0 and d.total_ran == 10


def test_delta_of_failures():
    prev = ExecveSnapshot("comm", {"sh": 1}, failed={}, taken_at=0)
    cur = ExecveSnapshot("comm", {"sh": 3}, failed={"sh": 2}, failed_overflow=1, taken_at=1)
    d = delta(cur, prev)
    assert d.failed == {"sh": 2} and d.total_failed == 3
    assert d.ran("sh") == 0 and d.total_ran == 0


def test_cflags_encode_options():
    flags = execve_plan.cflags("uid", pid=7, uid=0, max_keys=4)
    assert flags == ["-DBY_UID", "-DMAX_KEYS=4", "-DFILTER_PID=7", "-DFILTER_UID=0"]


def test_cflags_reject_bad_values():
    with pytest.raises(ValueError):
        execve_plan.cflags("inode")
    with pytest.raises(ValueError):
        execve_plan.cflags("comm", max_keys=0)


def test_plan_always_has_the_exit_hooks_that_tell_failures():
    targets = [h.target for h in execve_plan.plan()[0].hooks]
    assert "syscalls:sys_exit_execve" in targets and "syscalls:sys_exit_execveat" in targets
