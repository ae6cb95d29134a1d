from click.testing import CliRunner

from pytools.cli import execve_counter, main


def run(*args):
    return CliRunner().invoke(execve_counter, list(args))


def test_help_ends_with_examples():
    result = run("--help")
    assert result.exit_code == 0
    assert "Examples:" in result.output
    assert result.output.rstrip().splitlines()[-1].lstrip().startswith("execve-counter")


def test_bad_interval_is_a_usage_error():
    result = run("0")
    assert result.exit_code == 2 and "INTERVAL" in result.output


def test_bad_key_kind_is_a_usage_error():
    result = run("--by", "inode")
    assert result.exit_code == 2 and "inode" in result.output


def test_count_must_be_positive():
    assert run("1", "0").exit_code == 2


# The trace's sizes are passed always (bpf/execve_trace.h's shared line),
# used only with --trace.
CFLAGS = ("// cflags: -DCOMM_LEN=16 -DBY_UID -DMAX_KEYS=16 -DARG_LEN=128 -DARGV_MAX=21 "
          "-DFILE_LEN=4096 -DEVENTS_PAGES=64 -DPROBE_TRACEPOINT")


def test_ebpf_prints_the_program_with_its_flags():
    result = run("--ebpf", "--by", "uid", "--max-keys", "16")
    assert result.exit_code == 0
    first, rest = result.output.split("\n", 1)
    assert first == CFLAGS
    assert "BPF_HASH(execve_total" in rest


def test_ebpf_without_bcc_prints_the_unchecked_program(monkeypatch):
    """As root on a machine without bcc, --ebpf still shows the program
    (the plan's first candidate), and says why it is unchecked."""
    from pytools import privileges
    monkeypatch.setattr(privileges, "bcc_importable", lambda: False)
    monkeypatch.setattr(privileges, "missing_privilege", lambda euid, caps: None)
    result = run("--ebpf", "--by", "uid", "--max-keys", "16")
    assert result.exit_code == 0, result.output
    first, second, rest = result.output.split("\n", 2)
    assert first == CFLAGS
    assert "not checked against this kernel: the bcc module is not installed" in second
    assert "BPF_HASH(execve_total" in rest


def test_group_lists_tools_and_doctor():
    result = CliRunner().invoke(main, ["--help"])
    assert "execve-counter" in result.output and "doctor" in result.output
