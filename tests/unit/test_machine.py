"""The pure parts of what the machine allows (pytools.privileges), offers
(pytools.kernel) and has for headers (pytools.headers)."""

import os

from pytools import headers, kernel, privileges, syscalls

ROOT_STATUS = "Name:\tbash\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n"


def test_parse_capeff_reads_hex_mask():
    assert privileges.parse_capeff(ROOT_STATUS) == 0x1FFFFFFFFFF
    assert privileges.parse_capeff("Name: x\n") == 0


def test_root_with_all_caps_may_trace():
    assert privileges.missing_privilege(0, 0x1FFFFFFFFFF) is None


def test_bpf_and_perfmon_suffice_without_sys_admin():
    mask = 1 << privileges.CAP_BPF | 1 << privileges.CAP_PERFMON
    assert privileges.missing_privilege(1000, mask) is None


def test_bpf_alone_is_not_enough():
    problem = privileges.missing_privilege(1000, 1 << privileges.CAP_BPF)
    assert "uid 1000" in problem and "CAP_PERFMON" in problem


def test_root_without_caps_is_named_as_such():
    assert "root without CAP_SYS_ADMIN" in privileges.missing_privilege(0, 0)


def test_tracefs_from_mounts_finds_either_location():
    mounts = ("sysfs /sys sysfs rw 0 0\n"
              "tracefs /sys/kernel/debug/tracing tracefs rw 0 0\n")
    assert kernel.tracefs_from_mounts(mounts) == "/sys/kernel/debug/tracing"
    assert kernel.tracefs_from_mounts("sysfs /sys sysfs rw 0 0\n") is None
    # kubectl debug node: the node's tracefs under /host is not where BCC reads.
    assert kernel.tracefs_from_mounts("nodev /host/sys/kernel/tracing tracefs rw 0 0\n") is None


def test_parse_lockdown_picks_bracketed_mode():
    assert kernel.parse_lockdown("none integrity [confidentiality]\n") == "confidentiality"
    assert kernel.parse_lockdown("[none] integrity confidentiality") == "none"
    assert kernel.parse_lockdown("") is None


def test_parse_filter_functions_drops_module_suffix():
    lines = ["vfs_read\n", "ext4_file_read_iter [ext4]\n", "\n"]
    assert list(kernel.parse_filter_functions(lines)) == ["vfs_read", "ext4_file_read_iter"]


def exists_in(paths):
    return lambda p: p in paths


def test_headers_prefer_exact_package():
    rel = "6.1.0-1-amd64"
    build = f"/lib/modules/{rel}/build"
    h = headers.choose_headers(rel, None, exists_in({f"{build}/include",
                                                   f"{build}/include/linux/kconfig.h"}))
    assert h.path == build and h.env is None
    # Debian's split package: the shared half is reached through source/.
    h = headers.choose_headers(rel, None, exists_in({
        f"{build}/include", f"/lib/modules/{rel}/source/include/linux/kconfig.h"}))
    assert h.path == build


def test_headers_env_wins_but_must_hold_include():
    assert headers.choose_headers("x", "/k", exists_in({"/k/include"})).how == "BCC_KERNEL_SOURCE"
    assert headers.choose_headers("x", "/k", exists_in({"/lib/modules/x/build/include"})) is None


def test_headers_fall_back_to_kheaders_then_prepared_tree():
    kh = "/sys/kernel/kheaders.tar.xz"
    assert headers.choose_headers("x", None, exists_in({kh})).path == kh
    prepared = headers.PREPARED_HEADERS + "/include/linux/kconfig.h"
    h = headers.choose_headers("x", None, exists_in({prepared}))
    assert h.env is not None and "scripts/setup" in h.how


def test_a_tree_of_dangling_links_is_no_tree():
    """The build dir's include/ is there but the shared half is hidden (a
    pod's empty /usr/src): not chosen; nor a prepared tree without files."""
    rel = "6.1.0-1-amd64"
    assert headers.choose_headers(rel, None, exists_in({
        f"/lib/modules/{rel}/build/include", headers.PREPARED_HEADERS + "/include"})) is None


def links(table):
    return lambda path: table.get(path)


def test_resolve_under_keeps_absolute_links_inside_the_root():
    table = {"/host/lib": "usr/lib",
             "/host/usr/lib/modules/6.1/build": "/usr/src/linux-headers-6.1-amd64",
             "/host/usr/lib/modules/6.1/source": "../../../src/linux-headers-6.1-common"}
    assert headers.resolve_under("/host", "/lib/modules/6.1/build", links(table)) == \
        "/host/usr/src/linux-headers-6.1-amd64"
    assert headers.resolve_under("/host", "/lib/modules/6.1/source", links(table)) == \
        "/host/usr/src/linux-headers-6.1-common"
    loop = {"/host/a": "/a"}
    assert headers.resolve_under("/host", "/a/b", links(loop)).startswith("/host")


def test_node_headers_under_host_root_come_before_kheaders_and_the_generic_tree():
    rel = "6.1.0-1-amd64"
    table = {f"/host/lib/modules/{rel}/build": f"/usr/src/linux-headers-{rel}",
             f"/host/lib/modules/{rel}/source": "/usr/src/linux-headers-common"}
    split = {f"/host/usr/src/linux-headers-{rel}/include",
             "/host/usr/src/linux-headers-common/include/linux/kconfig.h",
             "/sys/kernel/kheaders.tar.xz", headers.PREPARED_HEADERS + "/include/linux/kconfig.h"}
    h = headers.choose_headers(rel, None, exists_in(split), "/host", links(table))
    assert h.parts == ("/host/usr/src/linux-headers-common", f"/host/usr/src/linux-headers-{rel}")
    assert "/host" in h.how and h.env is None
    whole = {f"/host/usr/src/linux-headers-{rel}/include/linux/kconfig.h"}
    h = headers.choose_headers(rel, None, exists_in(whole), "/host", links(table))
    assert h.env == h.path == f"/host/usr/src/linux-headers-{rel}" and not h.parts
    # Nothing under /host: the next in line.
    h = headers.choose_headers(rel, None, exists_in(split - {
        "/host/usr/src/linux-headers-common/include/linux/kconfig.h"}), "/host", links(table))
    assert h.path == "/sys/kernel/kheaders.tar.xz"


def test_merge_trees_merges_shared_directories_and_links_the_rest(tmp_path):
    common, flavour, out = tmp_path / "common", tmp_path / "flavour", tmp_path / "out"
    for d in (common / "include/linux", common / "arch/x86/include/asm",
              flavour / "include/generated", flavour / "arch/x86/include/generated", out):
        d.mkdir(parents=True)
    (common / "include/linux/kconfig.h").write_text("c")
    (common / "Makefile").write_text("common")
    (flavour / "Makefile").write_text("flavour")
    headers.merge_trees(str(out), [str(common), str(flavour)])
    assert (out / "include/linux/kconfig.h").read_text() == "c"
    assert (out / "include/generated").is_dir() and (out / "arch/x86/include/asm").is_dir()
    assert (out / "arch/x86/include/generated").is_dir()
    assert (out / "Makefile").read_text() == "flavour"
    assert (out / "include/linux").is_symlink()


def test_no_headers_at_all():
    assert headers.choose_headers("x", None, exists_in(set())) is None


def test_struct_layouts_are_trusted_only_from_this_kernels_headers():
    merged = headers.Headers(headers.PREPARED_HEADERS.replace("current", "linux-headers-6.1"),
                            "generic linux-headers-6.1, merged by scripts/setup",
                            env=headers.PREPARED_HEADERS)
    problem = headers.struct_layout_problem(merged, "6.18.44")
    assert problem and "not kernel 6.18.44's own" in problem
    exact = headers.Headers("/lib/modules/6.1.0-13-amd64/build", "headers package for 6.1")
    assert headers.struct_layout_problem(exact, "6.1.0-13-amd64") is None


def test_kernel_version_code():
    assert kernel.kernel_version_code("6.1.0-13-amd64") == 0x060100
    assert kernel.kernel_version_code("5.18.2") == 0x051202


def test_the_merged_tree_is_another_kernels_however_it_was_found():
    """A child of a tool inherits BCC_KERNEL_SOURCE pointing at the merged
    tree: still not this kernel's own headers."""
    tree = os.path.join(os.path.dirname(headers.PREPARED_HEADERS), "linux-headers-6.1")
    inherited = headers.Headers(tree, "BCC_KERNEL_SOURCE")
    assert headers.struct_layout_problem(inherited, "6.18.44")


STATUS = "Name:\tpython3\nCapEff:\t000000c000000004\nSeccomp:\t{mode}\nSeccomp_filters:\t1\n"


def test_parse_seccomp_reads_the_mode_line():
    assert privileges.parse_seccomp(STATUS.format(mode=2)) == 2
    assert privileges.parse_seccomp(STATUS.format(mode=0)) == 0
    assert privileges.parse_seccomp("Name:\tx\n") is None


def test_a_seccomp_filter_refusing_bpf_is_named_not_perf_event_paranoid():
    refused = privileges.seccomp_refused(STATUS.format(mode=2), lambda: ["bpf", "perf_event_open"])
    assert refused.startswith("seccomp refuses bpf() and perf_event_open()")
    assert "paranoid" not in refused
    assert "Unconfined" in privileges.SECCOMP_FIX and "deploy/seccomp/" in privileges.SECCOMP_FIX
    # No filter, or a filter that lets both through: nothing to say.
    assert privileges.seccomp_refused(STATUS.format(mode=0), lambda: ["bpf"]) is None
    assert privileges.seccomp_refused(STATUS.format(mode=2), lambda: []) is None


def test_seccomp_summary_for_doctor():
    assert privileges.seccomp_summary(STATUS.format(mode=0), lambda: []) == (None, "disabled")
    assert privileges.seccomp_summary(STATUS.format(mode=2), lambda: []) == \
        (True, "filter: allows bpf() and perf_event_open()")
    ok, detail = privileges.seccomp_summary(STATUS.format(mode=2), lambda: ["perf_event_open"])
    assert ok is False and "perf_event_open()" in detail


def test_the_probe_calls_tell_a_filter_by_eperm_alone():
    calls = []

    def errno_of(number, *args):
        calls.append(number)
        return {syscalls.SYS_BPF: 1, syscalls.SYS_PERF_EVENT_OPEN: 14}[number]   # EPERM, EFAULT
    assert privileges.seccomp_blocked_syscalls(errno_of) == ["bpf"]
    assert calls == [syscalls.SYS_BPF, syscalls.SYS_PERF_EVENT_OPEN]

