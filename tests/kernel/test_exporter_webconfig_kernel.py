"""The web config as operators use it, with the real exporter: certificates
rotated in place (as a Kubernetes Secret or cert-manager renews them) and
applied without a signal, reloads that never kill, credentials that never
cause a 500, configured headers on every answer, a real Prometheus scraping
through a rotation."""

import shutil
import signal
import socket
import subprocess
import time
from base64 import b64encode
from pathlib import Path

import bcrypt
import pytest

from ..certs import openssl
from .exporter import TlsExporter, free_port, raw
from .prometheus import prometheus_query, running_prometheus, wait_for_query
from .webconfig import context, HASH, MUTUAL, node_dir, start, status  # noqa: F401 (fixtures)
from .workload import tool_command, wait_for

# The web config's handling is the same on every kernel, and its checks wait
# on wall-clock rotations and restarts: the host run has them (under the
# VM's software emulation they took six minutes).
pytestmark = pytest.mark.wall_clock


def served_certificate(exp: TlsExporter, d: Path) -> bytes:
    with socket.create_connection(("127.0.0.1", exp.port), timeout=10) as raw:
        with context(d).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return tls.getpeercert(binary_form=True)


def new_server_certificate(d: Path, name: str) -> None:
    """A renewed server certificate and key from the same CA."""
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
            f"{name}.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", "san.ext", cwd=d)


def replace_in_place(path: Path, content: bytes) -> None:
    """As cert-manager and an editor do: the same file, new content."""
    path.write_bytes(content)


def test_a_client_ca_replaced_in_place_is_applied_without_a_signal(node_dir):
    d = node_dir
    exp = start(d)
    try:
        assert status(exp, d, "cli") == 200
        assert status(exp, d, "rogue") is None
        # The old CA revoked, the other one trusted instead: no SIGHUP.
        replace_in_place(d / "ca.crt", (d / "rogue-ca.crt").read_bytes())
        assert wait_for(lambda: status(exp, d, "rogue") == 200, 10), "new CA not trusted"
        assert status(exp, d, "cli") is None, "a client of the removed CA is still trusted"
    finally:
        code, err = exp.stop()
    assert code == 0 and "Traceback" not in err
    assert "reloaded (a file changed)" in err


def test_a_renewed_certificate_is_served_without_a_signal(node_dir):
    d = node_dir
    exp = start(d)
    try:
        before = served_certificate(exp, d)
        new_server_certificate(d, "renewed")
        # The key first, then the certificate: in between they do not match,
        # and the pair in force stays until both are there.
        replace_in_place(d / "srv.key", (d / "renewed.key").read_bytes())
        time.sleep(1.5)
        assert status(exp, d) == 200
        replace_in_place(d / "srv.crt", (d / "renewed.crt").read_bytes())
        assert wait_for(lambda: served_certificate(exp, d) != before, 10), \
            "the renewed certificate is not served"
        assert status(exp, d) == 200
    finally:
        code, err = exp.stop()
    assert code == 0 and "Traceback" not in err
    assert err.count("not reloaded") >= 1            # the mismatched moment, said


BAD_FILES = {
    "a list for a string": MUTUAL.replace("RequireAndVerifyClientCert",
                                          "[VerifyClientCertIfGiven]"),
    "a NUL in a path": MUTUAL.replace("cert_file: srv.crt", 'cert_file: "srv\\0.crt"'),
    "an alias bomb": "a: &a [x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 8) + "]\n"
        for i in range(12)),
    "a cost that never ends": MUTUAL.replace(HASH, "$2y$31$" + HASH[7:]),
    "a key set twice": MUTUAL + "basic_auth_users:\n  x: y\n",
}


def test_a_broken_file_on_sighup_is_refused_and_the_old_one_serves(node_dir):
    d = node_dir
    exp = start(d)
    try:
        for name, text in BAD_FILES.items():
            (d / "web.yml").write_text(text)
            exp.proc.send_signal(signal.SIGHUP)
            time.sleep(1.2)
            assert exp.proc.poll() is None, f"{name}: the exporter died"
            assert status(exp, d) == 200, name
        # A hung reload would keep SIGTERM from ending it: there is none.
        (d / "web.yml").write_text(BAD_FILES["a cost that never ends"])
        exp.proc.send_signal(signal.SIGHUP)
        time.sleep(0.1)
        stopped = time.monotonic()
        code, err = exp.stop(timeout=15)
        assert time.monotonic() - stopped < 10
    finally:
        if exp.proc.poll() is None:
            exp.stop()
    assert code == 0, err
    assert "Traceback" not in err
    refusals = [line for line in err.splitlines() if "not reloaded" in line]
    assert len(refusals) >= len(BAD_FILES), err


@pytest.mark.parametrize("name", BAD_FILES)
def test_the_same_files_at_start_are_one_line(node_dir, name):
    d = node_dir
    (d / "web.yml").write_text(BAD_FILES[name])
    started = time.monotonic()
    result = subprocess.run(tool_command("bpf-exporter") + [
        "--collectors", "execve", "--listen", f"127.0.0.1:{free_port()}",
        "--web.config.file", str(d / "web.yml")], cwd="/", capture_output=True, text=True,
        timeout=60)
    assert time.monotonic() - started < 30
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bpf-exporter: error: --web.config.file"), \
        result.stderr


def test_credentials_a_client_sends_never_cause_a_500_or_a_log_line(node_dir):
    d = node_dir
    exp = start(d)
    try:
        long_password = b64encode(b"prom:" + b"p" * 100).decode()
        nul = b64encode(b"prom:s3cret\0").decode()
        answers = []
        for header in (f"Basic {long_password}", f"Basic {nul}", "Basic \u00e9\u00e9==",
                       "Basic", "Basic !!!!"):
            data = (f"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: {header}\r\n"
                    "Connection: close\r\n\r\n").encode("utf-8")
            answers.append(raw(exp, context(d), data).split(b"\r\n", 1)[0])
    finally:
        code, err = exp.stop()
    assert answers == [b"HTTP/1.1 401 Unauthorized"] * 5, answers
    assert code == 0 and "Traceback" not in err and "ERROR" not in err.upper(), err


def test_a_72_byte_prefix_is_what_counts_as_in_go(node_dir):
    d = node_dir
    password = b"q" * 72
    (d / "web.yml").write_text(MUTUAL.replace(
        HASH, bcrypt.hashpw(password, bcrypt.gensalt(4)).decode()))
    exp = start(d)
    try:
        token = b64encode(b"prom:" + password + b"and-more").decode()
        data = (f"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {token}\r\n"
                "Connection: close\r\n\r\n").encode()
        assert raw(exp, context(d), data).startswith(b"HTTP/1.1 200 ")
    finally:
        exp.stop()


HEADERS = """http_server_config:
  headers:
    X-Frame-Options: deny
    Content-Security-Policy: "default-src 'none' \u20ac"
"""


def test_configured_headers_are_on_every_answer_and_any_value_serves(node_dir):
    d = node_dir
    (d / "web.yml").write_text(MUTUAL + HEADERS)
    exp = start(d)
    try:
        answers = {
            "200": raw(exp, context(d), b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                                       b"Connection: close\r\n\r\n"),
            "401": raw(exp, context(d), b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                                       b"Connection: close\r\n\r\n"),
            "405": raw(exp, context(d), b"POST /metrics HTTP/1.1\r\nHost: x\r\n"
                                       b"Content-Length: 0\r\nConnection: close\r\n\r\n"),
            "400": raw(exp, context(d), b"NONSENSE\r\n\r\n"),
        }
    finally:
        exp.stop()
    for code, answer in answers.items():
        head = answer.split(b"\r\n\r\n", 1)[0]
        assert head.startswith(f"HTTP/1.1 {code} ".encode()), (code, head)
        assert b"\r\nX-Frame-Options: deny" in head, (code, head)
        assert "Content-Security-Policy: default-src 'none' \u20ac".encode() in head, head


def test_a_real_prometheus_keeps_scraping_through_a_rotation(node_dir):
    d = node_dir
    exp = start(d)
    try:
        with running_prometheus(f"""  - job_name: bpf
    scheme: https
    tls_config: {{ca_file: {d}/scraper-ca.crt, cert_file: {d}/cli.crt, key_file: {d}/cli.key}}
    basic_auth: {{username: prom, password: s3cret}}
    static_configs: [{{targets: ["127.0.0.1:{exp.port}"]}}]
""") as port:
            wait_for_query(port, 'up{job="bpf"}', lambda r: r and r[0]["value"][1] == "1")
            before = served_certificate(exp, d)
            new_server_certificate(d, "renewed")
            # As a Secret update lands: both files replaced by a rename.
            for name in ("srv.key", "srv.crt"):
                shutil.copy(d / name.replace("srv", "renewed"), d / f".{name}.new")
                (d / f".{name}.new").rename(d / name)
            assert wait_for(lambda: served_certificate(exp, d) != before, 10)
            rotated = time.time()
            # Every scrape since: up, and samples newer than the rotation.
            wait_for_query(port, 'timestamp(execve_probe_info{job="bpf"})',
                           lambda r: r and float(r[0]["value"][1]) > rotated + 2)
            ups = prometheus_query(port, 'min_over_time(up{job="bpf"}[5s])')
            assert ups and ups[0]["value"][1] == "1", ups
    finally:
        code, err = exp.stop()
    assert code == 0 and "Traceback" not in err
