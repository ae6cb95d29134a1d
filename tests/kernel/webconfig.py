"""The TLS web configs the exporter's web-config kernel tests start it with."""

import shutil
import ssl
import tempfile
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

import bcrypt
import pytest

from ..certs import make_certs
from .exporter import TlsExporter


HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()


MUTUAL = f"""tls_server_config:
  cert_file: srv.crt
  key_file: srv.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
basic_auth_users:
  prom: '{HASH}'
"""


@pytest.fixture
def node_dir():
    """A folder like a mounted Secret: the web config and its certificates."""
    d = Path(tempfile.mkdtemp(prefix="pytools-web-"))
    make_certs(d)
    # The scraper's own trust, apart from what the exporter is told to trust.
    shutil.copy(d / "ca.crt", d / "scraper-ca.crt")
    (d / "web.yml").write_text(MUTUAL)
    yield d
    shutil.rmtree(d)


def start(d: Path, *args) -> TlsExporter:
    exp = TlsExporter(d, "--collectors", "execve", "--web.config.file", str(d / "web.yml"),
                      *args)
    exp.assert_serving()
    return exp


def context(d: Path, cert="cli"):
    ctx = ssl.create_default_context(cafile=str(d / "scraper-ca.crt"))
    if cert:
        ctx.load_cert_chain(str(d / f"{cert}.crt"), str(d / f"{cert}.key"))
    return ctx


def status(exp: TlsExporter, d: Path, cert="cli", path="/metrics", headers=None):
    """The answer's status, or None if the handshake was refused."""
    request = urllib.request.Request(exp.url + path)
    token = b64encode(b"prom:s3cret").decode()
    request.add_header("Authorization", f"Basic {token}")
    for k, v in (headers or {}).items():
        request.add_header(k, v)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context(d, cert)) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (ssl.SSLError, ConnectionError, urllib.error.URLError):
        return None
