import os
from pytools import system

ROOT_STATUS = "Name:\tbash\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n"


def test_parse_capeff_reads_hex_mask():
    assert system.parse_capeff(ROOT_STATUS) == 0x1FFFFFFFFFF
    assert system.parse_capeff("Name: x\n") == 0


def test_root_with_all_caps_may_trace():
    assert system.missing_privilege(0, 0x1FFFFFFFFFF) is None


def test_bpf_and_perfmon_suffice_without_sys_admin():
    mask = 1 << system.CAP_BPF | 1 << system.CAP_PERFMON
    assert system.missing_privilege(1000, mask) is None


def test_bpf_alone_is_not_enough():
    problem = system.missing_privilege(1000, 1 << system.CAP_BPF)
    assert "uid 1000" in problem and "CAP_PERFMON" in problem


def test_root_without_caps_is_named_as_such():
    assert "root without CAP_SYS_ADMIN" in system.missing_privilege(0, 0)


def test_tracefs_from_mounts_finds_either_location():
    mounts = ("sysfs /sys sysfs rw 0 0\n"
              "tracefs /sys/kernel/debug/tracing tracefs rw 0 0\n")
    assert system.tracefs_from_mounts(mounts) == "/sys/kernel/debug/tracing"
    assert system.tracefs_from_mounts("sysfs /sys sysfs rw 0 0\n") is None


def test_parse_lockdown_picks_bracketed_mode():
    assert system.parse_lockdown("none integrity [confidentiality]\n") == "confidentiality"
    assert system.parse_lockdown("[none] integrity confidentiality") == "none"
    assert system.parse_lockdown("") is None


def test_parse_filter_functions_drops_module_suffix():
    lines = ["vfs_read\n", "ext4_file_read_iter [ext4]\n", "\n"]
    assert list(system.parse_filter_functions(lines)) == ["vfs_read", "ext4_file_read_iter"]


def exists_in(paths):
    return lambda p: p in paths


def test_headers_prefer_exact_package():
    rel = "6.1.0-1-amd64"
    h = system.choose_headers(rel, None, exists_in({f"/lib/modules/{rel}/build/include"}))
    assert h.path == f"/lib/modules/{rel}/build" and h.env is None


def test_headers_env_wins_but_must_hold_include():
    assert system.choose_headers("x", "/k", exists_in({"/k/include"})).how == "BCC_KERNEL_SOURCE"
    assert system.choose_headers("x", "/k", exists_in({"/lib/modules/x/build/include"})) is None


def test_headers_fall_back_to_kheaders_then_prepared_tree():
    kh = "/sys/kernel/kheaders.tar.xz"
    assert system.choose_headers("x", None, exists_in({kh})).path == kh
    prepared = system.PREPARED_HEADERS + "/include"
    h = system.choose_headers("x", None, exists_in({prepared}))
    assert h.env is not None and "scripts/setup" in h.how


def test_no_headers_at_all():
    assert system.choose_headers("x", None, exists_in(set())) is None


def test_struct_layouts_are_trusted_only_from_this_kernels_headers():
    merged = system.Headers(system.PREPARED_HEADERS.replace("current", "linux-headers-6.1"),
                            "generic linux-headers-6.1, merged by scripts/setup",
                            env=system.PREPARED_HEADERS)
    problem = system.struct_layout_problem(merged, "6.18.44")
    assert problem and "not kernel 6.18.44's own" in problem
    exact = system.Headers("/lib/modules/6.1.0-13-amd64/build", "headers package for 6.1")
    assert system.struct_layout_problem(exact, "6.1.0-13-amd64") is None


def test_kernel_version_code():
    assert system.kernel_version_code("6.1.0-13-amd64") == 0x060100
    assert system.kernel_version_code("5.18.2") == 0x051202


def test_the_merged_tree_is_another_kernels_however_it_was_found():
    """A child of a tool inherits BCC_KERNEL_SOURCE pointing at the merged
    tree: still not this kernel's own headers."""
    tree = os.path.join(os.path.dirname(system.PREPARED_HEADERS), "linux-headers-6.1")
    inherited = system.Headers(tree, "BCC_KERNEL_SOURCE")
    assert system.struct_layout_problem(inherited, "6.18.44")
