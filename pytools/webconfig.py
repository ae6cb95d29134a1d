"""`--web.config.file`: TLS and basic auth in Prometheus exporter-toolkit's
format, so one file serves node_exporter and bpf-exporter alike, and
`promtool check web-config` accepts it.

    tls_server_config:
      cert_file: server.crt          # relative paths: from the file's folder
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert
      client_ca_file: ca.crt
      min_version: TLS12             # TLS10..TLS13; default TLS12
      max_version: TLS13
    http_server_config:
      headers: {X-Frame-Options: deny}
    basic_auth_users:
      prometheus: $2y$10$...        # bcrypt hashes (htpasswd -nBC 10 "")

A setting this server cannot honour is refused with one line, never
ignored: RequestClientCert and RequireAnyClientCert (Python's ssl cannot ask
for a client certificate without verifying it), cipher_suites,
curve_preferences, prefer_server_cipher_suites, client_allowed_sans, inline
cert/key, http2: true (this server speaks HTTP/1.1). Whatever promtool
refuses is refused here too (tests/unit/test_webconfig.py runs both).

Parsing is pure but for reading the named files; the SSL context and the
password check are built from the parsed settings.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import ssl
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

TOP_LEVEL = ("tls_server_config", "http_server_config", "basic_auth_users")
TLS_SUPPORTED = ("cert_file", "key_file", "client_auth_type", "client_ca_file",
                 "min_version", "max_version")
TLS_UNSUPPORTED = ("cipher_suites", "curve_preferences", "prefer_server_cipher_suites",
                   "client_allowed_sans", "cert", "key")
CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE,
               "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
               "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
CLIENT_AUTH_UNSUPPORTED = ("RequestClientCert", "RequireAnyClientCert")
VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
            "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# The headers exporter-toolkit lets a config set (its http_server_config).
SETTABLE_HEADERS = ("Strict-Transport-Security", "X-Content-Type-Options",
                    "X-Frame-Options", "X-XSS-Protection", "Content-Security-Policy")


class WebConfigError(ValueError):
    pass


@dataclass(frozen=True)
class TlsSettings:
    cert_file: str
    key_file: str
    client_auth: str = "NoClientCert"
    client_ca_file: Optional[str] = None
    min_version: str = "TLS12"
    max_version: Optional[str] = None


@dataclass(frozen=True)
class WebConfig:
    tls: Optional[TlsSettings] = None
    users: Dict[str, bytes] = field(default_factory=dict)     # user -> bcrypt hash
    headers: Dict[str, str] = field(default_factory=dict)

    @property
    def describe(self) -> str:
        parts = []
        if self.tls:
            parts.append("TLS" + (" with client certificates"
                                  if self.tls.client_auth != "NoClientCert" else ""))
        if self.users:
            parts.append(f"basic auth ({len(self.users)} users)")
        return ", ".join(parts) or "plain HTTP, no auth"


def _mapping(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WebConfigError(f"{where} must be a mapping")
    return value


def _text(value, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise WebConfigError(f"{where} must be a non-empty string")
    return value


def parse_web_config(text: str, base_dir: str) -> WebConfig:
    """Parse and check a web config; relative file names are taken from
    base_dir (the config file's folder, as exporter-toolkit does)."""
    import yaml
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise WebConfigError(f"not valid YAML{where}") from None
    doc = _mapping(doc, "the file")
    for key in doc:
        if key not in TOP_LEVEL:
            raise WebConfigError(f"unknown field {key!r} (known: {', '.join(TOP_LEVEL)})")
    return WebConfig(tls=_parse_tls(doc.get("tls_server_config"), base_dir),
                     users=_parse_users(doc.get("basic_auth_users")),
                     headers=_parse_http(doc.get("http_server_config")))


def _parse_tls(value, base_dir: str) -> Optional[TlsSettings]:
    if value is None:
        return None
    tls = _mapping(value, "tls_server_config")
    for key in tls:
        if key in TLS_UNSUPPORTED:
            raise WebConfigError(f"tls_server_config.{key} is not supported by bpf-exporter; "
                                 "remove it")
        if key not in TLS_SUPPORTED:
            raise WebConfigError(f"unknown field tls_server_config.{key}")
    for key in ("cert_file", "key_file"):
        if not tls.get(key):
            raise WebConfigError(f"tls_server_config: missing {key}")

    def path(key: str) -> str:
        return os.path.join(base_dir, _text(tls[key], f"tls_server_config.{key}"))

    auth = tls.get("client_auth_type") or "NoClientCert"
    if auth in CLIENT_AUTH_UNSUPPORTED:
        raise WebConfigError(f"client_auth_type {auth} is not supported (Python's ssl cannot "
                             "ask for a client certificate without verifying it); use "
                             "VerifyClientCertIfGiven or RequireAndVerifyClientCert")
    if auth not in CLIENT_AUTH:
        raise WebConfigError(f"client_auth_type {auth!r} is not one of "
                             f"{', '.join(list(CLIENT_AUTH) + list(CLIENT_AUTH_UNSUPPORTED))}")
    ca = path("client_ca_file") if tls.get("client_ca_file") else None
    if ca and auth == "NoClientCert":
        raise WebConfigError("client_ca_file is set but client_auth_type does not ask for "
                             "client certificates")
    versions = {}
    for key in ("min_version", "max_version"):
        if tls.get(key) is not None:
            if tls[key] not in VERSIONS:
                raise WebConfigError(f"tls_server_config.{key}: unknown TLS version "
                                     f"{tls[key]!r} (one of {', '.join(VERSIONS)})")
            versions[key] = tls[key]
    settings = TlsSettings(path("cert_file"), path("key_file"), auth, ca,
                           versions.get("min_version", "TLS12"), versions.get("max_version"))
    if settings.max_version and VERSIONS[settings.max_version] < VERSIONS[settings.min_version]:
        raise WebConfigError("tls_server_config: max_version is below min_version")
    ssl_context(settings)       # every file readable, the key matching the certificate
    return settings


def _parse_users(value) -> Dict[str, bytes]:
    users = {}
    for user, hashed in _mapping(value, "basic_auth_users").items():
        user = str(user)
        if not isinstance(hashed, str):
            raise WebConfigError(f"basic_auth_users.{user}: the password must be a bcrypt hash")
        if not bcrypt_hash_ok(hashed.encode()):
            raise WebConfigError(f"basic_auth_users.{user}: not a bcrypt hash (make one with "
                                 "htpasswd -nBC 10 \"\" | tr -d ':\\n')")
        users[user] = hashed.encode()
    return users


def _parse_http(value) -> Dict[str, str]:
    http = _mapping(value, "http_server_config")
    for key in http:
        if key not in ("http2", "headers"):
            raise WebConfigError(f"unknown field http_server_config.{key}")
    if http.get("http2") is True:
        raise WebConfigError("http_server_config.http2: true is not supported (bpf-exporter "
                             "speaks HTTP/1.1); remove it or set it to false")
    headers = {}
    for name, text in _mapping(http.get("headers"), "http_server_config.headers").items():
        canonical = next((h for h in SETTABLE_HEADERS if h.lower() == str(name).lower()), None)
        if canonical is None:
            raise WebConfigError(f"HTTP header {name!r} cannot be configured (only "
                                 f"{', '.join(SETTABLE_HEADERS)})")
        if "\r" in str(text) or "\n" in str(text):
            raise WebConfigError(f"HTTP header {name}: a value cannot span lines")
        headers[canonical] = str(text)
    return headers


def bcrypt_hash_ok(hashed: bytes) -> bool:
    import bcrypt
    try:
        bcrypt.checkpw(b"", hashed)
        return True
    except ValueError:
        return False


def ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = VERSIONS[tls.min_version]
    if tls.max_version:
        context.maximum_version = VERSIONS[tls.max_version]
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except FileNotFoundError as e:
        raise WebConfigError(f"cannot read {e.filename}: no such file") from None
    except ssl.SSLError as e:
        raise WebConfigError(f"{tls.cert_file} and {tls.key_file}: not a matching certificate "
                             f"and key ({e.reason or e})") from None
    except OSError as e:
        raise WebConfigError(f"cannot read {e.filename or tls.cert_file}: {e.strerror}") from None
    context.verify_mode = CLIENT_AUTH[tls.client_auth]
    if tls.client_auth != "NoClientCert":
        try:
            if tls.client_ca_file:
                context.load_verify_locations(cafile=tls.client_ca_file)
            else:
                context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        except FileNotFoundError:
            raise WebConfigError(f"cannot read {tls.client_ca_file}: no such file") from None
        except ssl.SSLError as e:
            raise WebConfigError(f"{tls.client_ca_file}: no CA certificate in it "
                                 f"({e.reason or e})") from None
    return context


def load_web_config(path: str) -> WebConfig:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise WebConfigError(f"cannot read it: {e.strerror}") from None
    except UnicodeDecodeError:
        raise WebConfigError("not UTF-8 text") from None
    return parse_web_config(text, os.path.dirname(os.path.abspath(path)))


# -------------------------------------------------------------- basic auth

def parse_basic(header: Optional[str]) -> Optional[Tuple[str, str]]:
    """(user, password) from an Authorization header, or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class PasswordCheck:
    """bcrypt checks of basic-auth credentials against the users' hashes.

    A user that does not exist is checked against a stand-in hash of the
    same cost, so the time taken does not say which users exist; bcrypt's
    own comparison is constant-time. bcrypt is slow by design (~60 ms at
    cost 10), so good answers are remembered (keyed by a hash of user,
    password and stored hash, bounded), as exporter-toolkit does: a
    scraper pays once, not per scrape. Wrong answers are never remembered."""

    def __init__(self, size: int = 256):
        self._good: "OrderedDict[bytes, None]" = OrderedDict()
        self._size = size
        self._lock = threading.Lock()
        self._stand_in: Dict[int, bytes] = {}

    def _stand_in_hash(self, cost: int) -> bytes:
        import bcrypt
        if cost not in self._stand_in:
            self._stand_in[cost] = bcrypt.hashpw(os.urandom(16), bcrypt.gensalt(cost))
        return self._stand_in[cost]

    def cached(self, users: Dict[str, bytes], user: str, password: str) -> bool:
        key = self._key(users, user, password)
        with self._lock:
            return key is not None and key in self._good

    def check(self, users: Dict[str, bytes], user: str, password: str) -> bool:
        import bcrypt
        stored = users.get(user)
        cost = int(next(iter(users.values()))[4:6]) if users else 10
        hashed = stored if stored is not None else self._stand_in_hash(cost)
        ok = bcrypt.checkpw(password.encode(), hashed) and stored is not None
        if ok:
            key = self._key(users, user, password)
            with self._lock:
                self._good[key] = None
                while len(self._good) > self._size:
                    self._good.popitem(last=False)
        return ok

    @staticmethod
    def _key(users: Dict[str, bytes], user: str, password: str) -> Optional[bytes]:
        stored = users.get(user)
        if stored is None:
            return None
        return hashlib.sha256(b"\0".join([user.encode(), password.encode(), stored])).digest()
