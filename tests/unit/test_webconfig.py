"""--web.config.file parsing, against `promtool check web-config` on the same
files: what promtool refuses we refuse; what we cannot honour we refuse with
one line, though promtool accepts it."""

import base64
import os
import shutil
import subprocess
import threading
import time

import bcrypt
import pytest
from hypothesis import given, settings, strategies as st

from pytools.basic_auth import PasswordCheck, parse_basic
from pytools.webconfig import WebConfigError
from pytools.webconfig_file import load_web_config

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
    "mutual tls": TLS + "  client_auth_type: RequireAndVerifyClientCert\n"
                        "  client_ca_file: ca.crt\n",
    "optional client cert": TLS + "  client_auth_type: VerifyClientCertIfGiven\n"
                                  "  client_ca_file: ca.crt\n",
    "versions": TLS + "  min_version: TLS12\n  max_version: TLS13\n",
    "headers": "http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n",
    "everything": TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
                        f"basic_auth_users:\n  prom: '{HASH}'\n",
}
HASH_USER = f"'{HASH}'"
BOTH_ACCEPT.update({
    # Names are strings as written (YAML 1.1 would make these True and 16).
    "yaml 1.1 names": f"basic_auth_users:\n  yes: {HASH_USER}\n  0x10: {HASH_USER}\n",
    "csp outside latin-1": "http_server_config:\n  headers:\n"
                           "    Content-Security-Policy: \"default-src \u20ac\"\n",
    "free-form headers": "http_server_config:\n  headers:\n    X-XSS-Protection: whatever\n"
                         "    Strict-Transport-Security: max-age=1\n",
    "frame sameorigin": "http_server_config:\n  headers:\n    X-Frame-Options: sameorigin\n"
                        "    X-Content-Type-Options: nosniff\n",
    "http2 no": "http_server_config:\n  http2: no\n",
    "cipher suites": TLS + "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n",
    "static rsa asked for": TLS + "  cipher_suites: [TLS_RSA_WITH_AES_128_GCM_SHA256]\n",
    # go-yaml's nulls are unset, and an empty tls_server_config is no TLS.
    "tls empty": "tls_server_config: {}\n",
    "nulls": "tls_server_config: ~\nbasic_auth_users: null\nhttp_server_config: NULL\n",
    "tls fields null": "tls_server_config:\n  cert_file: null\n  key_file: ~\n"
                       "  client_ca_file: Null\n",
    "client ca null": TLS + "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ~\n",
})
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
                     "No such file"),
    "cert as key": ("tls_server_config:\n  cert_file: srv.crt\n  key_file: srv.crt\n",
                    "not a matching certificate and key"),
    "header": ("http_server_config:\n  headers:\n    X-Custom: a\n", "cannot be configured"),
    "header in lower case": ("http_server_config:\n  headers:\n    x-frame-options: deny\n",
                             "cannot be configured"),
    "frame allowall": ("http_server_config:\n  headers:\n    X-Frame-Options: allowall\n",
                       "is not one of deny, sameorigin"),
    "frame in mixed case": ("http_server_config:\n  headers:\n    X-Frame-Options: SameOrigin\n",
                            "is not one of"),
    "sniff": ("http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n",
              "is not one of nosniff"),
    "a block set twice": (f"basic_auth_users:\n  a: {HASH_USER}\nbasic_auth_users:\n"
                          f"  b: {HASH_USER}\n", "'basic_auth_users' is set twice"),
    "a field set twice": ("tls_server_config:\n  cert_file: srv.crt\n  cert_file: srv.crt\n"
                          "  key_file: srv.key\n", "'cert_file' is set twice"),
    "a list for a string": (TLS + "  client_auth_type: [VerifyClientCertIfGiven]\n",
                            "must be a non-empty string"),
    "a mapping for a string": (TLS + "  min_version: {a: b}\n", "must be a non-empty string"),
    "an alias": ("a: &a [x]\nbasic_auth_users: *a\n", "aliases are not allowed"),
    "a NUL in a path": ('tls_server_config:\n  cert_file: "srv\\0.crt"\n  key_file: srv.key\n',
                        "NUL byte"),
    "unknown cipher": (TLS + "  cipher_suites: [TLS_FOO]\n", "unknown cipher suite TLS_FOO"),
    "an insecure cipher": (TLS + "  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n",
                           "unknown cipher suite"),
    "hash too short": ("basic_auth_users:\n  a: $2y$10$abc\n", "not a bcrypt hash"),
    # Newer exporter-toolkits have it; Debian's promtool 2.42 does not know it.
    "sans": (TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
                   "  client_allowed_sans: [a]\n", "client_allowed_sans is not supported"),
}
BOTH_REFUSE.update({
    # Quoted, "null" is a name: a file that is not there.
    "null quoted": (TLS + "  client_auth_type: RequireAndVerifyClientCert\n"
                          "  client_ca_file: \"null\"\n", "cannot read"),
    "auth without cert": ("tls_server_config:\n  client_auth_type: NoClientCert\n",
                          "missing cert_file"),
})
WE_REFUSE = {   # promtool accepts; we cannot honour them
    "tls 1.0": (TLS + "  min_version: TLS10\n", "never negotiates TLS 1.0 or 1.1"),
    "cost 31": ("basic_auth_users:\n  a: $2y$31$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV"
                "/LDeSi\n", "bcrypt cost 31 is not supported: each check would take about"),
    "curves": (TLS + "  curve_preferences: [CurveP256]\n", "curve_preferences is not supported"),
    "request cert": (TLS + "  client_auth_type: RequestClientCert\n", "is not supported"),
    "require any": (TLS + "  client_auth_type: RequireAnyClientCert\n", "is not supported"),
    "http2": ("http_server_config:\n  http2: true\n", "HTTP/1.1"),
    "http2 yes": ("http_server_config:\n  http2: yes\n", "HTTP/1.1"),
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
    assert bool(config.tls) == ("cert_file: srv.crt" in BOTH_ACCEPT[name])


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


def test_yaml_1_1_names_stay_as_written(certs):
    config = load_web_config(str(write(certs, "names", BOTH_ACCEPT["yaml 1.1 names"])))
    assert set(config.users) == {"yes", "0x10"}


def test_an_alias_bomb_is_refused_at_once(certs):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(20))
    start = time.monotonic()
    with pytest.raises(WebConfigError, match="aliases are not allowed"):
        load_web_config(str(write(certs, "bomb", bomb)))
    assert time.monotonic() - start < 1


def test_a_file_too_large_is_refused(certs):
    with pytest.raises(WebConfigError, match="not a web config"):
        load_web_config(str(write(certs, "huge", "#" * (2 << 20))))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300))
def test_any_text_is_a_config_or_one_line_never_a_traceback(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "web.yml"
    path.write_text(text)
    try:
        load_web_config(str(path))
    except WebConfigError as e:
        assert "\n" not in str(e)


@pytest.mark.parametrize("text", [
    "tls_server_config: [1, 2]\n", "basic_auth_users: [a]\n", "basic_auth_users:\n  a: [b]\n",
    "basic_auth_users:\n  ? [a]\n  : b\n", "http_server_config:\n  headers: [a]\n",
    "http_server_config:\n  headers:\n    X-Frame-Options: [deny]\n",
    "http_server_config:\n  http2: maybe\n", TLS + "  cipher_suites: TLS_FOO\n",
    "- a\n- b\n", "'just a string'\n", "tls_server_config:\n  cert_file: {a: b}\n  key_file: k\n",
    "[" * 10000,
])
def test_values_of_the_wrong_kind_are_one_line(certs, text):
    with pytest.raises(WebConfigError) as e:
        load_web_config(str(write(certs, "kind", text)))
    assert "\n" not in str(e.value)


def test_a_nul_in_the_config_path_is_one_line():
    with pytest.raises(WebConfigError):
        load_web_config("/tmp/web\0.yml")


def test_an_encrypted_key_is_refused_without_a_prompt(certs):
    subprocess.run(["openssl", "pkey", "-in", str(certs / "srv.key"), "-aes256", "-passout",
                    "pass:x", "-out", str(certs / "enc.key")], check=True, capture_output=True)
    text = "tls_server_config:\n  cert_file: srv.crt\n  key_file: enc.key\n"
    with pytest.raises(WebConfigError, match="enc.key is encrypted"):
        load_web_config(str(write(certs, "enc", text)))


def test_an_unreadable_key_is_named_as_the_key(certs):
    (certs / "keydir").mkdir(exist_ok=True)
    text = "tls_server_config:\n  cert_file: srv.crt\n  key_file: keydir\n"
    with pytest.raises(WebConfigError, match="tls_server_config.key_file: cannot read"):
        load_web_config(str(write(certs, "keydir", text)))


def test_credentials_a_client_can_send_never_raise():
    users = {"prom": HASH.encode()}
    check = PasswordCheck()
    assert parse_basic("Basic \u00e9\u00e9\u00e9") is None          # non-ASCII header
    assert parse_basic("Basic " + base64.b64encode(b"prom:\xe9").decode()) is None  # not UTF-8
    assert not check.check(users, "prom", "x" * 100)                  # over 72 bytes
    assert not check.check(users, "prom", "s3cret\0")                  # a NUL
    assert not check.check(users, "\0", "\0")


def test_a_password_is_checked_on_its_first_72_bytes_as_go_does():
    password = b"p" * 72
    users = {"prom": bcrypt.hashpw(password, bcrypt.gensalt(4))}
    check = PasswordCheck()
    assert check.check(users, "prom", password.decode() + "extra")
    assert not check.check(users, "prom", "p" * 71)


def test_unknown_and_cheap_users_take_as_long_as_the_costliest():
    users = {"cheap": bcrypt.hashpw(b"a", bcrypt.gensalt(4)),
             "dear": bcrypt.hashpw(b"b", bcrypt.gensalt(11))}
    check = PasswordCheck()

    def took(user):
        start = time.monotonic()
        assert not check.check(users, user, "wrong")
        return time.monotonic() - start
    dear = min(took("dear") for _ in range(2))
    for user in ("cheap", "nobody"):
        assert took(user) >= 0.8 * dear, (user, dear)


def test_a_user_called_null_keeps_its_name(certs):
    config = load_web_config(str(write(certs, "null-user",
                                       f"basic_auth_users:\n  null: '{HASH}'\n")))
    assert set(config.users) == {"null"}


def test_an_intermediate_ca_as_client_ca_file_is_an_anchor_as_in_go(certs):
    """Go's pool makes every certificate in client_ca_file an anchor: the
    intermediate alone trusts the clients it signed (OpenSSL's partial
    chains), and a client of the root alone is still refused."""
    import socket
    import ssl
    from pytools.webconfig import ssl_context
    from ..certs import make_intermediate
    make_intermediate(certs)
    config = load_web_config(str(write(certs, "int", TLS + "  client_auth_type: "
                                       "RequireAndVerifyClientCert\n"
                                       "  client_ca_file: int-ca.crt\n")))
    server_side = ssl_context(config.tls)

    def handshake(cert):
        client_side = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        client_side.load_cert_chain(str(certs / f"{cert}.crt"), str(certs / f"{cert}.key"))
        a, b = socket.socketpair()
        a.settimeout(5)
        b.settimeout(5)
        result = []

        def serve():
            try:
                with server_side.wrap_socket(a, server_side=True) as s:
                    result.append(s.getpeercert()["subject"])
            except (ssl.SSLError, OSError) as e:
                result.append(e)
        t = threading.Thread(target=serve)
        t.start()
        try:
            with client_side.wrap_socket(b, server_hostname="127.0.0.1") as c:
                c.sendall(b"x")
        except (ssl.SSLError, OSError):
            pass
        t.join(10)
        return not isinstance(result[0], Exception)
    assert handshake("icli")
    assert not handshake("cli")        # signed by the root, which is not in the file
    assert not handshake("rogue")


def test_every_check_does_the_same_bcrypt_work_whoever_asks():
    """One run at each cost the users have, whatever the user (unknown,
    cheap, costly) and the password (NUL, over 72 bytes, empty): the same
    work, so the same time, with nothing padded to a measured target."""
    users = {"cheap": bcrypt.hashpw(b"a", bcrypt.gensalt(4)),
             "dear": bcrypt.hashpw(b"b", bcrypt.gensalt(6))}
    runs = []

    def checkpw(password, hashed):
        runs.append((hashed[4:6], len(password) > 0))
        return bcrypt.checkpw(password, hashed)
    check = PasswordCheck(checkpw=checkpw)
    seen = {}
    for user, password in (("nobody", "x"), ("cheap", "x"), ("dear", "x"), ("dear", "b\0"),
                           ("cheap", "a\0"), ("dear", "y" * 100), ("dear", "")):
        runs.clear()
        assert not check.check(users, user, password)
        seen[(user, password[:3])] = [cost for cost, _ in runs]
    assert set(map(tuple, seen.values())) == {(b"04", b"06")}, seen
    assert check.check(users, "cheap", "a") and check.check(users, "dear", "b")
