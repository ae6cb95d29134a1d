"""The web config in force (pytools.access) on real files with a stand-in
clock: reloads fail closed, the files' state is taken before reading them,
every request is checked against the users in force now, and the password
queue is bounded."""

import asyncio
import http.client
import io
import logging
import threading
from base64 import b64encode

import bcrypt
import pytest

from pytools import access
from pytools.access import WebState, lowered
from pytools.basic_auth import CheckQueue
from pytools.http_messages import Request
from pytools.webconfig import TlsSettings, WebConfig

from ..certs import make_certs

HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()
OTHER = bcrypt.hashpw(b"other", bcrypt.gensalt(4)).decode()
THIRD = bcrypt.hashpw(b"third", bcrypt.gensalt(4)).decode()
TLS = "tls_server_config:\n  cert_file: srv.crt\n  key_file: srv.key\n"
MUTUAL = TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
USERS = f"basic_auth_users:\n  prom: '{HASH}'\n"
FULL = MUTUAL + USERS


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("access-certs"))


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def state(certs, text, name="web.yml"):
    path = certs / name
    path.write_text(text)
    clock = Clock()
    web = WebState(str(path), clock)
    return web, path, clock


def later(web, clock):
    clock.now += 1.5
    web.look()


def request(user=None, password=None, path="/metrics"):
    head = f"Authorization: Basic {b64encode(f'{user}:{password}'.encode()).decode()}\r\n" \
        if user is not None else ""
    headers = http.client.parse_headers(io.BytesIO((head + "\r\n").encode()))
    return Request("GET", path, "HTTP/1.1", headers)


def verdict(web, req):
    return asyncio.run(web.verdict(req))


TLS_SETTINGS = TlsSettings("c", "k")


@pytest.mark.parametrize("old, new, explicit, refused", [
    (WebConfig(tls=TLS_SETTINGS), WebConfig(), False, "TLS off"),
    (WebConfig(tls=TLS_SETTINGS), WebConfig(), True, "TLS off"),
    (WebConfig(users={"a": b"h"}), WebConfig(), True, "configures nothing"),
    (WebConfig(users={"a": b"h"}), WebConfig(headers={"X-Frame-Options": "deny"}), False,
     "basic auth off"),
    (WebConfig(users={"a": b"h"}), WebConfig(headers={"X-Frame-Options": "deny"}), True, None),
    (WebConfig(tls=TlsSettings("c", "k", "RequireAndVerifyClientCert", "ca")),
     WebConfig(tls=TlsSettings("c", "k", "VerifyClientCertIfGiven", "ca")), False,
     "lowers client_auth_type"),
    (WebConfig(tls=TlsSettings("c", "k", min_version="TLS13")), WebConfig(tls=TLS_SETTINGS),
     False, "lowers min_version"),
    (WebConfig(), WebConfig(tls=TLS_SETTINGS, users={"a": b"h"}), False, None),
    (WebConfig(users={"a": b"h"}), WebConfig(users={"b": b"h"}), False, None),
    (WebConfig(), WebConfig(), False, None),
])
def test_what_a_reload_may_not_lower(old, new, explicit, refused):
    problem = lowered(old, new, explicit)
    assert (problem is None) == (refused is None), problem
    assert refused is None or refused in problem


@pytest.mark.parametrize("text", ["", "# only a comment\n", "tls_server_con", TLS,
                                  MUTUAL.replace("RequireAndVerifyClientCert",
                                                 "VerifyClientCertIfGiven") + USERS])
def test_a_truncated_or_weaker_file_is_refused_on_a_change_in_one_line(certs, text, caplog):
    web, path, clock = state(certs, FULL)
    caplog.set_level(logging.WARNING, "bpf-exporter")
    path.write_text(text)
    for _ in range(3):           # said once per change, not per look
        later(web, clock)
    assert web.config.tls and web.config.tls.client_auth == "RequireAndVerifyClientCert"
    assert web.tls is not None and set(web.config.users) == {"prom"}
    refusals = [r.getMessage() for r in caplog.records if "not reloaded" in r.getMessage()]
    assert len(refusals) == 1 and "\n" not in refusals[0], refusals
    # The whole file back: served as before, nothing refused.
    path.write_text(FULL + "# again\n")
    later(web, clock)
    assert verdict(web, request("prom", "s3cret")) is True


def test_sighup_may_drop_auth_on_purpose_but_never_tls_nor_apply_an_empty_file(certs):
    web, path, clock = state(certs, FULL, "hup.yml")
    path.write_text(MUTUAL)
    web.reload("SIGHUP")
    assert not web.config.users and web.tls is not None
    path.write_text(USERS)
    web.reload("SIGHUP")
    assert web.config.tls is not None, "SIGHUP turned TLS off"
    path.write_text("")
    web.reload("SIGHUP")
    assert web.config.tls is not None


def test_a_write_during_a_reload_is_seen_at_the_next_look(certs, monkeypatch):
    """The race: the file completed after the exporter read it but before it
    looked at its state. The state is the one before reading: the write is
    seen."""
    web, path, clock = state(certs, FULL, "race.yml")
    real = access.load_web_config
    newer = FULL.replace(HASH, THIRD) + "# written while the exporter read the last one\n"

    def read_then_written(p):
        config = real(p)
        path.write_text(newer)          # lands before the reload records anything
        return config

    path.write_text(FULL.replace(HASH, OTHER))
    monkeypatch.setattr(access, "load_web_config", read_then_written)
    later(web, clock)
    monkeypatch.setattr(access, "load_web_config", real)
    later(web, clock)
    assert path.read_text() == newer
    assert verdict(web, request("prom", "third")) is True


def test_a_removed_user_is_refused_at_its_next_request(certs):
    web, path, clock = state(certs, FULL + f"  gone: '{OTHER}'\n", "users.yml")
    assert verdict(web, request("gone", "other")) is True
    path.write_text(FULL)
    clock.now += 1.5        # no new connection: only requests
    assert verdict(web, request("gone", "other")) is False
    assert verdict(web, request("prom", "s3cret")) is True


def test_health_stays_open_and_no_credentials_are_refused(certs):
    web, _, _ = state(certs, USERS, "open.yml")
    assert verdict(web, request(path="/healthz")) is True
    assert verdict(web, request()) is False


def test_the_check_queue_refuses_its_excess_at_once():
    gate = threading.Event()

    def slow(x):
        gate.wait(5)
        return x

    async def main():
        queue = CheckQueue(threads=1, bound=2)
        waiting = [asyncio.ensure_future(queue.run(slow, True)) for _ in range(2)]
        await asyncio.sleep(0.05)
        over = await asyncio.wait_for(queue.run(slow, True), 1)   # at once, not after the gate
        gate.set()
        return over, await asyncio.gather(*waiting), queue
    over, done, queue = asyncio.run(main())
    assert over is None and done == [True, True]
    assert queue.refused == 1 and queue.pending == 0
