"""scripts/probe-matrix: probe logs to the per-kernel table."""

import importlib.machinery
import importlib.util
import os

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "probe-matrix")


def load_script():
    loader = importlib.machinery.SourceFileLoader("probe_matrix", SCRIPT)
    spec = importlib.util.spec_from_loader("probe_matrix", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def record(command, asked, kernel, mode, label, hooks):
    return {"command": command, "asked": asked, "kernel": kernel, "mode": mode,
            "label": label, "hooks": hooks}


def test_auto_and_forced_modes_per_kernel():
    pm = load_script()
    records = [
        record("vfsread-latency", "auto", "6.1.0", "kprobe", "vfs_read via kprobe",
               ["kprobe vfs_read", "kretprobe vfs_read"]),
        record("vfsread-latency", "fentry", "6.1.0", "fentry", "vfs_read via fentry",
               ["fentry vfs_read"]),
        record("vfsread-latency", "auto", "6.1.0", "kprobe", "vfs_read via kprobe",
               ["kprobe vfs_read", "kretprobe vfs_read"]),
        record("readahead-stats", "auto", "6.18", "tracepoint", "readahead via tracepoints",
               ["tracepoint readahead:page_cache_sync_ra"]),
    ]
    table = pm.render(pm.matrix(records)).splitlines()
    assert table[2] == ("| readahead-stats | 6.18 | readahead via tracepoints | - | "
                        "readahead via tracepoints: tracepoint readahead:page_cache_sync_ra |")
    assert table[3].startswith("| vfsread-latency | 6.1.0 | vfs_read via kprobe | "
                               "vfs_read via fentry | vfs_read via fentry: fentry vfs_read; ")
    assert len(table) == 4


def test_a_struct_reading_mode_says_where_its_layouts_came_from():
    pm = load_script()
    raw = record("runqlat", "auto", "6.18", "raw_tracepoint", "scheduler via raw tracepoints",
                 ["raw_tracepoint sched:sched_switch"])
    table = pm.render(pm.matrix([
        dict(raw, structs="BTF offsets (/sys/kernel/btf/vmlinux)"),
        dict(raw, kernel="6.1", structs="kernel headers (headers package for 6.1)")]))
    rows = table.splitlines()[2:]
    assert rows[0].startswith("| runqlat | 6.1 | scheduler via raw tracepoints "
                              "(structs: kernel headers) | - |")
    assert rows[1].startswith("| runqlat | 6.18 | scheduler via raw tracepoints "
                              "(structs: BTF offsets) | - |")


def test_no_records_is_an_error(tmp_path, capsys):
    pm = load_script()
    assert pm.main([str(tmp_path / "missing.jsonl")]) == 1
    assert "no probe records" in capsys.readouterr().err


def test_the_script_runs_with_the_systems_python_alone(tmp_path):
    """.ci/run calls it as a plain python3 script, outside the venv: it must
    not need pytools (the loader logs each tool's command for it)."""
    import json
    import subprocess
    log = tmp_path / "probes.jsonl"
    log.write_text(json.dumps(record("runqlat", "auto", "6.18", "tracepoint",
                                     "scheduler via tracepoints",
                                     ["tracepoint sched:sched_switch"])) + "\n")
    result = subprocess.run(["/usr/bin/python3", "-I", SCRIPT, str(log)],
                            capture_output=True, text=True, cwd="/")
    assert result.returncode == 0, result.stderr
    assert "| runqlat | 6.18 | scheduler via tracepoints |" in result.stdout
