"""pytools doctor's table: 80 columns, continuation lines under DETAIL."""

from pytools.doctor import Check, render, stats_detail

LONG = ("read syscalls via tracepoints, compiled against generic "
        "linux-headers-6.1.0-57-amd64, copied by scripts/setup (not: fentry: the kernel "
        "refuses fentry programs: EPERM (Operation not permitted); kernel lockdown refuses "
        "fentry this way)")
CHECKS = [
    Check("kernel", None, "6.18.44"),
    Check("vfsread-latency", True, LONG),
    Check("readahead-stats order", None, "cheapest for the whole machine first: fentry on "
          "the readahead functions (a direct call), then the readahead tracepoints"),
    Check("readahead-stats efficiency", False, "not measured: " + LONG, "run as root"),
    # A path too long for the column is never cut: it starts a line 4 in.
    Check("kernel headers", True, "/var/lib/bpf-pytools/kernel-headers/linux-headers-6.1.0-"
          "57-cloud-amd64 (generic linux-headers-6.1.0-57-cloud-amd64, copied by "
          "scripts/setup)"),
]


def test_every_line_fits_80_columns_and_continues_under_detail():
    text = render(CHECKS)
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), [len(x) for x in lines]
    detail = lines[0].index("DETAIL")
    rows = 0
    for line in lines[1:]:
        if line.startswith(" "):
            stripped = line.lstrip()
            indent = len(line) - len(stripped)
            # A continuation starts at DETAIL's column, or (a word too long
            # for the column) 4 in, on the lines under a bare head.
            assert indent in (detail, 4), line
        else:
            rows += 1
            assert line[detail - 7:detail - 1].strip() in ("ok", "FAIL", "info"), line
            assert len(line) <= detail or line[detail - 1] == " "
    assert rows == len(CHECKS)
    # The words of a wrapped detail are all there, in order.
    assert " ".join(text.split()).count("kernel lockdown refuses fentry this way") == 2
    assert "fix: run as root" in " ".join(text.split())


def test_statistics_row_says_whether_they_are_on_and_who_holds_them():
    assert stats_detail("0", []) == \
        "off (kernel.bpf_stats_enabled=0, no process holds them)"
    held = stats_detail("0", [(42, "bpf-exporter")])
    assert held.startswith("on: held by bpf-exporter (pid 42) (BPF_ENABLE_STATS)")
    assert "every BPF program on the node pays two clock reads per run" in held
    both = stats_detail("1", [(7, "bpftool")])
    assert both.startswith("on: kernel.bpf_stats_enabled=1 (the node's sysctl), and held by "
                           "bpftool (pid 7)")
