"""--web.config.file parsing, against `promtool check web-config` on the same
files: what promtool refuses we refuse; what we cannot honour we refuse with
one line, though promtool accepts it."""

import base64
import os
import shutil
import subprocess

import bcrypt
import pytest

from pytools.webconfig import (PasswordCheck, WebConfigError, load_web_config, parse_basic)

from ..certs import make_certs

HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


TLS = "tls_server_config:\n  cert_file: srv.crt\n  key_file: srv.key\n"
BOTH_ACCEPT = {
    "empty": "",
    "basic auth": f"basic_auth_users:\n  prom: '{HASH}'\n  other: '{HASH}'\n",
    "tls": TLS,
    "mutual tls": TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n",
    "optional client cert": TLS + "  client_auth_type: VerifyClientCertIfGiven\n"
                                  "  client_ca_file: ca.crt\n",
    "versions": TLS + "  min_version: TLS12\n  max_version: TLS13\n",
    "headers": "http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n",
    "everything": TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
                        f"basic_auth_users:\n  prom: '{HASH}'\n",
}
BOTH_REFUSE = {
    "bad hash": ("basic_auth_users:\n  prom: plaintext\n", "not a bcrypt hash"),
    "no key": ("tls_server_config:\n  cert_file: srv.crt\n", "missing key_file"),
    "no cert": ("tls_server_config:\n  key_file: srv.key\n", "missing cert_file"),
    "ca without auth": (TLS + "  client_ca_file: ca.crt\n", "client_ca_file is set"),
    "bogus auth": (TLS + "  client_auth_type: Bogus\n", "client_auth_type 'Bogus'"),
    "bad version": (TLS + "  min_version: TLS99\n", "unknown TLS version"),
    "unknown field": ("listen: 1\n", "unknown field 'listen'"),
    "unknown tls field": (TLS + "  certfile: x\n", "unknown field tls_server_config.certfile"),
    "missing file": ("tls_server_config:\n  cert_file: nope.crt\n  key_file: srv.key\n",
                     "no such file"),
    "cert as key": ("tls_server_config:\n  cert_file: srv.crt\n  key_file: srv.crt\n",
                    "not a matching certificate and key"),
    "header": ("http_server_config:\n  headers:\n    X-Custom: a\n", "cannot be configured"),
    # Newer exporter-toolkits have it; Debian's promtool 2.42 does not know it.
    "sans": (TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
                   "  client_allowed_sans: [a]\n", "client_allowed_sans is not supported"),
}
WE_REFUSE = {   # promtool accepts; we cannot honour them
    "cipher suites": (TLS + "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n",
                      "cipher_suites is not supported"),
    "request cert": (TLS + "  client_auth_type: RequestClientCert\n", "is not supported"),
    "require any": (TLS + "  client_auth_type: RequireAnyClientCert\n", "is not supported"),
    "http2": ("http_server_config:\n  http2: true\n", "HTTP/1.1"),
}


def promtool_accepts(path) -> bool:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: scripts/test installs Debian's prometheus package"
    # From another folder: relative names are the config file's folder's.
    result = subprocess.run([promtool, "check", "web-config", str(path)], cwd="/",
                            capture_output=True, text=True)
    return result.returncode == 0


def write(certs, name, text):
    path = certs / f"{name.replace(' ', '-')}.yml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", BOTH_ACCEPT)
def test_valid_files_are_accepted_by_both(certs, name):
    path = write(certs, name, BOTH_ACCEPT[name])
    assert promtool_accepts(path)
    config = load_web_config(str(path))
    assert bool(config.tls) == ("cert_file" in BOTH_ACCEPT[name])


@pytest.mark.parametrize("name", BOTH_REFUSE)
def test_what_promtool_refuses_is_refused_with_one_line(certs, name):
    text, says = BOTH_REFUSE[name]
    path = write(certs, name, text)
    assert not promtool_accepts(path)
    with pytest.raises(WebConfigError) as e:
        load_web_config(str(path))
    assert says in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("name", WE_REFUSE)
def test_what_we_cannot_honour_is_refused_never_ignored(certs, name):
    text, says = WE_REFUSE[name]
    path = write(certs, name, text)
    assert promtool_accepts(path)
    with pytest.raises(WebConfigError) as e:
        load_web_config(str(path))
    assert says in str(e.value)


def test_relative_names_are_the_config_files_folder(certs):
    config = load_web_config(str(write(certs, "rel", BOTH_ACCEPT["mutual tls"])))
    assert config.tls.cert_file == os.path.join(str(certs), "srv.crt")
    assert config.tls.client_ca_file == os.path.join(str(certs), "ca.crt")


def test_parse_basic_header():
    token = base64.b64encode(b"prom:pa:ss").decode()
    assert parse_basic(f"Basic {token}") == ("prom", "pa:ss")
    assert parse_basic(f"basic {token}") == ("prom", "pa:ss")
    for bad in (None, "", "Bearer x", "Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode(),
                "Basic " + base64.b64encode(b"\xff:x").decode()):
        assert parse_basic(bad) is None


def test_password_check_remembers_only_good_answers():
    users = {"prom": HASH.encode()}
    check = PasswordCheck()
    assert not check.cached(users, "prom", "s3cret")
    assert check.check(users, "prom", "s3cret") and check.cached(users, "prom", "s3cret")
    assert not check.check(users, "prom", "wrong") and not check.cached(users, "prom", "wrong")
    assert not check.check(users, "nobody", "s3cret") and not check.cached(users, "nobody", "")
    # A changed hash (a reload) forgets the old answer.
    assert not check.cached({"prom": bcrypt.hashpw(b"new", bcrypt.gensalt(4))}, "prom", "s3cret")
