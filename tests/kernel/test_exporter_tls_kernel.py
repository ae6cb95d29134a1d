"""bpf-exporter over mutual TLS with basic auth, for real: certificates made
here with openssl, the real exporter with real BPF, scraped by urllib and by
a real Prometheus server; every refusal; SIGHUP with a new password."""

import os
import shutil
import signal
import ssl
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import bcrypt
import pytest

from ..certs import make_certs
from .exporter import TlsExporter, diff, parse
from .prometheus import running_prometheus, wait_for_query
from .workload import make_executables, run_execs

# TLS, client certificates, basic auth and SIGHUP are the exporter's own code
# over any kernel's maps: the host run covers them, the VM runs leave them out.
pytestmark = pytest.mark.userspace

WEB = """tls_server_config:
  cert_file: srv.crt
  key_file: srv.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
basic_auth_users:
  prom: '{hash}'
"""


def web_config(d: Path, password: bytes) -> Path:
    path = d / "web.yml"
    path.write_text(WEB.format(hash=bcrypt.hashpw(password, bcrypt.gensalt(10)).decode()))
    return path


@pytest.fixture(scope="module")
def certs():
    d = Path(tempfile.mkdtemp(prefix="pytools-tls-"))
    make_certs(d)
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d)


@pytest.fixture(scope="module")
def exporter(certs):
    exp = TlsExporter(certs, "--collectors", "execve", "--execve-by", "filename",
                      "--web.config.file", str(web_config(certs, b"s3cret")))
    exp.assert_serving()
    assert exp.early[-1].startswith("Serving https://")
    yield exp
    code, err = exp.stop()
    # Refused handshakes and passwords leave no traceback in the log.
    assert code == 0 and "Traceback" not in err, err


def refused_at_handshake(exp, cert) -> bool:
    try:
        exp.fetch(cert=cert)
    except (ssl.SSLError, ConnectionError, urllib.error.URLError):
        return True
    return False


def test_the_right_certificate_and_password_scrape_exact_counts(exporter):
    workdir = tempfile.mkdtemp()
    try:
        (true_copy,) = make_executables(workdir, ["pytools-tls-true"])
        before = exporter.scrape()
        run_execs(true_copy, 11)
        after = exporter.scrape()
    finally:
        shutil.rmtree(workdir)
    assert diff(after, before, "execve_total", filename=true_copy) == 11


@pytest.mark.parametrize("user, password, why", [
    ("prom", "wrong", "wrong password"), (None, None, "no password"),
    ("nobody", "s3cret", "unknown user"), ("", "", "empty user"),
])
def test_a_bad_password_is_401(exporter, user, password, why):
    status, body = exporter.fetch(user=user, password=password)
    assert status == 401, why
    assert "execve_total" not in body


def test_no_or_a_foreign_client_certificate_is_refused_at_the_handshake(exporter):
    assert refused_at_handshake(exporter, None)
    assert refused_at_handshake(exporter, "rogue")


def test_plain_http_gets_nothing(exporter):
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(exporter.url.replace("https://", "http://") + "/metrics",
                               timeout=10).read()


def test_health_stays_open_to_a_certified_client_without_password(exporter):
    assert exporter.fetch("/healthz", user=None) == (200, "ok\n")
    assert exporter.fetch("/", user=None)[0] == 401


def test_a_real_prometheus_scrapes_over_mutual_tls_with_basic_auth(exporter, certs):
    with running_prometheus(f"""  - job_name: bpf
    scheme: https
    tls_config: {{ca_file: {certs}/ca.crt, cert_file: {certs}/cli.crt, key_file: {certs}/cli.key}}
    basic_auth: {{username: prom, password: s3cret}}
    static_configs: [{{targets: ["127.0.0.1:{exporter.port}"]}}]
""") as port:
        wait_for_query(port, 'up{job="bpf"}', lambda r: r and r[0]["value"][1] == "1")
        assert wait_for_query(port, 'execve_probe_info{job="bpf"}', bool)


def test_sighup_takes_a_new_password_without_dropping_the_maps(certs):
    d = Path(tempfile.mkdtemp(prefix="pytools-hup-"))
    for name in ("ca.crt", "srv.crt", "srv.key", "cli.crt", "cli.key"):
        shutil.copy(certs / name, d / name)
    config = web_config(d, b"s3cret")
    exp = TlsExporter(d, "--collectors", "execve", "--execve-by", "filename",
                      "--web.config.file", str(config))
    workdir = tempfile.mkdtemp()
    try:
        exp.assert_serving()
        (true_copy,) = make_executables(workdir, ["pytools-hup-true"])
        run_execs(true_copy, 3)
        first = parse(exp.get())

        config.write_text("tls_server_config: [broken\n")            # a bad reload
        exp.proc.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        assert exp.fetch()[0] == 200                                   # the old one stays

        web_config(d, b"n3w-pass")
        exp.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while exp.fetch()[0] != 401 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert exp.fetch()[0] == 401
        run_execs(true_copy, 4)
        status, body = exp.fetch(password="n3w-pass")
        assert status == 200
        assert diff(parse(body), first, "execve_total", filename=true_copy) == 4
        assert exp.proc.poll() is None
    finally:
        shutil.rmtree(workdir)
        code, err = exp.stop()
        shutil.rmtree(d)
    assert code == 0
    assert "not reloaded" in err and "the previous one stays" in err
    assert "reloaded (" in err and "): TLS with client certificates" in err
    assert "Traceback" not in err


@pytest.mark.wall_clock
def test_a_flood_of_wrong_passwords_does_not_slow_a_right_one(exporter):
    """Wrong passwords cost a bcrypt check each (~60 ms at cost 10) in a
    bounded queue of their own; a scraper with the right one is answered from the
    cache of good answers, in well under a second, throughout."""
    import threading
    exporter.fetch()                                   # the right answer, cached
    stop, refused, latencies = threading.Event(), [], []

    def attacker():
        while not stop.is_set():
            refused.append(exporter.fetch(password="guess")[0])

    attackers = [threading.Thread(target=attacker) for _ in range(16)]
    for t in attackers:
        t.start()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            start = time.monotonic()
            assert exporter.fetch()[0] == 200
            latencies.append(time.monotonic() - start)
    finally:
        stop.set()
        for t in attackers:
            t.join(timeout=30)
    # Past the bounded queue of password checks, the excess gets 503 at once.
    assert 401 in refused and set(refused) <= {401, 503}, set(refused)
    assert max(latencies) < 1.0, sorted(latencies)[-3:]
