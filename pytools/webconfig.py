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

The verdict on a file is promtool's (tests/unit/test_webconfig.py runs a
corpus through both): the YAML is read strictly (every value a string as
written, so a user called `yes` or `0x10` keeps that name; a key set twice,
an alias, or a value of the wrong kind is refused; go-yaml's unquoted
nulls, `~` and `null`, mean unset, and a `tls_server_config` with nothing
set means no TLS, as exporter-toolkit reads it), headers are exactly
exporter-toolkit's five with its allowed values, and a bcrypt hash must have
the form Go's bcrypt accepts. A setting this server cannot honour is refused
with one line, never ignored: RequestClientCert and RequireAnyClientCert
(Python's ssl cannot ask for a client certificate without verifying it),
min_version TLS10 or TLS11 (this OpenSSL's security level never negotiates
them), curve_preferences,
prefer_server_cipher_suites, client_allowed_sans, inline cert/key,
http2: true (this server speaks HTTP/1.1), and bcrypt costs over 16 (each
check would take over 5 s: cost 31 is about two days, and exporter-toolkit
would spend that on every request; promtool accepts any cost 4-31).

TLS defaults: TLS 1.2 and 1.3, and for TLS 1.2 only suites with forward
secrecy and an AEAD cipher (ECDHE with AES-GCM or ChaCha20): Go's defaults
since 1.22, which exporter-toolkit uses, minus their CBC suites.
`cipher_suites` takes Go's names and is honoured.

Everything that reads a file or parses text raises WebConfigError with one
line, whatever went wrong (a wrong type, a NUL byte, a file too large):
a bad file is refused at start and on reload, where the old one stays.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import yaml

from .bcrypt_hashes import bcrypt_hash_problem

TOP_LEVEL = ("tls_server_config", "http_server_config", "basic_auth_users")
TLS_SUPPORTED = ("cert_file", "key_file", "client_auth_type", "client_ca_file",
                 "min_version", "max_version", "cipher_suites")
TLS_UNSUPPORTED = ("curve_preferences", "prefer_server_cipher_suites",
                   "client_allowed_sans", "cert", "key")
CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE,
               "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
               "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
CLIENT_AUTH_UNSUPPORTED = ("RequestClientCert", "RequireAnyClientCert")
VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
            "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
VERSIONS_UNSUPPORTED = ("TLS10", "TLS11")
# The headers exporter-toolkit lets a config set, by exact name, and the
# values it allows where it restricts them.
SETTABLE_HEADERS = ("Strict-Transport-Security", "X-Content-Type-Options",
                    "X-Frame-Options", "X-XSS-Protection", "Content-Security-Policy")
HEADER_VALUES = {"X-Frame-Options": ("deny", "sameorigin"),
                 "X-Content-Type-Options": ("nosniff",)}
# Go's TLS 1.2 cipher suite names that promtool (Go's tls.CipherSuites and
# InsecureCipherSuites, less those Prometheus refuses) accepts -> OpenSSL's.
CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
# TLS 1.3's: Go takes the names and ignores them (1.3 suites are not
# configurable there); so does this server.
CIPHER_SUITES_TLS13 = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                       "TLS_CHACHA20_POLY1305_SHA256")
DEFAULT_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                   "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                   "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")
# go-yaml v2's booleans (YAML 1.1), for http2.
YAML_TRUE = ("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON")
YAML_FALSE = ("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF")
YAML_NULL = ("", "~", "null", "Null", "NULL")
# Go's bcrypt: "$2" + optional minor + "$" + two-digit cost + "$" + 53 chars.


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
    ciphers: str = DEFAULT_CIPHERS      # OpenSSL's names, for TLS 1.2

    @property
    def files(self) -> Tuple[str, ...]:
        return tuple(f for f in (self.cert_file, self.key_file, self.client_ca_file) if f)


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


def _loader():
    """A YAML loader as strict as promtool's: every scalar a string as
    written (no YAML 1.1 booleans or numbers), no aliases (a billion-laughs
    file cannot grow memory), no key set twice, keys plain scalars."""

    class StrictLoader(yaml.BaseLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise WebConfigError(f"line {mark.line + 1}: YAML aliases are not allowed here")
            return super().compose_node(parent, index)

        def construct_scalar(self, node):
            # go-yaml's nulls, unquoted: `client_ca_file: ~` is unset, as
            # in promtool, not a file called "~" ("null" quoted is a name).
            if node.style is None and node.value in YAML_NULL:
                return None
            return super().construct_scalar(node)

        def construct_mapping(self, node, deep=False):
            mapping = {}
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if not isinstance(key_node, yaml.ScalarNode):
                    raise WebConfigError(f"line {line}: a key must be a plain value")
                if key_node.value in mapping:
                    raise WebConfigError(f"line {line}: {key_node.value!r} is set twice")
                # Keys as written (a user called `null` keeps that name).
                mapping[key_node.value] = self.construct_object(value_node, deep=True)
            return mapping

    return StrictLoader


def _mapping(value, where: str) -> dict:
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise WebConfigError(f"{where} must be a mapping")
    return value


def _text(value, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise WebConfigError(f"{where} must be a non-empty string")
    if "\0" in value:
        raise WebConfigError(f"{where} holds a NUL byte")
    return value


def _optional_text(tls: dict, key: str) -> Optional[str]:
    value = tls.get(key)
    return None if value in (None, "") else _text(value, f"tls_server_config.{key}")


def parse_web_config(text: str, base_dir: str) -> WebConfig:
    """Parse and check a web config; relative file names are taken from
    base_dir (the config file's folder, as exporter-toolkit does). Any
    problem is one WebConfigError."""
    try:
        doc = yaml.load(text, Loader=_loader())
    except WebConfigError:
        raise
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise WebConfigError(f"not valid YAML{where}") from None
    except RecursionError:
        raise WebConfigError("nested too deeply") from None
    doc = _mapping(doc, "the file")
    for key in doc:
        if key not in TOP_LEVEL:
            raise WebConfigError(f"unknown field {key!r} (known: {', '.join(TOP_LEVEL)})")
    return WebConfig(tls=_parse_tls(doc.get("tls_server_config"), base_dir),
                     users=_parse_users(doc.get("basic_auth_users")),
                     headers=_parse_http(doc.get("http_server_config")))


def _parse_tls(value, base_dir: str) -> Optional[TlsSettings]:
    if value is None or value == "":
        return None
    tls = _mapping(value, "tls_server_config")
    for key in tls:
        if key in TLS_UNSUPPORTED:
            raise WebConfigError(f"tls_server_config.{key} is not supported by bpf-exporter; "
                                 "remove it")
        if key not in TLS_SUPPORTED:
            raise WebConfigError(f"unknown field tls_server_config.{key}")
    if all(tls[key] in (None, "", []) for key in tls):
        return None     # `tls_server_config: {}`: no TLS, as exporter-toolkit reads it
    for key in ("cert_file", "key_file"):
        if not tls.get(key):
            raise WebConfigError(f"tls_server_config: missing {key}")

    def path(key: str) -> str:
        return os.path.join(base_dir, _text(tls[key], f"tls_server_config.{key}"))

    auth = _optional_text(tls, "client_auth_type") or "NoClientCert"
    if auth in CLIENT_AUTH_UNSUPPORTED:
        raise WebConfigError(f"client_auth_type {auth} is not supported (Python's ssl cannot "
                             "ask for a client certificate without verifying it); use "
                             "VerifyClientCertIfGiven or RequireAndVerifyClientCert")
    if auth not in CLIENT_AUTH:
        raise WebConfigError(f"client_auth_type {auth!r} is not one of "
                             f"{', '.join(list(CLIENT_AUTH) + list(CLIENT_AUTH_UNSUPPORTED))}")
    ca = path("client_ca_file") if _optional_text(tls, "client_ca_file") else None
    if ca and auth == "NoClientCert":
        raise WebConfigError("client_ca_file is set but client_auth_type does not ask for "
                             "client certificates")
    versions = {}
    for key in ("min_version", "max_version"):
        version = _optional_text(tls, key)
        if version is None:
            continue
        if version not in VERSIONS:
            raise WebConfigError(f"tls_server_config.{key}: unknown TLS version "
                                 f"{version!r} (one of {', '.join(VERSIONS)})")
        if version in VERSIONS_UNSUPPORTED and key == "min_version":
            raise WebConfigError(f"tls_server_config.min_version {version} is not supported: "
                                 "this OpenSSL never negotiates TLS 1.0 or 1.1; use TLS12")
        versions[key] = version
    settings = TlsSettings(path("cert_file"), path("key_file"), auth, ca,
                           versions.get("min_version", "TLS12"), versions.get("max_version"),
                           _parse_ciphers(tls.get("cipher_suites")))
    if settings.max_version and VERSIONS[settings.max_version] < VERSIONS[settings.min_version]:
        raise WebConfigError("tls_server_config: max_version is below min_version")
    ssl_context(settings)       # every file readable, the key matching the certificate
    return settings


def _parse_ciphers(value) -> str:
    if value is None or value == "" or value == []:
        return DEFAULT_CIPHERS
    if not isinstance(value, list):
        raise WebConfigError("tls_server_config.cipher_suites must be a list")
    names = []
    for name in value:
        name = _text(name, "tls_server_config.cipher_suites")
        if name in CIPHER_SUITES:
            names.append(CIPHER_SUITES[name])
        elif name not in CIPHER_SUITES_TLS13:
            raise WebConfigError(f"unknown cipher suite {name}")
    if not names:
        return DEFAULT_CIPHERS      # only TLS 1.3 names: Go ignores them too
    return ":".join(names)


def _parse_users(value) -> Dict[str, bytes]:
    users = {}
    for user, hashed in _mapping(value, "basic_auth_users").items():
        if not isinstance(hashed, str):
            raise WebConfigError(f"basic_auth_users.{user}: the password must be a bcrypt hash")
        problem = bcrypt_hash_problem(hashed.encode())
        if problem:
            raise WebConfigError(f"basic_auth_users.{user}: {problem}")
        users[user] = hashed.encode()
    return users


def _parse_http(value) -> Dict[str, str]:
    http = _mapping(value, "http_server_config")
    for key in http:
        if key not in ("http2", "headers"):
            raise WebConfigError(f"unknown field http_server_config.{key}")
    http2 = http.get("http2")
    if http2 in YAML_TRUE:
        raise WebConfigError("http_server_config.http2: true is not supported (bpf-exporter "
                             "speaks HTTP/1.1); remove it or set it to false")
    if http2 not in (None, "") and http2 not in YAML_FALSE:
        raise WebConfigError("http_server_config.http2 must be true or false")
    headers = {}
    for name, text in _mapping(http.get("headers"), "http_server_config.headers").items():
        if name not in SETTABLE_HEADERS:
            raise WebConfigError(f"HTTP header {name!r} cannot be configured (only "
                                 f"{', '.join(SETTABLE_HEADERS)})")
        if not isinstance(text, str):
            raise WebConfigError(f"HTTP header {name}: the value must be a string")
        if any(c in text for c in "\r\n\0"):
            raise WebConfigError(f"HTTP header {name}: a value cannot span lines")
        allowed = HEADER_VALUES.get(name)
        if allowed and text not in allowed:
            raise WebConfigError(f"HTTP header {name}: {text!r} is not one of "
                                 f"{', '.join(allowed)}")
        headers[name] = text
    return headers


def ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = VERSIONS[tls.min_version]
    if tls.max_version:
        context.maximum_version = VERSIONS[tls.max_version]
    try:
        context.set_ciphers(tls.ciphers)
    except ssl.SSLError:
        raise WebConfigError(f"no cipher suite of {tls.ciphers} is available") from None
    for name, path in (("cert_file", tls.cert_file), ("key_file", tls.key_file)):
        try:
            with open(path, "rb"):
                pass
        except OSError as e:
            raise WebConfigError(f"tls_server_config.{name}: cannot read {path}: "
                                 f"{e.strerror}") from None
        except ValueError as e:
            raise WebConfigError(f"tls_server_config.{name}: {e}") from None

    def no_pass_phrase():
        raise WebConfigError(f"tls_server_config.key_file {tls.key_file} is encrypted: "
                             "bpf-exporter takes unencrypted keys (as exporter-toolkit does)")
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file, password=no_pass_phrase)
    except WebConfigError:
        raise
    except ssl.SSLError as e:
        raise WebConfigError(f"{tls.cert_file} and {tls.key_file}: not a matching certificate "
                             f"and key ({e.reason or e})") from None
    except OSError as e:
        raise WebConfigError(f"cannot read {e.filename or tls.cert_file}: {e.strerror}") from None
    context.verify_mode = CLIENT_AUTH[tls.client_auth]
    # Any certificate in client_ca_file is an anchor, as in Go's pool: an
    # intermediate CA there trusts the clients it signed.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if tls.client_auth != "NoClientCert":
        try:
            if tls.client_ca_file:
                context.load_verify_locations(cafile=tls.client_ca_file)
            else:
                context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        except FileNotFoundError:
            raise WebConfigError(f"cannot read {tls.client_ca_file}: no such file") from None
        except OSError as e:
            raise WebConfigError(f"cannot read {tls.client_ca_file}: {e.strerror}") from None
        except ssl.SSLError as e:
            raise WebConfigError(f"{tls.client_ca_file}: no CA certificate in it "
                                 f"({e.reason or e})") from None
    return context
