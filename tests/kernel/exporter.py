"""The exporter as the kernel tests run it: the real daemon on a free loopback
port (plain or TLS), scraped and parsed into samples."""

import signal
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path
from typing import Dict, Tuple

from prometheus_client.parser import text_string_to_metric_families

from .workload import tool_command


Samples = Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Exporter:
    def __init__(self, *args: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            tool_command("bpf-exporter") + ["--listen", f"127.0.0.1:{self.port}", *args],
            cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.early = []     # stderr lines up to the banner (or to exit)
        for line in self.proc.stderr:
            self.early.append(line)
            if line.startswith("Serving"):
                break

    def assert_serving(self):
        assert self.early and self.early[-1].startswith("Serving"), f"no banner: {self.early}"

    def get(self, path: str = "/metrics", timeout: float = 10) -> str:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
            assert response.status == 200
            return response.read().decode()

    def scrape(self, timeout: float = 10) -> Samples:
        return parse(self.get(timeout=timeout))

    def stop(self, sig=signal.SIGTERM, timeout: float = 10) -> Tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return self.proc.returncode, err


def parse(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def diff(after: Samples, before: Samples, name: str, **labels) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


class TlsExporter(Exporter):
    def __init__(self, certs: Path, *args):
        super().__init__(*args)
        self.certs = certs
        self.url = self.url.replace("http://", "https://")

    def context(self, cert="cli"):
        ctx = ssl.create_default_context(cafile=str(self.certs / "ca.crt"))
        if cert:
            ctx.load_cert_chain(str(self.certs / f"{cert}.crt"), str(self.certs / f"{cert}.key"))
        return ctx

    def fetch(self, path="/metrics", user="prom", password="s3cret", cert="cli"):
        """(status, body)."""
        request = urllib.request.Request(self.url + path)
        if user is not None:
            token = b64encode(f"{user}:{password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=10, context=self.context(cert)) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def get(self, path="/metrics", timeout=10):
        status, body = self.fetch(path)
        assert status == 200, (status, body)
        return body


def raw(exp, *args) -> bytes:
    """raw(exp, data) or raw(exp, tls_context, data): send bytes as they
    are and read the answer until the server closes."""
    *context, data = args
    s = socket.create_connection(("127.0.0.1", exp.port), timeout=10)
    if context:
        s = context[0].wrap_socket(s, server_hostname="127.0.0.1")
    with s:
        s.sendall(data)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
